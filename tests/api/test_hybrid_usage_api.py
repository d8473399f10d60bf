"""Hybrid Connections bytes in ``GET /usage?kind=hybridConnection``: what the SDK's sender
and listener exchanged through a real relay, per hybrid connection and rule."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from api_harness import api_server
from passage.api.usage import HYBRID_CSV_COLUMNS, usage_csv
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights
from passage.hybrid.sdk import (
    HybridConnectionListener,
    KeyTokenProvider,
    RelayedRequest,
    RelayedResponse,
    RelayEndpoint,
    connect,
    request,
)

pytestmark = pytest.mark.timeout(60)


async def test_bytes_per_hybrid_connection_and_rule(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        admin = api.running.api.hybrid_admin
        assert admin is not None
        await admin.create_connection("echo")
        await admin.create_connection("open", requires_client_authorization=False)
        await admin.put_rule(None, "sender", rights=Rights.SEND)
        root = await admin.get_rule(None, ROOT_RULE)
        sender = await admin.get_rule(None, "sender")
        listen = KeyTokenProvider(root.name, root.primary_key)
        send = KeyTokenProvider(sender.name, sender.primary_key)
        endpoint = RelayEndpoint.parse(api.http_base)

        async def answer(relayed: RelayedRequest) -> RelayedResponse:
            return RelayedResponse(200, {}, b"x" * 50)

        async with (
            HybridConnectionListener(endpoint, "echo", listen, http_handler=answer) as echo,
            HybridConnectionListener(endpoint, "open", listen, http_handler=answer),
        ):
            stream = await connect(endpoint, "echo", send)
            accepted = await echo.accept()
            await stream.send(b"a" * 300)
            assert await accepted.receive() == b"a" * 300
            await accepted.send(b"b" * 20)
            assert await stream.receive() == b"b" * 20
            await stream.close()
            assert (await request(endpoint, "echo", listen, "POST", body=b"c" * 7)).status == 200
            anonymous = await request(endpoint, "open", None, "POST", body=b"d" * 9)
            assert anonymous.status == 200
        assert api.running.hybrid_usage is not None
        await api.running.hybrid_usage.flush()  # what the once-a-second flush does

        answer_ = await api.request("GET", "/usage?kind=hybridConnection")
        assert answer_.status == 200, answer_.body
        assert answer_.body["kind"] == "hybridConnection"
        rows = {(row["hybridConnection"], row["rule"]): row for row in answer_.body["value"]}
        assert set(rows) == {("echo", "sender"), ("echo", ROOT_RULE), ("open", None)}
        by_sender = rows[("echo", "sender")]
        assert (by_sender["bytesToListener"], by_sender["bytesToSender"]) == (300, 20)
        assert by_sender["requests"] == 1
        by_root = rows[("echo", ROOT_RULE)]
        assert (by_root["bytesToListener"], by_root["bytesToSender"], by_root["requests"]) == (
            7, 50, 1,
        )  # fmt: skip
        assert (rows[("open", None)]["bytesToListener"], rows[("open", None)]["requests"]) == (9, 1)

        filtered = "/usage?kind=hybridConnection&hybridConnection=echo&rule=sender"
        one = await api.request("GET", filtered)
        assert [row["rule"] for row in one.body["value"]] == ["sender"]
        table = list(csv.reader(io.StringIO(usage_csv(one.body["value"], HYBRID_CSV_COLUMNS))))
        assert table[0] == ["start", "hybridConnection", "rule", "bytesToListener",
                            "bytesToSender", "requests"]  # fmt: skip
        assert table[1][1:] == ["echo", "sender", "300", "20", "1"]
        turn = await api.request("GET", "/usage")  # TURN usage is unchanged by any of it
        assert turn.body["kind"] == "turn" and turn.body["value"] == []
        wrong = await api.request("GET", "/usage?kind=bridges")
        assert wrong.status == 400 and wrong.body["error"]["target"] == "kind"
