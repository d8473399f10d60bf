"""Keeps this node's keys and revocations in step with the shared store.

The API updates :class:`IdentityState` itself when it revokes, deletes or
rotates, so changes made here hold at once. Changes made elsewhere (another
node on the same PostgreSQL, or ``passage keys rotate --data-dir`` beside a
running server) arrive with the next poll, every :data:`POLL_INTERVAL` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from passage.api.service import keys_from_texts
from passage.identity.ids import IdentityId
from passage.identity.revocations import RETENTION
from passage.identity.state import IdentityState
from passage.store.identities import IdentityStore

__all__ = ["POLL_INTERVAL", "IdentitySync"]

POLL_INTERVAL = 1.0
"""Seconds between polls: the most a change made on another node takes to hold here."""

OVERLAP = 30.0
"""Seconds each poll looks back past the last one, for writers whose clocks lag ours."""

PAGE = 10_000
"""Changes read per query."""

logger = logging.getLogger("passage.api")


class IdentitySync:
    def __init__(
        self, store: IdentityStore, state: IdentityState, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.state = state
        self.clock = clock
        self._since = clock() - RETENTION

    async def poll(self) -> None:
        """Apply key rotations and revocations stored since the last poll."""
        now = self.clock()
        keys = keys_from_texts(await self.store.keys())
        if keys != self.state.keys:
            self.state.keys = keys
            logger.info("access keys changed in the store: now using the new ones")
        since, after_id = self._since, None
        while True:
            changes = await self.store.changed_since(since, after_id, limit=PAGE)
            for record in changes:
                identity = IdentityId(record.id)
                if record.deleted_at is not None:
                    self.state.revocations.delete(identity, record.deleted_at)
                elif record.revoked_before_ms is not None:
                    revocations = self.state.revocations
                    revocations.revoke(identity, record.revoked_before_ms, record.changed_at)
            if len(changes) < PAGE:
                break
            since, after_id = changes[-1].changed_at, changes[-1].id
        self._since = max(self._since, now - OVERLAP)
        self.state.revocations.prune(now)
