"""The C router alone, on real loopback sockets, without an event loop: ``read(fd)`` is
called by hand where the loop would call it. What it relays, what it hands to Python (in
order), what it meters, and its route table under many adds and removes."""

from __future__ import annotations

import random
import shutil
import socket
import sysconfig
from collections.abc import Iterator

import pytest

from passage.turn.fastpath import Router, available

pytestmark = pytest.mark.skipif(not available(), reason="the extension is not built")

CHANNEL = 0x4000


def test_the_extension_is_built_where_a_compiler_is() -> None:
    """The suite must not test only the pure-Python fallback on a machine that can build
    the C one: with a C compiler here, the editable install has built it."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) here: the pure-Python relay is what runs")
    assert available(), (
        "a compiler is here but passage.turn.fastpath._router is not built: "
        "pip install -e . (or make test) builds it"
    )


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    return sock


class Ends:
    """A listening socket, a relay socket, a client and a peer, on loopback."""

    def __init__(self) -> None:
        self.listener, self.relay, self.client, self.peer = udp(), udp(), udp(), udp()
        for sock in (self.listener, self.relay):
            sock.setblocking(False)
        self.router = Router()
        self.handed: list[tuple[str, bytes, tuple[object, ...]]] = []
        self.router.watch(self.listener.fileno(), False, self.hand("listener"))
        self.router.watch(self.relay.fileno(), True, self.hand("relay"))

    def hand(self, name: str):  # type: ignore[no-untyped-def]
        return lambda data, addr: self.handed.append((name, data, addr))

    def route(self, channel: int = CHANNEL, slot: int = 0) -> tuple[object, ...]:
        return (
            slot,
            self.listener.fileno(),
            self.client.getsockname(),
            self.relay.fileno(),
            self.peer.getsockname(),
            channel,
        )

    def from_client(self, *datagrams: bytes) -> None:
        for datagram in datagrams:
            self.client.sendto(datagram, self.listener.getsockname())
        self.router.read(self.listener.fileno())

    def from_peer(self, *datagrams: bytes) -> None:
        for datagram in datagrams:
            self.peer.sendto(datagram, self.relay.getsockname())
        self.router.read(self.relay.fileno())

    def close(self) -> None:
        for sock in (self.listener, self.relay, self.client, self.peer):
            sock.close()


@pytest.fixture
def ends() -> Iterator[Ends]:
    made = Ends()
    yield made
    made.close()


def channel_data(channel: int, data: bytes) -> bytes:
    return channel.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def test_channel_data_is_relayed_both_ways_and_metered(ends: Ends) -> None:
    """RFC 8656 §12.6/§12.7: client → peer without the header, from the relay socket;
    peer → client with one, from the listening socket."""
    ends.router.add(*ends.route(slot=3))
    ends.from_client(channel_data(CHANNEL, b"hello"), channel_data(CHANNEL, b"x" * 1200))
    assert ends.peer.recvfrom(2048) == (b"hello", ends.relay.getsockname())
    assert ends.peer.recvfrom(2048)[0] == b"x" * 1200
    ends.from_peer(b"back", b"")
    assert ends.client.recvfrom(2048) == (
        channel_data(CHANNEL, b"back"),
        ends.listener.getsockname(),
    )
    assert ends.client.recvfrom(2048)[0] == channel_data(CHANNEL, b"")
    assert ends.handed == []
    assert ends.router.take_meters() == [(3, 1205, 2, 4, 2)]
    assert ends.router.take_meters() == []  # taken: they start again from zero
    assert ends.router.counters() == (2, 2, 0, 0)


def test_trailing_bytes_past_the_length_are_not_relayed(ends: Ends) -> None:
    """RFC 8656 §12.4: the length field says how much is data; UDP padding is not."""
    ends.router.add(*ends.route())
    ends.from_client(channel_data(CHANNEL, b"abc") + b"\x00")
    assert ends.peer.recvfrom(2048)[0] == b"abc"
    assert ends.router.take_meters() == [(0, 3, 1, 0, 0)]


def test_what_no_route_takes_goes_to_python_in_order(ends: Ends) -> None:
    """Unknown channel, short or overlong ChannelData, STUN, an unbound peer: handed up
    as asyncio would (bytes, (host, port)), in the order they came, none relayed."""
    ends.router.add(*ends.route())
    stun = bytes.fromhex("000100002112a442") + bytes(12)
    odd = [
        channel_data(0x4001, b"other channel"),
        b"\x40",
        channel_data(CHANNEL, b"ten bytes!")[:-1],  # length says 10, 9 came
        stun,
        b"",
    ]
    ends.from_client(*odd)
    client = ends.client.getsockname()
    assert ends.handed == [("listener", datagram, client) for datagram in odd]
    stranger = udp()
    try:
        stranger.sendto(b"not bound", ends.relay.getsockname())
        ends.router.read(ends.relay.fileno())
        assert ends.handed[-1] == ("relay", b"not bound", stranger.getsockname())
    finally:
        stranger.close()
    assert ends.router.take_meters() == []
    assert ends.router.counters() == (0, 0, 0, len(odd) + 1)


def test_a_handled_datagram_goes_after_the_relayed_ones_before_it(ends: Ends) -> None:
    """A batch is sent up to the first datagram Python must see, so a Data indication
    Python sends cannot overtake ChannelData relayed before it."""
    ends.router.add(*ends.route())
    seen: list[int] = []

    def handler(data: bytes, addr: tuple[object, ...]) -> None:
        ends.client.setblocking(False)
        try:
            seen.append(len(ends.client.recvfrom(2048)[0]))
        finally:
            ends.client.setblocking(True)

    ends.router.watch(ends.relay.fileno(), True, handler)
    stranger = udp()
    try:
        ends.peer.sendto(b"first", ends.relay.getsockname())
        stranger.sendto(b"second", ends.relay.getsockname())
        ends.router.read(ends.relay.fileno())
    finally:
        stranger.close()
    assert seen == [4 + 5]  # the relayed ChannelData was out when the handler ran


def test_a_removed_route_is_not_relayed(ends: Ends) -> None:
    ends.router.add(*ends.route())
    ends.router.remove(*ends.route())
    assert len(ends.router) == 0
    ends.from_client(channel_data(CHANNEL, b"late"))
    ends.from_peer(b"late too")
    assert [name for name, _, _ in ends.handed] == ["listener", "relay"]


def test_unwatch_stops_reading_and_forgets_the_routes_of_the_socket(ends: Ends) -> None:
    ends.router.add(*ends.route())
    ends.router.unwatch(ends.relay.fileno())
    assert len(ends.router) == 0  # both sides named the relay socket
    ends.from_client(channel_data(CHANNEL, b"x"))
    assert ends.handed[0][0] == "listener"


def test_a_handler_that_raises_does_not_lose_the_rest_of_the_batch(ends: Ends) -> None:
    """The first exception is raised once the batch is done (the loop logs it)."""
    got: list[bytes] = []

    def handler(data: bytes, addr: tuple[object, ...]) -> None:
        got.append(data)
        if data == b"boom":
            raise RuntimeError("handler failed")

    ends.router.watch(ends.listener.fileno(), False, handler)
    for datagram in (b"boom", b"after"):
        ends.client.sendto(datagram, ends.listener.getsockname())
    with pytest.raises(RuntimeError, match="handler failed"):
        ends.router.read(ends.listener.fileno())
    assert got == [b"boom", b"after"]


def test_the_route_table_matches_a_model_through_many_adds_and_removes(ends: Ends) -> None:
    """Open addressing with backward-shift deletion: after random adds and removes (the
    table grows from 64 entries past 1024), exactly the routes left relay, per channel."""
    rng = random.Random(15)
    live: set[int] = set()
    for _ in range(3000):
        channel = rng.randrange(0x4000, 0x4000 + 700)
        if channel in live and rng.random() < 0.5:
            ends.router.remove(*ends.route(channel))
            live.discard(channel)
        else:
            ends.router.add(*ends.route(channel))
            live.add(channel)
    assert len(ends.router) == len(live) + (1 if live else 0)  # one peer-side entry, shared
    ends.router.remove(*ends.route(max(live)))  # the peer side goes with its channel
    live.discard(max(live))
    relayed = set()
    ends.peer.setblocking(False)
    for channel in range(0x4000, 0x4000 + 700):
        ends.from_client(channel_data(channel, channel.to_bytes(2, "big")))
        try:  # one at a time: 700 at once would overflow the peer's receive buffer
            relayed.add(int.from_bytes(ends.peer.recvfrom(2048)[0], "big"))
        except BlockingIOError:
            pass
    assert relayed == live
    assert len(ends.handed) == 700 - len(live)


def test_bad_arguments_are_refused() -> None:
    router = Router()
    with pytest.raises(ValueError, match="not an IP address"):
        router.add(0, 3, ("nowhere", 1), 4, ("127.0.0.1", 2), CHANNEL)
    with pytest.raises(ValueError, match="out of range"):
        router.add(0, 3, ("127.0.0.1", 1), 4, ("127.0.0.1", 2), 0x3FFF)
    with pytest.raises(ValueError, match="descriptor"):
        router.read(-1)
    assert router.read(12345) is None  # not watched: nothing to read
