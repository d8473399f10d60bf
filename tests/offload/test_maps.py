"""The map layouts: sizes that match the C structs, and values that read back as written."""

from __future__ import annotations

import pytest

from passage.offload import maps
from passage.offload.maps import Action, ChannelPath, Meter, Neighbour

PATH = ChannelPath(
    ("198.51.100.2", 40000), ("203.0.113.10", 3478), ("203.0.113.10", 50000),
    ("2001:db8::20", 6000), 0x4001,
)  # fmt: skip


def test_layouts_have_the_sizes_of_the_c_structs() -> None:
    """struct flow_key 40, flow 44, neighbour 20, meter 32 (passage_xdp.c, natural alignment)."""
    assert (maps.FLOW_KEY.size, maps.FLOW.size) == (40, 44)
    assert (maps.NEIGHBOUR.size, maps.METER.size, maps.INTERFACE.size) == (20, 32, 4)


def test_ipv4_is_written_mapped_and_read_back() -> None:
    assert maps.ip16("192.0.2.1") == bytes(10) + b"\xff\xff\xc0\x00\x02\x01"
    assert maps.ip_of(maps.ip16("192.0.2.1")) == "192.0.2.1"
    assert maps.ip_of(maps.ip16("2001:db8::1")) == "2001:db8::1"


def test_the_client_side_key_carries_the_channel_in_network_order() -> None:
    to_peer, to_client = maps.flow_entries(PATH, 9)
    assert to_peer.key[32:40] == bytes.fromhex("9c400d964001") + bytes(2)
    assert to_client.key[36:38] == bytes(2), "the peer side has no channel"


def test_both_directions_decode_to_what_the_relay_sends() -> None:
    to_peer, to_client = maps.flow_entries(PATH, 9)
    assert maps.decode_flow(to_peer.value) == maps.DecodedFlow(
        PATH.relay, PATH.peer, Action.STRIP, 0, 9
    )
    assert maps.decode_flow(to_client.value) == maps.DecodedFlow(
        PATH.listener, PATH.client, Action.WRAP, 0x4001, 9
    )
    assert maps.flow_keys(PATH) == (to_peer.key, to_client.key)


@pytest.mark.parametrize("channel", [0x3FFF, 0x8000, 0])
def test_a_channel_outside_the_bindable_range_is_refused(channel: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        ChannelPath(PATH.client, PATH.listener, PATH.relay, PATH.peer, channel)


def test_neighbours_round_trip_and_reject_bad_values() -> None:
    hop = Neighbour(3, 1500, b"\x02" * 6, b"\x04" * 6)
    assert maps.decode_neighbour(maps.neighbour_value(hop)) == hop
    with pytest.raises(ValueError):
        Neighbour(3, 1500, b"\x02" * 5, b"\x04" * 6)
    with pytest.raises(ValueError):
        Neighbour(3, 0, b"\x02" * 6, b"\x04" * 6)


def test_per_cpu_values_are_summed() -> None:
    two_cpus = maps.METER.pack(1, 2, 3, 4) + maps.METER.pack(10, 20, 30, 40)
    assert maps.sum_meters(two_cpus, 2) == Meter(11, 22, 33, 44)
    assert maps.sum_counters(maps.COUNTER.pack(5) + maps.COUNTER.pack(6), 2) == 11
    assert Meter(5, 5, 5, 5) - Meter(1, 2, 3, 4) == Meter(4, 3, 2, 1)
