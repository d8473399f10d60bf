"""A usage batch whose write committed but whose answer was lost is written again under
the same sequence number, and the ledger counts it once."""

from __future__ import annotations

from pathlib import Path

from passage.usage import UsageRecord
from passage_server import in_process
from turn_client import UdpPeer


async def test_a_batch_retried_after_a_lost_answer_is_counted_once(tmp_path: Path) -> None:
    async with in_process(tmp_path, loopback_peers=True, usage_flush_interval=3600.0) as server:
        edge = server.running.edge
        written = edge.usage_sink
        assert written is not None
        sequences: list[int] = []

        async def answer_lost_once(batch: list[UsageRecord], sequence: int) -> None:
            sequences.append(sequence)
            await written(batch, sequence)  # committed...
            if len(sequences) == 1:
                raise ConnectionError("connection lost before the commit's answer")

        edge.usage_sink = answer_lost_once
        peer = await UdpPeer.bind()
        client = await server.client("udp")
        try:
            await client.allocate()
            await client.create_permission(peer.address)
            client.send_indication(peer.address, b"x" * 1000)
            await peer.receive()
            await edge.flush_usage()  # written, but the edge hears a failure
            assert edge.unsaved_records > 0
            await edge.flush_usage()  # the same batch again, under the same number
            assert sequences == [1, 1]
            assert edge.unsaved_records == 0
        finally:
            await client.close()
            await peer.close()
        [allocation] = await server.running.api.ledger.allocations()
        assert allocation.bytes_to_peer == 1000
