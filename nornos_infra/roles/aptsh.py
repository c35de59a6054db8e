"""The shell that ``apt_update`` and ``apt_packages`` (``ops.py``) run on a host (POSIX sh).

Seen on fresh hosts behind a caching proxy: ``apt-get update`` exited 0 after a failed
InRelease fetch (apt only warns), the lists had no bookworm main index, a 6-hour stamp was
written over them, and every later install said "has no installation candidate". So here:
a failed fetch fails the update, the indexes are checked after it, the stamp is written only
after both and removed after a failure, and every failure names the host, the operation and
apt's own error lines. apt's per-file retries are not turned on here (localcloud's machines
set ``Acquire::Retries`` 0): after a transfer cut midway, apt 2.6's retry hung until the
attempt's timeout (seen: 120 s per cut), so the whole update is retried instead, up to
``ops.UPDATE_ATTEMPTS`` times (10 were once all unlucky at a 20 % fault rate).
"""

from __future__ import annotations

import shlex
from typing import Any

APT_UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"  # where pyinfra's apt.update keeps it

# Every Packages index the sources name (Debian folds "all" into the architectures) and the
# Release file of its suite must exist: apt-get indextargets lists the targets, present or not.
MISSING_LISTS = r"""nornos_missing_lists() {
  apt-get indextargets --no-release-info --format '$(FILENAME) $(ARCHITECTURE) $(METAKEY)' \
      'Created-By: Packages' 2>/dev/null |
  while read -r f a k; do
    [ "$a" = all ] && continue
    set -- "$f"*; [ -e "$1" ] || echo "$f"
    b=${f%"$(printf %s "$k" | tr / _)"}
    [ -e "${b}InRelease" ] || [ -e "${b}Release" ] || echo "${b}InRelease"
  done | sort -u
}"""

# apt's own error lines (E:, W:, Err:), else its last line; a timeout says so.
APT_ERRORS = r"""nornos_apt_errors() {
  e=$(printf '%s\n' "$1" | grep -E '^(E|W|Err):' | tail -n 3 | tr '\n' ' '); e=${e% }
  [ -n "$e" ] || e=$(printf '%s\n' "$1" | tail -n 1)
  case $2 in 124|137) e="timed out after $3 s; $e" ;; esac
  printf '%s' "$e"
}"""


def _update_fn(timeout: int, stamp: str) -> str:
    """nornos_update ATTEMPTS: 0 once the lists are complete (stamp written); else 1, why in $why."""
    stamp = shlex.quote(stamp)
    return f"""nornos_update() {{
  u=0
  while :; do
    u=$((u + 1))
    out=$(timeout -k 10 {timeout} apt-get update -q -o APT::Update::Error-Mode=any \\
        -o DPkg::Lock::Timeout=60 2>&1); rc=$?
    if [ $rc = 0 ]; then
      m=$(nornos_missing_lists)
      if [ -z "$m" ]; then mkdir -p "$(dirname {stamp})" && touch {stamp}; return 0; fi
      why="apt-get update exited 0 but these lists are missing: $(echo $m)"
    else
      why=$(nornos_apt_errors "$out" $rc {timeout})
    fi
    rm -f {stamp}
    [ $u -ge $1 ] && return 1
    echo "nornos: $nornos_who: apt-get update attempt $u of $1 failed, retrying: $why" >&2
    sleep $(( u * 2 < 10 ? u * 2 : 10 ))
  done
}}"""


def _preamble(who: str, timeout: int, stamp: str) -> str:
    return "\n".join([f"nornos_who={shlex.quote(who)}", MISSING_LISTS, APT_ERRORS, _update_fn(timeout, stamp),
                      'nornos_fail() { echo "nornos: $nornos_who: $1" >&2; exit 1; }'])


def update_script(who: str, cache_time: int, timeout: int, attempts: int, stamp: str = APT_UPDATE_STAMP) -> str:
    """The update, skipped when an earlier operation of this run left fresh, complete lists."""
    minutes = max(1, cache_time // 60)
    return "\n".join([
        _preamble(who, timeout, stamp),
        f'if [ -n "$(find {shlex.quote(stamp)} -mmin -{minutes} 2>/dev/null)" ] \\',
        '    && [ -z "$(nornos_missing_lists)" ]; then',
        '  echo "apt lists are fresh"; exit 0',
        "fi",
        f'nornos_update {attempts} || nornos_fail "apt-get update failed {attempts} times: $why"',
    ])


# Failures worth another try: locks held by another apt/dpkg, and downloads that broke.
TRANSIENT = ("Could not get lock", "Unable to acquire the dpkg frontend lock", "Unable to lock",
             "Failed to fetch", "Unable to fetch some archives", "Hash Sum mismatch", "Size mismatch",
             "unexpected size", "Connection failed", "Could not connect", "Connection timed out",
             "Temporary failure", "Undetermined Error", "Error reading from server")
NO_CANDIDATE = ("has no installation candidate", "Unable to locate package", "is not installable")


def _patterns(words: tuple[str, ...]) -> str:
    return "|".join(f"*{shlex.quote(w)}*" for w in words)


def install_script(who: str, packages: list[str], timeout: int, attempts: int, update_attempts: int,
                   update_timeout: int = 120, stamp: str = APT_UPDATE_STAMP, recommends: bool = True) -> str:
    pkgs = ("" if recommends else "--no-install-recommends ") + " ".join(shlex.quote(p) for p in packages)
    return "\n".join([
        _preamble(who, update_timeout, stamp),
        "refreshed=0; n=0",
        "while :; do",
        "  n=$((n + 1))",
        f"  out=$(DEBIAN_FRONTEND=noninteractive timeout -k 10 {timeout} apt-get install -y -q"
        " -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
        f" {pkgs} 2>&1); rc=$?",
        "  [ $rc = 0 ] && exit 0",
        f"  why=$(nornos_apt_errors \"$out\" $rc {timeout})",
        '  case "$out" in',
        f"    {_patterns(NO_CANDIDATE)})",
        '      [ $refreshed = 1 ] && nornos_fail "apt-get install: no candidate even after refreshing the lists: $why"',
        '      echo "nornos: $nornos_who: no installation candidate, refreshing the apt lists once: $why" >&2',
        f'      refreshed=1; nornos_update {update_attempts} || nornos_fail "refreshing the apt lists failed: $why"',
        "      n=$((n - 1)); continue ;;",
        "    *'dpkg was interrupted'*) dpkg --configure -a >/dev/null 2>&1 ;;",
        f"    {_patterns(TRANSIENT)}) ;;",
        '    *) case $rc in 124|137) ;; *) nornos_fail "apt-get install failed: $why" ;; esac ;;',
        "  esac",
        f'  [ $n -ge {attempts} ] && nornos_fail "apt-get install failed {attempts} times: $why"',
        f'  echo "nornos: $nornos_who: apt-get install attempt $n of {attempts} failed, retrying: $why" >&2',
        "  sleep $(( n * 2 < 10 ? n * 2 : 10 ))",
        "done",
    ])


def lists_fact(stamp: str = APT_UPDATE_STAMP) -> str:
    stamp = shlex.quote(stamp)
    return "\n".join([
        MISSING_LISTS,
        f'if [ -e {stamp} ]; then echo "age $(( $(date +%s) - $(stat -c %Y {stamp}) ))"; else echo "age none"; fi',
        "nornos_missing_lists | sed 's/^/missing /'",
    ])


def parse_lists_fact(output: list[str]) -> dict[str, Any]:
    age: int | None = None
    missing: list[str] = []
    for line in output:
        key, _, value = line.strip().partition(" ")
        if key == "age" and value.lstrip("-").isdigit():
            age = int(value)
        elif key == "missing" and value:
            missing.append(value)
    return {"age": age, "missing": missing}
