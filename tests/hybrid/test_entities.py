"""Hybrid connection names, path resolution and rule look-up (reference §2.1, §3)."""

from __future__ import annotations

import pytest

from passage.hybrid.entities import (
    MAX_RULES,
    ROOT_RULE,
    HybridConnection,
    HybridConnectionPath,
    Namespace,
    Resolved,
    root_rule,
    validate_name,
    validate_rule_name,
)
from passage.hybrid.sas import Rights, SasRule


def connection(name: str, **rules: SasRule) -> HybridConnection:
    return HybridConnection(HybridConnectionPath(name.lower()), name, True, rules)


def namespace(*connections: HybridConnection, **rules: SasRule) -> Namespace:
    return Namespace({c.path: c for c in connections}, rules)


# --- names (ARM template reference: 1-260 characters, alphanumerics . - _ /) ----------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("a", "a"),
        ("Orders", "orders"),
        ("orders/EU-west_1.v2", "orders/eu-west_1.v2"),
        ("9", "9"),
        ("a" * 260, "a" * 260),
        ("a/.b", "a/.b"),  # only the whole name must start and end with a letter or digit
    ],
)
def test_valid_names_have_a_lower_case_canonical_form(name: str, canonical: str) -> None:
    assert validate_name(name) == canonical


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-a",
        "a-",
        ".a",
        "a.",
        "_a",
        "/a",
        "a/",
        "a//b",
        "a b",
        "a?b",
        "a%2Fb",
        "ümlaut",
        "$hc",
        "a" * 261,
    ],
)
def test_invalid_names_say_what_is_allowed(name: str) -> None:
    with pytest.raises(ValueError, match="1-260 letters, digits"):
        validate_name(name)


@pytest.mark.parametrize("name", ["RootManageSharedAccessKey", "a", "send.only-1_x", "R" * 256])
def test_valid_rule_names(name: str) -> None:
    assert validate_rule_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "a/b", "a b", "R" * 257, "ключ"])
def test_invalid_rule_names(name: str) -> None:
    with pytest.raises(ValueError, match="rule name"):
        validate_rule_name(name)


# --- resolution: the longest registered name on a segment boundary --------------------


def test_a_path_resolves_to_the_longest_registered_prefix() -> None:
    short, long = connection("a"), connection("a/b")
    ns = namespace(short, long)
    assert ns.resolve("a/b/c/d") == Resolved(long, "/c/d")
    assert ns.resolve("a/b") == Resolved(long, "")
    assert ns.resolve("a/x") == Resolved(short, "/x")
    assert ns.resolve("a") == Resolved(short, "")


def test_a_prefix_counts_only_on_a_segment_boundary() -> None:
    ns = namespace(connection("a"), connection("a/b"))
    assert ns.resolve("a/bc") == Resolved(connection("a"), "/bc")
    assert ns.resolve("ab") is None
    assert ns.resolve("b") is None


def test_resolution_ignores_case_and_keeps_the_suffix_as_sent() -> None:
    orders = connection("Orders/EU")
    ns = namespace(orders)
    assert ns.resolve("ORDERS/eu/Items/42") == Resolved(orders, "/Items/42")
    assert ns.resolve("orders/EU") == Resolved(orders, "")


def test_leading_and_trailing_slashes_do_not_matter() -> None:
    orders = connection("orders")
    ns = namespace(orders)
    assert ns.resolve("/orders/") == Resolved(orders, "")
    assert ns.resolve("/orders/x") == Resolved(orders, "/x")


def test_nothing_resolves_in_an_empty_namespace() -> None:
    assert Namespace().resolve("anything/at/all") is None
    assert Namespace().resolve("") is None


# --- rules: the entity's own, then the namespace's ------------------------------------


def test_rules_for_a_connection_prefer_its_own_over_the_namespaces() -> None:
    namespace_app = SasRule("app", Rights.LISTEN, "ns-p", "ns-s")
    own_app = SasRule("app", Rights.SEND, "hc-p", "hc-s")
    root = root_rule("root-p", "root-s")
    orders = connection("orders", app=own_app)
    ns = namespace(orders, app=namespace_app, **{ROOT_RULE: root})
    assert ns.rules_for(orders) == {"app": own_app, ROOT_RULE: root}


def test_rules_for_a_connection_without_rules_are_the_namespaces() -> None:
    root = root_rule("p", "s")
    bare = connection("bare")
    other = connection("other", only=SasRule("only", Rights.LISTEN, "p", "s"))
    ns = namespace(bare, other, **{ROOT_RULE: root})
    assert ns.rules_for(bare) == {ROOT_RULE: root}


def test_the_root_rule_manages_and_so_listens_and_sends() -> None:
    root = root_rule("p", "s")
    assert root.name == "RootManageSharedAccessKey"
    assert (root.primary_key, root.secondary_key) == ("p", "s")
    assert all(root.rights.allows(right) for right in (Rights.LISTEN, Rights.SEND, Rights.MANAGE))
    assert not Rights.SEND.allows(Rights.LISTEN)
    assert MAX_RULES == 12
