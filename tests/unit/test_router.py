"""Route resolution: literal segments beat parameters; 404 not_found and 405 method_not_allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import localcloud.api  # noqa: F401  (the real routes)
from localcloud import router
from localcloud.errors import ApiError
from localcloud.router import Reply, Request, resolve, route


def _handler(name: str) -> router.Handler:
    def handle(req: Request) -> Reply:
        return Reply(200, {"handler": name})

    return handle


@pytest.fixture
def routes() -> Iterator[None]:
    saved = list(router.ROUTES)
    router.ROUTES.clear()
    try:
        yield
    finally:
        router.ROUTES[:] = saved


def test_literal_beats_param_whatever_the_registration_order(routes: None) -> None:
    route("GET", "/things/{id}")(_handler("one"))
    route("GET", "/things/{id}/actions/{action_id}")(_handler("action_of"))
    route("POST", "/things/{id}/actions/frob")(_handler("frob"))
    route("GET", "/things/actions")(_handler("all_actions"))
    route("GET", "/things/actions/{id}")(_handler("action"))
    route("GET", "/things")(_handler("list"))
    assert resolve("GET", "/things/actions")[0].pattern == "/things/actions"
    assert resolve("GET", "/things/12") == (resolve("GET", "/things/12")[0], {"id": "12"})
    assert resolve("GET", "/things/12")[0].pattern == "/things/{id}"
    assert resolve("GET", "/things/actions/5")[0].pattern == "/things/actions/{id}"
    assert resolve("GET", "/things/actions/5")[1] == {"id": "5"}
    assert resolve("GET", "/things/3/actions/5")[1] == {"id": "3", "action_id": "5"}
    assert resolve("POST", "/things/3/actions/frob")[0].pattern == "/things/{id}/actions/frob"
    assert resolve("GET", "/things/")[0].pattern == "/things"  # a trailing slash is the same path


def test_leftmost_literal_wins_between_equally_literal_routes(routes: None) -> None:
    route("GET", "/a/{x}/c")(_handler("x"))
    route("GET", "/a/b/{y}")(_handler("y"))
    assert resolve("GET", "/a/b/c")[0].pattern == "/a/b/{y}"
    assert resolve("GET", "/a/z/c")[0].pattern == "/a/{x}/c"


def test_parameter_first_routes_keep_their_precedence(routes: None) -> None:
    route("GET", "/{x}/b")(_handler("x"))
    route("GET", "/a/{y}")(_handler("y"))
    route("GET", "/a/b")(_handler("ab"))
    assert resolve("GET", "/a/b")[0].pattern == "/a/b"
    assert resolve("GET", "/a/c")[0].pattern == "/a/{y}"
    assert resolve("GET", "/z/b")[0].pattern == "/{x}/b"
    route("GET", "/{x}/{y}")(_handler("xy"))  # the index follows later registrations
    assert resolve("GET", "/z/q")[0].pattern == "/{x}/{y}"
    assert resolve("GET", "/a/c")[0].pattern == "/a/{y}"


def test_unknown_path_is_not_found(routes: None) -> None:
    route("GET", "/things/{id}")(_handler("one"))
    for path in ("/nothing", "/things", "/things/1/more", "/", "/things//"):
        with pytest.raises(ApiError) as exc:
            resolve("GET", path)
        assert (exc.value.code, exc.value.status) == ("not_found", 404)


def test_known_path_with_another_method_is_method_not_allowed(routes: None) -> None:
    route("GET", "/things/{id}")(_handler("one"))
    route("DELETE", "/things/{id}")(_handler("delete"))
    with pytest.raises(ApiError) as exc:
        resolve("PATCH", "/things/1")
    assert (exc.value.code, exc.value.status) == ("method_not_allowed", 405)


def test_numeric_ids_only(routes: None) -> None:
    req = Request(None, "GET", "/things/x", {"id": "x", "n": "42", "sup": "\u00b2", "neg": "-1"},  # type: ignore[arg-type]
                  {}, None)
    assert req.id("n") == 42
    for key in ("id", "sup", "neg"):
        with pytest.raises(ApiError) as exc:
            req.id(key)
        assert exc.value.code == "not_found"


def test_query_helpers() -> None:
    req = Request(None, "GET", "/x", {}, {"sort": ["id", "name:desc"], "name": ["a", "b"]}, None)  # type: ignore[arg-type]
    assert req.q("name") == "b" and req.q("missing") is None
    assert req.q_all("sort") == ["id", "name:desc"] and req.q_all("missing") == []


def test_real_routes_resolve_literals_first() -> None:
    assert resolve("GET", "/ssh_keys")[0].pattern == "/ssh_keys"
    assert resolve("GET", "/ssh_keys/1")[0].pattern == "/ssh_keys/{id}"
    assert resolve("GET", "/actions/1")[0].pattern == "/actions/{id}"
    with pytest.raises(ApiError) as exc:
        resolve("PATCH", "/ssh_keys/1")
    assert exc.value.code == "method_not_allowed"
