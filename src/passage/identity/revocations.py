"""Per-identity revocation watermarks: what was issued before one is no longer valid.

``revoke_tokens`` revokes every token and relay credential an identity holds;
``delete_user`` does the same for good. Both are a watermark in milliseconds:
a credential whose issue time is below it is refused. Minting after a
revocation stamps at least the watermark (:meth:`RevocationList.issue_time`),
so a token issued in the same millisecond as the revocation still works.

Entries older than the longest credential lifetime (:data:`RETENTION`) can
revoke nothing any more and are pruned, which bounds the list's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from passage.identity.ids import IdentityId

__all__ = ["DELETED", "RETENTION", "RevocationList"]

RETENTION = 172_800 + 3_600
"""Seconds a watermark is kept: the longest relay credential (48 h) plus slack for clocks."""

DELETED = 2**62
"""The watermark of a deleted identity: above every issue time."""


@dataclass(slots=True)
class RevocationList:
    """Watermarks (unix milliseconds) by identity, and when each was set."""

    _watermarks: dict[IdentityId, tuple[int, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._watermarks)

    def revoke(self, identity: IdentityId, watermark_ms: int, now: float) -> None:
        """Refuse whatever ``identity`` was issued before ``watermark_ms``; never lowers one."""
        current = self._watermarks.get(identity)
        if current is None or current[0] < watermark_ms:
            self._watermarks[identity] = (watermark_ms, now)

    def delete(self, identity: IdentityId, now: float) -> None:
        """Refuse everything ``identity`` was ever issued."""
        self._watermarks[identity] = (DELETED, now)

    def is_revoked(self, identity: IdentityId, issued_ms: int) -> bool:
        found = self._watermarks.get(identity)
        return found is not None and issued_ms < found[0]

    def is_deleted(self, identity: IdentityId) -> bool:
        found = self._watermarks.get(identity)
        return found is not None and found[0] == DELETED

    def issue_time(self, identity: IdentityId, now_ms: int) -> int:
        """The issue time to stamp on a new credential for ``identity`` minted at ``now_ms``."""
        found = self._watermarks.get(identity)
        return max(now_ms, found[0]) if found is not None and found[0] != DELETED else now_ms

    def prune(self, now: float) -> int:
        """Forget watermarks set more than :data:`RETENTION` seconds before ``now``."""
        stale = [key for key, (_, at) in self._watermarks.items() if at < now - RETENTION]
        for key in stale:
            del self._watermarks[key]
        return len(stale)
