#!/usr/bin/env bash
# Install what the project needs on a fresh Debian 12 machine (root): Python 3.11+ with venv,
# then the project and its dev tools into .venv. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        python_bin="$(command -v "$candidate")"; break
    fi
done
if [ -z "$python_bin" ] || ! "$python_bin" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "bootstrap: installing python3 and python3-venv from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
    python_bin="$(command -v python3)"
fi

if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi
