"""The console over real HTTPS against the whole server in-process: sign-in, sessions, CSRF,
the throttle, one-time links, and the API behind the pages."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from api_harness import Api, api_server, now_date
from passage.console import mint_link
from passage.console.aio import COOKIE, Console
from passage.usage import HybridUsageRecord
from passage_server import Clock
from usage_records import flush

pytestmark = pytest.mark.asyncio


@dataclass
class Browser:
    """Just enough of one: a cookie it keeps, and the CSRF token of the last page."""

    api: Api
    session_id: str | None = None
    csrf: str | None = None

    async def send(
        self, method: str, path: str, *, form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None, json: object = None, https: bool = True,
    ) -> tuple[aiohttp.ClientResponse, str]:  # fmt: skip
        sent = dict(headers or {})
        if self.session_id:
            sent["Cookie"] = f"{COOKIE}={self.session_id}"
        base = self.api.https_base if https else self.api.http_base
        async with self.api.session.request(
            method, base + path, data=form, json=json, headers=sent, allow_redirects=False,
            ssl=self.api.tls_context() if https else None,
        ) as response:  # fmt: skip
            text = await response.text()
        found = re.search(r'name="csrf-token" content="([^"]+)"', text)
        if found:
            self.csrf = found.group(1)
        return response, text

    async def sign_in(self, key: str) -> aiohttp.ClientResponse:
        response, _ = await self.send("POST", "/console/signin", form={"key": key})
        cookie = response.cookies.get(COOKIE)
        if cookie is not None:
            self.session_id = cookie.value
        return response


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    async with api_server(tmp_path, clock=clock) as server:
        yield server


async def test_without_a_session_pages_send_to_sign_in_and_the_rest_is_401(api: Api) -> None:
    browser = Browser(api)
    for path in ("/console/", "/console/relays", "/console/identities", "/console/hc",
                 "/console/settings", "/console/identities/usage?id=x"):  # fmt: skip
        response, _ = await browser.send("GET", path)
        assert (response.status, response.headers["Location"]) == (303, "/console/signin"), path
    for path in ("/console/api/live/allocations", "/console/events?page=relays",
                 "/console/export/usage.csv?days=1"):  # fmt: skip
        response, text = await browser.send("GET", path)
        assert response.status == 401 and "SignInRequired" in text, path
    response, text = await browser.send("GET", "/console/signin")
    assert response.status == 200 and 'name="key"' in text
    response, _ = await browser.send("GET", "/console")
    assert (response.status, response.headers["Location"]) == (308, "/console/")


async def test_the_console_is_https_only(api: Api) -> None:
    response, text = await Browser(api).send("GET", "/console/signin", https=False)
    assert response.status == 403 and "HTTPS only" in text


async def test_a_wrong_key_is_refused_and_logged_the_right_one_opens_a_session(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser(api)
    caplog.set_level(logging.INFO, "passage.console")
    response = await browser.sign_in("bm90IHRoZSBrZXk=")
    assert response.status == 401 and browser.session_id is None
    assert "sign-in from 127.0.0.1 failed: wrong access key" in caplog.text
    assert "bm90IHRoZSBrZXk" not in caplog.text  # what was typed is never logged

    response = await browser.sign_in(f"endpoint={api.https_base}/;accesskey={api.key.text}")
    assert (response.status, response.headers["Location"]) == (303, "/console/")
    set_cookie = response.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in set_cookie
    response, text = await browser.send("GET", "/console/")
    assert response.status == 200 and "Live allocations" in text
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert api.key.text not in text


async def test_repeated_failures_are_throttled_even_for_the_right_key(
    api: Api, clock: Clock
) -> None:
    browser = Browser(api)
    for _ in range(5):
        assert (await browser.sign_in("d3Jvbmc=")).status == 401
    response = await browser.sign_in(api.key.text)
    assert response.status == 429 and browser.session_id is None
    assert int(response.headers["Retry-After"]) == 300
    clock.advance(301)  # the window ends
    assert (await browser.sign_in(api.key.text)).status == 303


async def test_a_change_needs_the_csrf_token_and_this_origin(api: Api) -> None:
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    await browser.send("GET", "/console/")
    path = "/console/api/identities?api-version=2023-10-01"
    response, text = await browser.send("POST", path)
    assert response.status == 403 and "CsrfTokenMissing" in text
    response, _ = await browser.send("POST", path, headers={"X-CSRF-Token": "nope"})
    assert response.status == 403
    assert browser.csrf is not None
    token = {"X-CSRF-Token": browser.csrf}
    response, _ = await browser.send("POST", path, headers=token | {"Origin": "https://evil"})
    assert response.status == 403
    response, text = await browser.send("POST", path, headers=token)
    assert response.status == 201 and '"8:acs:' in text
    response, text = await browser.send("GET", "/console/api/live/nothing")
    assert response.status == 404 and '"NotFound"' in text  # the API's own errors, as JSON


async def test_sign_out_needs_the_token_and_ends_the_session(api: Api) -> None:
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    await browser.send("GET", "/console/settings")
    response, _ = await browser.send("POST", "/console/signout", form={"csrf": "wrong"})
    assert response.status == 403
    assert browser.csrf is not None
    response, _ = await browser.send("POST", "/console/signout", form={"csrf": browser.csrf})
    assert response.status == 303
    response, _ = await browser.send("GET", "/console/settings")
    assert response.status == 303


async def test_a_session_expires_when_idle_and_when_its_key_is_rotated(
    api: Api, clock: Clock
) -> None:
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    clock.advance(29 * 60)
    assert (await browser.send("GET", "/console/"))[0].status == 200
    clock.advance(30 * 60)
    assert (await browser.send("GET", "/console/"))[0].status == 303

    await browser.sign_in(api.key.text)
    assert (await browser.send("GET", "/console/"))[0].status == 200
    rotated = await api.request("POST", "/keys/primary/:rotate", date=now_date(clock.offset))
    assert rotated.status == 200
    assert (await browser.send("GET", "/console/"))[0].status == 303


async def test_a_one_time_link_signs_in_once(api: Api, clock: Clock) -> None:
    browser = Browser(api)
    token = mint_link(api.key, b"\x05" * 16, int(clock()) + 600)
    response, text = await browser.send("GET", f"/console/link?token={token}")
    assert response.status == 200 and f'value="{token}"' in text
    response, _ = await browser.send("POST", "/console/link", form={"token": token})
    assert response.status == 303
    browser.session_id = response.cookies[COOKIE].value
    assert (await browser.send("GET", "/console/"))[0].status == 200
    again, text = await Browser(api).send("POST", "/console/link", form={"token": token})
    assert again.status == 401 and "not valid" in text


async def test_static_files_are_served_and_nothing_else(api: Api) -> None:
    browser = Browser(api)
    response, text = await browser.send("GET", "/console/static/console.js")
    assert response.status == 200 and "EventSource" in text
    assert response.headers["Content-Type"].startswith("text/javascript")
    for name in ("../server.py", "nothing.css", "%2e%2e/html.py"):
        assert (await browser.send("GET", f"/console/static/{name}"))[0].status == 404


async def test_events_stream_a_pages_live_parts(api: Api) -> None:
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    async with api.session.get(
        f"{api.https_base}/console/events?page=relays",
        headers={"Cookie": f"{COOKIE}={browser.session_id}"},
        ssl=api.tls_context(),
    ) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        line = await response.content.readline()
    assert line.startswith(b'data: {"relays-rows": ')


def iso_hour(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).isoformat().replace("+00:00", "Z")


def console_of(api: Api) -> Console:
    _, handler = api.running.front_door.router.route("/console/")
    console = getattr(handler, "__self__", None)
    assert isinstance(console, Console)
    return console


async def test_live_pages_open_at_once_are_capped(api: Api) -> None:
    console = console_of(api)
    console.limits = dataclasses.replace(console.limits, max_streams=0)
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    response, text = await browser.send("GET", "/console/events?page=overview")
    assert response.status == 503 and "TooManyStreams" in text


async def test_bodies_are_bounded(api: Api) -> None:
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    await browser.send("GET", "/console/")
    assert browser.csrf is not None
    response, _ = await browser.send(
        "POST", "/console/api/identities?api-version=2023-10-01",
        headers={"X-CSRF-Token": browser.csrf, "Content-Type": "application/json"},
        form=None, json={"pad": "x" * 70_000},
    )  # fmt: skip
    assert response.status == 413
    key_in_a_big_form = {"key": api.key.text, "pad": "x" * 5000}
    response, _ = await browser.send("POST", "/console/signin", form=key_in_a_big_form)
    assert response.status == 401  # more than 4 KiB is no form of ours


async def test_the_usage_page_draws_what_an_identity_relayed(api: Api, clock: Clock) -> None:
    identity = await api.create_identity()
    hour = clock() // 3600 * 3600  # inside this hour, so the record is not split
    record = flush(subject=identity, start=hour + 1, end=hour + 2, sent=2000, received=1000)
    await api.running.api.ledger.record([record])
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    response, text = await browser.send("GET", f"/console/identities/usage?id={identity}")
    assert response.status == 200
    totals = re.findall(r'id="(\w+)-chart"[^>]*data-total-bytes="(\d+)"', text)
    assert totals == [("hourly", "3000"), ("daily", "3000")]


async def test_a_stopping_server_ends_its_live_pages(api: Api) -> None:
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    async with api.session.get(
        f"{api.https_base}/console/events?page=overview",
        headers={"Cookie": f"{COOKIE}={browser.session_id}"},
        ssl=api.tls_context(),
    ) as response:
        await response.content.readline()
        await console_of(api).close()
        rest = await response.content.read()  # the stream ends: no wait for the next tick
    assert console_of(api).streams == 0
    assert rest.count(b"data: ") <= 1


async def test_the_hc_page_says_what_each_hybrid_connection_relayed(api: Api, clock: Clock) -> None:
    assert (await api.request("PUT", "/hybridConnections/Web", {})).status == 201
    hour = clock() // 3600 * 3600
    record = HybridUsageRecord(
        "web", "RootManageSharedAccessKey", hour + 1, hour + 2,
        bytes_to_listener=1500, bytes_to_sender=2_000_000, requests=3,
    )  # fmt: skip
    await api.running.api.ledger.hybrid.record([record])
    browser = Browser(api)
    await browser.sign_in(api.key.text)
    response, text = await browser.send("GET", "/console/hc")
    assert response.status == 200
    assert (
        "Last 24 hours: <strong>1.5 KB</strong> to listeners, <strong>2.0 MB</strong> to "
        "senders, <strong>3</strong> HTTP requests." in text
    )
    response, text = await browser.send(
        "GET", "/console/export/usage.csv?kind=hybridConnection&days=1"
    )
    assert response.status == 200 and text.splitlines()[1].startswith(f"{iso_hour(hour)},web,")


async def test_end_on_the_relays_page_ends_the_allocation(api: Api) -> None:
    """What the End button sends: DELETE through the console's API, with the token."""
    client = await api.client("udp")
    try:
        await client.allocate()
        browser = Browser(api)
        await browser.sign_in(api.key.text)
        response, text = await browser.send("GET", "/console/relays")
        [path] = re.findall(r'data-method="DELETE" data-path="(/live/allocations/\w+)"', text)
        assert browser.csrf is not None
        ended, _ = await browser.send(
            "DELETE", "/console/api" + path, headers={"X-CSRF-Token": browser.csrf}
        )
        assert ended.status == 204
        assert not api.running.edge.core.allocations
        _, text = await browser.send("GET", "/console/relays")
        assert "No allocation is live" in text
    finally:
        await client.close(release=False)
