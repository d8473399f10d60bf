"""A RESERVATION-TOKEN (RFC 8656 §7.2 step 5, §14.9) presented on another worker than the
one that kept its port: the parent moves the kept socket to the asking worker
(``SCM_RIGHTS``), so a client pair whose two 5-tuples the kernel puts on different
workers (coturn's uclient in its default RTP/RTCP mode) gets both ports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from serve_workers import (
    CHANNEL,
    clients,
    ledger,
    peer_port,
    place,
    relay_some,
    uclient,
)

from passage.stun import AttributeType, MessageClass
from passage_server import passage_process
from turn_client import UdpPeer, error_code

__all__ = ["peer_port"]  # a fixture

pytestmark = pytest.mark.timeout(120)

TOKEN = AttributeType.RESERVATION_TOKEN


async def test_a_token_kept_on_one_worker_allocates_its_port_on_the_other(
    tmp_path: Path,
) -> None:
    with passage_process(tmp_path, "--workers", "2", "--allow-loopback-peers") as (info, log):
        peer = await UdpPeer.bind()
        async with clients(info, 16) as opened:
            by_worker = await place(log, opened)
            maker, (taker, late) = by_worker[1][0], by_worker[2][:2]
            made = await maker.allocate((AttributeType.EVEN_PORT, True))
            token = made.get(TOKEN, bytes)
            assert token is not None and maker.relayed is not None
            taken = await taker.allocate((TOKEN, token))
            assert taken.message_class is MessageClass.SUCCESS, error_code(taken)
            assert taker.relayed == (maker.relayed[0], maker.relayed[1] + 1)
            # The moved socket relays both ways, from worker 2.
            await relay_some(taker, peer, 20)
            peer.sendto(b"back", taker.relayed)
            back = await taker.receive()
            assert (back.data, back.channel) == (b"back", CHANNEL)
            # Used once; a token worker 1 never minted; one of a worker that does not exist.
            for unknown in (token, token[:2] + b"absent", b"\x00\x07absent"):
                assert error_code(await late.allocate((TOKEN, unknown))) == 508
            assert error_code(await late.allocate()) is None  # its quota unit was given back
        await peer.close()
    (row,) = [row for row in ledger(info) if row["packets_to_peer"]]
    assert (row["packets_to_peer"], row["packets_from_peer"]) == (20, 1)


def test_uclient_rtp_rtcp_pairs_over_two_workers_without_loss(
    tmp_path: Path, peer_port: int
) -> None:
    """uclient's default mode: 20 clients, each an RTP allocation with EVEN-PORT(R) and an
    RTCP one with its token from another local port, which the kernel often puts on the
    other worker."""
    with passage_process(
        tmp_path, "--workers", "2", "--allow-loopback-peers", "--log-level", "debug"
    ) as (info, log):
        sent, received = uclient(info, peer_port, rtcp=True, clients=20)
        text = log.read_text()
    assert sent == received > 0
    assert set(re.findall(r"\[worker (\d+)\]: allocation \S+ started", text)) == {"1", "2"}
    assert "a port kept by worker" in text, "no token was used on another worker than its maker"
    assert "Unknown reservation token" not in text
