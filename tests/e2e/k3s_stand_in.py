"""Stand-ins for the k3s binary on localcloud's machines (no k3s can be had offline).

A stand-in answers ``--version`` with its release and, started by the k3s role's unit
(Type=notify), tells systemd it is ready and then does what a kubelet does for ``invoke upgrade``:
every second it reports its node (the machine's hostname) to the API named in
/etc/rancher/k3s/stand-in-api, when there is one: its version, Ready, a fresh heartbeat. A
``broken`` one exits before it is ready, as a binary that cannot start would.

Their checksums are not the releases', so the tests pin them in the process that installs them:
``pinned_pyinfra`` runs pyinfra's command line with ``nornos_infra.k3s_releases.PINNED_SHA256``
extended (the repository's table is never changed), and the upgrade tests pass the figure in.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

API_FILE = "/etc/rancher/k3s/stand-in-api"

_TEMPLATE = '''#!/usr/bin/python3
import datetime, json, os, socket, sys, time, urllib.request
VERSION = "@VERSION@"
if sys.argv[1:2] == ["--version"]:
    print(f"k3s version {VERSION} (stand-in for tests)")
    sys.exit(0)
if @BROKEN@:
    print("stand-in: this build cannot start", file=sys.stderr)
    sys.exit(1)
address = os.environ.get("NOTIFY_SOCKET", "")
if address:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect("\\0" + address[1:] if address.startswith("@") else address)
    s.send(b"READY=1")
name = socket.gethostname()
while True:
    try:
        with open("@API_FILE@") as f:
            api = f.read().strip()
        beat = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"status": {"nodeInfo": {"kubeletVersion": VERSION},
                           "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": beat}]}}
        request = urllib.request.Request(f"{api}/api/v1/nodes/{name}/status", data=json.dumps(body).encode(),
                                         method="PATCH",
                                         headers={"Content-Type": "application/strategic-merge-patch+json"})
        urllib.request.urlopen(request, timeout=5).read()
    except (OSError, ValueError):
        pass
    time.sleep(1)
'''


def stand_in(version: str, broken: bool = False) -> str:
    return (_TEMPLATE.replace("@VERSION@", version).replace("@BROKEN@", str(broken))
            .replace("@API_FILE@", API_FILE))


def write(path: Path, version: str, broken: bool = False) -> str:
    """Write a stand-in; its sha256."""
    path.write_text(stand_in(version, broken))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned_pyinfra(pins: dict[str, str]) -> list[str]:
    """``pyinfra`` (the command line, in a process of its own) with these checksums pinned as well."""
    code = ("import sys\nfrom nornos_infra import k3s_releases\n"
            f"k3s_releases.PINNED_SHA256.update({pins!r})\n"
            "from pyinfra_cli.main import main\nsys.argv[0] = 'pyinfra'\nsys.exit(main())\n")
    return [sys.executable, "-c", code]
