"""``/metrics`` during real traffic: what a scrape says matches what was sent.

One server (``passage.app.start``, every listener on loopback, the metrics port
on a free one) carries TURN over UDP, TCP and TLS to real UDP peers, a Hybrid
Connections WebSocket bridge and HTTP request between the SDK's listener and
sender, and a signaling room of two members; each step scrapes ``/metrics``
over HTTP and reads it with ``prometheus_client``'s text parser.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api_harness import Api, api_server
from metrics_scrape import Scrape, scrape, scrape_until
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights
from passage.hybrid.sdk import (
    HybridConnectionListener,
    KeyTokenProvider,
    RelayedRequest,
    RelayedResponse,
    RelayEndpoint,
    connect,
    request,
)
from passage_server import free_port
from turn_client import TurnClient, UdpPeer, error_code

pytestmark = pytest.mark.timeout(90)

SIZES = {"udp": (1, 100, 1200), "tcp": (3, 500), "tls": (7, 64, 900, 13)}
"""Payloads each transport's client sends to its peer (and the peer sends back, reversed)."""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    port = free_port((socket.SOCK_STREAM,))
    async with api_server(tmp_path, loopback_peers=True, metrics_port=port) as started:
        yield started


def metrics_base(api: Api) -> str:
    operators = api.running.operators
    assert operators is not None
    host, port = operators.addresses[0]
    return f"http://{host}:{port}"


async def relay_both_ways(api: Api, transport: str) -> TurnClient:
    """Allocate over ``transport``, bind a channel to a fresh peer, relay :data:`SIZES`
    both ways; the client is left with its allocation."""
    tls = api.tls_context() if transport == "tls" else None
    client = await TurnClient.connect(transport, api.address(transport), ssl_context=tls)
    peer = await UdpPeer.bind()
    try:
        assert error_code(await client.allocate()) is None
        assert error_code(await client.channel_bind(0x4000, peer.address)) is None
        for size in SIZES[transport]:
            client.send_channel_data(0x4000, os.urandom(size))
        for size in SIZES[transport]:
            assert len((await peer.receive())[0]) == size
        assert client.relayed is not None
        for size in reversed(SIZES[transport]):
            peer.sendto(os.urandom(size), client.relayed)
        for size in reversed(SIZES[transport]):
            assert len((await client.receive()).data) == size
    finally:
        await peer.close()
    return client


async def test_turn_counters_match_the_traffic_over_udp_tcp_and_tls(api: Api) -> None:
    base = metrics_base(api)
    # Streams first: nothing is retransmitted over them, so requests count exactly.
    clients = [await relay_both_ways(api, "tcp"), await relay_both_ways(api, "tls")]
    streams = await scrape(api.session, base)
    assert streams.value("passage_turn_requests_total", method="allocate") == 4  # 401, then OK
    assert streams.value("passage_turn_errors_total", method="allocate", code="401") == 2
    assert streams.value("passage_turn_requests_total", method="channel_bind") == 2
    clients.append(await relay_both_ways(api, "udp"))
    try:
        found = await scrape(api.session, base)
        assert found.types["passage_turn_relayed_bytes"] == "counter"
        for transport, sizes in SIZES.items():
            assert found.value("passage_turn_allocations", transport=transport, family="ipv4") == 1
            assert found.value("passage_turn_allocations_started_total", transport=transport) == 1
            for direction in ("to_peer", "from_peer"):
                labels = {"direction": direction, "transport": transport}
                assert found.value("passage_turn_relayed_bytes_total", **labels) == sum(sizes)
                assert found.value("passage_turn_relayed_packets_total", **labels) == len(sizes)
        assert found.value("passage_turn_channels") == 3

        # A channel nobody bound is a counted drop; a wrong password a counted failure.
        clients[-1].send_channel_data(0x4999, b"lost")
        wrong = await TurnClient.connect("tcp", api.address("tcp"), password="not-it")
        assert error_code(await wrong.allocate()) == 401
        await wrong.close()
        found = await scrape_until(
            api.session, base, lambda s: s.value("passage_turn_drops_total", reason="no_channel")
        )
        assert found.value("passage_turn_drops_total", reason="no_channel") == 1
        assert (
            sum(
                found.value("passage_turn_auth_failures_total", **labels)
                for labels in found.labels_of("passage_turn_auth_failures_total")
            )
            == 1
        )
    finally:
        for client in clients:
            await client.close()  # Refresh with lifetime 0
    ended = await scrape_until(
        api.session,
        base,
        lambda s: s.value("passage_turn_allocations_ended_total", reason="refresh_zero") == 3,
    )
    assert not ended.labels_of("passage_turn_allocations")  # none live
    for transport, sizes in SIZES.items():  # still counted once the allocations are gone
        labels = {"direction": "to_peer", "transport": transport}
        assert ended.value("passage_turn_relayed_bytes_total", **labels) == sum(sizes)


async def test_hybrid_connection_bridge_and_http_bytes(api: Api) -> None:
    admin = api.running.api.hybrid_admin
    assert admin is not None
    await admin.create_connection("echo")
    await admin.put_rule(None, "sender", rights=Rights.SEND)
    root = await admin.get_rule(None, ROOT_RULE)
    sender_rule = await admin.get_rule(None, "sender")
    listen_tokens = KeyTokenProvider(root.name, root.primary_key)
    send_tokens = KeyTokenProvider(sender_rule.name, sender_rule.primary_key)
    endpoint = RelayEndpoint.parse(api.http_base)
    base = metrics_base(api)

    async def answer(relayed: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, {}, b"R" * 2 * len(relayed.body))

    async with HybridConnectionListener(
        endpoint, "echo", listen_tokens, http_handler=answer
    ) as listener:
        stream = await connect(endpoint, "echo", send_tokens)
        accepted = await listener.accept()
        await stream.send("hello")  # 5 bytes of text
        await stream.send(b"\x00" * 1000)
        assert await accepted.receive() == "hello"
        await accepted.receive()
        await accepted.send(b"back" * 10)
        assert await stream.receive() == b"back" * 10
        live = await scrape(api.session, base)
        assert live.value("passage_hc_listeners") == 1
        assert live.value("passage_hc_bridges") == 1
        assert live.value("passage_hc_senders_total", kind="websocket") == 1
        assert live.value("passage_hc_bytes_total", direction="to_listener") == 1005
        assert live.value("passage_hc_bytes_total", direction="to_sender") == 40
        await stream.close()

        response = await request(endpoint, "echo", send_tokens, "POST", body=b"q" * 300)
        assert (response.status, len(response.body)) == (200, 600)
        after = await scrape(api.session, base)
        assert after.value("passage_hc_senders_total", kind="http") == 1
        assert after.value("passage_hc_bytes_total", direction="to_listener") == 1305
        assert after.value("passage_hc_bytes_total", direction="to_sender") == 640
        # Refusals are counted by their error code.
        refused = await request(endpoint, "nowhere", send_tokens, "GET")
        assert refused.status == 404
    found = await scrape_until(api.session, base, lambda s: s.value("passage_hc_listeners") == 0)
    assert found.value("passage_hc_listeners_accepted_total") == 1
    assert found.value("passage_http_requests_total", route="relay", status="200") == 1


async def test_signaling_room_counts(api: Api) -> None:
    base = metrics_base(api)
    tokens = []
    for _ in range(2):
        identity = await api.create_identity()
        tokens.append(await api.issue_token(identity, ["voip"]))
    url = api.https_base.replace("https", "wss") + "/signal/room-1"
    members = [
        await api.session.ws_connect(
            url, headers={"Authorization": f"Bearer {token}"}, ssl=api.tls_context()
        )
        for token in tokens
    ]
    first, second = members
    await first.receive_json()  # welcome
    await second.receive_json()  # welcome
    await first.receive_json()  # joined
    for text in ("one", "two", "three"):
        await first.send_str(json.dumps({"type": "send", "data": {"text": text}}))
        assert (await second.receive_json())["data"] == {"text": text}
    found = await scrape(api.session, base)
    assert found.value("passage_signal_rooms") == 1
    assert found.value("passage_signal_members") == 2
    assert found.value("passage_signal_messages_total") == 3
    assert found.value("passage_signal_deliveries_total") == 2 + 1 + 3  # welcomes, joined, relayed
    await second.close()
    await first.receive_json()  # left
    # A token that is not one is refused with 4001 after the upgrade.
    refused = await api.session.ws_connect(
        url, headers={"Authorization": "Bearer nonsense"}, ssl=api.tls_context()
    )
    await refused.receive()
    await first.close()
    found = await scrape_until(api.session, base, lambda s: s.value("passage_signal_members") == 0)
    assert found.value("passage_signal_rooms") == 0
    assert found.value("passage_signal_closes_total", code="1000") == 2
    assert found.value("passage_signal_closes_total", code="4001") == 1


async def test_api_requests_are_counted_by_operation_with_latency(api: Api) -> None:
    base = metrics_base(api)
    for _ in range(3):
        await api.create_identity()
    async with api.session.get(api.http_base + "/no/such/path") as missing:
        assert missing.status == 404
    found = await scrape(api.session, base)
    route = "CommunicationIdentity_Create"
    assert found.value("passage_http_requests_total", route=route, status="201") == 3
    assert found.value("passage_http_request_duration_seconds_count", route=route) == 3
    assert found.value("passage_http_request_duration_seconds_bucket", route=route, le="+Inf") == 3
    assert found.value("passage_http_requests_total", route="passage_api", status="404") == 1
    assert found.types["passage_http_request_duration_seconds"] == "histogram"


async def test_every_metric_is_documented_and_prefixed(api: Api) -> None:
    found: Scrape = await scrape(api.session, metrics_base(api))
    documented = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    for name in found.types:
        assert name.startswith("passage_"), name
        assert f"`{name}" in documented, f"{name} is not in docs/metrics.md"


async def test_the_store_flush_and_process_metrics_move(api: Api) -> None:
    client = await relay_both_ways(api, "udp")  # something for the ledger to write
    try:
        found = await scrape_until(
            api.session,
            metrics_base(api),
            lambda s: s.value("passage_store_flush_duration_seconds_count") > 0,
        )
    finally:
        await client.close()
    assert found.value("passage_store_unsaved_records") >= 0
    assert found.value("passage_process_resident_memory_bytes") > 0
    assert found.value("passage_process_open_fds") > 0
    assert found.value("passage_process_cpu_seconds_total") > 0
