"""The Hybrid Connections listen throttle counts failures only (issue 10).

hyco-ws retries a refused listen thousands of times a second, so failed listens
from one address are throttled (429). A valid listener from the same address,
behind the same NAT or proxy as the storm, must still get in: otherwise anyone
there can keep a service offline.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import make_sas_token

KEY = "throttle-root-key-0123456789"


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        await admin.create_connection("svc")
        await admin.put_rule(None, ROOT_RULE, admin.namespace().rules[ROOT_RULE].rights,
                             primary_key=KEY)  # fmt: skip
        yield api


async def listen(api: Api, key: str) -> int:
    """The status of one listen attempt with a token signed by ``key`` (101 if it got in)."""
    token = make_sas_token(f"{api.http_base}/svc", ROOT_RULE, key, int(time.time()) + 600)
    url = api.http_base.replace("http://", "ws://") + "/$hc/svc?sb-hc-action=listen"
    try:
        control = await api.session.ws_connect(url, headers={"ServiceBusAuthorization": token})
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status
    await control.close()
    return 101


async def test_a_valid_listener_gets_in_after_a_storm_of_bogus_ones_from_its_address(
    relay: Api,
) -> None:
    hybrid = relay.running.relay
    limit = hybrid.settings.listen_failures_per_minute
    statuses = [await listen(relay, "forged-key") for _ in range(limit + 1)]
    assert statuses == [401] * limit + [429]  # the storm is throttled...
    assert await listen(relay, KEY) == 101  # ...the valid listener is not
    assert await listen(relay, "forged-key") == 429  # and the storm still is
