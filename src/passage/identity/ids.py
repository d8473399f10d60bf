"""Communication identity ids: ``8:acs:<resource id>_<identity guid>``.

ACS ids carry the resource's GUID, then the identity's own GUID-shaped suffix
(``8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081``).
The SDKs classify ``8:acs:`` ids as ``CommunicationUserIdentifier``; any other
prefix would come back to the app as an ``UnknownIdentifier``.
"""

from __future__ import annotations

import re
import uuid
from typing import NewType

__all__ = ["ID_PREFIX", "IdentityId", "new_identity_id", "parse_identity_id", "short_form"]

IdentityId = NewType("IdentityId", str)
"""A well-formed identity id of this resource."""

ID_PREFIX = "8:acs:"

_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SHORT = re.compile(rf"({_GUID})_({_GUID})")


def new_identity_id(resource_id: str, suffix: uuid.UUID) -> IdentityId:
    """The id of a new identity of ``resource_id``; the caller supplies the random part."""
    return IdentityId(f"{ID_PREFIX}{resource_id}_{suffix}")


def parse_identity_id(text: str, resource_id: str) -> IdentityId | None:
    """``text`` as an id of this resource, or None when it cannot name one of ours.

    GUIDs are compared in lower case, as they are minted; an id of another
    resource is None, which the API answers with 404 like any unknown id.
    """
    if not text.startswith(ID_PREFIX):
        return None
    match = _SHORT.fullmatch(text[len(ID_PREFIX) :].lower())
    if match is None or match.group(1) != resource_id:
        return None
    return IdentityId(ID_PREFIX + match.group(0))


def short_form(identity: IdentityId) -> str:
    """The id without ``8:acs:``, as relay usernames carry it."""
    return identity[len(ID_PREFIX) :]
