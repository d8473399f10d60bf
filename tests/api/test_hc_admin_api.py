"""Hybrid Connections administration over the API: HMAC-signed JSON, ACS error bodies.

Real HTTP against the whole server (``api_harness``). ``passage hc
--connection-string`` is driven against the same server at the end.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api_harness import Answer, Api, api_server
from passage.api.call import Call
from passage.api.openapi import template_of
from passage.api.routes import ROUTES, match_route
from passage.cli.main import main
from passage.http_errors import HttpError
from passage.hybrid.admin import HybridAdmin
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights, SasToken, verify_sas_token
from passage.mounts import RESERVED_NAMES

pytestmark = pytest.mark.usefixtures("no_passage_environment")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Api, HybridAdmin]]:
    """A running server and the :class:`HybridAdmin` its API calls use."""
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        yield api, admin


def rule_path(rule: str, entity: str | None = None) -> str:
    query = "?" + urllib.parse.urlencode({"entity": entity}) if entity is not None else ""
    return f"/authorizationRules/{rule}{query}"


def assert_error(answer: Answer, status: int, code: str, target: str | None = None) -> str:
    assert answer.status == status, answer
    assert answer.body["error"]["code"] == code, answer
    assert answer.body["error"].get("target") == target, answer
    message: str = answer.body["error"]["message"]
    return message


def is_generated_key(text: str) -> bool:
    return len(base64.b64decode(text, validate=True)) == 32


# --- hybrid connections ------------------------------------------------------------


async def test_create_get_list_delete_a_hybrid_connection(
    served: tuple[Api, HybridAdmin],
) -> None:
    api, admin = served
    created = await api.request(
        "PUT", "/hybridConnections/Orders/EU", {"requiresClientAuthorization": False}
    )
    expected = {"name": "Orders/EU", "path": "orders/eu", "requiresClientAuthorization": False}
    assert (created.status, created.body) == (201, expected)
    assert admin.namespace().resolve("orders/eu/items") is not None

    fetched = await api.request("GET", "/hybridConnections/ORDERS/eu")
    assert (fetched.status, fetched.body) == (200, expected)
    plain = await api.request("PUT", "/hybridConnections/plain")  # no body: senders need a token
    assert plain.body["requiresClientAuthorization"] is True
    listed = await api.request("GET", "/hybridConnections")
    assert (listed.status, [c["path"] for c in listed.body["value"]]) == (
        200,
        ["orders/eu", "plain"],
    )

    deleted = await api.request("DELETE", "/hybridConnections/orders/eu")
    assert (deleted.status, deleted.body) == (204, None)
    assert admin.namespace().resolve("orders/eu") is None
    gone = await api.request("GET", "/hybridConnections/orders/eu")
    assert "no hybrid connection named 'orders/eu'" in assert_error(
        gone, 404, "HybridConnectionNotFound", "name"
    )
    again = await api.request("DELETE", "/hybridConnections/orders/eu")
    assert_error(again, 404, "HybridConnectionNotFound", "name")


async def test_an_encoded_slash_in_the_name_is_a_slash(served: tuple[Api, HybridAdmin]) -> None:
    api, _ = served
    created = await api.request("PUT", "/hybridConnections/a%2Fb")
    assert (created.status, created.body["path"]) == (201, "a/b")
    assert (await api.request("GET", "/hybridConnections/a/b")).status == 200


async def test_hybrid_connection_errors(served: tuple[Api, HybridAdmin]) -> None:
    api, _ = served
    assert (await api.request("PUT", "/hybridConnections/orders")).status == 201
    exists = await api.request("PUT", "/hybridConnections/ORDERS")
    assert "already exists" in assert_error(exists, 409, "Conflict", "name")
    reserved = await api.request("PUT", "/hybridConnections/usage/reports")
    assert "served by the Passage API" in assert_error(reserved, 409, "NameReserved", "name")
    invalid = await api.request("PUT", "/hybridConnections/a/.b")
    assert "segment" in assert_error(invalid, 400, "ValidationError", "name")
    flag = await api.request(
        "PUT", "/hybridConnections/other", {"requiresClientAuthorization": "no"}
    )
    assert_error(flag, 400, "ValidationError", "requiresClientAuthorization")
    listed = await api.request("GET", "/hybridConnections")
    assert [c["name"] for c in listed.body["value"]] == ["orders"]


# --- authorization rules -----------------------------------------------------------


async def test_rules_are_created_replaced_read_listed_and_deleted(
    served: tuple[Api, HybridAdmin],
) -> None:
    api, admin = served
    await api.request("PUT", "/hybridConnections/orders")
    created = await api.request("PUT", rule_path("sender", "Orders"), {"rights": ["Send"]})
    assert created.status == 201, created
    assert {k: v for k, v in created.body.items() if not k.endswith("Key")} == {
        "name": "sender",
        "entity": "orders",
        "rights": ["Send"],
    }
    assert is_generated_key(created.body["primaryKey"])
    assert is_generated_key(created.body["secondaryKey"])

    replaced = await api.request(
        "PUT", rule_path("sender", "orders"), {"rights": ["Send", "Listen"]}
    )
    assert replaced.status == 200, replaced
    assert replaced.body == created.body | {"rights": ["Listen", "Send"]}  # keys kept
    rule = admin.namespace().connections["orders"].rules["sender"]
    assert rule.rights == Rights.LISTEN | Rights.SEND
    assert rule.primary_key == created.body["primaryKey"]

    fetched = await api.request("GET", rule_path("sender", "orders"))
    assert (fetched.status, fetched.body) == (200, replaced.body)
    listed = await api.request("GET", "/authorizationRules?entity=orders")
    assert listed.body == {
        "value": [{"name": "sender", "entity": "orders", "rights": ["Listen", "Send"]}]
    }
    namespace = await api.request("GET", "/authorizationRules")
    assert namespace.body == {
        "value": [{"name": ROOT_RULE, "entity": None, "rights": ["Listen", "Send", "Manage"]}]
    }

    assert (await api.request("DELETE", rule_path("sender", "orders"))).status == 204
    gone = await api.request("GET", rule_path("sender", "orders"))
    assert_error(gone, 404, "AuthorizationRuleNotFound", "rule")
    assert admin.namespace().connections["orders"].rules == {}


async def test_given_keys_are_stored(served: tuple[Api, HybridAdmin]) -> None:
    api, admin = served
    body = {"rights": ["Listen"], "primaryKey": "p" * 20, "secondaryKey": "s" * 20}
    answer = await api.request("PUT", rule_path("listener"), body)
    assert answer.status == 201, answer
    assert (answer.body["primaryKey"], answer.body["secondaryKey"]) == ("p" * 20, "s" * 20)
    assert admin.namespace().rules["listener"].secondary_key == "s" * 20


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({}, "rights"),
        ({"rights": []}, "rights"),
        ({"rights": ["listen"]}, "rights"),  # the API spells rights as Azure does
        ({"rights": "Listen"}, "rights"),
        ({"rights": ["Listen"], "primaryKey": 5}, "primaryKey"),
        ({"rights": ["Listen"], "primaryKey": None}, "primaryKey"),
        ({"rights": ["Listen"], "secondaryKey": "too short"}, "secondaryKey"),
    ],
)
async def test_malformed_rule_bodies_are_refused(
    served: tuple[Api, HybridAdmin], body: dict[str, Any], target: str
) -> None:
    api, admin = served
    answer = await api.request("PUT", rule_path("app"), body)
    assert_error(answer, 400, "ValidationError", target)
    assert "app" not in admin.namespace().rules


async def test_rule_errors(served: tuple[Api, HybridAdmin]) -> None:
    api, _ = served
    send = {"rights": ["Send"]}
    unknown = await api.request("PUT", rule_path("app", "ghost"), send)
    assert_error(unknown, 404, "HybridConnectionNotFound", "name")
    invalid = await api.request("GET", rule_path("app", "a//b"))
    assert_error(invalid, 400, "ValidationError", "entity")
    root = await api.request("DELETE", rule_path(ROOT_RULE))
    assert "cannot be deleted" in assert_error(root, 409, "RootRuleProtected", "name")
    downgrade = await api.request("PUT", rule_path(ROOT_RULE), send)
    assert_error(downgrade, 409, "RootRuleProtected", "name")
    for n in range(11):  # with the root rule, twelve
        assert (await api.request("PUT", rule_path(f"rule{n}"), send)).status == 201
    full = await api.request("PUT", rule_path("one-too-many"), send)
    assert "12 authorization rules" in assert_error(full, 409, "QuotaExceeded", "name")


async def test_every_admin_route_needs_the_hmac(served: tuple[Api, HybridAdmin]) -> None:
    api, admin = served
    await admin.create_connection("orders")
    for method, path in [
        ("GET", "/hybridConnections"),
        ("PUT", "/hybridConnections/new"),
        ("GET", "/hybridConnections/orders"),
        ("DELETE", "/hybridConnections/orders"),
        ("GET", "/authorizationRules"),
        ("PUT", rule_path("app")),
        ("GET", rule_path(ROOT_RULE)),
        ("DELETE", rule_path(ROOT_RULE)),
    ]:
        unsigned = await api.request(method, path, sign=False)
        assert unsigned.status == 401, (method, path, unsigned)
        forged = await api.request(method, path, secret=b"not the key")
        assert forged.status == 401, (method, path, forged)
    assert [c.path for c in await admin.list_connections()] == ["orders"]
    assert ROOT_RULE in admin.namespace().rules


# --- routing -------------------------------------------------------------------------


def test_every_api_path_is_a_reserved_hybrid_connection_name() -> None:
    """A hybrid connection under an API path would never see its HTTP senders."""
    firsts = {template_of(route.path).split("/")[1].lower() for route in ROUTES}
    assert firsts <= set(RESERVED_NAMES)


def test_admin_routes_shadow_nothing() -> None:
    assert match_route("GET", "/hybridConnections")[0].operation_id == "HybridConnections_List"
    route, params = match_route("PUT", "/hybridconnections/a/b/c")
    assert (route.operation_id, params) == ("HybridConnections_Create", {"name": "a/b/c"})
    assert match_route("POST", "/keys/primary/:rotate")[0].operation_id == "AccessKeys_Rotate"
    with pytest.raises(HttpError) as excinfo:
        match_route("POST", "/hybridConnections/a")
    assert (excinfo.value.status, excinfo.value.headers["Allow"]) == (405, "PUT, GET, DELETE")


async def test_without_a_hybrid_admin_the_routes_answer_503() -> None:
    route, params = match_route("GET", "/hybridConnections")
    call = Call(
        service=None,
        ledger=None,
        key=None,
        user=None,
        params=params,
        query={},
        body={},
        client_ip=None,
    )
    with pytest.raises(HttpError) as excinfo:
        await route.handler(call)
    assert (excinfo.value.status, excinfo.value.code) == (503, "ServiceUnavailable")


# --- passage hc --connection-string ----------------------------------------------------


async def test_passage_hc_through_a_running_server(
    served: tuple[Api, HybridAdmin], capsys: pytest.CaptureFixture[str]
) -> None:
    api, admin = served
    remote = ["--connection-string", f"endpoint={api.http_base}/;accesskey={api.key.text}"]

    async def passage(*argv: str) -> tuple[int, list[str], str]:
        status = await asyncio.to_thread(main, ["hc", *argv, *remote])
        captured = capsys.readouterr()
        return status, captured.out.splitlines(), captured.err

    assert await passage("create", "Orders/EU", "--no-client-auth") == (
        0,
        ["created hybrid connection Orders/EU (anonymous senders)"],
        "",
    )
    assert admin.namespace().connections["orders/eu"].requires_client_authorization is False
    status, out, err = await passage("create", "orders/eu")
    assert (status, out) == (2, [])
    assert "answered 409: Conflict: hybrid connection 'orders/eu' already exists" in err

    status, out, _ = await passage(
        "rule", "add", "app", "--rights", "listen", "--entity", "orders/eu"
    )
    assert (status, out[0]) == (0, "created rule app on hybrid connection orders/eu: Listen")
    primary = out[1].removeprefix("primary key: ")
    assert primary == admin.namespace().connections["orders/eu"].rules["app"].primary_key
    status, out, _ = await passage(
        "rule", "add", "app", "--rights", "manage", "--entity", "orders/eu"
    )
    assert out[:2] == [
        "replaced rule app on hybrid connection orders/eu: Listen, Send, Manage",
        f"primary key: {primary}",
    ]
    assert await passage("rule", "list", "--entity", "orders/eu") == (
        0,
        ["app  Listen, Send, Manage"],
        "",
    )

    status, out, _ = await passage("token", "orders/eu", "--rule", "app", "--ttl", "120")
    assert (status, len(out)) == (0, 1)
    token = SasToken.parse(out[0])
    host = urllib.parse.urlsplit(api.http_base).netloc
    assert urllib.parse.unquote(token.resource) == f"http://{host}/Orders/EU"
    assert token.key_name == "app"
    namespace = admin.namespace()
    assert verify_sas_token(
        out[0],
        namespace.rules_for(namespace.connections["orders/eu"]),
        hosts=("127.0.0.1",),
        entity="orders/eu",
        needed=Rights.LISTEN,
        now=time.time(),
    )
    status, out, _ = await passage("token", "orders/eu")  # the root rule, from the namespace
    assert SasToken.parse(out[0]).key_name == ROOT_RULE

    assert (await passage("rule", "delete", "app", "--entity", "orders/eu"))[0] == 0
    assert await passage("delete", "orders/eu") == (
        0,
        ["deleted hybrid connection orders/eu and its rules"],
        "",
    )
    assert admin.namespace().connections == {}
