"""Run ``apt_update`` + ``apt_packages`` (nornos_infra/roles/ops.py) against pyinfra's @fake
connector with canned fact outputs, and print the operation scripts it ran, as JSON.

Used by tests in a child process (pyinfra patches the interpreter). Input on stdin:
{"lists": [fact output lines], "dpkg": [dpkg -l lines], "packages": [...]}.
Output: JSON:{"scripts": [the operations' commands, in order]}.
"""

from __future__ import annotations

import json
import sys

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy, deploy
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage

from nornos_infra.roles.ops import apt_packages, apt_update


def main() -> None:
    spec = json.load(sys.stdin)
    responses = {"s/^/missing /": spec["lists"], "dpkg -l": spec["dpkg"]}
    data = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": responses}
    inventory = Inventory(([("@fake/web-1", data)], {}))
    state = State(inventory, Config())
    state.set_stage(StateStage.Connect)
    connect_all(state)
    state.set_stage(StateStage.Prepare)

    @deploy("Base")
    def base() -> None:
        apt_update(name="Update apt lists", cache_time=6 * 3600)
        apt_packages(name="Install base packages", packages=spec["packages"])

    add_deploy(state, base)
    state.set_stage(StateStage.Execute)
    run_ops(state)
    host = next(iter(inventory))
    scripts = [str(c) for c in host.connector.executed_commands if "nornos_who=" in str(c)]
    print("JSON:" + json.dumps({"scripts": scripts}))


if __name__ == "__main__":
    main()
