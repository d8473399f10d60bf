"""A sender's Host header never chooses where a listener dials (issue 10).

The rendezvous address a listener is told to open (``accept`` for WebSocket
senders, ``request`` for HTTP ones) is built from this node's own endpoint:
``--public-url`` when given, else the advertised host on the port the listener
came in on. Were it built from the sender's ``Host``, any sender (anyone, on an
anonymous hybrid connection) could make a listener behind a firewall open
connections to a host and port of the sender's choosing.
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

KEY = "rendezvous-root-key-0123456789"
EVIL = "attacker.example:6666"


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        await admin.create_connection("svc")
        await admin.put_rule(None, ROOT_RULE, Rights.MANAGE, primary_key=KEY)
        yield api


def token(api: Api) -> str:
    return make_sas_token(f"{api.http_base}/svc", ROOT_RULE, KEY, int(time.time()) + 600)


async def first_command(control: aiohttp.ClientWebSocketResponse) -> dict[str, dict[str, str]]:
    message = await asyncio.wait_for(control.receive(), 10)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    command: dict[str, dict[str, str]] = json.loads(message.data)
    return command


async def test_rendezvous_addresses_name_this_node_whatever_host_a_sender_sends(
    relay: Api,
) -> None:
    ws_base = relay.http_base.replace("http://", "ws://")
    headers = {"ServiceBusAuthorization": token(relay), "Host": EVIL}
    async with relay.session.ws_connect(
        f"{ws_base}/$hc/svc?sb-hc-action=listen",
        headers={"ServiceBusAuthorization": token(relay)},
    ) as control:
        sender = asyncio.create_task(
            relay.session.ws_connect(f"{ws_base}/$hc/svc?sb-hc-action=connect", headers=headers)
        )
        accept = (await first_command(control))["accept"]
        assert accept["address"].startswith(f"{ws_base}/$hc/svc?"), accept["address"]
        async with relay.session.ws_connect(accept["address"]):
            await (await sender).close()

        http_sender = asyncio.create_task(
            relay.session.post(f"{relay.http_base}/svc/x", data=b"hi", headers=headers)
        )
        request = (await first_command(control))["request"]
        assert request["address"].startswith(f"{ws_base}/$hc/svc?"), request["address"]
        assert (await control.receive()).data == b"hi"
        response = {"requestId": request["id"], "statusCode": 204, "body": False}
        await control.send_str(json.dumps({"response": response}))
        async with await http_sender as answer:
            assert answer.status == 204
