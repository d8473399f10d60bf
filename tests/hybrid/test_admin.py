"""The namespace's administration over a real SQLite store (reference §2.1, §3, §5)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from passage.api.service import new_key_text
from passage.hybrid.admin import (
    AdminError,
    AdminStore,
    HybridAdmin,
    WrittenRule,
    parse_rights,
    resource_uri,
    rights_names,
)
from passage.hybrid.entities import ROOT_RULE, HybridConnection, Namespace
from passage.hybrid.sas import Rights, SasRule, SasToken, verify_sas_token
from passage.mounts import RESERVED_NAMES
from passage.store.database import Database, open_database, sqlite_url
from passage.store.hybrid import HybridStore

NOW = 1_800_000_000.0
HOSTS = ("relay.example.test",)
BASE = "http://relay.example.test:9090"


def numbered_keys() -> Iterator[str]:
    return (f"generated-key-{n:04d}" for n in itertools.count())


def admin_on(
    store: AdminStore,
    *,
    new_key: Callable[[], str] = new_key_text,
    on_change: Callable[[Namespace], None] | None = None,
) -> HybridAdmin:
    """An admin over ``store`` at NOW, with the names the API port reserves."""
    return HybridAdmin(
        store,
        clock=lambda: NOW,
        new_key=new_key,
        reserved_names=RESERVED_NAMES,
        on_change=on_change,
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(sqlite_url(tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def admin(database: Database) -> HybridAdmin:
    keys = numbered_keys()
    created = admin_on(HybridStore(database), new_key=lambda: next(keys))
    await created.ensure_root_rule()
    return created


def error(excinfo: pytest.ExceptionInfo[AdminError]) -> tuple[int, str, str | None]:
    return excinfo.value.status, excinfo.value.code, excinfo.value.target


# --- the root rule --------------------------------------------------------------------


async def test_the_root_rule_has_every_right_and_fresh_keys(database: Database) -> None:
    admin = admin_on(HybridStore(database))
    namespace = await admin.ensure_root_rule()
    root = namespace.rules[ROOT_RULE]
    assert root.rights == Rights.LISTEN | Rights.SEND | Rights.MANAGE
    assert rights_names(root.rights) == ["Listen", "Send", "Manage"]
    assert len(base64.b64decode(root.primary_key, validate=True)) == 32
    assert len(base64.b64decode(root.secondary_key, validate=True)) == 32
    assert root.primary_key != root.secondary_key
    assert admin.namespace() is namespace


async def test_a_second_start_keeps_the_root_rules_keys(database: Database) -> None:
    first = admin_on(HybridStore(database))
    second = admin_on(HybridStore(database))
    kept = (await first.ensure_root_rule()).rules[ROOT_RULE]
    assert (await second.ensure_root_rule()).rules[ROOT_RULE] == kept


# --- hybrid connections ---------------------------------------------------------------


async def test_created_connections_are_listed_by_canonical_name(admin: HybridAdmin) -> None:
    created = await admin.create_connection("Orders/EU")
    await admin.create_connection("anonymous", requires_client_authorization=False)
    assert created == HybridConnection("orders/eu", "Orders/EU", True)
    assert [
        (c.path, c.name, c.requires_client_authorization) for c in await admin.list_connections()
    ] == [
        ("anonymous", "anonymous", False),
        ("orders/eu", "Orders/EU", True),
    ]
    assert (await admin.get_connection("ORDERS/eu")).name == "Orders/EU"
    assert admin.namespace().resolve("orders/eu/items") is not None


async def test_creating_an_existing_name_in_any_case_is_a_conflict(admin: HybridAdmin) -> None:
    await admin.create_connection("orders")
    with pytest.raises(AdminError, match="'ORDERS' already exists") as excinfo:
        await admin.create_connection("ORDERS")
    assert error(excinfo) == (409, "Conflict", "name")


@pytest.mark.parametrize(
    "name",
    [
        "usage",
        "Identities/x",
        "networkTraversal",
        "keys/primary",
        "openapi.json",
        "hybridConnections",
        "authorizationRules/a",
    ],
)
async def test_names_under_an_api_path_are_refused(admin: HybridAdmin, name: str) -> None:
    with pytest.raises(AdminError, match="served by the Passage API") as excinfo:
        await admin.create_connection(name)
    assert error(excinfo) == (409, "NameReserved", "name")
    assert await admin.list_connections() == []


async def test_a_name_merely_starting_like_an_api_path_is_fine(admin: HybridAdmin) -> None:
    await admin.create_connection("usage-reports")
    await admin.create_connection("keystore/keys")
    assert [c.path for c in await admin.list_connections()] == ["keystore/keys", "usage-reports"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "1-260 letters"),
        ("a//b", "1-260 letters"),
        ("a b", "1-260 letters"),
        ("a" * 261, "1-260 letters"),
        ("a/.b", "each '/'-separated segment"),
        ("a/../b", "each '/'-separated segment"),
        ("a/b-/c", "each '/'-separated segment"),
    ],
)
async def test_invalid_names_are_a_validation_error(
    admin: HybridAdmin, name: str, message: str
) -> None:
    with pytest.raises(AdminError, match=message) as excinfo:
        await admin.create_connection(name)
    assert error(excinfo) == (400, "ValidationError", "name")


async def test_deleting_a_connection_removes_it_and_its_rules(admin: HybridAdmin) -> None:
    await admin.create_connection("orders")
    await admin.put_rule("orders", "sender", Rights.SEND)
    await admin.delete_connection("Orders")
    assert await admin.list_connections() == []
    with pytest.raises(AdminError) as excinfo:
        await admin.get_connection("orders")
    assert error(excinfo) == (404, "HybridConnectionNotFound", "name")
    # Created again, it starts without the old rule.
    await admin.create_connection("orders")
    assert await admin.list_rules("orders") == []


async def test_deleting_an_unknown_connection_is_not_found(admin: HybridAdmin) -> None:
    with pytest.raises(AdminError, match="no hybrid connection named 'ghost'") as excinfo:
        await admin.delete_connection("ghost")
    assert error(excinfo) == (404, "HybridConnectionNotFound", "name")


# --- rules ----------------------------------------------------------------------------


def test_rights_are_parsed_case_insensitively_and_manage_brings_the_others() -> None:
    assert parse_rights(["listen", " SEND "]) == Rights.LISTEN | Rights.SEND
    assert parse_rights(["Manage"]) == Rights.LISTEN | Rights.SEND | Rights.MANAGE
    assert rights_names(Rights.SEND) == ["Send"]
    assert rights_names(Rights.MANAGE) == ["Listen", "Send", "Manage"]
    with pytest.raises(AdminError, match="unknown right 'write'"):
        parse_rights(["listen", "write"])
    with pytest.raises(AdminError, match="at least one right"):
        parse_rights([])


async def test_a_rule_is_created_with_generated_keys_then_replaced_keeping_them(
    admin: HybridAdmin,
) -> None:
    await admin.create_connection("orders")
    created = await admin.put_rule("orders", "app", Rights.SEND)
    assert created == WrittenRule(
        "orders",
        SasRule("app", Rights.SEND, "generated-key-0002", "generated-key-0003"),
        created=True,
    )
    replaced = await admin.put_rule("orders", "app", Rights.LISTEN | Rights.SEND)
    assert replaced.created is False
    assert replaced.rule == SasRule(
        "app", Rights.LISTEN | Rights.SEND, "generated-key-0002", "generated-key-0003"
    )
    assert await admin.get_rule("orders", "app") == replaced.rule
    assert admin.namespace().connections["orders"].rules == {"app": replaced.rule}


async def test_given_keys_replace_one_key_or_both(admin: HybridAdmin) -> None:
    await admin.put_rule(None, "app", Rights.LISTEN)
    rule = (await admin.put_rule(None, "app", Rights.LISTEN, primary_key="p" * 16)).rule
    assert (rule.primary_key, rule.secondary_key) == ("p" * 16, "generated-key-0003")
    rule = (await admin.put_rule(None, "app", Rights.LISTEN, secondary_key="s" * 16)).rule
    assert (rule.primary_key, rule.secondary_key) == ("p" * 16, "s" * 16)


@pytest.mark.parametrize("key", ["short", "has space in the key", "k" * 257, "ключ-ключ-ключ-ключ"])
async def test_malformed_keys_are_a_validation_error(admin: HybridAdmin, key: str) -> None:
    with pytest.raises(AdminError, match="16 to 256 printable ASCII") as excinfo:
        await admin.put_rule(None, "app", Rights.LISTEN, primary_key=key)
    assert error(excinfo) == (400, "ValidationError", "primaryKey")


async def test_a_rule_without_rights_or_with_a_bad_name_is_refused(admin: HybridAdmin) -> None:
    with pytest.raises(AdminError, match="at least one right") as excinfo:
        await admin.put_rule(None, "app", Rights(0))
    assert error(excinfo) == (400, "ValidationError", "rights")
    with pytest.raises(AdminError, match="rule name") as excinfo:
        await admin.put_rule(None, "bad/name", Rights.SEND)
    assert error(excinfo) == (400, "ValidationError", "name")


async def test_rules_on_an_unknown_or_invalid_connection(admin: HybridAdmin) -> None:
    with pytest.raises(AdminError) as excinfo:
        await admin.put_rule("ghost", "app", Rights.SEND)
    assert error(excinfo) == (404, "HybridConnectionNotFound", "name")
    with pytest.raises(AdminError) as excinfo:
        await admin.list_rules("a//b")
    assert error(excinfo) == (400, "ValidationError", "entity")


async def test_twelve_rules_per_entity_root_included(admin: HybridAdmin) -> None:
    for n in range(11):  # and the root rule makes 12
        await admin.put_rule(None, f"rule{n:02d}", Rights.LISTEN)
    with pytest.raises(AdminError, match="already has 12 authorization rules") as excinfo:
        await admin.put_rule(None, "one-too-many", Rights.LISTEN)
    assert error(excinfo) == (409, "QuotaExceeded", "name")
    assert (await admin.put_rule(None, "rule00", Rights.SEND)).created is False  # replacing is fine
    # A connection has its own twelve.
    await admin.create_connection("orders")
    for n in range(12):
        await admin.put_rule("orders", f"rule{n:02d}", Rights.SEND)
    with pytest.raises(AdminError, match="hybrid connection 'orders' already has 12"):
        await admin.put_rule("orders", "one-too-many", Rights.SEND)
    assert len(await admin.list_rules(None)) == 12
    assert len(await admin.list_rules("orders")) == 12


async def test_rules_are_listed_by_name_on_their_own_entity(admin: HybridAdmin) -> None:
    await admin.create_connection("orders")
    await admin.put_rule(None, "zeta", Rights.LISTEN)
    await admin.put_rule("orders", "beta", Rights.SEND)
    await admin.put_rule("orders", "alpha", Rights.SEND)
    assert [r.name for r in await admin.list_rules(None)] == [ROOT_RULE, "zeta"]
    assert [r.name for r in await admin.list_rules("ORDERS")] == ["alpha", "beta"]


async def test_deleting_rules(admin: HybridAdmin) -> None:
    await admin.create_connection("orders")
    await admin.put_rule("orders", "app", Rights.SEND)
    await admin.delete_rule("orders", "app")
    assert await admin.list_rules("orders") == []
    with pytest.raises(
        AdminError, match="no authorization rule 'app' on hybrid connection"
    ) as excinfo:
        await admin.delete_rule("orders", "app")
    assert error(excinfo) == (404, "AuthorizationRuleNotFound", "rule")
    with pytest.raises(AdminError) as excinfo:
        await admin.delete_rule("ghost", "app")
    assert error(excinfo) == (404, "HybridConnectionNotFound", "name")


async def test_the_root_rule_cannot_be_deleted_or_lose_manage(admin: HybridAdmin) -> None:
    with pytest.raises(AdminError, match="cannot be deleted") as excinfo:
        await admin.delete_rule(None, ROOT_RULE)
    assert error(excinfo) == (409, "RootRuleProtected", "name")
    with pytest.raises(AdminError, match="keeps the Manage right") as excinfo:
        await admin.put_rule(None, ROOT_RULE, Rights.LISTEN | Rights.SEND)
    assert error(excinfo) == (409, "RootRuleProtected", "name")
    assert ROOT_RULE in admin.namespace().rules
    # New keys for it are fine, and a rule of that name on a connection is an ordinary rule.
    rotated = await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key="n" * 44)
    assert rotated.rule.primary_key == "n" * 44
    await admin.create_connection("orders")
    await admin.put_rule("orders", ROOT_RULE, Rights.LISTEN)
    await admin.delete_rule("orders", ROOT_RULE)


# --- tokens ---------------------------------------------------------------------------


async def test_a_token_verifies_for_its_connection_and_right(admin: HybridAdmin) -> None:
    await admin.create_connection("Orders/EU")
    await admin.put_rule("orders/eu", "listener", Rights.LISTEN)
    token = await admin.token("orders/eu", "listener", ttl=600, base_url=BASE)
    namespace = admin.namespace()
    rules = namespace.rules_for(namespace.connections["orders/eu"])
    verify = dict(rules=rules, hosts=HOSTS, entity="orders/eu", now=NOW)
    assert verify_sas_token(token, needed=Rights.LISTEN, **verify).name == "listener"
    parsed = SasToken.parse(token)
    assert urllib.parse.unquote(parsed.resource) == "http://relay.example.test:9090/Orders/EU"
    assert parsed.expiry == NOW + 600
    assert parsed.key_name == "listener"


async def test_a_token_rule_is_the_connections_own_before_the_namespaces(
    admin: HybridAdmin,
) -> None:
    await admin.create_connection("orders")
    await admin.put_rule(None, "app", Rights.LISTEN, primary_key="namespace-key-xxxx")
    await admin.put_rule("orders", "app", Rights.SEND, primary_key="connection-key-xxx")
    namespace = admin.namespace()
    own = await admin.token("orders", "app", ttl=60, base_url=BASE)
    assert verify_sas_token(
        own,
        {"app": SasRule("app", Rights.SEND, "connection-key-xxx", "x")},
        hosts=HOSTS,
        entity="orders",
        needed=Rights.SEND,
        now=NOW,
    )
    root = await admin.token("orders", ttl=60, base_url=BASE)  # the root rule by default
    assert SasToken.parse(root).key_name == ROOT_RULE
    assert verify_sas_token(
        root,
        namespace.rules,
        hosts=HOSTS,
        entity="orders",
        needed=Rights.LISTEN,
        now=NOW,
    )


async def test_token_errors(admin: HybridAdmin) -> None:
    await admin.create_connection("orders")
    with pytest.raises(AdminError) as excinfo:
        await admin.token("ghost", ttl=60, base_url=BASE)
    assert error(excinfo) == (404, "HybridConnectionNotFound", "name")
    with pytest.raises(
        AdminError, match="'nope' on hybrid connection 'orders' or the namespace"
    ) as excinfo:
        await admin.token("orders", "nope", ttl=60, base_url=BASE)
    assert error(excinfo) == (404, "AuthorizationRuleNotFound", "rule")
    for ttl in (0, -5, True):
        with pytest.raises(AdminError, match="at least 1") as excinfo:
            await admin.token("orders", ttl=ttl, base_url=BASE)
        assert error(excinfo) == (400, "ValidationError", "ttl")
    with pytest.raises(AdminError, match="expected http://HOST") as excinfo:
        await admin.token("orders", ttl=60, base_url="relay.example.test")
    assert error(excinfo) == (400, "ValidationError", "baseUrl")


@pytest.mark.parametrize(
    ("base", "resource"),
    [
        ("http://Relay.Example.Test:9090", "http://relay.example.test:9090/hc"),
        ("https://relay.example.test/", "http://relay.example.test/hc"),
        ("wss://relay.example.test:443", "http://relay.example.test:443/hc"),
        ("http://[::1]:8443", "http://[::1]:8443/hc"),
    ],
)
def test_the_resource_is_http_with_the_port_as_given(base: str, resource: str) -> None:
    assert resource_uri(base, "hc") == resource


@pytest.mark.parametrize(
    "base",
    [
        "relay",
        "ftp://relay",
        "http://user@relay",
        "http://relay/path",
        "http://relay?q",
        "http://relay:99999",
    ],
)
def test_base_urls_that_name_no_host_are_refused(base: str) -> None:
    with pytest.raises(AdminError, match="expected http://HOST"):
        resource_uri(base, "hc")


# --- the snapshot and its change hook -------------------------------------------------


async def test_every_change_reaches_on_change_once(database: Database) -> None:
    seen: list[Namespace] = []
    keys = numbered_keys()
    admin = admin_on(HybridStore(database), new_key=lambda: next(keys), on_change=seen.append)
    await admin.ensure_root_rule()
    await admin.create_connection("orders")
    await admin.put_rule("orders", "app", Rights.SEND)
    await admin.list_connections()  # a read changes nothing
    await admin.refresh()
    await admin.delete_connection("orders")
    assert [sorted(n.connections) for n in seen] == [[], ["orders"], ["orders"], []]
    assert "app" in seen[2].connections["orders"].rules
    assert seen[-1] is admin.namespace()


async def test_refresh_sees_changes_made_through_another_admin(database: Database) -> None:
    seen: list[Namespace] = []
    relay = admin_on(HybridStore(database), on_change=seen.append)
    cli = admin_on(HybridStore(database))
    await relay.ensure_root_rule()
    await cli.create_connection("orders")
    assert relay.namespace().resolve("orders") is None  # not until it refreshes
    await relay.refresh()
    assert relay.namespace().resolve("orders") is not None
    assert len(seen) == 2


class HeldLoad:
    """A store whose next ``load_namespace`` waits, after reading, until ``release``."""

    def __init__(self, store: HybridStore) -> None:
        self.store = store
        self.held: asyncio.Event | None = None
        self.loaded = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def hold(self) -> asyncio.Event:
        self.held = asyncio.Event()
        return self.held

    async def load_namespace(self) -> object:
        records = await self.store.load_namespace()
        if self.held is not None:
            held, self.held = self.held, None
            self.loaded.set()
            await held.wait()
        return records


async def test_an_older_overlapping_refresh_does_not_undo_a_newer_one(database: Database) -> None:
    store = HeldLoad(HybridStore(database))
    relay = admin_on(store)
    await relay.ensure_root_rule()
    release = store.hold()
    older = asyncio.create_task(relay.refresh())  # reads before the connection exists
    await store.loaded.wait()
    cli = admin_on(HybridStore(database))
    await cli.create_connection("orders")
    assert "orders" in (await relay.refresh()).connections
    release.set()
    assert "orders" in (await older).connections
    assert "orders" in relay.namespace().connections


async def test_reserved_names_come_from_the_caller_and_name_who_serves_them(
    database: Database,
) -> None:
    """The front door's registry decides (passage.mounts); the admin only applies it."""
    admin = HybridAdmin(
        HybridStore(database),
        clock=lambda: NOW,
        new_key=new_key_text,
        reserved_names={"console": "the console"},
    )
    await admin.ensure_root_rule()
    with pytest.raises(AdminError, match="/console is served by the console") as excinfo:
        await admin.create_connection("Console/x")
    assert error(excinfo) == (409, "NameReserved", "name")
    await admin.create_connection("usage")  # only what the caller reserves
    assert [c.path for c in await admin.list_connections()] == ["usage"]
