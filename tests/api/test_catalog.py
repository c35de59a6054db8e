"""Catalogue endpoints: locations, datacenters, server and load balancer types, pricing."""

from __future__ import annotations

from hcloud import Client


def test_locations_are_the_catalogue(client: Client) -> None:
    names = {loc.name for loc in client.locations.get_all()}
    assert {"fsn1", "nbg1", "hel1"} <= names
    assert client.locations.get_by_name("fsn1").network_zone == "eu-central"


def test_server_types_carry_prices_and_deprecation(client: Client) -> None:
    cx23 = client.server_types.get_by_name("cx23")
    assert cx23.cores == 2
    assert {loc.location.name: loc.deprecation for loc in cx23.locations or []}["fsn1"] is None
    assert any(p["location"] == "fsn1" for p in cx23.prices)
    cx11 = client.server_types.get_by_name("cx11")
    fsn1 = next(loc for loc in cx11.locations or [] if loc.location.name == "fsn1")
    assert fsn1.deprecation is not None and fsn1.deprecation.unavailable_after is not None


def test_pricing_is_served_raw(client: Client) -> None:
    pricing = client.request("GET", "/pricing")["pricing"]
    assert pricing["currency"] == "EUR"
    lb11 = next(t for t in pricing["load_balancer_types"] if t["name"] == "lb11")
    assert lb11["prices"][0]["price_monthly"]["net"].startswith("7.49")


def test_datacenters_and_lb_types(client: Client) -> None:
    # the datacenters client is deprecated in hcloud-python; the endpoint is still served
    datacenters = client.request("GET", "/datacenters", params={"name": "fsn1-dc14"})["datacenters"]
    assert [dc["location"]["name"] for dc in datacenters] == ["fsn1"]
    assert client.load_balancer_types.get_by_name("lb11").max_targets == 25
