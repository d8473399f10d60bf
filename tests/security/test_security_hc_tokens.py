"""SAS tokens: a bounded lifetime, and no standing once their rule is gone (issue 10).

A token whose ``se`` lay 100 years ahead listened: a key by another name, which
only deleting the rule could take back, and deleting the rule left the
listeners it had let in connected. Now a token valid longer than
``--hc-max-token-lifetime`` (30 days) is refused with 401 (a ``renewToken``
with one closes the control channel with 1008), and deleting a rule, or
changing its keys, closes the listeners and senders it let in with 1008.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights, make_sas_token

pytestmark = pytest.mark.timeout(120)
ROOT_KEY = "tokens-root-key-0123456789"
DEVICE_KEY, DEVICE_SECONDARY = "device-key-0123456789", "device-key-9876543210"
YEAR = 365 * 24 * 3600


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        await admin.create_connection("svc")
        await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=ROOT_KEY)
        await admin.put_rule(
            None, "device", Rights.LISTEN | Rights.SEND,
            primary_key=DEVICE_KEY, secondary_key=DEVICE_SECONDARY,
        )  # fmt: skip
        yield api


def token(api: Api, rule: str, key: str, lifetime: float = 3600) -> str:
    return make_sas_token(f"{api.http_base}/svc", rule, key, int(time.time() + lifetime))


def url(api: Api, action: str) -> str:
    return api.http_base.replace("http://", "ws://") + f"/$hc/svc?sb-hc-action={action}"


async def refusal(api: Api, action: str, sas: str) -> tuple[int, str]:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.session.ws_connect(url(api, action), headers={"ServiceBusAuthorization": sas})
    return refused.value.status, str(refused.value.message)


async def test_a_token_valid_for_a_century_is_refused_a_day_is_not(relay: Api) -> None:
    century = token(relay, ROOT_RULE, ROOT_KEY, 100 * YEAR)
    assert (await refusal(relay, "listen", century))[0] == 401
    assert (await refusal(relay, "connect", century))[0] == 401
    async with relay.session.get(
        f"{relay.http_base}/svc/x", headers={"ServiceBusAuthorization": century}
    ) as answer:
        assert answer.status == 401
        assert "--hc-max-token-lifetime" in (await answer.json())["error"]["message"]
    day = token(relay, ROOT_RULE, ROOT_KEY, 24 * 3600)
    async with relay.session.ws_connect(
        url(relay, "listen"), headers={"ServiceBusAuthorization": day}
    ) as control:
        # Renewing with a century-long token ends the channel (1008), as any invalid token.
        await control.send_str(json.dumps({"renewToken": {"token": century}}))
        closing = await asyncio.wait_for(control.receive(), 10)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1008


async def test_the_bound_is_configurable(tmp_path: Path) -> None:
    async with api_server(tmp_path, {"PASSAGE_HC_MAX_TOKEN_LIFETIME": "600"}) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        await admin.create_connection("svc")
        await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=ROOT_KEY)
        assert (await refusal(api, "listen", token(api, ROOT_RULE, ROOT_KEY, 3600)))[0] == 401
        async with api.session.ws_connect(
            url(api, "listen"),
            headers={"ServiceBusAuthorization": token(api, ROOT_RULE, ROOT_KEY, 300)},
        ):
            pass


async def closed(socket: aiohttp.ClientWebSocketResponse) -> int:
    while True:
        message = await asyncio.wait_for(socket.receive(), 30)
        if message.type is aiohttp.WSMsgType.CLOSE:
            return int(message.data)
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return socket.close_code or 0


async def paired_sender(
    api: Api, control: aiohttp.ClientWebSocketResponse, sas: str
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]:
    """A sender with ``sas``, met by the listener on ``control``: (sender, listener side)."""
    connecting = asyncio.create_task(
        api.session.ws_connect(url(api, "connect"), headers={"ServiceBusAuthorization": sas})
    )
    accept = json.loads((await asyncio.wait_for(control.receive(), 10)).data)["accept"]
    far_side = await api.session.ws_connect(accept["address"])
    return await connecting, far_side


async def test_deleting_a_rule_closes_what_it_let_in_and_nothing_else(relay: Api) -> None:
    admin = relay.running.api.hybrid_admin
    assert admin is not None
    device = token(relay, "device", DEVICE_KEY)
    root = token(relay, ROOT_RULE, ROOT_KEY)
    device_listener = await relay.session.ws_connect(
        url(relay, "listen"), headers={"ServiceBusAuthorization": device}
    )
    sender, far_side = await paired_sender(relay, device_listener, device)
    root_listener = await relay.session.ws_connect(
        url(relay, "listen"), headers={"ServiceBusAuthorization": root}
    )
    try:
        await admin.delete_rule(None, "device")
        assert await closed(device_listener) == 1008
        assert await closed(sender) == 1008
        assert not root_listener.closed  # another rule's listener stays
        assert (await refusal(relay, "listen", device))[0] == 401
    finally:
        for socket in (device_listener, sender, far_side, root_listener):
            await socket.close()


async def test_changing_a_rules_key_closes_what_the_old_key_let_in(relay: Api) -> None:
    admin = relay.running.api.hybrid_admin
    assert admin is not None
    old_primary = await relay.session.ws_connect(
        url(relay, "listen"),
        headers={"ServiceBusAuthorization": token(relay, "device", DEVICE_KEY)},
    )
    secondary = await relay.session.ws_connect(
        url(relay, "listen"),
        headers={"ServiceBusAuthorization": token(relay, "device", DEVICE_SECONDARY)},
    )
    try:
        await admin.put_rule(
            None, "device", Rights.LISTEN | Rights.SEND, primary_key="a-new-primary-key-0123"
        )
        assert await closed(old_primary) == 1008
        assert not secondary.closed  # the secondary key did not change: its token stands
    finally:
        await old_primary.close()
        await secondary.close()
