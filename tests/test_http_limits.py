"""passage.http_limits: who may hold the front door's connections."""

from __future__ import annotations

import pytest

from passage.http_limits import ConnectionCounts, HttpLimits, Refusal


def counts(**limits: int) -> ConnectionCounts:
    return ConnectionCounts(HttpLimits(**limits))  # type: ignore[arg-type]


def test_the_cap_per_address_refuses_that_address_only() -> None:
    table = counts(max_connections_per_ip=2)
    assert table.admit("192.0.2.1", None) is None
    assert table.admit("::ffff:192.0.2.1", None) is None
    assert table.admit("192.0.2.1", None) is Refusal.TOO_MANY_FROM_SOURCE
    assert table.admit("192.0.2.2", None) is None
    assert (table.total, table.from_source("192.0.2.1")) == (3, 2)
    table.release("192.0.2.1")
    assert table.admit("192.0.2.1", None) is None


def test_one_ipv6_host_cannot_dodge_the_cap_with_new_addresses() -> None:
    table = counts(max_connections_per_ip=2)
    assert table.admit("2001:db8::1", None) is None
    assert table.admit("2001:db8::2", None) is None
    assert table.admit("2001:db8::3", None) is Refusal.TOO_MANY_FROM_SOURCE
    assert table.admit("2001:db8:0:1::1", None) is None  # another /64


def test_the_total_cap_refuses_everyone() -> None:
    table = counts(max_connections=2)
    assert table.admit("192.0.2.1", None) is None
    assert table.admit("192.0.2.2", None) is None
    assert table.admit("192.0.2.3", None) is Refusal.TOO_MANY
    table.release("192.0.2.1")
    assert table.admit("192.0.2.3", None) is None


def test_the_descriptor_reserve_comes_first_and_counts_nothing() -> None:
    table = counts(descriptor_reserve=10)
    assert table.admit("192.0.2.1", 10) is None
    assert table.admit("192.0.2.1", 9) is Refusal.DESCRIPTORS_LOW
    assert table.admit("192.0.2.1", None) is None  # unknown: the other caps decide
    assert table.total == 2


def test_the_reserve_is_at_most_a_quarter_of_a_small_limit() -> None:
    table = counts(descriptor_reserve=256)
    assert table.admit("192.0.2.1", 100, 400) is None  # 100 left of 400: the reserve is 100
    assert table.admit("192.0.2.1", 99, 400) is Refusal.DESCRIPTORS_LOW
    assert table.admit("192.0.2.1", 255, 100_000) is Refusal.DESCRIPTORS_LOW


def test_releasing_what_was_never_admitted_is_a_bug() -> None:
    with pytest.raises(ValueError, match="no connection from 192.0.2.9"):
        counts().release("192.0.2.9")


def test_refusals_name_their_reason_and_setting() -> None:
    assert {(r.reason, r.setting) for r in Refusal} == {
        ("descriptors_low", "descriptor_reserve"),
        ("too_many_connections", "max_connections"),
        ("too_many_connections_from_source", "max_connections_per_ip"),
    }
