"""Shared values for the identity core tests: one resource, its keys, its identities."""

from __future__ import annotations

import uuid

from passage.identity.ids import IdentityId, new_identity_id
from passage.identity.keys import AccessKey, AccessKeys, KeyName
from passage.identity.state import IdentityState

RESOURCE_ID = "2dee53b4-368b-45b4-ab52-8493fb117652"
"""A real ACS resource GUID (reference §5)."""

ALICE = new_identity_id(RESOURCE_ID, uuid.UUID("00000005-14a2-493b-8a72-5a3a0d000081"))
BOB = new_identity_id(RESOURCE_ID, uuid.UUID("00000021-c6b7-24db-7137-8e3a0d0064e1"))

PRIMARY = AccessKey(KeyName.PRIMARY, bytes(range(32)))
SECONDARY = AccessKey(KeyName.SECONDARY, bytes(range(32, 64)))
ROTATED = AccessKey(KeyName.PRIMARY, bytes(range(64, 96)))
"""A new primary key, as after rotating the primary."""

KEYS = AccessKeys(PRIMARY, SECONDARY)


def identity(n: int) -> IdentityId:
    """A distinct identity of :data:`RESOURCE_ID` for each ``n``."""
    return new_identity_id(RESOURCE_ID, uuid.UUID(int=n))


def new_state() -> IdentityState:
    """A fresh in-memory state with :data:`KEYS` and no revocations."""
    return IdentityState(resource_id=RESOURCE_ID, region="westeurope", keys=KEYS)
