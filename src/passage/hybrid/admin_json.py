"""Hybrid connections and authorization rules as JSON, in the shape the management API answers.

``passage hc`` works on the local store or through a running server's API;
both paths hand their results around in this one shape.
"""

from __future__ import annotations

from passage.hybrid.admin import rights_names
from passage.hybrid.entities import HybridConnection, validate_name
from passage.hybrid.sas import SasRule

__all__ = ["authorization_rule_body", "hybrid_connection_body"]


def hybrid_connection_body(connection: HybridConnection) -> dict[str, object]:
    return {
        "name": connection.name,
        "path": connection.path,
        "requiresClientAuthorization": connection.requires_client_authorization,
    }


def authorization_rule_body(rule: SasRule, entity: str | None, *, keys: bool) -> dict[str, object]:
    """A rule as the API shows it; ``entity`` was accepted by the admin, so it is valid."""
    body: dict[str, object] = {
        "name": rule.name,
        "entity": validate_name(entity) if entity is not None else None,
        "rights": rights_names(rule.rights),
    }
    if keys:
        body |= {"primaryKey": rule.primary_key, "secondaryKey": rule.secondary_key}
    return body
