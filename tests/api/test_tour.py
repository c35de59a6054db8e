"""``invoke localcloud.tour`` (localcloud/tour.py) against localcloud: the plain hcloud-python client
makes a key, a network, a firewall, two servers, a volume and a load balancer; the table shows what
exists; a second tour cleans the first up by label and makes the same again."""

from __future__ import annotations

import io

from rich.console import Console

from localcloud import tour
from tests.conftest import TOKEN, LocalCloud


def _tour(lc: LocalCloud) -> str:
    out = io.StringIO()
    tour.run(lc.endpoint, TOKEN, Console(file=out, width=200, force_terminal=False))
    return out.getvalue()


def test_the_tour_makes_its_resources_and_a_second_tour_cleans_up_first(localcloud: LocalCloud) -> None:
    localcloud.reset()
    first = _tour(localcloud)
    for needle in ("tour-web-1", "tour-web-2", "tour-net", "tour-fw", "10.0.0.0/16, subnet 10.0.1.0/24",
                   "in tcp/22 from 192.0.2.0/24, applied by label nornos.io/env=tour", "GB at /dev/disk/by-id/",
                   ":80 -> 2 servers by label role=web"):
        assert needle in first, needle
    # each server's status shows (it was taken for rich markup and vanished: "[running]")
    assert sum(1 for line in first.splitlines() if "tour-web-" in line and "(running)" in line) == 2
    assert f"export HCLOUD_ENDPOINT={localcloud.endpoint} HCLOUD_TOKEN={TOKEN}" in " ".join(first.split())
    requests = int(" ".join(first.split()).split("The tour took ")[1].split()[0])
    second = _tour(localcloud)
    again = int(" ".join(second.split()).split("The tour took ")[1].split()[0])
    assert again > requests, "the second tour also deletes the first one's resources"
    counts = tour.side(localcloud.endpoint, "stats")["resources"]
    assert (counts["server"], counts["load_balancer"], counts["volume"], counts["network"]) == (2, 1, 1, 1)
