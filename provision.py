#!/usr/bin/env python3
"""Provision an environment on Hetzner Cloud: ``python provision.py dev [--dry-run]``.

A thin entry point; the command line is nornos_infra/cli.py, the work nornos_infra/provisioning.py.
"""

import sys

from nornos_infra.cli import main

if __name__ == "__main__":
    sys.exit(main())
