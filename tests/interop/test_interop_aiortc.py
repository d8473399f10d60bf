"""aiortc's RTCPeerConnection through Passage: a data channel between two NATed hosts.

Alice (10.1.0.2) and Bob (10.2.0.2) sit behind two symmetric NATs in the NAT
lab, the case where only a relay connects them; ``passage serve`` runs on the
lab's internet (203.0.113.10). Each is an app user: the unmodified Azure SDKs
(``azure-communication-identity`` and ``-networktraversal``), called from that
host, make an identity and fetch its relay configuration from Passage's API.
Each side hands one of the URLs it lists (TURN over UDP, TCP, or TLS on 443) to
an unmodified aiortc ``RTCPeerConnection`` with ``iceTransportPolicy=relay``.
aiortc enumerates interfaces, so each peer runs wholly inside its host's
namespace (``lab.acall``); offer and answer pass between them through queues,
the signaling an app would do.

Each case asserts that every message arrives intact both ways; that the
candidate pair each side's ICE agent nominated joins its own relayed address
on Passage to the other's; that Passage's log shows those allocations, made by
each identity over that client transport from its NAT's WAN address; and,
after Passage has shut down, that ``passage usage`` bills each identity for at
least the bytes it sent.
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.networktraversal import CommunicationRelayClient

from natlab import presets
from natlab.fixtures import skip_unless_available
from natlab.lab import Host, Lab
from natlab.serve import RELAY_PORTS

pytestmark = pytest.mark.interop

STEP_TIMEOUT = 30.0
"""Seconds any one step (gathering, connecting, a message) may take before a side gives up;
a passing case takes about a second in all."""

_RNG = random.Random(2198)
MESSAGES = [b"hello from aiortc", *(_RNG.randbytes(n) for n in [*range(1, 301), 16 * 1024])]
"""A greeting, 300 binary messages of 1 to 300 bytes and one of 16 KiB (which SCTP
sends in many chunks): 62 KB, the same every run."""
PAYLOAD = sum(len(m) for m in MESSAGES)


@dataclass(frozen=True)
class Peer:
    """What one side of the call knows: its host and the ICE server it was given."""

    host: Host
    identity: str
    ice_server: RTCIceServer


@dataclass(frozen=True)
class Outcome:
    """What one side saw: the messages it received and the pair it nominated."""

    received: list[bytes | str] = field(repr=False)
    local_types: list[str]
    """The types of every local candidate aiortc gathered."""
    local: tuple[str, str, int]
    """The nominated pair's local candidate: (type, host, port)."""
    remote: tuple[str, str, int]


class Signaling:
    """Two one-way mailboxes between the peers' threads (each peer runs its own loop)."""

    def __init__(self) -> None:
        self.to_bob: queue.Queue[str] = queue.Queue()
        self.to_alice: queue.Queue[str] = queue.Queue()

    @staticmethod
    async def receive(box: queue.Queue[str]) -> str:
        return await asyncio.to_thread(box.get, True, STEP_TIMEOUT)


def describe(description: RTCSessionDescription) -> str:
    return json.dumps({"sdp": description.sdp, "type": description.type})


def parse(text: str) -> RTCSessionDescription:
    fields = json.loads(text)
    return RTCSessionDescription(sdp=fields["sdp"], type=fields["type"])


def connection(peer: Peer) -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=[peer.ice_server], iceTransportPolicy=RTCIceTransportPolicy.RELAY
        )
    )


def outcome(pc: RTCPeerConnection, received: list[bytes | str]) -> Outcome:
    """What ``pc`` gathered and the pair its ICE agent nominated, as (type, host, port).

    The candidates come from aiortc's API (the ICE gatherer). aiortc reports no ICE
    statistics for a data channel, so the pair is read from the one internal the
    aioice interop test reads too: the agent's ``_nominated`` pair.
    """
    assert pc.sctp is not None
    ice = pc.sctp.transport.transport
    pair = ice._connection._nominated[1]
    local, remote = pair.local_candidate, pair.remote_candidate
    return Outcome(
        received,
        [candidate.type for candidate in ice.iceGatherer.getLocalCandidates()],
        (local.type, local.host, local.port),
        (remote.type, remote.host, remote.port),
    )


def collector(channel: RTCDataChannel, into: list[bytes | str], echo: bool) -> asyncio.Event:
    """Keep what ``channel`` receives in ``into`` (echoing it if told); set once all came."""
    complete = asyncio.Event()

    @channel.on("message")
    def on_message(message: bytes | str) -> None:
        into.append(message)
        if echo:
            channel.send(message)
        if len(into) == len(MESSAGES):
            complete.set()

    return complete


async def alice(peer: Peer, signaling: Signaling) -> Outcome:
    """The caller: offers a data channel, sends every message, waits for each echo."""
    pc = connection(peer)
    try:
        channel = pc.createDataChannel("passage")
        echoed: list[bytes | str] = []
        all_back = collector(channel, echoed, echo=False)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await pc.setLocalDescription(await pc.createOffer())  # gathers: no trickle in aiortc
        signaling.to_bob.put(describe(pc.localDescription))
        await pc.setRemoteDescription(parse(await signaling.receive(signaling.to_alice)))
        await asyncio.wait_for(opened.wait(), STEP_TIMEOUT)
        for message in MESSAGES:
            channel.send(message)
        await asyncio.wait_for(all_back.wait(), STEP_TIMEOUT)
        return outcome(pc, echoed)
    finally:
        signaling.to_bob.put("bye")  # Bob hangs up once Alice has what she needs
        await pc.close()


async def bob(peer: Peer, signaling: Signaling) -> Outcome:
    """The callee: answers, keeps every message and echoes it."""
    pc = connection(peer)
    try:
        received: list[bytes | str] = []
        channels: asyncio.Queue[asyncio.Event] = asyncio.Queue()

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            channels.put_nowait(collector(channel, received, echo=True))

        await pc.setRemoteDescription(parse(await signaling.receive(signaling.to_bob)))
        await pc.setLocalDescription(await pc.createAnswer())
        signaling.to_alice.put(describe(pc.localDescription))
        all_in = await asyncio.wait_for(channels.get(), STEP_TIMEOUT)
        await asyncio.wait_for(all_in.wait(), STEP_TIMEOUT)
        seen = outcome(pc, received)
        assert await signaling.receive(signaling.to_bob) == "bye"
        return seen
    finally:
        await pc.close()


def app_user(
    lab: Lab, host: Host, connection_string: str, ca: str, url_prefix: str
) -> tuple[str, RTCIceServer]:
    """A new ACS identity and its relay configuration, fetched from ``host`` with the SDKs;
    the one URL of it that starts ``url_prefix``, as an aiortc ICE server."""

    def fetch() -> tuple[str, list[str], str, str]:
        identity = CommunicationIdentityClient.from_connection_string(
            connection_string, connection_verify=ca
        )
        relay = CommunicationRelayClient.from_connection_string(
            connection_string, connection_verify=ca
        )
        user = identity.create_user()
        server = relay.get_relay_configuration(user=user).ice_servers[0]
        return user.properties["id"], server.urls, server.username, server.credential

    identity, urls, username, credential = lab.call(host, fetch)
    chosen = [url for url in urls if url.startswith(url_prefix)]
    assert len(chosen) == 1, urls
    return identity, RTCIceServer(urls=chosen[0], username=username, credential=credential)


@dataclass(frozen=True)
class Case:
    url_prefix: str
    """Which of the relay configuration's URLs the peers get."""
    client: str
    """The client transport Passage's log names for their allocations."""


CASES = {
    "udp": Case("turn:203.0.113.10:3478?transport=udp", "udp"),
    "tcp": Case("turn:203.0.113.10:3478?transport=tcp", "tcp"),
    "tls": Case("turns:203.0.113.10:443?transport=tcp", "tls"),
}


@pytest.fixture
def pair() -> Iterator[presets.Pair]:
    """Alice and Bob behind two symmetric NATs, in a lab of their own."""
    skip_unless_available()
    with Lab() as lab:
        yield presets.two_symmetric_nats(lab)


def allocations(log: Path, identity: str) -> list[str]:
    return [
        line
        for line in log.read_text().splitlines()
        if " started: " in line and f" subject={identity} " in line
    ]


def usage(data_dir: Path, identity: str) -> list[dict[str, Any]]:
    """``passage usage`` rows of ``identity``, read from the stopped server's store."""
    done = subprocess.run(
        [sys.executable, "-m", "passage", "usage", "--identity", identity, "--format", "json",
         "--data-dir", str(data_dir)],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(done.stdout)["value"]
    return rows


@pytest.mark.parametrize("transport", list(CASES))
async def test_aiortc_data_channel_through_passage(
    pair: presets.Pair, tmp_path: Path, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[transport]
    lab = pair.lab
    # aioice dials turns: with ssl=True, the default context, which trusts SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "passage" / "ca.pem"))
    with lab.passage(tmp_path / "passage") as passage:
        assert passage.ip == lab.server.ip == "203.0.113.10"
        connection_string, ca = passage.info.connection_string(), str(passage.info.ca_cert)
        peers = [
            Peer(host, *app_user(lab, host, connection_string, ca, case.url_prefix))
            for host in (pair.a, pair.b)
        ]
        signaling = Signaling()
        caller, callee = await asyncio.wait_for(
            asyncio.gather(
                lab.acall(pair.a, alice, peers[0], signaling),
                lab.acall(pair.b, bob, peers[1], signaling),
            ),
            4 * STEP_TIMEOUT,
        )
        log = passage.log.read_text()

    # Every message reached Bob intact and in order, and came back to Alice.
    assert callee.received == MESSAGES
    assert caller.received == MESSAGES
    # Relay only: each side gathered one candidate, a relayed address; each nominated
    # pair joins that address on Passage to the other side's.
    low, high = RELAY_PORTS
    for seen in (caller, callee):
        assert seen.local_types == ["relay"], seen
        for kind, ip, port in (seen.local, seen.remote):
            assert (kind, ip) == ("relay", passage.ip), seen
            assert low <= port <= high, seen
    assert caller.local != callee.local
    assert caller.remote == callee.local and callee.remote == caller.local
    # Passage allocated those addresses for each identity over this client transport,
    # from each NAT's WAN address.
    for peer, seen in zip(peers, (caller, callee), strict=True):
        started = allocations(passage.log, peer.identity)
        assert len(started) == 1, log[-3000:]
        assert peer.host.site is not None
        assert f" client={case.client} {peer.host.site.ip}:" in started[0], started
        assert f" relayed={passage.ip}:{seen.local[2]} " in started[0], started
    # Passage has stopped, and flushed its ledger: each identity paid for what it sent
    # (Alice's messages, Bob's echoes), DTLS and SCTP framing on top.
    for peer in peers:
        rows = usage(passage.info.data_dir, peer.identity)
        assert sum(row["allocationsStarted"] for row in rows) == 1, rows
        assert sum(row["bytesToPeer"] for row in rows) >= PAYLOAD, rows
        assert sum(row["bytesFromPeer"] for row in rows) >= PAYLOAD, rows
