"""Listing helpers: pagination meta (exactly the six keys), Link header, sort and filters."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.errors import ApiError
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Request

PAGINATION_KEYS = {"page", "per_page", "previous_page", "next_page", "last_page", "total_entries"}


def req(**query: str | list[str]) -> Request:
    q = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    return Request(None, "GET", "/things", {}, q, None)  # type: ignore[arg-type]


ITEMS = [{"id": i, "name": f"n{i:03d}"} for i in range(1, 61)]


def meta(reply_body: dict[str, Any] | None) -> dict[str, Any]:
    assert reply_body is not None
    pagination = reply_body["meta"]["pagination"]
    assert set(pagination) == PAGINATION_KEYS
    return dict(pagination)


def test_default_page_is_25() -> None:
    reply = page(req(), "things", ITEMS)
    assert reply.status == 200
    assert [t["id"] for t in reply.body["things"]] == list(range(1, 26))  # type: ignore[index]
    assert meta(reply.body) == {"page": 1, "per_page": 25, "previous_page": None, "next_page": 2,
                                "last_page": 3, "total_entries": 60}
    assert reply.headers["Link"] == ('</v1/things?per_page=25&page=2>; rel="next", '
                                     '</v1/things?per_page=25&page=3>; rel="last"')


def test_middle_and_last_pages() -> None:
    middle = page(req(page="2", per_page="20"), "things", ITEMS)
    assert meta(middle.body) == {"page": 2, "per_page": 20, "previous_page": 1, "next_page": 3,
                                 "last_page": 3, "total_entries": 60}
    assert 'rel="prev"' in middle.headers["Link"] and 'rel="next"' in middle.headers["Link"]
    last = page(req(page="3", per_page="20"), "things", ITEMS)
    assert meta(last.body)["next_page"] is None and meta(last.body)["previous_page"] == 2
    assert [t["id"] for t in last.body["things"]] == list(range(41, 61))  # type: ignore[index]
    assert 'rel="next"' not in last.headers["Link"]


def test_per_page_is_capped_at_50_and_beyond_the_last_page_is_empty() -> None:
    reply = page(req(per_page="500"), "things", ITEMS)
    assert meta(reply.body)["per_page"] == 50 and len(reply.body["things"]) == 50  # type: ignore[index]
    beyond = page(req(page="9"), "things", ITEMS)
    assert beyond.body["things"] == []  # type: ignore[index]
    assert meta(beyond.body)["next_page"] is None


def test_empty_list_has_one_page() -> None:
    assert meta(page(req(), "things", []).body) == {"page": 1, "per_page": 25, "previous_page": None,
                                                    "next_page": None, "last_page": 1, "total_entries": 0}


def test_link_keeps_the_other_query_parameters() -> None:
    reply = page(req(label_selector="env in (a,b)", sort=["name", "id:desc"], per_page="10"), "things", ITEMS)
    assert ("</v1/things?label_selector=env%20in%20%28a%2Cb%29&sort=name&sort=id%3Adesc&per_page=10&page=2>; "
            'rel="next"') in reply.headers["Link"]


@pytest.mark.parametrize(("key", "value"), [("page", "0"), ("page", "x"), ("per_page", "-1"),
                                            ("per_page", "\u00b2"), ("page", "1.5")])
def test_bad_page_parameters_are_invalid_input(key: str, value: str) -> None:
    with pytest.raises(ApiError) as exc:
        page(req(**{key: value}), "things", ITEMS)
    assert exc.value.code == "invalid_input"
    assert exc.value.details["fields"][0]["name"] == key  # type: ignore[index]


def test_sort() -> None:
    things = [{"id": 3, "name": "b", "created": None}, {"id": 1, "name": "c", "created": "2024"},
              {"id": 2, "name": "a", "created": "2023"}]
    allowed = ("id", "name", "created")
    assert [t["id"] for t in sort_items(req(), things, allowed)] == [1, 2, 3]
    assert [t["id"] for t in sort_items(req(sort="name"), things, allowed)] == [2, 3, 1]
    assert [t["id"] for t in sort_items(req(sort="name:asc"), things, allowed)] == [2, 3, 1]
    assert [t["id"] for t in sort_items(req(sort="name:desc"), things, allowed)] == [1, 3, 2]
    assert [t["id"] for t in sort_items(req(sort="id:desc"), things, allowed)] == [3, 2, 1]
    assert [t["id"] for t in sort_items(req(sort="created"), things, allowed)] == [3, 2, 1]  # null first


def test_sort_by_several_keys() -> None:
    things = [{"id": 1, "name": "b"}, {"id": 2, "name": "a"}, {"id": 3, "name": "b"}, {"id": 4, "name": "a"}]
    assert [t["id"] for t in sort_items(req(sort=["name", "id:desc"]), things, ("id", "name"))] == [4, 2, 3, 1]


@pytest.mark.parametrize("spec", ["colour", "name:up", "name:asc:desc", ""])
def test_bad_sort_is_invalid_input(spec: str) -> None:
    with pytest.raises(ApiError) as exc:
        sort_items(req(sort=spec), [], ("id", "name"))
    assert exc.value.code == "invalid_input"


def test_filter_by_name_and_label_selector() -> None:
    things = [{"id": 1, "name": "a", "labels": {"env": "prod"}}, {"id": 2, "name": "b", "labels": {}},
              {"id": 3, "name": "c"}]
    assert [t["id"] for t in filter_common(req(name="b"), things)] == [2]
    assert [t["id"] for t in filter_common(req(label_selector="env=prod"), things)] == [1]
    assert [t["id"] for t in filter_common(req(label_selector="!env"), things)] == [2, 3]
    assert [t["id"] for t in filter_common(req(label_selector=""), things)] == [1, 2, 3]  # blank: no filter
    assert [t["id"] for t in filter_common(req(name="b"), things, by_name=False)] == [1, 2, 3]
    with pytest.raises(ApiError) as exc:
        filter_common(req(label_selector="env=="), [{"id": 1, "labels": {}}])  # valid (empty value)
        filter_common(req(label_selector="a b"), things)
    assert exc.value.code == "invalid_input"
