"""The one "allocation ended" event: user, transport, duration, bytes, peers, end reason,
as fields a JSON log line carries (``--log-format json``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from passage.cli.logging import JsonFormatter
from passage_server import USER, in_process
from turn_client import UdpPeer, error_code


async def test_the_event_carries_what_the_allocation_did(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="passage.turn")
    async with in_process(tmp_path, loopback_peers=True) as server:
        client = await server.client("tcp")
        first, second = await UdpPeer.bind(), await UdpPeer.bind("127.0.0.2")
        try:
            assert error_code(await client.allocate()) is None
            assert error_code(await client.create_permission(first.address)) is None
            assert error_code(await client.channel_bind(0x4000, second.address)) is None
            client.send_indication(first.address, b"12345")
            await first.receive()
            client.send_channel_data(0x4000, b"abc")
            await second.receive()
            assert client.relayed is not None
            second.sendto(b"xy", client.relayed)
            await client.receive()
        finally:
            await client.close()  # Refresh with lifetime 0
            await first.close()
            await second.close()
    (started,) = [r for r in caplog.records if " started: " in r.getMessage()]
    assert started.fields["transport"] == "tcp"  # type: ignore[attr-defined]
    assert started.fields["lifetime_seconds"] == 600  # type: ignore[attr-defined]
    (event,) = [r for r in caplog.records if "ended (" in r.getMessage()]
    fields = event.fields  # type: ignore[attr-defined]
    assert fields["user"] == USER and fields["transport"] == "tcp"
    assert fields["reason"] == "refresh_zero"
    assert (fields["bytes_to_peer"], fields["packets_to_peer"]) == (8, 2)
    assert (fields["bytes_from_peer"], fields["packets_from_peer"]) == (2, 1)
    assert fields["peers"] == 2  # 127.0.0.1 and 127.0.0.2: two permissions
    assert fields["duration_seconds"] >= 0
    line = json.loads(JsonFormatter().format(event))
    assert line["logger"] == "passage.turn" and line["level"] == "info"
    assert line["event"].startswith(f"allocation {fields['allocation']} ended (refresh_zero)")
    assert line["reason"] == "refresh_zero" and line["bytes_to_peer"] == 8
