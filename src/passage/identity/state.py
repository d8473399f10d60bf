"""What the API and the TURN server share about identities, in memory.

One :class:`IdentityState` per process. The API updates it when it revokes,
deletes or rotates, so the change holds at once on this node; a periodic sync
from the store (:mod:`passage.api.sync`) brings in what other nodes, or the
CLI on the data directory, changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from passage.identity.keys import AccessKeys
from passage.identity.revocations import RevocationList

__all__ = ["IdentityState"]


@dataclass(slots=True)
class IdentityState:
    resource_id: str
    """This deployment's GUID: the prefix of every identity id."""

    region: str
    """Region this node serves, stamped in tokens (``rgn``)."""

    keys: AccessKeys
    """The current access keys; replaced whole when one rotates."""

    revocations: RevocationList = field(default_factory=RevocationList)
