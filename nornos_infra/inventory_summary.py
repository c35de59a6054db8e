"""Print a generated inventory as a short table: which host has which role and addresses.

``python -m nornos_infra.inventory_summary inventories/dev.py``
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

GROUPS = ("k3s_servers", "k3s_agents", "postgres", "redis")


def main(path: Path) -> int:
    if not path.exists():
        print(f"{path} does not exist: run `python provision.py <env>` first", file=sys.stderr)
        return 1
    module = runpy.run_path(str(path))
    table = Table(title=str(path))
    for column in ("group", "host", "public", "private", "pool", "type", "volume"):
        table.add_column(column)
    common: dict[str, object] = {}
    for group in GROUPS:
        hosts, data = module.get(group, ([], {}))
        common = data
        for name, host in hosts:
            table.add_row(group, name, host.get("public_ipv4", ""), host.get("private_ip", ""), host.get("pool", ""),
                          host.get("server_type", ""), host.get("volume_device", "") or "")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and CI: no truncated addresses
    console.print(table)
    print(f"network {common.get('network_cidr')}, load balancer {common.get('lb_public_ipv4')} "
          f"(private {common.get('lb_private_ip')})")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
