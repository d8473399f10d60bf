"""``/openapi.json``: an OpenAPI 3.1 description of exactly the routes served.

Paths and methods come from :data:`passage.api.routes.ROUTES`; what each
operation takes and returns is described here, by operation id. A test checks
that the two agree, and schemathesis checks the server against the document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from passage import __version__
from passage.hybrid.admin import KEY_PATTERN, NAME_PATTERN, RIGHT_NAMES, RULE_NAME_PATTERN
from passage.identity.scopes import MAX_TOKEN_MINUTES, MIN_TOKEN_MINUTES, Scope

if TYPE_CHECKING:
    from passage.api.routes import Route

__all__ = ["OPERATIONS", "openapi_document", "template_of"]

_ERROR = {"$ref": "#/components/schemas/CommunicationErrorResponse"}
_SCOPES = {"type": "array", "minItems": 1, "items": {"enum": [s.value for s in Scope]}}
_MINUTES = {"type": "integer", "minimum": MIN_TOKEN_MINUTES, "maximum": MAX_TOKEN_MINUTES}
_TOKEN = {
    "type": "object",
    "required": ["token", "expiresOn"],
    "properties": {"token": {"type": "string"}, "expiresOn": {"type": "string"}},
}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

_HC_NAME = {"type": "string", "minLength": 1, "maxLength": 260, "pattern": NAME_PATTERN}
_HC_NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": _HC_NAME}
_RULE_PARAM = {
    "name": "rule",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": RULE_NAME_PATTERN},
}
_ENTITY_PARAM = {
    "name": "entity",
    "in": "query",
    "required": False,
    "description": "The hybrid connection whose rules these are; the namespace's when absent.",
    "schema": _HC_NAME,
}
_HYBRID_CONNECTION = {
    "type": "object",
    "required": ["name", "path", "requiresClientAuthorization"],
    "properties": {
        "name": {"type": "string", "description": "As created."},
        "path": {"type": "string", "description": "The canonical (lower-case) name."},
        "requiresClientAuthorization": {"type": "boolean"},
    },
}
_RIGHTS = {"type": "array", "minItems": 1, "items": {"enum": list(RIGHT_NAMES)}}
_KEY = {"type": "string", "pattern": KEY_PATTERN}
_RULE_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "entity": {"type": ["string", "null"], "description": "null: a namespace rule."},
    "rights": _RIGHTS,
}
_RULE = {"type": "object", "required": ["name", "entity", "rights"], "properties": _RULE_PROPERTIES}
_RULE_WITH_KEYS = {
    "type": "object",
    "required": ["name", "entity", "rights", "primaryKey", "secondaryKey"],
    "properties": {**_RULE_PROPERTIES, "primaryKey": _KEY, "secondaryKey": _KEY},
}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "array", "items": item}},
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"description": "error", **_json(_ERROR)} for status in statuses}


def _live_list(summary: str, what: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {"200": {"description": what}, **_errors(401, 503)},
    }


OPERATIONS: dict[str, dict[str, Any]] = {
    "Identities_List": {
        "summary": "Identities not deleted, newest first; search by part of the id.",
        "parameters": [
            {
                "name": "search",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
            },
            {
                "name": "top",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
        ],
        "responses": {"200": {"description": "identities"}, **_errors(400, 401)},
    },
    "Allocations_List": _live_list(
        "Every TURN allocation on this node: user, transport, addresses, peers, bytes, age.",
        "allocations",
    ),
    "Allocations_End": {
        "summary": "End a TURN allocation now; its client's next request is refused (437).",
        "parameters": [_ID_PARAM],
        "responses": {"204": {"description": "ended"}, **_errors(401, 404, 503)},
    },
    "TurnCounters_Get": _live_list(
        "Allocations by transport, starts and ends, refusals and drops by reason.", "counters"
    ),
    "Throughput_Get": _live_list(
        "Bytes relayed in each 10-second step of the last hour.", "throughput"
    ),
    "Listeners_List": _live_list(
        "Hybrid Connections listeners connected to this node.", "listeners"
    ),
    "Bridges_List": _live_list(
        "WebSocket senders paired with a listener through this node.", "bridges"
    ),
    "SignalingRooms_List": _live_list("Signaling rooms with members, busiest first.", "rooms"),
    "Nodes_List": _live_list("The cluster's live nodes (--redis-url); empty alone.", "nodes"),
    "Settings_Get": _live_list(
        "Every option as the server runs with it; secrets masked.", "settings"
    ),
    "CommunicationIdentity_Create": {
        "summary": "Create an identity, optionally with an access token.",
        "requestBody": {
            "required": False,
            **_json(
                {
                    "type": "object",
                    "properties": {
                        "createTokenWithScopes": {**_SCOPES, "type": ["array", "null"]},
                        "expiresInMinutes": {**_MINUTES, "type": ["integer", "null"]},
                    },
                }
            ),
        },
        "responses": {"201": {"description": "created"}, **_errors(400, 401)},
    },
    "CommunicationIdentity_Delete": {
        "summary": "Delete an identity and revoke everything issued to it.",
        "parameters": [_ID_PARAM],
        "responses": {"204": {"description": "deleted"}, **_errors(401, 404)},
    },
    "CommunicationIdentity_RevokeAccessTokens": {
        "summary": "Revoke every token and relay credential issued to an identity so far.",
        "parameters": [_ID_PARAM],
        "responses": {"204": {"description": "revoked"}, **_errors(401, 404)},
    },
    "CommunicationIdentity_IssueAccessToken": {
        "summary": "Issue a user access token.",
        "parameters": [_ID_PARAM],
        "requestBody": {
            "required": True,
            **_json(
                {
                    "type": "object",
                    "required": ["scopes"],
                    "properties": {
                        "scopes": _SCOPES,
                        "expiresInMinutes": {**_MINUTES, "type": ["integer", "null"]},
                    },
                }
            ),
        },
        "responses": {"200": {"description": "issued", **_json(_TOKEN)}, **_errors(400, 401, 404)},
    },
    "CommunicationNetworkTraversal_IssueRelayConfiguration": {
        "summary": "ICE servers on this deployment's relays, with ephemeral credentials.",
        "requestBody": {
            "required": False,
            **_json(
                {
                    "type": "object",
                    # null is the same as absent, as the SDKs may send either.
                    "properties": {
                        "id": {"type": ["string", "null"]},
                        "routeType": {"enum": ["any", "nearest", None]},
                        "ttl": {"type": ["integer", "null"], "minimum": 0},
                    },
                }
            ),
        },
        "responses": {"200": {"description": "relay configuration"}, **_errors(400, 401, 403, 404)},
    },
    "Usage_Get": {
        "summary": "TURN bytes, packets and allocation-seconds per identity, or Hybrid "
        "Connections bytes per hybrid connection and rule, per hour or day.",
        "parameters": [
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in ("identity", "hybridConnection", "rule", "from", "to")
        ]
        + [
            {
                "name": "kind",
                "in": "query",
                "required": False,
                "description": "turn (default): per identity; hybridConnection: per hybrid "
                "connection and authorization rule.",
                "schema": {"enum": ["turn", "hybridConnection"]},
            },
            {
                "name": "granularity",
                "in": "query",
                "required": False,
                "schema": {"enum": ["hour", "day"]},
            },
            {
                "name": "format",
                "in": "query",
                "required": False,
                "description": "json (default), or csv: one row per bucket, a header first.",
                "schema": {"enum": ["json", "csv"]},
            },
        ],
        "responses": {"200": {"description": "usage buckets"}, **_errors(400, 401)},
    },
    "AccessKeys_Rotate": {
        "summary": "Replace an access key; what it minted stops working at once.",
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"enum": ["primary", "secondary"]},
            }
        ],
        "responses": {"200": {"description": "the new key"}, **_errors(400, 401)},
    },
    "HybridConnections_List": {
        "summary": "Every hybrid connection, by canonical name.",
        "responses": {
            "200": {"description": "hybrid connections", **_json(_list_of(_HYBRID_CONNECTION))},
            **_errors(401),
        },
    },
    "HybridConnections_Create": {
        "summary": "Create a hybrid connection; listeners and senders reach it at /$hc/{name}.",
        "parameters": [_HC_NAME_PARAM],
        "requestBody": {
            "required": False,
            **_json(
                {
                    "type": "object",
                    "properties": {"requiresClientAuthorization": {"type": "boolean"}},
                }
            ),
        },
        "responses": {
            "201": {"description": "created", **_json(_HYBRID_CONNECTION)},
            # 409: it exists, or its first segment is one of this API's paths.
            **_errors(400, 401, 409),
        },
    },
    "HybridConnections_Get": {
        "summary": "One hybrid connection.",
        "parameters": [_HC_NAME_PARAM],
        "responses": {
            "200": {"description": "the hybrid connection", **_json(_HYBRID_CONNECTION)},
            **_errors(400, 401, 404),
        },
    },
    "HybridConnections_Delete": {
        "summary": "Delete a hybrid connection and its authorization rules.",
        "parameters": [_HC_NAME_PARAM],
        "responses": {"204": {"description": "deleted"}, **_errors(400, 401, 404)},
    },
    "AuthorizationRules_List": {
        "summary": "The authorization rules of the namespace or of one hybrid connection.",
        "parameters": [_ENTITY_PARAM],
        "responses": {
            "200": {"description": "rules, without keys", **_json(_list_of(_RULE))},
            **_errors(400, 401, 404),
        },
    },
    "AuthorizationRules_Put": {
        "summary": "Create or replace an authorization rule; keys not given are kept or generated.",
        "parameters": [_RULE_PARAM, _ENTITY_PARAM],
        "requestBody": {
            "required": True,
            **_json(
                {
                    "type": "object",
                    "required": ["rights"],
                    "properties": {"rights": _RIGHTS, "primaryKey": _KEY, "secondaryKey": _KEY},
                }
            ),
        },
        "responses": {
            "200": {"description": "replaced", **_json(_RULE_WITH_KEYS)},
            "201": {"description": "created", **_json(_RULE_WITH_KEYS)},
            # 409: 12 rules already, or RootManageSharedAccessKey without Manage.
            **_errors(400, 401, 404, 409),
        },
    },
    "AuthorizationRules_Get": {
        "summary": "One authorization rule, with its keys.",
        "parameters": [_RULE_PARAM, _ENTITY_PARAM],
        "responses": {
            "200": {"description": "the rule", **_json(_RULE_WITH_KEYS)},
            **_errors(400, 401, 404),
        },
    },
    "AuthorizationRules_Delete": {
        "summary": "Delete an authorization rule (never the namespace's root rule).",
        "parameters": [_RULE_PARAM, _ENTITY_PARAM],
        "responses": {"204": {"description": "deleted"}, **_errors(400, 401, 404, 409)},
    },
    "OpenApi_Get": {
        "summary": "This document.",
        "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1"}},
    },
}
"""What each operation of :data:`passage.api.routes.ROUTES` takes and answers."""

_API_VERSION = "api-version"


def template_of(path_pattern: str) -> str:
    """``/identities/(?P<id>[^/]+)`` → ``/identities/{id}``."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path_pattern).replace("\\.", ".")


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = {"operationId": route.operation_id, **OPERATIONS[route.operation_id]}
        if route.api_versions is not None:
            version = {
                "name": _API_VERSION,
                "in": "query",
                "required": True,
                "schema": {"enum": list(route.api_versions)},
            }
            operation["parameters"] = [*operation.get("parameters", []), version]
            # A missing or unsupported api-version is a 400 on every route that checks it.
            operation["responses"] = dict(
                sorted({**operation["responses"], **_errors(400)}.items())
            )
        paths.setdefault(template_of(route.path), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Passage API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {
                "CommunicationErrorResponse": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "target": {"type": "string"},
                            },
                        }
                    },
                }
            },
            "securitySchemes": {
                "hmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "HMAC-SHA256 SignedHeaders=x-ms-date;host;"
                    "x-ms-content-sha256&Signature=...",
                }
            },
        },
        "security": [{"hmac": []}],
    }
