"""The signaling rooms: members, the room size limit, message routing and rate limits.

Sans-IO: the adapter tells :class:`Rooms` that a member joined, sent a text
frame or left, with ``now``, and gets back :class:`Delivery` items (a text
frame for one member) to send. A protocol violation raises
:class:`~passage.signal.codes.SignalError` with the close code for the
sender, and the adapter then calls :meth:`Rooms.leave` as for any departure.

Everything a client can make the server hold is bounded by
:class:`SignalLimits`: members per room, rooms, sessions per identity, message
size and rate; the adapter bounds what it queues for a member that does not
read (:attr:`SignalLimits.queued_bytes`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from passage.identity.ids import IdentityId
from passage.signal.codes import CloseCode, SignalError
from passage.signal.messages import (
    Member,
    MemberId,
    RoomName,
    error_message,
    joined_message,
    left_message,
    parse_client_message,
    relayed_message,
    welcome_message,
)

__all__ = ["Delivery", "Rooms", "SignalLimits"]


@dataclass(frozen=True, slots=True)
class SignalLimits:
    room_size: int = 2
    """Members per room; the next one to join is refused with ``ROOM_FULL``."""
    max_rooms: int = 10_000
    """Rooms on this server; a join that would open one more is refused with ``AT_CAPACITY``."""
    sessions_per_identity: int = 16
    """Sessions one identity may hold at once, across rooms (``AT_CAPACITY``)."""
    message_bytes: int = 16 * 1024
    """Largest text frame a client may send, in UTF-8 bytes (``TOO_BIG``)."""
    messages_per_second: float = 20.0
    """Sustained rate of frames per member (``RATE_LIMITED`` beyond the burst)."""
    message_burst: int = 50
    """Frames a member may send at once before the rate applies."""
    queued_bytes: int = 256 * 1024
    """Bytes the adapter may queue for a member that does not read (``SLOW_READER``)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Send ``text`` to member ``to``."""

    to: MemberId
    text: str


@dataclass(slots=True)
class _Bucket:
    """A token bucket: ``tokens`` frames may be sent now; refills at the member's rate."""

    tokens: float
    updated: float

    def take(self, now: float, rate: float, burst: int) -> bool:
        self.tokens = min(float(burst), self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(slots=True)
class _Session:
    member: Member
    room: RoomName
    bucket: _Bucket


@dataclass(slots=True)
class Rooms:
    """Every room on this server and who is in it."""

    limits: SignalLimits = field(default_factory=SignalLimits)
    _rooms: dict[RoomName, list[MemberId]] = field(default_factory=dict)
    _sessions: dict[MemberId, _Session] = field(default_factory=dict)
    _per_identity: Counter[IdentityId] = field(default_factory=Counter)

    def __len__(self) -> int:
        """Rooms with at least one member."""
        return len(self._rooms)

    def sizes(self) -> dict[RoomName, int]:
        """Each room with at least one member, and how many it has."""
        return {room: len(members) for room, members in self._rooms.items()}

    def room_of(self, member_id: MemberId) -> RoomName | None:
        """The room the member is in, if any."""
        session = self._sessions.get(member_id)
        return session.room if session is not None else None

    def members_of(self, room: RoomName) -> list[Member]:
        """The room's members in the order they joined."""
        return [self._sessions[member].member for member in self._rooms.get(room, [])]

    def join(self, room: RoomName, member: Member, now: float) -> list[Delivery]:
        """Add ``member``: ``welcome`` for it, ``joined`` for the others.

        Raises ``ROOM_FULL`` or ``AT_CAPACITY``; ``member.id`` must be new.
        """
        assert member.id not in self._sessions, "member ids are drawn fresh"
        present = self._rooms.get(room)
        if present is not None and len(present) >= self.limits.room_size:
            raise SignalError(CloseCode.ROOM_FULL, f"room is full ({self.limits.room_size})")
        if present is None and len(self._rooms) >= self.limits.max_rooms:
            raise SignalError(CloseCode.AT_CAPACITY, "too many rooms on this server")
        if self._per_identity[member.identity] >= self.limits.sessions_per_identity:
            raise SignalError(CloseCode.AT_CAPACITY, "too many sessions for this identity")
        others = self.members_of(room)
        self._rooms.setdefault(room, []).append(member.id)
        bucket = _Bucket(float(self.limits.message_burst), now)
        self._sessions[member.id] = _Session(member, room, bucket)
        self._per_identity[member.identity] += 1
        welcome = welcome_message(
            member, room, others, self.limits.room_size, self.limits.message_bytes
        )
        joined = joined_message(member)
        return [Delivery(member.id, welcome), *(Delivery(other.id, joined) for other in others)]

    def leave(self, member_id: MemberId) -> list[Delivery]:
        """Remove the member (if present): ``left`` for the others; an empty room goes."""
        session = self._sessions.pop(member_id, None)
        if session is None:
            return []
        identity = session.member.identity
        self._per_identity[identity] -= 1
        if self._per_identity[identity] <= 0:
            del self._per_identity[identity]
        present = self._rooms[session.room]
        present.remove(member_id)
        if not present:
            del self._rooms[session.room]
        left = left_message(session.member)
        return [Delivery(other, left) for other in present]

    def receive(self, member_id: MemberId, text: str, now: float) -> list[Delivery]:
        """Route one text frame from a member; raises ``RATE_LIMITED``/``TOO_BIG``/``MALFORMED``.

        A frame for a member who is not (or no longer) in the room is answered
        with an ``unknown-recipient`` error and loses nothing else.
        """
        session = self._sessions[member_id]
        limits = self.limits
        if not session.bucket.take(now, limits.messages_per_second, limits.message_burst):
            raise SignalError(
                CloseCode.RATE_LIMITED, f"more than {limits.messages_per_second:g} messages/s"
            )
        send = parse_client_message(text, limits.message_bytes)
        others = [other for other in self._rooms[session.room] if other != member_id]
        if send.to is not None:
            if send.to not in others:
                return [Delivery(member_id, error_message("unknown-recipient", send.to[:64]))]
            others = [send.to]
        relayed = relayed_message(session.member, send.data)
        return [Delivery(other, relayed) for other in others]
