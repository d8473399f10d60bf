"""What each API call does, over the store and the shared in-memory state.

Every method takes the current time from the injected ``clock`` (unix
seconds), raises an :class:`~passage.identity.errors.IdentityError` subclass
for anything the caller should be told, and updates :class:`IdentityState` as
soon as the store has committed, so a revocation holds on this node at once.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from passage.cluster.events import EventKind
from passage.identity.errors import NotFoundError, ValidationError
from passage.identity.ice_servers import ClusterRelay, RelayTopology, RouteType, ice_servers
from passage.identity.ids import IdentityId, new_identity_id, parse_identity_id
from passage.identity.keys import KEY_BYTES, AccessKey, AccessKeys, KeyName, decode_key
from passage.identity.relay_credentials import mint_relay_credential
from passage.identity.scopes import Scope
from passage.identity.state import IdentityState
from passage.identity.tokens import mint_token
from passage.store.identities import IdentityStore

__all__ = [
    "MAX_RELAY_TTL",
    "IdentityService",
    "IssuedToken",
    "RelayConfiguration",
    "acs_time",
    "load_state",
    "new_key_text",
]

MAX_RELAY_TTL = 172_800
"""Longest and default relay credential lifetime, in seconds (48 h, as ACS)."""

logger = logging.getLogger("passage.api")


def acs_time(unix: float) -> str:
    """An instant as ACS writes ``expiresOn``: ``2022-11-16T09:48:02.723344+00:00``."""
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).isoformat(timespec="microseconds")


def new_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


async def load_state(store: IdentityStore, region: str, now: float) -> IdentityState:
    """This deployment's resource id and keys, created in the store on its first start."""
    proposed = {name.value: new_key_text() for name in KeyName}
    resource_id, stored = await store.initialize(str(uuid.uuid4()), proposed, now)
    return IdentityState(resource_id, region, keys_from_texts(stored))


def keys_from_texts(texts: dict[str, str]) -> AccessKeys:
    return AccessKeys(
        AccessKey(KeyName.PRIMARY, decode_key(texts[KeyName.PRIMARY])),
        AccessKey(KeyName.SECONDARY, decode_key(texts[KeyName.SECONDARY])),
    )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_on: str


@dataclass(frozen=True, slots=True)
class RelayConfiguration:
    expires_on: str
    ice_servers: list[dict[str, object]]


class IdentityService:
    def __init__(
        self,
        store: IdentityStore,
        state: IdentityState,
        topology: RelayTopology,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.state = state
        self.topology = topology
        self.clock = clock
        self.cluster_relays: Callable[[], tuple[ClusterRelay, ...]] | None = None
        """Cluster mode: the live, non-draining nodes to hand out, least loaded first."""
        self.committed: Callable[[EventKind, str], Awaitable[None]] | None = None
        """Awaited after a revocation, deletion or key rotation committed, to tell other
        nodes at once (cluster mode); must not raise."""

    # --- identities -----------------------------------------------------------

    async def create_identity(self) -> IdentityId:
        identity = new_identity_id(self.state.resource_id, uuid.uuid4())
        await self.store.create(identity, self.clock())
        logger.info("created identity %s", identity)
        return identity

    async def require_live(self, text: str) -> IdentityId:
        """The identity ``text`` names, or 404 if it is malformed, unknown or deleted."""
        identity = parse_identity_id(text, self.state.resource_id)
        record = await self.store.get(identity) if identity is not None else None
        if identity is None or record is None or record.deleted:
            raise NotFoundError(f"Identity {text!r} was not found.", "id")
        return identity

    def issue_token(
        self, key: AccessKey, identity: IdentityId, scopes: tuple[Scope, ...], minutes: int
    ) -> IssuedToken:
        """A user access token for a live identity (the caller checked it is live)."""
        now_ms = int(self.clock() * 1000)
        issued_ms = self.state.revocations.issue_time(identity, now_ms)
        token, expires = mint_token(
            key,
            identity,
            scopes,
            issued_ms=issued_ms,
            lifetime=minutes * 60,
            resource_id=self.state.resource_id,
            region=self.state.region,
        )
        return IssuedToken(token, acs_time(expires))

    async def revoke_tokens(self, text: str) -> None:
        """Revoke every token and relay credential issued so far; 404 if not live."""
        identity = await self.require_live(text)
        now = self.clock()
        watermark = int(now * 1000) + 1  # also covers what was minted this millisecond
        if not await self.store.revoke(identity, watermark, now):
            raise NotFoundError(f"Identity {text!r} was not found.", "id")
        self.state.revocations.revoke(identity, watermark, now)
        logger.info("revoked the tokens of %s", identity)
        await self._tell(EventKind.REVOKED, identity)

    async def delete_identity(self, text: str) -> None:
        identity = await self.require_live(text)
        now = self.clock()
        if not await self.store.delete(identity, now):
            raise NotFoundError(f"Identity {text!r} was not found.", "id")
        self.state.revocations.delete(identity, now)
        logger.info("deleted identity %s", identity)
        await self._tell(EventKind.DELETED, identity)

    # --- relay configuration --------------------------------------------------

    async def relay_configuration(
        self,
        key: AccessKey,
        identity: IdentityId | None,
        route_type: RouteType | None,
        ttl: int,
        client_ip: str | None,
    ) -> RelayConfiguration:
        """ICE servers with one credential pair valid ``ttl`` seconds for ``identity``."""
        now = self.clock()
        now_ms = int(now * 1000)
        issued_ms = (
            self.state.revocations.issue_time(identity, now_ms) if identity is not None else now_ms
        )
        expires = int(now) + ttl
        username, credential = mint_relay_credential(
            key, identity, issued_ms=issued_ms, expires=expires
        )
        servers: list[dict[str, object]] = [
            {
                "routeType": server.route_type.value,
                "urls": list(server.urls),
                "username": username,
                "credential": credential,
            }
            for server in ice_servers(self._topology(), route_type, client_ip)
        ]
        return RelayConfiguration(acs_time(expires), servers)

    def _topology(self) -> RelayTopology:
        if self.cluster_relays is None:
            return self.topology
        return dataclasses.replace(self.topology, cluster=self.cluster_relays())

    # --- keys -----------------------------------------------------------------

    async def rotate_key(self, name: str) -> AccessKey:
        """Replace key ``name`` with a new random one; what the old one minted stops working."""
        try:
            key_name = KeyName(name)
        except ValueError:
            raise ValidationError(f"Key {name!r} is not primary or secondary.", "name") from None
        text = new_key_text()
        await self.store.set_key(key_name.value, text, self.clock())
        self.state.keys = keys_from_texts(await self.store.keys())
        logger.info("rotated the %s access key", key_name.value)
        await self._tell(EventKind.KEYS_ROTATED, key_name.value)
        return self.state.keys.named(key_name)

    async def _tell(self, kind: EventKind, subject: str) -> None:
        if self.committed is not None:
            await self.committed(kind, subject)
