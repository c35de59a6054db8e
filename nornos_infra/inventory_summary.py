"""Print a generated inventory as a short table: which host has which role and addresses.

``python -m nornos_infra.inventory_summary inventories/dev.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nornos_infra import inventory
from nornos_infra.errors import UserError


def main(path: Path) -> int:
    try:
        loaded = inventory.load(path)
    except UserError as exc:
        print(exc, file=sys.stderr)
        return 1
    table = Table(title=str(path))
    for column in ("group", "host", "public", "private", "pool", "type", "volume"):
        table.add_column(column)
    for host in loaded.hosts():
        table.add_row(host.group, host.name, host.public_ipv4, host.private_ip, str(host.data.get("pool") or ""),
                      str(host.data.get("server_type") or ""), str(host.data.get("volume_device") or ""))
    common = loaded.shared
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and CI: no truncated addresses
    console.print(table)
    print(f"network {common.get('network_cidr')}, load balancer {common.get('lb_public_ipv4')} "
          f"(private {common.get('lb_private_ip')})")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
