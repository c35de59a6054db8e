"""How long actions take: latency profiles and the time-scale factor.

``realistic`` holds the timings observed on the real service (docs/DESIGN.md, "Facts the
code relies on"); it is for benchmarks and
for rehearsing the real pace. ``fast`` keeps the same order of events at a fraction of a
second, for tests. The time scale multiplies either (0 makes every action due at once;
it still starts ``running`` and is finished by the next request).
"""

from __future__ import annotations

# Seconds per action command; "*" is the default for commands not listed.
PROFILES: dict[str, dict[str, float]] = {
    "realistic": {
        "*": 2.0,
        "create_server": 12.0,
        "start_server": 8.0,
        "stop_server": 5.0,
        "shutdown_server": 10.0,
        "reboot_server": 10.0,
        "reset_server": 6.0,
        "rebuild_server": 20.0,
        "change_server_type": 25.0,
        "create_image": 30.0,
        "delete_server": 5.0,
        "attach_to_network": 20.0,
        "detach_from_network": 8.0,
        "add_subnet": 1.0,
        "delete_subnet": 1.0,
        "add_route": 1.0,
        "delete_route": 1.0,
        "change_ip_range": 1.0,
        "create_volume": 4.0,
        "attach_volume": 9.0,
        "detach_volume": 5.0,
        "resize_volume": 5.0,
        "apply_firewall": 4.0,
        "remove_firewall": 4.0,
        "set_firewall_rules": 4.0,
        "create_load_balancer": 15.0,
        "load_balancer_attach_to_network": 60.0,
        "add_service": 5.0,
        "update_service": 5.0,
        "delete_service": 5.0,
        "add_target": 3.0,
        "remove_target": 3.0,
        "change_load_balancer_type": 15.0,
        "change_algorithm": 3.0,
        "change_protection": 0.0,
        "enable_backup": 2.0,
        "disable_backup": 2.0,
        "add_to_placement_group": 2.0,
        "remove_from_placement_group": 2.0,
    },
    "fast": {
        "*": 0.05,
        "create_server": 0.1,
        "start_server": 0.1,
        "attach_to_network": 0.1,
        "load_balancer_attach_to_network": 0.1,
        "create_image": 0.2,
        "rebuild_server": 0.2,
        "change_server_type": 0.2,
        "change_protection": 0.0,
    },
}


def duration(profile: str, command: str, time_scale: float) -> float:
    table = PROFILES[profile]
    return table.get(command, table["*"]) * time_scale
