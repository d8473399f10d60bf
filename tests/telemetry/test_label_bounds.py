"""Label values a client could choose are folded into one: an unknown STUN method is
``other``, a signaling close code of the client's invention is ``0``; so no client can
make ``/metrics`` grow a series per value it sends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api_harness import Api, api_server
from metrics_scrape import scrape, scrape_until
from passage.stun import MessageClass
from passage_server import free_port
from turn_client import TurnClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(tmp_path, metrics_port=free_port((socket.SOCK_STREAM,))) as started:
        yield started


def metrics_base(api: Api) -> str:
    assert api.running.operators is not None
    host, port = api.running.operators.addresses[0]
    return f"http://{host}:{port}"


async def test_unknown_methods_count_as_other(api: Api) -> None:
    client = await TurnClient.connect("tcp", api.address("tcp"))
    try:
        for method in range(0x100, 0x100 + 40):  # 40 methods nobody defined
            _, data = client.build(method, MessageClass.REQUEST, [], sign=False)
            client.send_raw(data)
        found = await scrape_until(
            api.session,
            metrics_base(api),
            lambda s: s.value("passage_turn_requests_total", method="other") == 40,
        )
    finally:
        await client.close()
    methods = {labels["method"] for labels in found.labels_of("passage_turn_requests_total")}
    assert methods == {"other"}
    assert found.value("passage_turn_errors_total", method="other", code="400") == 40


async def test_a_clients_own_close_code_counts_as_0(api: Api) -> None:
    identity = await api.create_identity()
    token = await api.issue_token(identity, ["voip"])
    url = api.https_base.replace("https", "wss") + "/signal/r"
    for code in (4321, 4322, 3999):
        member = await api.session.ws_connect(
            url, headers={"Authorization": f"Bearer {token}"}, ssl=api.tls_context()
        )
        await member.receive_json()  # welcome
        await member.close(code=code)
    found = await scrape_until(
        api.session,
        metrics_base(api),
        lambda s: s.value("passage_signal_closes_total", code="0") == 3,
    )
    codes = {labels["code"] for labels in found.labels_of("passage_signal_closes_total")}
    assert codes == {"0"}
    await asyncio.sleep(0)  # nothing else pending
    assert (await scrape(api.session, metrics_base(api))).value("passage_signal_members") == 0
