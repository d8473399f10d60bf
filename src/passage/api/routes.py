"""Every operation the API serves: one row per (method, path), and its handler.

Handlers take a :class:`Call` (who called, path parameters, query, JSON body)
and return a :class:`Reply`; they know nothing of aiohttp. Paths are matched
case-insensitively on the decoded path, as ACS routes ``/networkTraversal``
and the older ``/networktraversal`` alike; signatures are checked on the raw
target before any of this runs (:mod:`passage.api.server`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from passage.api import live
from passage.api.call import Auth, Call, Reply
from passage.api.openapi import openapi_document, template_of
from passage.api.service import MAX_RELAY_TTL
from passage.api.usage import usage_reply
from passage.frontdoor import Paths
from passage.http_errors import HttpError
from passage.hybrid.admin import (
    RIGHT_NAMES,
    HybridAdmin,
    parse_rights,
)
from passage.hybrid.admin_json import authorization_rule_body, hybrid_connection_body
from passage.hybrid.sas import Rights
from passage.identity.errors import ValidationError
from passage.identity.ice_servers import parse_route_type
from passage.identity.ids import IdentityId
from passage.identity.scopes import Scope, parse_scopes, token_minutes

__all__ = [
    "API_PATHS",
    "ROUTES",
    "USER_TOKEN_SCOPES",
    "Route",
    "is_api_path",
    "match_route",
]

IDENTITY_API_VERSIONS = ("2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01")
RELAY_API_VERSIONS = ("2022-03-01-preview",)


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    """A regular expression on the decoded path, with named groups for parameters."""
    operation_id: str
    auth: Auth
    api_versions: tuple[str, ...] | None
    """Accepted ``api-version`` values; None when the route takes none."""
    handler: Handler
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(self.path, re.IGNORECASE))


# --- Identity ----------------------------------------------------------------


async def _create_identity(call: Call) -> Reply:
    scopes_value = call.body.get("createTokenWithScopes")
    # null means no token (older SDKs send it); [] or a non-list is a mistake, not "no token".
    scopes = (
        parse_scopes(scopes_value, target="CreateTokenWithScopes")
        if scopes_value is not None
        else None
    )
    minutes = token_minutes(call.body.get("expiresInMinutes"))
    identity = await call.service.create_identity()
    body: dict[str, object] = {"identity": {"id": identity}}
    if scopes is not None:
        issued = call.service.issue_token(call.signing_key, identity, scopes, minutes)
        body["accessToken"] = {"token": issued.token, "expiresOn": issued.expires_on}
    return Reply(201, body)


async def _issue_access_token(call: Call) -> Reply:
    scopes = parse_scopes(call.body.get("scopes"))
    minutes = token_minutes(call.body.get("expiresInMinutes"))
    identity = await call.service.require_live(call.params["id"])
    issued = call.service.issue_token(call.signing_key, identity, scopes, minutes)
    return Reply(200, {"token": issued.token, "expiresOn": issued.expires_on})


async def _revoke_access_tokens(call: Call) -> Reply:
    await call.service.revoke_tokens(call.params["id"])
    return Reply(204)


async def _delete_identity(call: Call) -> Reply:
    await call.service.delete_identity(call.params["id"])
    return Reply(204)


# --- Network traversal ---------------------------------------------------------


async def _issue_relay_configuration(call: Call) -> Reply:
    route_type = parse_route_type(call.body.get("routeType"))
    ttl = _relay_ttl(call.body.get("ttl"))
    identity = await _relay_identity(call)
    config = await call.service.relay_configuration(
        call.signing_key, identity, route_type, ttl, call.client_ip
    )
    return Reply(200, {"iceServers": config.ice_servers, "expiresOn": config.expires_on})


def _relay_ttl(value: object) -> int:
    """``ttl``: absent/null → 172800; above it → 172800 (ACS); below 0 or not an integer → 400."""
    if value is None:
        return MAX_RELAY_TTL
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"Ttl value {value!r} is invalid. Value must be >= 0.", "Ttl")
    return min(value, MAX_RELAY_TTL)


async def _relay_identity(call: Call) -> IdentityId | None:
    requested = call.body.get("id")
    if requested is not None and not isinstance(requested, str):
        raise ValidationError("Id must be a string.", "Id")
    if call.user is not None:
        # A user asks for its own relays: the credentials bill to the token's identity.
        if requested and requested != call.user.identity:
            raise HttpError(403, "Forbidden", "A user token may only request its own relays.", "Id")
        return await call.service.require_live(call.user.identity)
    return await call.service.require_live(requested) if requested else None


# --- Usage and keys -----------------------------------------------------------


async def _get_usage(call: Call) -> Reply:
    now = datetime.datetime.fromtimestamp(call.service.clock(), datetime.UTC)
    return await usage_reply(call.ledger, call.query, now)


async def _rotate_key(call: Call) -> Reply:
    key = await call.service.rotate_key(call.params["name"])
    return Reply(200, {"name": key.name.value, "key": key.text})


async def _openapi(call: Call) -> Reply:
    return Reply(200, openapi_document(ROUTES))


# --- Hybrid Connections administration ----------------------------------------

AdminHandler = Callable[[Call, HybridAdmin], Awaitable[Reply]]


def _admin(handler: AdminHandler) -> Handler:
    """``handler`` given the call's :class:`HybridAdmin` (whose refusals are HTTP errors)."""

    async def handle(call: Call) -> Reply:
        return await handler(call, call.hybrid_admin)

    return handle


async def _list_connections(call: Call, admin: HybridAdmin) -> Reply:
    connections = await admin.list_connections()
    return Reply(200, {"value": [hybrid_connection_body(c) for c in connections]})


async def _create_connection(call: Call, admin: HybridAdmin) -> Reply:
    requires = call.body.get("requiresClientAuthorization", True)
    if not isinstance(requires, bool):
        raise ValidationError(
            "requiresClientAuthorization must be true or false.", "requiresClientAuthorization"
        )
    connection = await admin.create_connection(
        call.params["name"], requires_client_authorization=requires
    )
    return Reply(201, hybrid_connection_body(connection))


async def _get_connection(call: Call, admin: HybridAdmin) -> Reply:
    return Reply(200, hybrid_connection_body(await admin.get_connection(call.params["name"])))


async def _delete_connection(call: Call, admin: HybridAdmin) -> Reply:
    await admin.delete_connection(call.params["name"])
    return Reply(204)


async def _list_rules(call: Call, admin: HybridAdmin) -> Reply:
    entity = call.query.get("entity")
    rules = await admin.list_rules(entity)
    return Reply(
        200, {"value": [authorization_rule_body(rule, entity, keys=False) for rule in rules]}
    )


async def _put_rule(call: Call, admin: HybridAdmin) -> Reply:
    entity = call.query.get("entity")
    written = await admin.put_rule(
        entity,
        call.params["rule"],
        _rights(call.body.get("rights")),
        primary_key=_optional_text(call.body, "primaryKey"),
        secondary_key=_optional_text(call.body, "secondaryKey"),
    )
    return Reply(
        201 if written.created else 200, authorization_rule_body(written.rule, entity, keys=True)
    )


async def _get_rule(call: Call, admin: HybridAdmin) -> Reply:
    entity = call.query.get("entity")
    rule = await admin.get_rule(entity, call.params["rule"])
    return Reply(200, authorization_rule_body(rule, entity, keys=True))


async def _delete_rule(call: Call, admin: HybridAdmin) -> Reply:
    await admin.delete_rule(call.query.get("entity"), call.params["rule"])
    return Reply(204)


def _rights(value: object) -> Rights:
    """``rights``: a non-empty list of ``Listen``, ``Send`` and ``Manage``, as Azure spells them."""
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(name, str) and name in RIGHT_NAMES for name in value)
    ):
        raise ValidationError("rights must be a non-empty list of Listen, Send, Manage.", "rights")
    return parse_rights(value)


def _optional_text(body: Mapping[str, object], name: str) -> str | None:
    value = body.get(name)
    if name in body and not isinstance(value, str):
        raise ValidationError(f"{name} must be a string.", name)
    return value if isinstance(value, str) else None


_ID = r"(?P<id>[^/]+)"
_HYBRID_CONNECTION = r"/hybridConnections/(?P<name>[\s\S]+)"  # "/" and all: the name decides
_RULE = r"/authorizationRules/(?P<rule>[^/]+)"

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        r"/identities",
        "CommunicationIdentity_Create",
        Auth.HMAC,
        IDENTITY_API_VERSIONS,
        _create_identity,
    ),
    Route("GET", r"/identities", "Identities_List", Auth.HMAC, None, live.list_identities),
    Route(
        "DELETE",
        rf"/identities/{_ID}",
        "CommunicationIdentity_Delete",
        Auth.HMAC,
        IDENTITY_API_VERSIONS,
        _delete_identity,
    ),
    Route(
        "POST",
        rf"/identities/{_ID}/:revokeAccessTokens",
        "CommunicationIdentity_RevokeAccessTokens",
        Auth.HMAC,
        IDENTITY_API_VERSIONS,
        _revoke_access_tokens,
    ),
    Route(
        "POST",
        rf"/identities/{_ID}/:issueAccessToken",
        "CommunicationIdentity_IssueAccessToken",
        Auth.HMAC,
        IDENTITY_API_VERSIONS,
        _issue_access_token,
    ),
    Route(
        "POST",
        r"/networkTraversal/:issueRelayConfiguration",
        "CommunicationNetworkTraversal_IssueRelayConfiguration",
        Auth.HMAC_OR_USER_TOKEN,
        RELAY_API_VERSIONS,
        _issue_relay_configuration,
    ),
    Route("GET", r"/usage", "Usage_Get", Auth.HMAC, None, _get_usage),
    Route(
        "POST",
        r"/keys/(?P<name>[^/]+)/:rotate",
        "AccessKeys_Rotate",
        Auth.HMAC,
        None,
        _rotate_key,
    ),
    Route(
        "GET",
        r"/hybridConnections",
        "HybridConnections_List",
        Auth.HMAC,
        None,
        _admin(_list_connections),
    ),
    Route(
        "PUT",
        _HYBRID_CONNECTION,
        "HybridConnections_Create",
        Auth.HMAC,
        None,
        _admin(_create_connection),
    ),
    Route(
        "GET", _HYBRID_CONNECTION, "HybridConnections_Get", Auth.HMAC, None, _admin(_get_connection)
    ),
    Route(
        "DELETE",
        _HYBRID_CONNECTION,
        "HybridConnections_Delete",
        Auth.HMAC,
        None,
        _admin(_delete_connection),
    ),
    Route(
        "GET",
        r"/authorizationRules",
        "AuthorizationRules_List",
        Auth.HMAC,
        None,
        _admin(_list_rules),
    ),
    Route("PUT", _RULE, "AuthorizationRules_Put", Auth.HMAC, None, _admin(_put_rule)),
    Route("GET", _RULE, "AuthorizationRules_Get", Auth.HMAC, None, _admin(_get_rule)),
    Route("DELETE", _RULE, "AuthorizationRules_Delete", Auth.HMAC, None, _admin(_delete_rule)),
    Route("GET", r"/live/allocations", "Allocations_List", Auth.HMAC, None, live.list_allocations),
    Route(
        "DELETE",
        rf"/live/allocations/{_ID}",
        "Allocations_End",
        Auth.HMAC,
        None,
        live.delete_allocation,
    ),
    Route("GET", r"/live/turn", "TurnCounters_Get", Auth.HMAC, None, live.get_turn),
    Route("GET", r"/live/throughput", "Throughput_Get", Auth.HMAC, None, live.get_throughput),
    Route("GET", r"/live/listeners", "Listeners_List", Auth.HMAC, None, live.get_listeners),
    Route("GET", r"/live/bridges", "Bridges_List", Auth.HMAC, None, live.get_bridges),
    Route("GET", r"/live/rooms", "SignalingRooms_List", Auth.HMAC, None, live.get_rooms),
    Route("GET", r"/live/nodes", "Nodes_List", Auth.HMAC, None, live.get_nodes),
    Route("GET", r"/settings", "Settings_Get", Auth.HMAC, None, live.get_settings),
    Route("GET", r"/openapi\.json", "OpenApi_Get", Auth.NONE, None, _openapi),
)
"""Every operation served, in the order ``/openapi.json`` lists them."""

USER_TOKEN_SCOPES = frozenset({Scope.VOIP, Scope.VOIP_JOIN})
"""Scopes that let a user token request relay configurations for itself."""


def is_api_path(path: str) -> bool:
    """True if some route (whatever its method) serves ``path``: the API's, even for a 405."""
    return any(route.pattern.fullmatch(path) for route in ROUTES)


API_PATHS = Paths(
    names=frozenset(template_of(route.path).split("/")[1].lower() for route in ROUTES),
    matches=is_api_path,
    owner="the Passage API",
)
"""What the API answers at the front door; its first path segments are reserved names:
API routes win over a hybrid connection of the same name."""


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method`` and decoded ``path`` with its parameters; 404 or 405 otherwise."""
    allowed = []
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is None:
            continue
        if route.method == method:
            return route, match.groupdict()
        allowed.append(route.method)
    if allowed:
        raise HttpError(
            405,
            "MethodNotAllowed",
            f"{method} is not allowed on {path}.",
            headers={"Allow": ", ".join(allowed)},  # RFC 9110 §15.5.6
        )
    raise HttpError(404, "NotFound", f"No operation matches {method} {path}.")
