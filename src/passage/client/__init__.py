"""The Passage client SDK: peers that meet in a signaling room and take the most direct path.

``Peer.connect(api_url, token, room)`` gets ICE servers with a user access
token, meets the other member of ``room`` through ``/signal/{room}``, runs
ICE and reports the path chosen (``direct-lan``, ``direct-nat``,
``relay-udp``, ``relay-tcp``, ``relay-tls``). See ``docs/client.md``.
"""

from passage.client.errors import PeerError, SignalingClosed
from passage.client.ice_servers import IceServers, StunServer, TurnServer, fetch_ice_servers
from passage.client.nomination import NominationPolicy
from passage.client.path import Endpoint, Path, PathKind, RelayTransport
from passage.client.peer import Peer, PeerSettings
from passage.client.signaling import SignalingSession
from passage.client.stream import PeerStream

__all__ = [
    "Endpoint",
    "IceServers",
    "NominationPolicy",
    "Path",
    "PathKind",
    "Peer",
    "PeerError",
    "PeerSettings",
    "PeerStream",
    "RelayTransport",
    "SignalingClosed",
    "SignalingSession",
    "StunServer",
    "TurnServer",
    "fetch_ice_servers",
]
