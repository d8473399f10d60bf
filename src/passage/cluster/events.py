"""Changes one node tells every other to apply now, rather than at its next store poll.

Published on the shared channel after the store committed; pub/sub may lose one, so the
1 s poll of the store stays the backstop. An event names the kind of change and its
subject (an identity, a key name, a hybrid connection path); the receiver re-reads the
store, the source of truth, rather than trusting the message.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

__all__ = ["ClusterEvent", "EventKind", "decode_event", "encode_event"]


class EventKind(enum.StrEnum):
    REVOKED = "revoked"
    """An identity's tokens and relay credentials were revoked."""
    DELETED = "deleted"
    """An identity was deleted."""
    KEYS_ROTATED = "keys-rotated"
    """An access key was regenerated."""
    HC_CHANGED = "hc-changed"
    """A hybrid connection or an authorization rule was created, changed or deleted."""


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    kind: EventKind
    origin: str
    """The node that made the change (it applied it already, and skips its own event)."""
    subject: str = ""


def encode_event(event: ClusterEvent) -> str:
    return json.dumps(
        {"kind": event.kind.value, "origin": event.origin, "subject": event.subject},
        separators=(",", ":"),
    )


def decode_event(text: str | bytes) -> ClusterEvent | None:
    """The event in ``text``, or None for anything else (never an exception)."""
    try:
        fields = json.loads(text)
        kind = EventKind(fields["kind"])
        origin, subject = fields["origin"], fields.get("subject", "")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        return None
    if not isinstance(origin, str) or not isinstance(subject, str):
        return None
    return ClusterEvent(kind, origin, subject)
