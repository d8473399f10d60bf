"""The node registry's records, and which nodes count as live at a given time.

Each node writes its :class:`NodeInfo` every :data:`NODE_HEARTBEAT` seconds, and the
record expires :data:`NODE_EXPIRY` seconds after it was written: a node that stops
(``kill -9``, a cut link) drops out within that time, with no consensus of our own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = ["NODE_EXPIRY", "NODE_HEARTBEAT", "NodeInfo", "NodeTable", "decode_node", "encode_node"]

NODE_HEARTBEAT = 2.0
"""Seconds between two writes of a node's record."""

NODE_EXPIRY = 6.0
"""Seconds a record stays live after it was written: three heartbeats."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node says of itself in the registry."""

    name: str
    """``--node-name``: unique in the cluster, kept across restarts."""
    boot_id: str
    """Random per process start: tells a restarted node from its previous run."""
    public_url: str
    """``--public-url``: where Hybrid Connections listeners reach this node."""
    turn_host: str
    """``--public-host``: the host in this node's STUN/TURN URLs."""
    turn_port: int
    """UDP and TCP STUN/TURN port."""
    turns_port: int
    """TURN over TLS port; 0: none."""
    region: str
    load: int
    """Allocations this node holds now."""
    draining: bool
    """True: live, but to be handed out to no new client."""
    seen_at: float
    """Unix seconds (the writer's clock) when the record was written."""


def encode_node(node: NodeInfo) -> str:
    return json.dumps(asdict(node), separators=(",", ":"))


_FIELDS = {
    "name": str, "boot_id": str, "public_url": str, "turn_host": str, "turn_port": int,
    "turns_port": int, "region": str, "load": int, "draining": bool, "seen_at": float,
}  # fmt: skip


def decode_node(text: str | bytes) -> NodeInfo | None:
    """The record in ``text``, or None for anything that is not one (another version's,
    a hand-edited key): a bad record is skipped, never fatal."""
    try:
        fields = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(fields, dict) or set(fields) != set(_FIELDS):
        return None
    for name, kind in _FIELDS.items():
        value = fields[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            fields[name] = value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return None
    return NodeInfo(**fields)


class NodeTable:
    """The latest records read from the registry; which of them are live ``now``."""

    def __init__(self, expiry: float = NODE_EXPIRY) -> None:
        self.expiry = expiry
        self._nodes: dict[str, NodeInfo] = {}

    def replace(self, nodes: Iterable[NodeInfo]) -> None:
        """What the registry holds now (the newest record of each name)."""
        newest: dict[str, NodeInfo] = {}
        for node in nodes:
            held = newest.get(node.name)
            if held is None or node.seen_at > held.seen_at:
                newest[node.name] = node
        self._nodes = newest

    def live(self, now: float) -> list[NodeInfo]:
        """Nodes whose record was written less than ``expiry`` seconds before ``now``."""
        return sorted(
            (node for node in self._nodes.values() if node.seen_at + self.expiry > now),
            key=lambda node: node.name,
        )

    def get(self, name: str, now: float) -> NodeInfo | None:
        """Node ``name`` if it is live."""
        node = self._nodes.get(name)
        return node if node is not None and node.seen_at + self.expiry > now else None

    def relays(self, now: float, region: str | None = None) -> list[NodeInfo]:
        """Live, non-draining nodes (of ``region`` when given), least loaded first."""
        return sorted(
            (
                node
                for node in self.live(now)
                if not node.draining and (region is None or node.region == region)
            ),
            key=lambda node: (node.load, node.name),
        )

    def alternate(self, now: float, refusing: str, region: str) -> NodeInfo | None:
        """Where node ``refusing``, of ``region``, sends a new Allocate it will not take
        (300 Try Alternate, RFC 8489 §10): the least loaded other live, non-draining node
        of its region, else of any region; None when there is no other."""
        others = [node for node in self.relays(now) if node.name != refusing]
        nearby = [node for node in others if node.region == region]
        choices = nearby or others
        return choices[0] if choices else None
