"""What this node is doing now, and what it runs with: ``/live/...``, ``/settings``, and the
list of identities.

Each handler reads the :class:`~passage.live.LiveView` the app gave the API
(the TURN relay's allocations and counters, the last hour's throughput, Hybrid
Connections listeners and bridges, signaling rooms, the settings) and writes
it as JSON in the API's style: camelCase, a ``value`` list, times as ISO 8601
UTC. The console shows nothing that is not here.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from passage.api.call import Call, Reply
from passage.http_errors import HttpError
from passage.identity.errors import ValidationError
from passage.live import LiveAllocation, LiveBridge, LiveListener, LiveView

__all__ = [
    "MAX_IDENTITIES",
    "MAX_SEARCH",
    "delete_allocation",
    "get_bridges",
    "get_listeners",
    "get_nodes",
    "get_rooms",
    "get_settings",
    "get_throughput",
    "get_turn",
    "list_allocations",
    "list_identities",
]

MAX_IDENTITIES = 1000
"""Most identities one ``GET /identities`` lists (``top``; default 100)."""

MAX_SEARCH = 200
"""Longest ``search`` text, in characters."""


def iso(unix: float) -> str:
    """``2026-12-07T16:40:52Z`` (milliseconds when there are any)."""
    instant = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    spec = "milliseconds" if instant.microsecond else "seconds"
    return instant.isoformat(timespec=spec).replace("+00:00", "Z")


def _live(call: Call) -> LiveView:
    if call.live is None:
        raise HttpError(503, "ServiceUnavailable", "Live state is not available on this server.")
    return call.live


def _allocation_body(allocation: LiveAllocation, now: float) -> dict[str, object]:
    return {
        "id": allocation.id,
        "username": allocation.username,
        "identity": allocation.subject,
        "transport": allocation.transport,
        "clientAddress": allocation.client,
        "relayedAddresses": list(allocation.relayed),
        "peers": list(allocation.peers),
        "channels": allocation.channels,
        "bytesToPeer": allocation.bytes_to_peer,
        "bytesFromPeer": allocation.bytes_from_peer,
        "packetsToPeer": allocation.packets_to_peer,
        "packetsFromPeer": allocation.packets_from_peer,
        "startedAt": iso(allocation.started_at),
        "ageSeconds": max(0, round(now - allocation.started_at)),
        "expiresAt": iso(allocation.expires_at),
    }


async def list_allocations(call: Call) -> Reply:
    """``GET /live/allocations``: every TURN allocation on this node, oldest first."""
    now = call.service.clock()
    allocations = sorted(_live(call).allocations(), key=lambda a: (a.started_at, a.id))
    return Reply(200, {"value": [_allocation_body(a, now) for a in allocations]})


async def delete_allocation(call: Call) -> Reply:
    """``DELETE /live/allocations/{id}``: end it now; its client's next request gets 437."""
    if not _live(call).end_allocation(call.params["id"]):
        raise HttpError(404, "NotFound", f"No live allocation {call.params['id']!r}.", "id")
    return Reply(204)


async def get_turn(call: Call) -> Reply:
    """``GET /live/turn``: allocations by transport, starts and ends, refusals by reason."""
    counters = _live(call).turn()
    return Reply(
        200,
        {
            "allocationsByTransport": dict(sorted(counters.live_by_transport.items())),
            "allocationsStarted": counters.allocations_started,
            "allocationsEnded": counters.allocations_ended,
            "errorsSent": {str(code): n for code, n in sorted(counters.errors.items())},
            "dropped": dict(sorted(counters.drops.items())),
            "authenticationFailures": dict(sorted(counters.auth_failures.items())),
        },
    )


async def get_throughput(call: Call) -> Reply:
    """``GET /live/throughput``: bytes relayed in each 10-second step of the last hour."""
    live = _live(call)
    points = live.throughput(call.service.clock())
    step = points[1].start - points[0].start if len(points) > 1 else 0
    return Reply(
        200,
        {
            "stepSeconds": step,
            "value": [
                {
                    "start": iso(point.start),
                    "bytesToPeer": point.bytes_to_peer,
                    "bytesFromPeer": point.bytes_from_peer,
                }
                for point in points
            ],
        },
    )


def _listener_body(listener: LiveListener) -> dict[str, object]:
    return {
        "id": listener.id,
        "hybridConnection": listener.hybrid_connection,
        "address": listener.address,
        "connectedAt": iso(listener.connected_at),
        "bridges": listener.bridges,
    }


def _bridge_body(bridge: LiveBridge) -> dict[str, object]:
    return {
        "hybridConnection": bridge.hybrid_connection,
        "listenerId": bridge.listener_id,
        "senderAddress": bridge.sender,
        "openedAt": iso(bridge.opened_at),
        "bytesToListener": bridge.bytes_to_listener,
        "bytesToSender": bridge.bytes_to_sender,
    }


async def get_listeners(call: Call) -> Reply:
    """``GET /live/listeners``: Hybrid Connections listeners connected to this node."""
    listeners = sorted(_live(call).listeners(), key=lambda item: (item.connected_at, item.id))
    return Reply(200, {"value": [_listener_body(listener) for listener in listeners]})


async def get_bridges(call: Call) -> Reply:
    """``GET /live/bridges``: WebSocket senders paired with a listener through this node."""
    bridges = sorted(_live(call).bridges(), key=lambda item: item.opened_at)
    return Reply(200, {"value": [_bridge_body(bridge) for bridge in bridges]})


async def get_nodes(call: Call) -> Reply:
    """``GET /live/nodes``: the cluster's live nodes (``--redis-url``); empty alone."""
    nodes = _live(call).nodes(call.service.clock())
    return Reply(
        200,
        {
            "value": [
                {
                    "name": node.name,
                    "region": node.region,
                    "turnHost": node.turn_host,
                    "turnPort": node.turn_port,
                    "publicUrl": node.public_url,
                    "allocations": node.load,
                    "draining": node.draining,
                    "seenAt": iso(node.seen_at),
                    "thisNode": node.this_node,
                }
                for node in nodes
            ]
        },
    )


async def get_rooms(call: Call) -> Reply:
    """``GET /live/rooms``: signaling rooms with members, busiest first."""
    rooms = _live(call).rooms()
    return Reply(200, {"value": [{"room": room.room, "members": room.members} for room in rooms]})


async def get_settings(call: Call) -> Reply:
    """``GET /settings``: every option as the server runs with it, secrets masked, and
    what a reload now would change (``afterReload``, ``onReload``)."""
    view = _live(call).settings()
    settings = []
    for setting in view.settings:
        body: dict[str, object] = {
            "name": setting.name,
            "flag": setting.flag,
            "value": setting.value,
            "secret": setting.secret,
        }
        if setting.after_reload is not None:
            body["afterReload"] = setting.after_reload
            body["onReload"] = "applies" if setting.reload_applies else "needsRestart"
        settings.append(body)
    reload = {"checked": view.reload_checked, "error": view.reload_error}
    return Reply(200, {"value": settings, "reload": reload})


def _top(query: Mapping[str, str], default: int = 100) -> int:
    text = query.get("top")
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_IDENTITIES:
        raise ValidationError(f"top must be a whole number from 1 to {MAX_IDENTITIES}.", "top")
    return int(text)


async def list_identities(call: Call) -> Reply:
    """``GET /identities``: identities not deleted, newest first; ``search`` matches part of
    the id, ``top`` (1-1000, default 100) caps the list."""
    search = call.query.get("search", "")
    if len(search) > MAX_SEARCH:
        raise ValidationError(f"search is longer than {MAX_SEARCH} characters.", "search")
    records = await call.service.store.live(search, _top(call.query))
    return Reply(
        200,
        {
            "value": [
                {
                    "id": record.id,
                    "createdAt": iso(record.created_at),
                    "tokensRevokedAt": (
                        iso(record.revoked_before_ms / 1000)
                        if record.revoked_before_ms is not None
                        else None
                    ),
                }
                for record in records
            ]
        },
    )
