"""``/live/...``, ``/settings``, ``GET /identities`` and ``/usage?format=csv`` over real sockets,
against the whole server in-process, signed as the ACS SDKs sign.

These are what the console shows; each is a REST operation first.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from api_harness import api_server, identity_path, now_date
from passage.api.live import MAX_IDENTITIES, MAX_SEARCH
from passage.api.usage import CSV_COLUMNS, usage_csv
from passage.identity.hmac_auth import sign_request
from passage.stun import MessageClass
from passage_server import PASSWORD, USER
from turn_client import UdpPeer, error_code

pytestmark = pytest.mark.asyncio


async def test_a_live_allocation_is_listed_with_its_bytes_and_ended_by_delete(
    tmp_path: Path,
) -> None:
    async with api_server(tmp_path, loopback_peers=True) as api:
        client = await api.client("udp")
        peer = await UdpPeer.bind()
        try:
            assert (await client.allocate()).message_class is MessageClass.SUCCESS
            await client.create_permission(peer.address)
            client.send_indication(peer.address, b"x" * 100)
            await peer.receive()

            listed = await api.request("GET", "/live/allocations")
            assert listed.status == 200, listed
            [allocation] = listed.body["value"]
            assert allocation["username"] == USER
            assert allocation["transport"] == "udp"
            assert allocation["clientAddress"].endswith(f":{client.local[1]}")
            assert allocation["peers"] == ["127.0.0.1"]
            assert allocation["bytesToPeer"] == 100
            assert allocation["relayedAddresses"]

            counters = await api.request("GET", "/live/turn")
            assert counters.body["allocationsByTransport"] == {"udp": 1}
            assert counters.body["allocationsStarted"] == 1

            ended = await api.request("DELETE", f"/live/allocations/{allocation['id']}")
            assert ended.status == 204
            assert (await api.request("GET", "/live/allocations")).body["value"] == []
            assert error_code(await client.refresh(600)) == 437  # RFC 8656 §7.3
            again = await api.request("DELETE", f"/live/allocations/{allocation['id']}")
            assert again.status == 404
            assert again.body["error"]["code"] == "NotFound"
        finally:
            await client.close(release=False)
            await peer.close()


async def test_live_operations_need_a_signature(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        for path in ("/live/allocations", "/live/turn", "/live/throughput", "/live/listeners",
                     "/live/bridges", "/live/rooms", "/settings", "/identities"):  # fmt: skip
            answer = await api.request("GET", path, sign=False)
            assert answer.status == 401, path
            assert answer.body["error"]["code"]


async def test_throughput_has_a_point_for_traffic_relayed(tmp_path: Path) -> None:
    async with api_server(tmp_path, loopback_peers=True) as api:
        client = await api.client("udp")
        peer = await UdpPeer.bind()
        try:
            await client.allocate()
            await client.create_permission(peer.address)
            client.send_indication(peer.address, b"y" * 500)
            await peer.receive()

            await api.running.edge.flush_usage()  # what the once-a-second flush does
            answer = await api.request("GET", "/live/throughput")
            assert sum(point["bytesToPeer"] for point in answer.body["value"]) == 500
            assert answer.body["stepSeconds"] == 10
            assert len(answer.body["value"]) == 360
        finally:
            await client.close()
            await peer.close()


async def test_settings_show_values_and_mask_secrets(tmp_path: Path) -> None:
    async with api_server(tmp_path, auth_secrets=("hunter2-secret",), database_url=None) as api:
        answer = await api.request("GET", "/settings")
        assert answer.status == 200
        shown = {s["name"]: s for s in answer.body["value"]}
        assert shown["turn.realm"]["value"] == api.config.turn.realm
        assert shown["users"]["value"] == f"{USER}:********"
        assert shown["users"]["secret"] is True
        assert shown["auth_secrets"]["value"] == "1 secret (********)"
        assert "hunter2" not in str(answer.body) and PASSWORD not in str(answer.body)
        low, high = api.config.relay_ports
        assert shown["relay_ports"]["value"] == f"{low}-{high}"


async def test_settings_say_what_a_reload_would_change(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        answer = await api.request("GET", "/settings")
        assert answer.body["reload"] == {"checked": False, "error": None}
        running = api.running.config
        api.running.reread = lambda: dataclasses.replace(
            running, turn=dataclasses.replace(running.turn, max_bytes_per_second=64000)
        )
        answer = await api.request("GET", "/settings")
        assert answer.body["reload"] == {"checked": True, "error": None}
        changed = [s for s in answer.body["value"] if "afterReload" in s]
        assert changed == [
            {"name": "turn.max_bytes_per_second", "flag": "--max-bps", "value": "0",
             "secret": False, "afterReload": "64000", "onReload": "applies"},
        ]  # fmt: skip


async def test_identities_are_listed_newest_first_and_searched(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        first = await api.create_identity()
        second = await api.create_identity()
        deleted = await api.create_identity()
        assert (await api.request("DELETE", identity_path(f"/{deleted}"))).status == 204
        await api.request("POST", identity_path(f"/{first}/:revokeAccessTokens"))

        listed = await api.request("GET", "/identities")
        assert [i["id"] for i in listed.body["value"]] == [second, first]
        assert listed.body["value"][0]["tokensRevokedAt"] is None
        assert listed.body["value"][1]["tokensRevokedAt"]

        tail = second[-12:]
        found = await api.request("GET", f"/identities?search={tail.upper()}")
        assert [i["id"] for i in found.body["value"]] == [second]
        assert (await api.request("GET", "/identities?search=%25")).body["value"] == []
        assert len((await api.request("GET", "/identities?top=1")).body["value"]) == 1

        for bad in (
            f"top={MAX_IDENTITIES + 1}",
            "top=0",
            "top=x",
            f"search={'a' * (MAX_SEARCH + 1)}",
        ):
            answer = await api.request("GET", f"/identities?{bad}")
            assert answer.status == 400, bad
            assert answer.body["error"]["code"]


async def test_usage_as_csv(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        path = "/usage?format=csv&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
        url = api.http_base + path
        headers = sign_request("GET", path, url.split("/")[2], b"", api.key.secret, now_date())
        async with api.session.get(url, headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/csv")
            text = await response.text()
        assert text.splitlines()[0].split(",") == list(CSV_COLUMNS)
        bad = await api.request("GET", "/usage?format=xml")
        assert bad.status == 400
        assert bad.body["error"]["target"] == "format"


async def test_csv_rows_cannot_be_spreadsheet_formulas() -> None:
    row = dict.fromkeys(CSV_COLUMNS, 0) | {"identity": "=HYPERLINK(1)", "start": "2026"}
    rows = list(csv.reader(io.StringIO(usage_csv([row]))))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1][1] == "'=HYPERLINK(1)"


async def test_listeners_bridges_and_rooms_start_empty(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        for path in ("/live/listeners", "/live/bridges", "/live/rooms", "/live/nodes"):
            answer = await api.request("GET", path)
            assert answer.status == 200 and answer.body == {"value": []}, path


async def test_an_api_without_live_state_says_so(tmp_path: Path) -> None:
    async with api_server(tmp_path) as api:
        api.running.api.live = None
        answer = await api.request("GET", "/live/allocations")
        assert answer.status == 503
        assert answer.body["error"]["code"] == "ServiceUnavailable"
