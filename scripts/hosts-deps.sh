#!/usr/bin/env bash
# What `--hosts nspawn` needs on a Debian 12 machine (root): debootstrap for the image template,
# systemd-nspawn, nftables, apt-cacher-ng (the machines' only way to Debian packages), iproute2,
# the ssh client, haproxy and openssl (load balancers, https certificates), e2fsprogs and xfsprogs (volumes), ping (probes in tests), kmod (modprobe br_netfilter where it is a module).
# Idempotent and quiet: it installs only what is missing, with one `apt-get update`.
set -euo pipefail
packages=(debootstrap systemd-container nftables apt-cacher-ng iproute2 openssh-client haproxy openssl e2fsprogs xfsprogs iputils-ping kmod
          prometheus prometheus-alertmanager)  # promtool and amtool: the alert rules and Alertmanager's configuration are checked with them
if [ "$(id -u)" != 0 ]; then
    echo "hosts-deps: not root; skipping (--hosts nspawn and the e2e tests need root)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "hosts-deps: no apt-get (not Debian); install ${packages[*]} yourself" >&2
    exit 0
fi
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ "${#missing[@]}" = 0 ] && exit 0
echo "hosts-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d: packages must not start their services (apt-cacher-ng, haproxy): localcloud
# runs its own apt-cacher-ng with its own config, and nothing else should listen.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
echo "apt-cacher-ng apt-cacher-ng/tunnelenable boolean false" | debconf-set-selections
log="$(mktemp)"
if ! apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "hosts-deps: apt-get install failed" >&2; exit 1
fi
rm -f "$log"
