"""Peers in the lab: voip users on the lab's Passage, and two ``passage.peer.sdk.Peer`` s that
meet in a room, report the path they chose and swap random bytes over a stream.

Each peer runs entirely inside its host's namespace (``lab.acall``): aioice
enumerates the interfaces of the namespace it runs in.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from natlab.lab import Lab, Node
from natlab.serve import LabPassage
from passage.api.service import load_state
from passage.cli.management import ConnectionString, RemoteTarget, call_remote, with_store
from passage.config import Config
from passage.peer.sdk import Path as PeerPath
from passage.peer.sdk import Peer, PeerSettings
from passage.peer.sdk.agent import CheckSummary

IDENTITY_VERSION = "2023-10-01"


def connection_string(lab: Lab, passage: LabPassage) -> ConnectionString:
    """What ``passage connection-string`` prints for the lab's Passage (the primary key, read
    from its store)."""

    def read() -> ConnectionString:
        config = Config(data_dir=passage.info.data_dir)
        state = with_store(config, lambda _db, store: load_state(store, config.region, time.time()))
        return ConnectionString(passage.info.api_url, state.keys.primary.text)

    return lab.call(lab.server, read)


def voip_tokens(lab: Lab, passage: LabPassage, count: int) -> list[str]:
    """``count`` new identities on the lab's Passage, each with a voip token: created through
    the API, HMAC-signed with the primary key, from the server's namespace."""
    target = RemoteTarget(connection_string(lab, passage), tls_to(passage))

    def mint() -> list[str]:
        created = [
            call_remote(
                target,
                "POST",
                "/identities",
                {"api-version": IDENTITY_VERSION},
                {"createTokenWithScopes": ["voip"]},
            )  # fmt: skip
            for _ in range(count)
        ]
        return [str(body["accessToken"]["token"]) for body in created]

    return lab.call(lab.server, mint)


def tls_to(passage: LabPassage) -> ssl.SSLContext:
    """A client context trusting the lab Passage's generated CA (API, signaling, TURN/TLS)."""
    return ssl.create_default_context(cafile=str(passage.info.ca_cert))


@dataclass(frozen=True)
class Outcome:
    path: PeerPath
    received: bytes
    remote_identity: str
    controlling: bool
    checks: tuple[CheckSummary, ...]


async def exchange(
    api_url: str, token: str, room: str, ca: Path, data: bytes, settings: PeerSettings | None
) -> Outcome:
    """Connect as a peer, send ``data`` over a stream, read the other side's until EOF."""
    tls = ssl.create_default_context(cafile=str(ca))
    peer = await Peer.connect(api_url, token, room, tls=tls, settings=settings)
    try:
        stream = peer.open_stream()

        async def send() -> None:
            await stream.write(data)
            stream.write_eof()

        async def receive() -> bytes:
            chunks = []
            while chunk := await stream.read():
                chunks.append(chunk)
            return b"".join(chunks)

        _, received = await asyncio.gather(send(), receive())
        await stream.wait_closed()
        return Outcome(peer.path, received, peer.remote_identity, peer.controlling, peer.checks)
    finally:
        await peer.close()


async def connect_pair(
    lab: Lab,
    passage: LabPassage,
    a: Node,
    b: Node,
    data: tuple[bytes, bytes],
    *,
    api_urls: tuple[str, str] | None = None,
    settings: PeerSettings | None = None,
    room: str = "scenario",
) -> tuple[Outcome, Outcome]:
    """Peers in ``a`` and ``b`` meet in ``room``; each sends its half of ``data``."""
    tokens = voip_tokens(lab, passage, 2)
    urls = api_urls or (passage.info.api_url, passage.info.api_url)
    ca = passage.info.ca_cert
    return await asyncio.gather(
        lab.acall(a, exchange, urls[0], tokens[0], room, ca, data[0], settings),
        lab.acall(b, exchange, urls[1], tokens[1], room, ca, data[1], settings),
    )


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def api_on_443(lab: Lab, passage: LabPassage) -> str:
    """The API reachable on port 443 of the server's second address, as a load balancer in
    front of it would make it (a DNAT to port 8443 in the server's namespace); its URL.

    For hosts behind a firewall that lets only TCP 443 out: TURN over TLS has
    443 on the first address, the API and signaling get it on the second.
    """
    rule = f"ip daddr {passage.alt_ip} tcp dport 443 dnat to {passage.ip}:{passage.info.api_port}"
    lab.run(lab.server, ["nft", "add", "table", "ip", "front"])
    lab.run(lab.server, ["nft", "add", "chain", "ip", "front", "prerouting",
                         "{ type nat hook prerouting priority dstnat; }"])  # fmt: skip
    lab.run(lab.server, ["nft", "add", "rule", "ip", "front", "prerouting", *rule.split()])
    return f"https://{passage.alt_ip}:443/"
