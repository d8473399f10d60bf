"""The control channel's one framing rule: a JSON head, then exactly one binary message.

Every command is one JSON object in one WebSocket text message. A ``request``
or ``response`` whose head says ``"body": true`` is followed by exactly one
binary message, its whole body, with nothing in between; that message may be
split into frames, the last with FIN set (reference §2.3, §2.5). hyco-https
takes whatever message comes next as the body, so a writer must never let
another command in between, and a reader must tell a missing body from a
stray one (hyco-https sends an empty binary message after ``"body": false``).

Both ends use this module. :class:`Outgoing` is one command as it goes on the
wire, its head's ``body`` flag derived from the body it carries, so the two
cannot disagree. :class:`CommandReader` is fed each message (or each
fragment) as it arrives and returns what that completed:

- :class:`Command`: a head, with its body when it announced one;
- :class:`MissingBody`: a head that announced a body, but a text message (or
  the end of the channel) came first;
- :class:`StrayBody`: a binary message no head announced (dropped);
- :class:`Unreadable`: text that is not a command we can act on.

Unknown commands are ignored (checklist §4.5) and produce nothing.
:func:`relay_reader` reads what listeners send the relay (``response``,
``renewToken``), :func:`listener_reader` what the relay sends a listener
(``accept``, ``request``). Sans-IO: no sockets, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from passage.hybrid.control import (
    Accept,
    ControlMessageError,
    RenewToken,
    RequestHead,
    ResponseHead,
    parse_listener_message,
    parse_service_message,
    request_message,
    response_message,
)

__all__ = [
    "Command",
    "CommandReader",
    "Event",
    "MissingBody",
    "Outgoing",
    "StrayBody",
    "Unreadable",
    "listener_reader",
    "relay_reader",
]

Head = TypeVar("Head")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One command as it goes on the wire: :attr:`messages`, sent with nothing in between."""

    head: str
    """The JSON text message."""
    body: bytes = b""
    """The binary message after it; none is sent when empty."""

    @classmethod
    def request(
        cls,
        *,
        address: str,
        request_id: str,
        target: str,
        method: str,
        headers: Mapping[str, str],
        remote: tuple[str, int] | None,
        body: bytes = b"",
    ) -> Outgoing:
        """A full ``request`` (relay → listener), announcing a body exactly when it has one."""
        head = request_message(
            address=address, request_id=request_id, target=target, method=method,
            headers=headers, remote=remote, has_body=bool(body),
        )  # fmt: skip
        return cls(head, body)

    @classmethod
    def response(
        cls, request_id: str, status: int, description: str, headers: Mapping[str, str], body: bytes
    ) -> Outgoing:
        """A ``response`` (listener → relay), announcing a body exactly when it has one."""
        return cls(response_message(request_id, status, description, headers, bool(body)), body)

    @property
    def messages(self) -> tuple[str | bytes, ...]:
        """The text message, then the binary one when there is a body."""
        return (self.head, self.body) if self.body else (self.head,)

    @property
    def size(self) -> int:
        """Characters of the head plus bytes of the body: what the 64 kB inline limit counts."""
        return len(self.head) + len(self.body)


@dataclass(frozen=True, slots=True)
class Command(Generic[Head]):
    """A complete command: its head, and its body when the head announced one."""

    head: Head
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class MissingBody(Generic[Head]):
    """``head`` announced a body, but a text message or the end of the channel came first."""

    head: Head


@dataclass(frozen=True, slots=True)
class StrayBody:
    """A binary message no head announced; dropped (hyco-https's empty one after ``body:false``)."""

    size: int


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A text message that is not JSON, or a command missing what it needs."""

    text: str
    error: ControlMessageError


Event = Command[Head] | MissingBody[Head] | StrayBody | Unreadable


class CommandReader(Generic[Head]):
    """Reads one side's commands off a control channel (or a rendezvous socket).

    ``parse`` reads a head from a text message (None for a command to ignore;
    :class:`ControlMessageError` for one that is not readable);
    ``announces_body`` says whether a head is followed by a binary message. A
    message, or a fragmented one so far, longer than ``max_message`` (None: no
    bound) is dropped and raises :class:`ControlMessageError`; the caller
    closes the channel.
    """

    def __init__(
        self,
        parse: Callable[[str], Head | None],
        announces_body: Callable[[Head], bool],
        *,
        max_message: int | None,
    ) -> None:
        self._parse = parse
        self._announces_body = announces_body
        self.max_message = max_message
        self._awaiting: Head | None = None
        self._text: list[str] = []
        self._binary = bytearray()
        self._partial: type[str] | type[bytes] | None = None
        self._partial_size = 0

    @property
    def awaiting(self) -> Head | None:
        """The head whose body is the next binary message, if any."""
        return self._awaiting

    def receive_text(self, text: str, *, final: bool = True) -> list[Event[Head]]:
        """A text message, or one fragment of it (``final`` on the last)."""
        self._collect(str, len(text))
        self._text.append(text)
        if not final:
            return []
        whole, self._text, self._partial = "".join(self._text), [], None
        events: list[Event[Head]] = []
        if self._awaiting is not None:
            events.append(MissingBody(self._awaiting))
            self._awaiting = None
        try:
            head = self._parse(whole)
        except ControlMessageError as error:
            return [*events, Unreadable(whole, error)]
        if head is None:
            return events
        if self._announces_body(head):
            self._awaiting = head
            return events
        return [*events, Command(head)]

    def receive_binary(self, data: bytes, *, final: bool = True) -> list[Event[Head]]:
        """A binary message, or one fragment of it (``final`` on the last)."""
        self._collect(bytes, len(data))
        self._binary += data
        if not final:
            return []
        body, self._binary, self._partial = bytes(self._binary), bytearray(), None
        head, self._awaiting = self._awaiting, None
        if head is None:
            return [StrayBody(len(body))]
        return [Command(head, body)]

    def close(self) -> list[Event[Head]]:
        """The channel ended: a head still waiting for its body never gets it."""
        head, self._awaiting = self._awaiting, None
        self._text, self._binary, self._partial = [], bytearray(), None
        return [MissingBody(head)] if head is not None else []

    def _collect(self, kind: type[str] | type[bytes], size: int) -> None:
        """Count a fragment of a ``kind`` message; drop the message if it breaks a rule."""
        if self._partial is not None and self._partial is not kind:
            self._drop_partial()
            raise ControlMessageError("a message began before the last one ended")
        self._partial_size = (self._partial_size if self._partial is not None else 0) + size
        self._partial = kind
        if self.max_message is not None and self._partial_size > self.max_message:
            self._drop_partial()
            raise ControlMessageError(f"a message longer than {self.max_message} bytes")

    def _drop_partial(self) -> None:
        self._text, self._binary, self._partial, self._partial_size = [], bytearray(), None, 0


def relay_reader(max_message: int | None) -> CommandReader[ResponseHead | RenewToken]:
    """What the relay reads from a listener: ``response`` (and its body), ``renewToken``."""
    return CommandReader(parse_listener_message, _response_has_body, max_message=max_message)


def listener_reader(max_message: int | None) -> CommandReader[Accept | RequestHead]:
    """What a listener reads from the relay: ``accept``, ``request`` (and its body)."""
    return CommandReader(parse_service_message, _request_has_body, max_message=max_message)


def _response_has_body(head: ResponseHead | RenewToken) -> bool:
    return isinstance(head, ResponseHead) and head.has_body


def _request_has_body(head: Accept | RequestHead) -> bool:
    return isinstance(head, RequestHead) and head.method is not None and head.has_body
