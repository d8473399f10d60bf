"""``--fast-path``: the C router in the real server (``in_process``), on loopback sockets.

What it relays, what it leaves to Python (and so counts as Python does), and that the
meters and ``/metrics`` stay exact. Tests marked with ``relay_path`` run with the fast path
on and off and must see the same; the others check the C router is the one relaying.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from passage.config import ConfigError, load_config
from passage.turn.aio.fast_path import FastChannels
from passage.turn.config import TurnConfig
from passage.turn.errors import DropReason
from passage.turn.fastpath import available
from passage_server import REALM, Clock, Server, free_port, in_process
from turn_client import NoAnswer, TurnClient, UdpPeer, error_code
from waiting import until

CHANNEL = 0x4000


def router_of(server: Server) -> FastChannels:
    edge = server.running.edge
    assert edge is not None and edge.fast_path is not None, "the fast path is not in use"
    return edge.fast_path


async def bound_pair(server: Server) -> tuple[TurnClient, UdpPeer]:
    client, peer = await server.client("udp"), await UdpPeer.bind()
    await client.allocate()
    assert error_code(await client.channel_bind(CHANNEL, peer.address)) is None
    return client, peer


async def relay(client: TurnClient, peer: UdpPeer, sizes: list[int]) -> None:
    """Each size once each way, every packet received intact."""
    assert client.relayed is not None
    for size in sizes:
        client.send_channel_data(CHANNEL, bytes([size % 251]) * size)
        assert (await peer.receive())[0] == bytes([size % 251]) * size
    for size in sizes:
        peer.sendto(bytes([size % 7]) * size, client.relayed)
        received = await client.receive()
        assert (received.channel, received.data) == (CHANNEL, bytes([size % 7]) * size)


@pytest.mark.skipif(not available(), reason="the extension is not built")
async def test_udp_channel_data_is_relayed_by_the_c_router(tmp_path: Path) -> None:
    """With the extension built, ``auto`` (the default) relays ChannelData in C: Python
    sees the client's requests, not one of its relayed packets."""
    async with in_process(tmp_path, loopback_peers=True, fast_path="auto") as server:
        client, peer = await bound_pair(server)
        try:
            handed_before = router_of(server).router.counters()[3]
            await relay(client, peer, [1, 160, 1200])
            to_peer, from_peer, errors, handed = router_of(server).router.counters()
            assert (to_peer, from_peer, errors, handed) == (3, 3, 0, handed_before)
        finally:
            await client.close()
            await peer.close()


async def test_fast_path_off_relays_in_python(tmp_path: Path) -> None:
    async with in_process(tmp_path, loopback_peers=True, fast_path="off") as server:
        assert server.running.edge is not None and server.running.edge.fast_path is None
        client, peer = await bound_pair(server)
        try:
            await relay(client, peer, [5])
        finally:
            await client.close()
            await peer.close()


@pytest.mark.usefixtures("relay_path")
async def test_meters_and_metrics_are_exact_to_the_byte(tmp_path: Path) -> None:
    """What the router relayed reaches the allocation's meters, the usage records and
    ``/metrics`` (``TurnServer.relayed``, read at scrape) once, before each collection."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        edge = server.running.edge
        assert edge is not None
        client, peer = await bound_pair(server)
        try:
            sizes = [1, 2, 3, 100, 1000]
            await relay(client, peer, sizes)
            edge.collect_relayed()  # what a scrape does first
            assert edge.core.relayed()["udp"] == (sum(sizes), 5, sum(sizes), 5)
            [live] = edge.live_allocations()
            assert (live.bytes_to_peer, live.packets_from_peer) == (sum(sizes), 5)
            await relay(client, peer, [7])
            assert error_code(await client.refresh(0)) is None
            edge.collect_relayed()
            records = edge.core.collect_usage(edge.clock())
            assert sum(r.bytes_to_peer for r in records) == sum(sizes) + 7
            assert sum(r.packets_from_peer for r in records) == 6
            assert edge.core.relayed()["udp"] == (sum(sizes) + 7, 6, sum(sizes) + 7, 6)
        finally:
            await client.close(release=False)
            await peer.close()


@pytest.mark.usefixtures("relay_path")
async def test_a_peer_without_permission_is_not_relayed(tmp_path: Path) -> None:
    """RFC 8656 §10.3: data from an IP with no permission is dropped, and counted."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        edge = server.running.edge
        assert edge is not None
        client, peer = await bound_pair(server)
        stranger = await UdpPeer.bind(host="127.0.0.2")
        try:
            assert client.relayed is not None
            stranger.sendto(b"let me in", client.relayed)
            with pytest.raises(NoAnswer):
                await client.receive(within=0.2)
            assert edge.core.metrics.drops[DropReason.NO_PERMISSION] == 1
            await relay(client, peer, [3])  # the bound peer still is
        finally:
            await client.close()
            await peer.close()
            await stranger.close()


@pytest.mark.usefixtures("relay_path")
async def test_expired_channel_and_permission_are_not_relayed(tmp_path: Path) -> None:
    """RFC 8656 §12: once the binding and permission expire (the sweep ran), ChannelData
    from the client is dropped as no_channel and the peer's data as no_permission."""
    clock = Clock()
    async with in_process(tmp_path, loopback_peers=True, clock=clock) as server:
        edge = server.running.edge
        assert edge is not None
        client, peer = await bound_pair(server)
        try:
            await relay(client, peer, [10])
            assert error_code(await client.refresh(3600)) is None
            clock.advance(601)  # channels live 600 s, permissions 300 s
            [allocation] = edge.core.allocations.values()
            for _ in range(100):  # the sweep runs on the edge's once-a-second timer
                if not allocation.routes:
                    break
                await asyncio.sleep(0.05)
            assert not allocation.routes
            client.send_channel_data(CHANNEL, b"too late")
            assert client.relayed is not None
            peer.sendto(b"too late too", client.relayed)
            with pytest.raises(NoAnswer):
                await peer.receive(within=0.2)
            with pytest.raises(NoAnswer):
                await client.receive(within=0.1)
            drops = edge.core.metrics.drops
            assert (drops[DropReason.NO_CHANNEL], drops[DropReason.NO_PERMISSION]) == (1, 1)
        finally:
            await client.close()
            await peer.close()


@pytest.mark.skipif(not available(), reason="the extension is not built")
async def test_a_capped_allocation_is_relayed_by_python(tmp_path: Path) -> None:
    """``--max-bps``: the router gets no route, so Python charges every byte to the budget."""
    turn = TurnConfig(realm=REALM, allow_loopback_peers=True, max_bytes_per_second=1_000_000)
    async with in_process(tmp_path, turn=turn, fast_path="on") as server:
        client, peer = await bound_pair(server)
        try:
            await relay(client, peer, [100, 200])
            to_peer, from_peer, _, _ = router_of(server).router.counters()
            assert (to_peer, from_peer, len(router_of(server).router)) == (0, 0, 0)
            [allocation] = server.running.edge.core.allocations.values()  # type: ignore[union-attr]
            assert allocation.bytes_to_peer == 300
        finally:
            await client.close()
            await peer.close()


@pytest.mark.usefixtures("relay_path")
async def test_garbage_on_the_listening_socket_is_handled_as_before(tmp_path: Path) -> None:
    """Short and malformed datagrams reach the Python handlers: counted drops, no answer."""
    async with in_process(tmp_path, loopback_peers=True) as server:
        edge = server.running.edge
        assert edge is not None
        client, peer = await bound_pair(server)
        try:
            client.send_raw(b"\x40")  # shorter than a ChannelData header
            client.send_raw(b"\x40\x00\x00\x10abc")  # length 16, three bytes came
            client.send_raw(b"\x40\x07\x00\x01x")  # a channel never bound
            client.send_raw(b"\x00\x01\x00")  # not even a STUN header
            await relay(client, peer, [4])  # after them, in order: all were handled
            drops = edge.core.metrics.drops
            assert drops[DropReason.NO_CHANNEL] == 2  # "\x40" has no channel number either
            assert drops[DropReason.MALFORMED] == 2
        finally:
            await client.close()
            await peer.close()


@pytest.mark.skipif(not available(), reason="the extension is not built")
async def test_a_send_the_kernel_refuses_is_a_counted_drop(tmp_path: Path) -> None:
    """The router does not queue: a datagram the kernel refuses is dropped, unmetered, and
    counted once as ``send_refused`` at the next collection (so in ``/metrics``)."""
    async with in_process(tmp_path, loopback_peers=True, fast_path="auto") as server:
        edge = server.running.edge
        assert edge is not None
        fast = router_of(server)
        client, peer = await bound_pair(server)
        try:
            [routes] = fast._installed.values()
            [(slot, listen_fd, client_address, relay_fd, _, _)] = routes
            # An IPv4 relay socket cannot send to an IPv6 peer: the kernel refuses it.
            fast.router.add(slot, listen_fd, client_address, relay_fd, ("::1", 9), CHANNEL + 1)
            client.send_channel_data(CHANNEL + 1, b"refused")
            await until(lambda: fast.router.counters()[2] == 1)
            edge.collect_relayed()
            edge.collect_relayed()
            assert edge.core.metrics.drops[DropReason.SEND_REFUSED] == 1
            edge.collect_relayed()
            assert edge.core.relayed()["udp"][:2] == (0, 0)  # nothing metered for it
        finally:
            await client.close()
            await peer.close()


BLOCK_EXTENSION = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "passage.turn.fastpath._router":
            raise ImportError("as if built without a compiler")

sys.meta_path.insert(0, Block())
"""


def test_fast_path_on_without_the_extension_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    """An install without the extension: ``on`` refuses to start, in one line naming the
    flag (exit 69, EX_UNAVAILABLE); ``auto`` would run the Python relay."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_EXTENSION)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env["PYTHONPATH"] = str(tmp_path)
    # Every port its own (preflight would answer first for a default port in use).
    command = [sys.executable, "-m", "passage", "serve", "--data-dir", str(tmp_path / "data"),
               "--fast-path", "on", "--listen-ip", "127.0.0.1", "--turn-port", str(free_port()),
               "--turns-port", str(free_port()), "--api-port", str(free_port()),
               "--metrics-port", "0"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 69, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "passage: error: --fast-path on: the compiled fast path is not built in this install "
        "(pip builds it when a C compiler and Python's headers are there); use --fast-path "
        "auto or off"
    )


def test_fast_path_modes_are_checked_when_read() -> None:
    assert load_config({}, {"PASSAGE_FAST_PATH": "OFF"}).fast_path == "off"
    with pytest.raises(ConfigError, match="auto, on, off"):
        load_config({}, {"PASSAGE_FAST_PATH": "fast"})
