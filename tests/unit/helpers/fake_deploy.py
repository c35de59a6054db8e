"""Run a role against pyinfra's @fake connector and print what it would do, as JSON.

Used by tests in a child process (pyinfra's CLI parts patch the interpreter). Input on
stdin: {"hosts": {group: [[name, data], ...]}, "common": {...}, "roles": ["k3s"]}.
Output: {host: {"commands": [...], "files": {remote path: content}}}.
"""

from __future__ import annotations

import json
import sys
from io import IOBase
from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage
from pyinfra.connectors.fake import FakeConnector

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


def main() -> None:
    spec = json.load(sys.stdin)
    FakeConnector.put_file = recording_put_file  # type: ignore[method-assign]
    groups = {g: ([(f"@fake/{n}", d) for n, d in members], {}) for g, members in spec["hosts"].items()}
    everyone = [h for members in groups.values() for h in members[0]]
    common = {"fake_delay": 0, "fake_delay_jitter": 0, **spec["common"]}
    inventory = Inventory((everyone, common), **groups)
    state = State(inventory, Config())
    state.set_stage(StateStage.Connect)
    connect_all(state)
    state.set_stage(StateStage.Prepare)
    from nornos_infra.roles import k3s

    def deploy_all() -> None:
        from pyinfra.context import host

        if "k3s_servers" in host.groups:
            k3s.k3s_server()
        if "k3s_agents" in host.groups:
            k3s.k3s_agent()

    add_deploy(state, deploy_all)
    state.set_stage(StateStage.Execute)
    run_ops(state)
    out = {h.name.removeprefix("@fake/"): {"commands": list(h.connector.executed_commands),
                                           "files": UPLOADS.get(h.name, {})} for h in inventory}
    print("JSON:" + json.dumps(out))


if __name__ == "__main__":
    main()
