"""The node registry's pure parts: records on the wire, who is live, who is handed out."""

from __future__ import annotations

import dataclasses

import pytest

from passage.cluster import NODE_EXPIRY, NodeInfo, NodeTable
from passage.cluster.events import ClusterEvent, EventKind, decode_event, encode_event
from passage.cluster.keys import ClusterKeys
from passage.cluster.nodes import decode_node, encode_node

A = NodeInfo(
    name="a", boot_id="b1", public_url="wss://a.example:8443", turn_host="a.example",
    turn_port=3478, turns_port=5349, region="eu", load=3, draining=False, seen_at=1000.0,
)  # fmt: skip


def node(name: str, **changes: object) -> NodeInfo:
    return dataclasses.replace(A, name=name, **changes)  # type: ignore[arg-type]


def test_a_record_round_trips() -> None:
    assert decode_node(encode_node(A)) == A


@pytest.mark.parametrize(
    "text",
    [
        b"\xff", "[]", "{}", "null",
        encode_node(A).replace('"load":3', '"load":"3"'),
        encode_node(A).replace('"load":3', '"load":true'),
        encode_node(A).replace('"draining":false', '"draining":0'),
        encode_node(A).replace('"region":"eu"', '"region":"eu","extra":1'),
    ],
)  # fmt: skip
def test_anything_else_is_no_record(text: str | bytes) -> None:
    assert decode_node(text) is None


def test_an_integer_time_is_read_as_seconds() -> None:
    assert decode_node(encode_node(A).replace("1000.0", "1000")) == A


def test_a_node_is_live_until_its_record_expires() -> None:
    table = NodeTable()
    table.replace([A])
    assert table.live(A.seen_at + NODE_EXPIRY - 0.001) == [A]
    assert table.get("a", A.seen_at + NODE_EXPIRY - 0.001) == A
    assert table.live(A.seen_at + NODE_EXPIRY) == []
    assert table.get("a", A.seen_at + NODE_EXPIRY) is None


def test_the_newest_record_of_a_name_wins() -> None:
    table = NodeTable()
    newer = dataclasses.replace(A, boot_id="b2", seen_at=A.seen_at + 1)
    table.replace([newer, A])
    assert table.live(A.seen_at) == [newer]


def test_relays_are_live_not_draining_least_loaded_first_and_of_the_region_asked() -> None:
    table = NodeTable()
    b = node("b", load=1)
    c = node("c", load=1, region="us")
    d = node("d", load=0, draining=True)
    e = node("e", load=0, seen_at=A.seen_at - NODE_EXPIRY)  # expired
    table.replace([A, b, c, d, e])
    assert [n.name for n in table.relays(A.seen_at)] == ["b", "c", "a"]
    assert [n.name for n in table.relays(A.seen_at, region="eu")] == ["b", "a"]


def test_the_alternate_is_the_least_loaded_other_node_of_the_region_then_any() -> None:
    """Where a full or draining node sends a new Allocate (300 Try Alternate)."""
    now = A.seen_at
    table = NodeTable()
    eu_busy = node("b", load=5)
    us_idle = node("c", load=0, region="us")
    eu_draining = node("d", load=0, draining=True)
    eu_expired = node("e", load=0, seen_at=now - NODE_EXPIRY)
    table.replace([A, eu_busy, us_idle, eu_draining, eu_expired])
    assert table.alternate(now, "a", "eu") == eu_busy  # not the idler node of another region
    assert table.alternate(now, "a", "us") == us_idle
    assert table.alternate(now, "a", "ap") == us_idle  # none of its region: any, least loaded
    # b's record expires: a sends to the other region rather than to nobody
    assert table.alternate(now + NODE_EXPIRY - 0.5, "a", "eu") == eu_busy
    table.replace([A, dataclasses.replace(eu_busy, seen_at=now - 1), us_idle])
    assert table.alternate(now + NODE_EXPIRY - 0.5, "a", "eu") == us_idle
    table.replace([A])
    assert table.alternate(now, "a", "eu") is None  # never itself


def test_an_event_round_trips_and_garbage_is_none() -> None:
    event = ClusterEvent(EventKind.KEYS_ROTATED, "a", "primary")
    assert decode_event(encode_event(event)) == event
    for text in ("", "{}", '{"kind":"nope","origin":"a"}', '{"kind":"revoked","origin":1}', "[]"):
        assert decode_event(text) is None


def test_every_key_is_under_the_prefix() -> None:
    keys = ClusterKeys("p1")
    names = [keys.nodes, keys.node("a"), keys.alive("a"), keys.events, keys.inbox("a"),
             keys.listeners("hc"), keys.allocations("u")]  # fmt: skip
    assert all(name.startswith("p1:") for name in names)
    assert len(set(names)) == len(names)
