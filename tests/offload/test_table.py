"""The control plane's table: which channels are in the kernel, their slots, whose bytes."""

from __future__ import annotations

import pytest

from passage.offload.maps import ChannelPath, Meter
from passage.offload.table import ChannelTable, Installed, Removed


def path(channel: int = 0x4000, peer_port: int = 6000) -> ChannelPath:
    return ChannelPath(
        ("198.51.100.2", 40000), ("203.0.113.10", 3478), ("203.0.113.10", 50000),
        ("203.0.113.20", peer_port), channel,
    )  # fmt: skip


def test_sync_installs_what_is_new_and_removes_what_is_gone() -> None:
    table = ChannelTable(capacity=8)
    first = table.sync("a", [path(0x4000), path(0x4001)])
    assert [i.path.channel for i in first.install] == [0x4000, 0x4001]
    assert {i.slot for i in first.install} == {0, 1}
    again = table.sync("a", [path(0x4001), path(0x4002)])
    assert again.remove == (Removed(path(0x4000), 0),)
    assert again.install == (Installed(path(0x4002), 2),)
    assert not table.sync("a", [path(0x4001), path(0x4002)]), "nothing changed"
    assert len(table) == 2


def test_a_rebound_channel_is_one_removal_and_one_installation() -> None:
    table = ChannelTable(capacity=8)
    table.sync("a", [path(peer_port=6000)])
    changes = table.sync("a", [path(peer_port=6001)])
    assert [r.path.peer for r in changes.remove] == [("203.0.113.20", 6000)]
    assert [i.path.peer for i in changes.install] == [("203.0.113.20", 6001)]


def test_when_every_slot_is_taken_channels_stay_in_userspace() -> None:
    """The bound: at most ``capacity`` channels in the kernel; the rest are refused, not lost."""
    table = ChannelTable(capacity=2)
    changes = table.sync("a", [path(0x4000), path(0x4001), path(0x4002)])
    assert len(changes.install) == 2 and len(changes.refused) == 1
    assert len(table) == 2


def test_collect_attributes_kernel_bytes_to_their_allocation_once() -> None:
    table = ChannelTable(capacity=8)
    table.sync("a", [path(0x4000)])
    table.sync("b", [path(0x4001)])
    assert table.collect({0: Meter(100, 1, 0, 0), 1: Meter(0, 0, 50, 2)}) == {
        "a": Meter(100, 1, 0, 0),
        "b": Meter(0, 0, 50, 2),
    }
    assert table.collect({0: Meter(150, 2, 0, 0), 1: Meter(0, 0, 50, 2)}) == {
        "a": Meter(50, 1, 0, 0)
    }


def test_a_removed_channel_drains_its_last_bytes_before_its_slot_is_reused() -> None:
    """Packets in flight when the entries went away still count for their allocation."""
    table = ChannelTable(capacity=1)
    table.sync("a", [path(0x4000)])
    table.collect({0: Meter(10, 1, 0, 0)})
    table.release("a")
    assert table.sync("b", [path(0x4001)]).refused, "slot 0 is still draining"
    assert table.slots_in_use() == [0]
    assert table.collect({0: Meter(12, 2, 0, 0)}) == {"a": Meter(2, 1, 0, 0)}
    assert table.sync("b", [path(0x4001)]).install == (Installed(path(0x4001), 0),)
    assert table.collect({0: Meter(7, 1, 0, 0)}) == {"b": Meter(7, 1, 0, 0)}


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ChannelTable(capacity=0)
