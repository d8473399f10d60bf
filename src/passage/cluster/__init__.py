"""Cluster mode's pure parts: the names of shared keys and channels, the node registry's
records and which nodes are live, the events nodes tell each other, and the messages of
one node to another; time is passed in. ``passage.cluster.aio`` carries them over Redis."""

from passage.cluster.events import ClusterEvent, EventKind
from passage.cluster.keys import ClusterKeys
from passage.cluster.nodes import NODE_EXPIRY, NODE_HEARTBEAT, NodeInfo, NodeTable

__all__ = [
    "NODE_EXPIRY",
    "NODE_HEARTBEAT",
    "ClusterEvent",
    "ClusterKeys",
    "EventKind",
    "NodeInfo",
    "NodeTable",
]
