#!/usr/bin/env python3
"""Provision an environment on Hetzner Cloud: ``python provision.py dev [--dry-run]``.

A thin entry point; the work is in nornos_infra/provisioning.py.
"""

import sys

from nornos_infra.provisioning import main

if __name__ == "__main__":
    sys.exit(main())
