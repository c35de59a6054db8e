"""Run a role against pyinfra's @fake connector and print what it would do, as JSON.

Used by tests in a child process (pyinfra's CLI parts patch the interpreter). Input on
stdin: {"hosts": {group: [[name, data], ...]}, "common": {...}, "roles": ["k3s"]}.
Output: {host: {"commands": [...], "files": {remote path: content}}}.

A host's ``fake_ip_addr`` (the text ``ip -o -4 addr show`` prints there) makes the role's
interface detection run for real: its command goes to a local shell where ``ip`` prints that
text, so the role's own pipeline (awk and all) picks the interface, not a canned answer.
``k3s_sha256`` in the input replaces the checksum pinned for the hosts' k3s_version
(nornos_infra.k3s_releases.PINNED_SHA256), as a test binary needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from io import IOBase
from typing import Any

import pyinfra
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage
from pyinfra.connectors.fake import FakeConnector
from pyinfra.connectors.util import CommandOutput, OutputLine
from pyinfra.context import ctx_host, ctx_state

UPLOADS: dict[str, dict[str, str]] = {}


def recording_put_file(self: FakeConnector, filename_or_io: Any, remote_filename: str, *args: Any,
                       **kwargs: Any) -> bool:
    if isinstance(filename_or_io, (IOBase,)) or hasattr(filename_or_io, "read"):
        data = filename_or_io.read()
        filename_or_io.seek(0)
        text = data.decode() if isinstance(data, bytes) else str(data)
    else:
        with open(filename_or_io, "rb") as handle:
            text = handle.read().decode(errors="replace")
    UPLOADS.setdefault(self.host.name, {})[remote_filename] = text
    return True


_fake_lookup = FakeConnector._lookup_response


def lookup_response(self: FakeConnector, command_str: str) -> tuple[bool, CommandOutput]:
    listing = self.host.data.get("fake_ip_addr")
    if listing is None or not command_str.startswith("ip "):
        return _fake_lookup(self, command_str)
    with tempfile.TemporaryDirectory(prefix="fake-ip-") as bindir:
        ip = os.path.join(bindir, "ip")
        with open(ip, "w") as handle:
            handle.write('#!/bin/sh\n[ "$*" = "-o -4 addr show" ] || exit 2\nprintf %s "$FAKE_IP_ADDR"\n')
        os.chmod(ip, 0o755)
        proc = subprocess.run(["sh", "-c", command_str], capture_output=True, text=True, timeout=10,
                              env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_IP_ADDR": listing})
    lines = [OutputLine("stdout", line) for line in proc.stdout.splitlines()]
    lines += [OutputLine("stderr", line) for line in proc.stderr.splitlines()]
    return proc.returncode == 0, CommandOutput(lines)


def main() -> None:
    spec = json.load(sys.stdin)
    # operations are matched across hosts by where they are called, as `pyinfra` (the CLI) does: in API
    # mode they are matched by count, and a node that skips one (k3s already installed) breaks the run
    pyinfra.is_cli = True
    FakeConnector.put_file = recording_put_file  # type: ignore[method-assign]
    FakeConnector._lookup_response = lookup_response  # type: ignore[method-assign]
    groups = {g: ([(f"@fake/{n}", d) for n, d in members], {}) for g, members in spec["hosts"].items()}
    everyone = [h for members in groups.values() for h in members[0]]
    common = {"fake_delay": 0, "fake_delay_jitter": 0, **spec["common"]}
    inventory = Inventory((everyone, common), **groups)
    state = State(inventory, Config())
    state.set_stage(StateStage.Connect)
    connect_all(state)
    state.set_stage(StateStage.Prepare)
    from nornos_infra.roles import k3s

    if spec.get("k3s_sha256"):
        from nornos_infra import k3s_releases
        from nornos_infra.kube.versions import K3S_VERSION

        version = spec["common"].get("k3s_version") or K3S_VERSION
        k3s_releases.PINNED_SHA256[version] = spec["k3s_sha256"]

    def deploy_all() -> None:
        from pyinfra.context import host

        if "k3s_servers" in host.groups:
            k3s.k3s_server()
        if "k3s_agents" in host.groups:
            k3s.k3s_agent()

    # what add_deploy does, as the CLI runs a deploy file on each host
    with ctx_state.use(state):
        for deploy_host in state.inventory.get_active_hosts():
            with ctx_host.use(deploy_host):
                deploy_all()
    state.set_stage(StateStage.Execute)
    run_ops(state)
    out = {h.name.removeprefix("@fake/"): {"commands": list(h.connector.executed_commands),
                                           "files": UPLOADS.get(h.name, {})} for h in inventory}
    print("JSON:" + json.dumps(out))


if __name__ == "__main__":
    main()
