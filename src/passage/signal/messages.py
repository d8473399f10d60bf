"""The signaling wire: JSON text frames, what a client may send and what it is sent.

A client sends one kind of frame::

    {"type": "send", "to": "MEMBER", "data": {...}}   # "to" absent or null: every other member

and is sent ``welcome`` (once, on joining), ``joined``, ``left``, ``message``
(a relayed ``data`` with the sender's member id and identity) and ``error``
(a non-fatal problem, such as a recipient that has just left). ``data`` is
any JSON object: offers, answers and candidates are the clients' business.
Anything else a client sends is a protocol error that closes the session
(:class:`~passage.signal.codes.CloseCode`). ``docs/signaling.md`` has examples.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NewType

from passage.identity.ids import IdentityId
from passage.signal.codes import CloseCode, SignalError

__all__ = [
    "Member",
    "MemberId",
    "RoomName",
    "Send",
    "error_message",
    "joined_message",
    "left_message",
    "parse_client_message",
    "parse_room_name",
    "relayed_message",
    "welcome_message",
]

MemberId = NewType("MemberId", str)
"""A session's id in its room, drawn by the server; one identity may join twice."""

RoomName = NewType("RoomName", str)

_ROOM_NAME = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_SEND_FIELDS = frozenset({"type", "to", "data"})


@dataclass(frozen=True, slots=True)
class Member:
    id: MemberId
    identity: IdentityId
    """Who the member's token names: peers learn who spoke from this, not from ``data``."""

    def as_json(self) -> dict[str, str]:
        return {"member": self.id, "identity": self.identity}


@dataclass(frozen=True, slots=True)
class Send:
    """A client's ``send`` frame."""

    to: MemberId | None
    """One member, or None for every other member of the room."""
    data: dict[str, object]


def parse_room_name(text: str) -> RoomName:
    """``text`` as a room name, or :class:`SignalError` ``BAD_ROOM``."""
    if not _ROOM_NAME.fullmatch(text):
        raise SignalError(CloseCode.BAD_ROOM, "room names are 1-64 of A-Z a-z 0-9 . _ ~ -")
    return RoomName(text)


def parse_client_message(text: str, max_bytes: int) -> Send:
    """A text frame as a :class:`Send`; :class:`SignalError` ``TOO_BIG`` or ``MALFORMED``.

    The size is checked on the UTF-8 bytes before any parsing.
    """
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise SignalError(CloseCode.TOO_BIG, f"messages are at most {max_bytes} bytes")
    try:
        frame = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: [[[[...
        raise SignalError(CloseCode.MALFORMED, "not JSON") from None
    if not isinstance(frame, dict) or frame.get("type") != "send":
        raise SignalError(CloseCode.MALFORMED, 'expected {"type": "send", ...}')
    unknown = frame.keys() - _SEND_FIELDS
    if unknown:
        raise SignalError(CloseCode.MALFORMED, f"unknown field {sorted(unknown)[0][:40]!r}")
    to, data = frame.get("to"), frame.get("data")
    if to is not None and not isinstance(to, str):
        raise SignalError(CloseCode.MALFORMED, '"to" must be a member id')
    if not isinstance(data, dict):
        raise SignalError(CloseCode.MALFORMED, '"data" must be a JSON object')
    return Send(MemberId(to) if to is not None else None, data)


def _no_constant(name: str) -> object:
    """NaN and Infinity are not JSON (RFC 8259 §6); a browser could not read them back."""
    raise ValueError(name)


def _encode(frame: dict[str, object]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def welcome_message(
    you: Member, room: RoomName, others: list[Member], room_size: int, max_bytes: int
) -> str:
    """The first frame of a session: who you are and who is already in the room.

    Members are listed in the order they joined, so clients can agree on roles
    (the earliest member leads) without another round trip.
    """
    return _encode(
        {
            "type": "welcome",
            **you.as_json(),
            "room": room,
            "members": [member.as_json() for member in others],
            "limits": {"room_size": room_size, "message_bytes": max_bytes},
        }
    )


def joined_message(member: Member) -> str:
    return _encode({"type": "joined", **member.as_json()})


def left_message(member: Member) -> str:
    return _encode({"type": "left", **member.as_json()})


def relayed_message(sender: Member, data: dict[str, object]) -> str:
    """``data`` as its recipients get it, with the sender's member id and identity."""
    return _encode(
        {"type": "message", "from": sender.id, "identity": sender.identity, "data": data}
    )


def error_message(code: str, detail: str) -> str:
    """A problem that does not close the session, such as ``unknown-recipient``."""
    return _encode({"type": "error", "code": code, "detail": detail})
