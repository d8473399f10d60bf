"""``--max-bps`` is spent only on relayed data: junk from a stranger costs an allocation nothing.

Issue 10, "Junk from a non-permitted source drains an allocation's --max-bps
budget": the relay charged the per-second budget before it checked the
sender's permission, so whoever learned a relayed address could starve it.
"""

from __future__ import annotations

from pathlib import Path

from passage_server import passage_process
from turn_client import NoAnswer, TurnClient, UdpPeer, error_code, relayed_addresses

BUDGET = 2000
"""Bytes per second per allocation (``--max-bps``)."""


async def test_datagrams_from_an_unpermitted_source_do_not_spend_the_budget(
    tmp_path: Path,
) -> None:
    args = ("--max-bps", str(BUDGET), "--allow-loopback-peers")
    with passage_process(tmp_path, *args) as (info, _):
        client = await TurnClient.connect("udp", (info.host, info.turn_port))
        peer = await UdpPeer.bind("127.0.0.1")
        stranger = await UdpPeer.bind("127.0.0.2")  # another IP: no permission covers it
        try:
            relayed = relayed_addresses(await client.allocate())[0]
            assert error_code(await client.channel_bind(0x4000, peer.address)) is None
            # Each stranger datagram alone exceeds the budget; each peer datagram is
            # 100 bytes, ten of them half the budget. Both reach the same relay socket
            # in the order sent, so before the fix every peer datagram found the
            # budget already spent (but for one after a refill, at most).
            for index in range(10):
                stranger.sendto(b"\xff" * (BUDGET + 1000), relayed)
                peer.sendto(bytes([index]) * 100, relayed)
            arrived = []
            while True:
                try:
                    arrived.append((await client.receive(within=0.5)).data)
                except NoAnswer:
                    break
            assert arrived == [bytes([index]) * 100 for index in range(10)]
        finally:
            for closing in (client, peer, stranger):
                await closing.close()
