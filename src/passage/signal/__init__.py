"""Signaling rooms (sans-IO): members, limits, routing, who may join.

``wss://HOST:API_PORT/signal/{room}`` relays JSON messages between the
members of a room (``docs/signaling.md``). This package is the core: it does
no I/O and reads no clock; the aiohttp adapter is :mod:`passage.signal.aio`.
"""

from passage.signal.admission import SUBPROTOCOL, admit, offered_token, standing
from passage.signal.codes import CloseCode, SignalError
from passage.signal.messages import Member, MemberId, RoomName, parse_room_name
from passage.signal.rooms import Delivery, Rooms, SignalLimits

__all__ = [
    "SUBPROTOCOL",
    "CloseCode",
    "Delivery",
    "Member",
    "MemberId",
    "RoomName",
    "Rooms",
    "SignalError",
    "SignalLimits",
    "admit",
    "offered_token",
    "parse_room_name",
    "standing",
]
