"""passage.frontdoor: who answers which path, and what happens when a product fails."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from passage.frontdoor import FrontDoor, Handler, Paths, Prefix, Resolver, Router
from passage.frontdoor import reserved_names as reserved_names_of

SIGNAL = Prefix("/signal/", owner="signaling")
RELAY = Prefix("/$hc/", owner="the relay", ignore_case=False)
API = Paths(frozenset({"usage", "keys"}), lambda p: p.lower() in ("/usage", "/keys/a"), "the API")
NAMES = Resolver(owner="the relay")


def answering(text: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text)

    return handler


def router(*, hybrid_connections: tuple[str, ...] = ("orders", "usage")) -> Router:
    routes = Router()
    routes.add(API, answering("api"))  # registered first, asked after every prefix
    routes.add(SIGNAL, answering("signal"))
    routes.add(RELAY, answering("hc"))
    routes.add_resolver(
        NAMES,
        lambda path: answering("sender") if path.strip("/").split("/")[0] in hybrid_connections
        else None,
    )  # fmt: skip
    routes.set_fallback("the API", answering("404"))
    return routes


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("/signal/room", "signaling"),
        ("/SIGNAL/room", "signaling"),  # any case, as before
        ("/signal/orders", "signaling"),
        ("/$hc/orders", "the relay"),
        ("/usage", "the API"),  # an API route wins over a hybrid connection of that name
        ("/Usage", "the API"),
        ("/keys/a", "the API"),
        ("/orders/x", "the relay"),
        ("/nothing", "the API"),  # the fallback
        ("/$HC/orders", "the API"),  # /$hc/ is matched as written, as before
    ],
)
def test_prefixes_then_exact_paths_then_resolvers_then_the_fallback(path: str, owner: str) -> None:
    assert router().route(path)[0] == owner


def test_reserved_names_are_what_prefixes_and_exact_paths_claim() -> None:
    assert dict(router().reserved_names) == {
        "signal": "signaling",
        "$hc": "the relay",
        "keys": "the API",
        "usage": "the API",
    }
    assert reserved_names_of([SIGNAL, API]) == {
        "signal": "signaling",
        "keys": "the API",
        "usage": "the API",
    }


def test_a_name_cannot_be_claimed_twice() -> None:
    routes = router()
    with pytest.raises(ValueError, match="the console claims /usage"):
        routes.add(Prefix("/usage/", owner="the console"), answering("console"))
    routes.add(Prefix("/console/", owner="the console"), answering("console"))  # a new name
    assert routes.route("/console/")[0] == "the console"


def test_without_a_fallback_an_unclaimed_path_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        Router().route("/anything")


@pytest.fixture
async def door() -> AsyncIterator[tuple[FrontDoor, str]]:
    async def fails(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("secret detail")

    front = FrontDoor(router())
    front.add(Prefix("/broken/", owner="the console"), fails)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host, bound = await front.listen("127.0.0.1", port, None)
    try:
        yield front, f"http://{host}:{bound}"
    finally:
        await front.stop()


async def test_the_front_door_serves_each_product_over_a_real_socket(
    door: tuple[FrontDoor, str],
) -> None:
    _, base = door
    async with aiohttp.ClientSession() as session:
        for path, text in (("/signal/r", "signal"), ("/usage", "api"), ("/orders", "sender")):
            async with session.get(base + path) as answer:
                assert (answer.status, await answer.text()) == (200, text)


async def test_a_product_that_fails_is_a_500_in_its_name_without_the_detail(
    door: tuple[FrontDoor, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, base = door
    async with aiohttp.ClientSession() as session, session.get(base + "/broken/x") as answer:
        assert answer.status == 500
        body = await answer.json()
    assert body == {
        "error": {"code": "InternalError", "message": "The console failed to process the request."}
    }
    assert "secret detail" in caplog.text  # logged for the operator, not sent to the client
