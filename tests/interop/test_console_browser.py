"""The web console in a real browser: Debian's Chromium, driven by Playwright, against a real
``passage serve`` with real clients behind it.

One server and one browser for the module; the tests run in file order, and the sign-in
throttle's comes last (it blocks 127.0.0.1 for the rest of its window). What is checked is
the issue's list: wrong key refused, right key accepted, throttled after repeated failures;
no session gives the sign-in page; a change without the CSRF token is refused; a
``turnutils_uclient`` allocation shows on Relays within two seconds of starting, with its
transport and growing byte counts, and goes when it ends; revoking an identity's tokens
on Identities makes aioice's next TURN Allocate fail; a listener started by ``passage
expose`` shows on the Hybrid Connections page; the throughput chart has points after
traffic. Each page is photographed on the way: into ``$PASSAGE_CONSOLE_SCREENSHOTS``
when set (``docs/console`` for the documentation), else the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aioice.stun
import aioice.turn
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from passage.identity.hmac_auth import sign_request
from passage.identity.keys import decode_key
from passage_server import ServerInfo, free_port, passage_process, stop

pytestmark = pytest.mark.interop

CHROMIUM = "/usr/bin/chromium"
UCLIENT = shutil.which("turnutils_uclient")
PEER = shutil.which("turnutils_peer")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOWS_WITHIN_MS = 2000
"""The issue's promise: an allocation is on the Relays page within two seconds."""
WAIT_MS = 20_000
"""How long anything else may take before the test gives up (nothing is timed): uclient
alone waits 1 to 6 s before it sends."""
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    tools = (("chromium", shutil.which(CHROMIUM)), ("turnutils_uclient", UCLIENT),
             ("turnutils_peer", PEER))  # fmt: skip
    missing = [name for name, path in tools if path is None]
    if missing:
        message = f"{', '.join(missing)} not installed (scripts/install-test-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


CONFIG = "max_listeners = {listeners}\n\n[turn]\nmax_bytes_per_second = {bandwidth}\n"
"""The server's configuration file: the Settings test changes it to show what a reload
would change (one setting a reload applies, one that needs a restart)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerInfo, Path]]:
    tmp = tmp_path_factory.mktemp("console")
    config = tmp / "passage.toml"
    config.write_text(CONFIG.format(listeners=25, bandwidth=0))
    with passage_process(tmp, "--allow-loopback-peers", "--config", str(config)) as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("PASSAGE_CONSOLE_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def new_context(browser: Browser, **options: object) -> BrowserContext:
    """A fresh profile (no cookies) that accepts the data directory's own certificate."""
    context = browser.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 860}, **options
    )
    context.set_default_timeout(WAIT_MS)
    return context


def connection_string(info: ServerInfo) -> str:
    return info.connection_string()


def signed_in(browser: Browser, info: ServerInfo, **options: object) -> Page:
    page = new_context(browser, **options).new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(info.api_url + "console/signin")
    page.get_by_label("Access key or connection string").fill(connection_string(info))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    return page


@pytest.fixture(scope="module")
def page(browser: Browser, server: tuple[ServerInfo, Path]) -> Iterator[Page]:
    signed = signed_in(browser, server[0])
    yield signed
    signed.context.close()


def test_without_a_session_the_sign_in_page_and_a_wrong_key_is_refused(
    browser: Browser, server: tuple[ServerInfo, Path], shots: Path
) -> None:
    info, log = server
    context = new_context(browser)
    page = context.new_page()
    page.goto(info.api_url + "console/relays")
    assert page.url.endswith("/console/signin")
    expect(page.get_by_role("heading", name="Passage console")).to_be_visible()
    page.screenshot(path=str(shots / "signin.png"))
    assert page.request.get(info.api_url + "console/api/live/allocations").status == 401

    page.get_by_label("Access key or connection string").fill("bm90IHRoZSBrZXk=")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not an access key of this server")
    assert "failed: wrong access key" in log.read_text()
    assert not context.cookies()

    page.get_by_label("Access key or connection string").fill(connection_string(info))
    page.keyboard.press("Enter")  # the form works from the keyboard
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    [cookie] = context.cookies()
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    context.close()


def test_a_change_without_the_csrf_token_is_refused(
    page: Page, server: tuple[ServerInfo, Path]
) -> None:
    info, _ = server
    path = info.api_url + "console/api/identities?api-version=2023-10-01"
    refused = page.request.post(path)  # the session's cookie, no token
    assert refused.status == 403 and refused.json()["error"]["code"] == "CsrfTokenMissing"
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    assert page.request.post(path, headers={"X-CSRF-Token": token}).status == 201


@pytest.fixture(scope="module")
def echo_peer() -> Iterator[int]:
    assert PEER is not None
    port = free_port((socket.SOCK_DGRAM,))
    process = subprocess.Popen([PEER, "-L", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_for_log(log: Path, pattern: str, offset: int, count: int = 1) -> str:
    """The first group of the ``count``-th match of ``pattern`` in the log after ``offset``."""
    for _ in range(int(WAIT_MS / 50)):
        found = re.findall(pattern, log.read_bytes()[offset:].decode(errors="replace"))
        if len(found) >= count:
            return str(found[count - 1])
        time.sleep(0.05)
    raise AssertionError(f"not {count} of {pattern!r} in the server's log")


def test_a_uclient_allocation_shows_on_relays_with_live_bytes_and_goes(
    page: Page, server: tuple[ServerInfo, Path], echo_peer: int, shots: Path
) -> None:
    info, log = server
    page.get_by_role("link", name="Relays").click()
    expect(page.get_by_role("heading", name="Relays", level=1)).to_be_visible()
    offset = log.stat().st_size
    assert UCLIENT is not None
    # One client over TCP (-t; its allocation ends with its connection), no RTCP (-c),
    # 400 messages of 200 bytes every 20 ms: 8 s of traffic to turnutils_peer.
    command = [UCLIENT, "-t", "-c", "-m", "1", "-n", "400", "-l", "200", "-z", "20",
               "-u", info.username, "-w", info.password, "-e", "127.0.0.1",
               "-r", str(echo_peer), "-p", str(info.turn_port), "127.0.0.1"]  # fmt: skip
    client = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # uclient's first allocation is a probe it releases at once; the second carries data.
        started = wait_for_log(
            log, r"allocation (\w+) started: user=alice \S+ client=tcp", offset, 2
        )
        row = page.locator(f'#relays-rows tr[data-id="{started}"]')
        expect(row).to_be_visible(timeout=SHOWS_WITHIN_MS)
        expect(row.locator("td").nth(1)).to_have_text("TCP")
        sent = row.locator("td").nth(5).locator("[data-sort]")
        expect(sent).not_to_have_attribute("data-sort", "0")
        first = int(sent.get_attribute("data-sort") or 0)
        page.wait_for_function(
            "([id, first]) => Number(document.querySelector(`#relays-rows tr[data-id='${id}'] "
            "td:nth-child(6) [data-sort]`)?.dataset.sort) > first",
            arg=[started, first],
        )  # live: the count grows while the page stays
        page.get_by_label("Filter").fill("no such client")
        expect(row).to_be_hidden()
        page.get_by_label("Filter").fill("")
        page.get_by_role("button", name="To peers").click()
        expect(page.locator("th", has_text="To peers")).to_have_attribute("aria-sort", "ascending")
        page.screenshot(path=str(shots / "relays.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(shots / "relays-phone.png"))
        page.set_viewport_size({"width": 1280, "height": 860})
        assert client.wait(timeout=60) == 0
        expect(page.locator(f'#relays-rows tr[data-id="{started}"]')).to_have_count(0)
    finally:
        stop(client, timeout=5)

    page.get_by_role("link", name="Overview").click()
    chart = page.locator("#throughput-chart")
    # Functions, not expressions: Playwright evaluates an expression with eval, which the
    # console's Content-Security-Policy forbids.
    page.wait_for_function(
        "() => Number(document.querySelector('#throughput-chart').dataset.points) > 0"
    )
    assert int(chart.get_attribute("data-total-bytes") or 0) >= 400 * 200
    page.wait_for_function("() => document.body.dataset.updated")  # live, not a reload
    page.screenshot(path=str(shots / "overview.png"), full_page=True)


def api_call(info: ServerInfo, method: str, path: str, body: dict[str, object] | None) -> object:
    """One call of the REST API, signed with the connection string's key as the ACS SDKs do."""
    key = decode_key(connection_string(info).split("accesskey=", 1)[1])
    data = json.dumps(body).encode() if body is not None else b""
    headers = sign_request(method, path, f"{info.host}:{info.api_port}", data, key,
                           email.utils.formatdate(usegmt=True))  # fmt: skip
    headers |= {"Content-Type": "application/json"}
    url = info.api_url.rstrip("/") + path
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    tls = ssl.create_default_context(cafile=str(info.ca_cert))
    with urllib.request.urlopen(request, context=tls, timeout=10) as response:
        return json.loads(response.read())


class _Echoes(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)


async def _allocate(info: ServerInfo, username: str, password: str, peer: int | None) -> None:
    transport, protocol = await aioice.turn.create_turn_endpoint(
        _Echoes, (info.host, info.turn_port), username, password, transport="tcp"
    )
    try:
        if peer is not None:  # relay something, so that the identity has usage to show
            for _ in range(5):
                transport.sendto(b"m" * 1000, ("127.0.0.1", peer))
                await asyncio.wait_for(protocol.received.get(), 10)
    finally:
        transport.close()


def aioice_allocate(
    info: ServerInfo, username: str, password: str, peer: int | None = None
) -> None:
    """A TURN Allocate by aioice over TCP; raises what aioice raises when it is refused.
    (In a thread of its own: Playwright's sync API holds this one's event loop.)"""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _allocate(info, username, password, peer)).result(timeout=30)


def test_revoking_an_identitys_tokens_makes_its_next_allocate_fail(
    page: Page, server: tuple[ServerInfo, Path], echo_peer: int, shots: Path
) -> None:
    info, _ = server
    page.get_by_role("link", name="Identities").click()
    rows = page.locator("table tbody tr:has(code)")
    before = rows.count()
    page.get_by_role("button", name="Create identity").click()
    expect(rows).to_have_count(before + 1)  # the page reloaded with it, newest first
    identity = rows.first.locator("code").inner_text()
    first_row = page.locator("table tbody tr", has_text=identity)
    assert identity.startswith("8:acs:")
    config = api_call(info, "POST", "/networkTraversal/:issueRelayConfiguration"
                      "?api-version=2022-03-01-preview", {"id": identity})  # fmt: skip
    assert isinstance(config, dict)
    server_entry = config["iceServers"][0]
    aioice_allocate(info, server_entry["username"], server_entry["credential"], echo_peer)

    first_row.get_by_role("button", name="Issue token").click()
    expect(page.locator("#token-output")).to_contain_text("expires")
    page.screenshot(path=str(shots / "identities.png"), full_page=True)
    first_row.get_by_role("button", name="Revoke tokens").click()
    expect(page.locator("#status")).to_have_text("Done: Revoke tokens.")
    with pytest.raises(aioice.stun.TransactionFailed) as refused:
        aioice_allocate(info, server_entry["username"], server_entry["credential"])
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401

    first_row.get_by_role("link", name="Usage").click()
    chart = page.locator("#hourly-chart")
    for _ in range(int(WAIT_MS / 250)):  # the ledger is written once a second
        if int(chart.get_attribute("data-total-bytes") or 0) >= 2 * 5 * 1000:
            break  # aioice's five echoes, both ways
        time.sleep(0.25)
        page.reload()
    assert chart.get_attribute("data-total-bytes") == "10000"
    page.screenshot(path=str(shots / "identity-usage.png"), full_page=True)


def test_a_listener_started_by_expose_shows_on_the_hybrid_connections_page(
    page: Page, server: tuple[ServerInfo, Path], shots: Path
) -> None:
    info, _ = server
    page.get_by_role("link", name="Hybrid Connections").click()
    page.get_by_label("Name").fill("console-demo")
    page.get_by_role("button", name="Create hybrid connection").click()
    expect(page.get_by_role("heading", name="console-demo")).to_be_visible()
    demo = page.locator("section.entity", has_text="console-demo")
    demo.get_by_label("New rule").fill("sender")
    demo.get_by_label("Send").check()
    demo.get_by_role("button", name="Add rule").click()
    expect(demo.get_by_role("cell", name="sender", exact=True)).to_be_visible()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    expose = subprocess.Popen(
        [sys.executable, "-m", "passage", "expose", "console-demo", "--to",
         f"127.0.0.1:{free_port((socket.SOCK_STREAM,))}", "--data-dir", str(info.data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        listeners = page.locator("#listeners tbody")
        expect(listeners).to_contain_text("console-demo")  # by the live update, no reload
        expect(listeners).to_contain_text("127.0.0.1:")
        namespace = page.locator("table", has_text="Rules of the namespace")
        namespace.get_by_role("button", name="Show keys").click()
        expect(namespace.locator("output")).to_contain_text("primary:")
        keys = namespace.locator("output").inner_text()
        namespace.get_by_role("button", name="Rotate keys").click()
        expect(namespace.locator("output")).not_to_have_text(keys)  # both keys replaced
        page.screenshot(path=str(shots / "hybrid-connections.png"), full_page=True)
    finally:
        stop(expose, timeout=10)
    (info.data_dir.parent / "passage.toml").write_text(
        CONFIG.format(listeners=30, bandwidth=500000)
    )
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("cell", name=f"{info.username}:********")).to_be_visible()
    expect(page.get_by_text("A reload now")).to_contain_text("would change 2 settings")
    bandwidth = page.get_by_role("row", name=re.compile("turn.max_bytes_per_second"))
    expect(bandwidth).to_contain_text("500000 (applied at once)")
    listeners = page.get_by_role("row", name=re.compile("^max_listeners"))
    expect(listeners).to_contain_text("30 (needs a restart)")
    assert info.password not in page.content()
    page.screenshot(path=str(shots / "settings.png"), full_page=True)


def test_dark_theme_overview(
    browser: Browser, server: tuple[ServerInfo, Path], shots: Path
) -> None:
    dark = signed_in(browser, server[0], color_scheme="dark")
    dark.wait_for_function(
        "() => getComputedStyle(document.body).backgroundColor === 'rgb(13, 17, 23)'"
    )
    dark.screenshot(path=str(shots / "overview-dark.png"), full_page=True)
    dark.set_viewport_size({"width": 390, "height": 844})
    assert dark.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    dark.screenshot(path=str(shots / "overview-dark-phone.png"), full_page=True)
    dark.context.close()


def test_sign_in_is_throttled_after_repeated_failures(
    browser: Browser, server: tuple[ServerInfo, Path]
) -> None:
    """Last in the module: it blocks this address's sign-ins for five minutes."""
    info, log = server
    context = new_context(browser)
    page = context.new_page()
    page.goto(info.api_url + "console/signin")
    # Five failures per address in five minutes (the first test made one already).
    for _ in range(5):
        page.get_by_label("Access key or connection string").fill("d3Jvbmc=")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_be_visible()
        if "Too many" in page.get_by_role("alert").inner_text():
            break
    page.get_by_label("Access key or connection string").fill(connection_string(info))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    assert not context.cookies()
    assert "too many failures" in log.read_text()
    context.close()
