"""The peer SDK: peers that meet in a signaling room and take the most direct path.

``Peer.connect(api_url, token, room)`` gets ICE servers with a user access
token, meets the other member of ``room`` through ``/signal/{room}``, runs
ICE and reports the path chosen (``direct-lan``, ``direct-nat``,
``relay-udp``, ``relay-tcp``, ``relay-tls``). See ``docs/client.md``.
"""

from passage.peer.errors import PeerError, SignalingClosed
from passage.peer.ice_servers import IceServers, StunServer, TurnServer
from passage.peer.nomination import NominationPolicy
from passage.peer.path import Endpoint, Path, PathKind
from passage.peer.sdk.peer import Peer, PeerSettings
from passage.peer.sdk.relay_configuration import fetch_ice_servers
from passage.peer.sdk.signaling import SignalingSession
from passage.peer.sdk.stream import PeerStream

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
    "SignalingClosed",
    "SignalingSession",
    "StunServer",
    "TurnServer",
    "fetch_ice_servers",
]
