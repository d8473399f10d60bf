"""``GET /openapi.json``: served without authentication, describing exactly the routes served.

The document is checked against the OpenAPI 3.1 meta-schema that schemathesis
ships (https://spec.openapis.org/oas/3.1/schema/2022-10-07, as a jsonschema_rs
validator), and its inner schemas against JSON Schema 2020-12.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from api_harness import Api, api_server
from passage.api.openapi import OPERATIONS, openapi_document, template_of
from passage.api.routes import ROUTES

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
async def document(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with api_server(tmp_path) as api:
        yield await fetch(api)


async def fetch(api: Api) -> dict[str, Any]:
    answer = await api.request("GET", "/openapi.json", sign=False)
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = answer.body
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert method in _METHODS, (path, method)
            yield path, method, operation


async def test_openapi_needs_no_authentication_and_is_the_generated_document(
    tmp_path: Path,
) -> None:
    async with api_server(tmp_path) as api:
        served = await fetch(api)
        # A bad signature changes nothing on an unauthenticated route.
        answer = await api.request("GET", "/openapi.json", secret=b"wrong")
        assert answer.status == 200
        assert answer.body == served
    assert served == openapi_document(ROUTES)
    assert served["openapi"] == "3.1.0"


async def test_paths_and_methods_are_exactly_the_routes(document: dict[str, Any]) -> None:
    documented = {(path, method.upper()) for path, method, _ in operations(document)}
    served = {(template_of(route.path), route.method) for route in ROUTES}
    assert documented == served
    assert len(documented) == len(ROUTES)  # no route hides behind another's template


async def test_each_operation_id_names_its_route(document: dict[str, Any]) -> None:
    by_key = {(template_of(route.path), route.method.lower()): route for route in ROUTES}
    ids = []
    for path, method, operation in operations(document):
        route = by_key[(path, method)]
        assert operation["operationId"] == route.operation_id
        ids.append(operation["operationId"])
    assert len(set(ids)) == len(ids)
    assert set(ids) == set(OPERATIONS)


async def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    errors = [error.message for error in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []
    # The meta-schema leaves inner schemas unchecked; check them as JSON Schema 2020-12.
    for schema in schemas_in(document):
        jsonschema_rs.meta.validate(
            {"$schema": "https://json-schema.org/draft/2020-12/schema"} | schema
        )


async def test_the_validator_rejects_a_broken_document(document: dict[str, Any]) -> None:
    """The check above can fail: a response without a description is not OpenAPI 3.1."""
    broken = openapi_document(ROUTES)
    del broken["paths"]["/identities"]["post"]["responses"]["201"]["description"]
    assert not OPENAPI_31_VALIDATOR.is_valid(broken)
    assert OPENAPI_31_VALIDATOR.is_valid(document)


async def test_path_parameters_match_their_templates(document: dict[str, Any]) -> None:
    for path, _, operation in operations(document):
        in_template = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == in_template, path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["required"] is True


async def test_api_version_is_required_where_the_route_checks_it(document: dict[str, Any]) -> None:
    by_id = {route.operation_id: route for route in ROUTES}
    for _, _, operation in operations(document):
        route = by_id[operation["operationId"]]
        versions = [p for p in operation.get("parameters", []) if p["name"] == "api-version"]
        if route.api_versions is None:
            assert versions == []
        else:
            assert versions == [
                {
                    "name": "api-version",
                    "in": "query",
                    "required": True,
                    "schema": {"enum": list(route.api_versions)},
                }
            ]


async def test_security_and_error_responses(document: dict[str, Any]) -> None:
    schemes = document["components"]["schemas"]
    security_schemes = document["components"]["securitySchemes"]
    assert document["security"] == [{"hmac": []}]
    assert set(security_schemes) == {"hmac"}
    by_id = {route.operation_id: route for route in ROUTES}
    for _, _, operation in operations(document):
        route = by_id[operation["operationId"]]
        unauthenticated = route.auth.value == "none"
        assert (operation.get("security") == []) is unauthenticated
        responses = operation["responses"]
        assert any(status.startswith("2") for status in responses)
        assert ("401" in responses) is not unauthenticated
        for status, response in responses.items():
            if not status.startswith("2"):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/CommunicationErrorResponse"
    assert "CommunicationErrorResponse" in schemes


def schemas_in(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document["components"]["schemas"].values()
    for _, _, operation in operations(document):
        for parameter in operation.get("parameters", []):
            yield parameter["schema"]
        body = operation.get("requestBody", {}).get("content", {})
        for response in [body, *(r.get("content", {}) for r in operation["responses"].values())]:
            for media in response.values():
                if "$ref" not in media["schema"]:
                    yield media["schema"]
