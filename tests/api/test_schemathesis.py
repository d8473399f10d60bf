"""Schemathesis against the running server: generated requests, every one signed with HMAC.

The schema is the server's own ``/openapi.json`` over the plain-HTTP port. Every
generated request is signed by a ``requests`` auth (reference §2) over exactly
what is sent: the method, the prepared path and query, the ``Host`` and the
body bytes. Hypothesis drives each operation in positive and negative mode;
schemathesis' checks then hold each answer to the document (no 5xx, documented
status codes, content types and bodies, negative data rejected).

The server runs on the test's event loop; the fuzzing (``requests``, blocking)
runs in a worker thread. ``POST /keys/{name}/:rotate`` is left out: it would
change the key under the signer (tests/api/test_api_errors.py covers it).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from api_harness import api_server
from passage.identity.hmac_auth import sign_request

MAX_EXAMPLES = 40
"""Per strategy (operation × generation mode, × generated or live id): enough to reach
every field, few enough to keep the whole run near ten seconds."""

UNEXPRESSED = {"Usage_Get": [schemathesis.checks.positive_data_acceptance]}
"""Checks an operation cannot pass because the document cannot say what valid is:
``from`` < ``to``, at most 400 days apart, each ISO 8601 or unix seconds."""

ID_OPERATIONS = (
    "CommunicationIdentity_Delete",
    "CommunicationIdentity_RevokeAccessTokens",
    "CommunicationIdentity_IssueAccessToken",
)
FUZZED = {
    "CommunicationIdentity_Create",
    *ID_OPERATIONS,
    "CommunicationNetworkTraversal_IssueRelayConfiguration",
    "Usage_Get",
    "HybridConnections_List",
    "HybridConnections_Create",
    "HybridConnections_Get",
    "HybridConnections_Delete",
    "AuthorizationRules_List",
    "AuthorizationRules_Put",
    "AuthorizationRules_Get",
    "AuthorizationRules_Delete",
    "Identities_List",
    "Allocations_List",
    "TurnCounters_Get",
    "Throughput_Get",
    "Listeners_List",
    "Bridges_List",
    "SignalingRooms_List",
    "Nodes_List",
    "Settings_Get",
}
"""Every operation but ``Allocations_End``, which has no allocation to end here (404)."""
"""Every operation but key rotation and ``/openapi.json`` (schemathesis skips the
operation serving the document it was loaded from; test_openapi.py covers it)."""

Outcomes = collections.Counter[tuple[str, int]]


class HmacAuth(requests.auth.AuthBase):
    """Signs a prepared request as the ACS SDKs do, over exactly the bytes ``requests`` sends."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self.secret = secret
        self.signed: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):  # http.client sends a str body as ISO-8859-1
            body = body.encode("iso-8859-1")
        assert request.method is not None and request.url is not None
        headers = sign_request(
            request.method,
            request.path_url,
            urllib.parse.urlsplit(request.url).netloc,
            body,
            self.secret(),
            email.utils.formatdate(usegmt=True),
        )
        request.headers.update(headers)
        with self._lock:
            self.signed.add(headers["Authorization"])
        return request

    def was_signed(self, response: requests.Response | schemathesis.Response) -> bool:
        return response.request.headers.get("Authorization") in self.signed


def fuzz(base_url: str, auth: HmacAuth, identities: dict[str, str]) -> Outcomes:
    """Run every operation but key rotation; ``(operation id, status)`` → count.

    An operation named in ``identities`` is also run on that live identity:
    generated ids name nobody, so alone they would never get past the 404.
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema = schema.exclude(operation_id="AccessKeys_Rotate")
    schema.auth.set_from_requests(auth)
    outcomes: Outcomes = collections.Counter()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operation_id = operation.definition.raw["operationId"]
            strategies = [operation.as_strategy(mode) for mode in GenerationMode]
            if operation_id in identities:
                live = {"id": identities[operation_id]}
                strategies += [
                    operation.as_strategy(mode, path_parameters=live) for mode in GenerationMode
                ]
            statuses = fuzz_operation(strategies, auth, session, UNEXPRESSED.get(operation_id, []))
            outcomes.update({(operation_id, status): n for status, n in statuses.items()})
    return outcomes


def fuzz_operation(
    strategies: list[st.SearchStrategy[schemathesis.Case]],
    auth: HmacAuth,
    session: requests.Session,
    excluded: list[schemathesis.CheckFunction],
) -> collections.Counter[int]:
    """Send what ``strategies`` generate; every check holds, or this raises. Status → count."""
    statuses: collections.Counter[int] = collections.Counter()

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=MAX_EXAMPLES * len(strategies),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(session=session, excluded_checks=excluded)
        if auth.was_signed(response):  # negative cases may drop the Authorization
            assert response.status_code != 401, response.text
        statuses[response.status_code] += 1

    check()
    return statuses


async def test_generated_requests_get_documented_answers_and_no_5xx(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        identities = {operation_id: await api.create_identity() for operation_id in ID_OPERATIONS}
        auth = HmacAuth(lambda: api.key.secret)
        outcomes = await asyncio.to_thread(fuzz, api.http_base, auth, identities)
    assert not [key for key in outcomes if key[1] >= 500], outcomes
    # The signature held on every kind of request: each operation reached its handler.
    succeeded = {operation_id for operation_id, status in outcomes if 200 <= status < 300}
    assert succeeded == FUZZED, outcomes
    assert {status for _, status in outcomes} >= {400, 404}, outcomes
