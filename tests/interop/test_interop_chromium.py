"""Chromium's WebRTC through Passage: TURN over UDP, TCP and TLS, relay only.

Debian's ``chromium`` (headless), driven by Playwright's Python API with
``executable_path=/usr/bin/chromium`` (no browser of Playwright's own), runs in
the NAT lab, on host ``browser`` behind an endpoint-independent NAT (10.1.0.2,
leaving as 198.51.100.2); ``passage serve`` runs on the lab's internet
(203.0.113.10). One page holds two RTCPeerConnections whose only ICE server is
one Passage URL, with ``iceTransportPolicy: 'relay'``; they open a data channel
and echo a few hundred messages (``browser/relay_pair.js``). Each case asserts
that every message arrives intact both ways, that the candidate pair each
connection selected (``getStats()``: the transport's ``selectedCandidatePairId``)
joins two relayed addresses on Passage with the ``relayProtocol`` of that URL,
and that Passage's log shows those two allocations started with that client
transport and relayed the data.

Credentials are TURN REST ones from ``passage turn-credentials``, as the README
tells a web app to mint them. For ``turns:`` Chromium checks Passage's
certificate against the system trust store (NSS on Linux): the test gives it a
fresh ``$HOME`` whose ``~/.pki/nssdb`` trusts the data directory's generated CA,
made with ``certutil`` (Debian's libnss3-tools). A second browser without that
CA gathers no relayed candidate over TLS: the check is real.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from natlab.fixtures import skip_unless_available
from natlab.lab import Host, Lab
from natlab.serve import RELAY_PORTS, LabPassage
from waiting import until

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # root, in a namespace: the setuid sandbox is not there
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Nothing but the test's own traffic: no update checks, no sync, no phoning home.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCRIPTS = Path(__file__).parent / "browser"
CONNECT_TIMEOUT = 60.0
"""Seconds a page script may run before the test gives up (a passing one takes about one)."""


@dataclass(frozen=True)
class Case:
    url: str
    relay_protocol: str
    """What ``getStats()`` says the local candidate reached the TURN server over."""
    client: str
    """What Passage's log says the allocation's client transport was."""


def cases(ip: str, turn_port: int, turns_port: int) -> dict[str, Case]:
    return {
        "udp": Case(f"turn:{ip}:{turn_port}?transport=udp", "udp", "udp"),
        "tcp": Case(f"turn:{ip}:{turn_port}?transport=tcp", "tcp", "tcp"),
        "tls": Case(f"turns:{ip}:{turns_port}?transport=tcp", "tls", "tls"),
    }


def messages() -> list[dict[str, str]]:
    """One text message and 250 binary ones, 1 B to 64 KiB (SCTP splits the large
    ones into many chunks), 249 KB in all; the same every run."""
    rng = random.Random(5389)
    sizes = [(i * 37) % 1400 + 1 for i in range(248)] + [16 * 1024, 64 * 1024]
    binary = [{"bytes": base64.b64encode(rng.randbytes(n)).decode()} for n in sizes]
    return [{"text": "hello through Passage \u2713 \U0001f6f0"}, *binary]


def payload_bytes(sent: list[dict[str, str]]) -> int:
    return sum(
        len(m["text"].encode()) if "text" in m else len(base64.b64decode(m["bytes"])) for m in sent
    )


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    """Fail in CI, skip elsewhere, when Chromium or NSS's certutil is missing."""
    for path, package in ((CHROMIUM, "chromium"), (shutil.which("certutil"), "libnss3-tools")):
        if path is None or not os.access(path, os.X_OK):
            message = f"{package} is not installed (scripts/install-test-deps.sh installs it)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)


@dataclass(frozen=True)
class Stage:
    lab: Lab
    host: Host
    passage: LabPassage
    scratch: Path
    """Where each browser's ``$HOME`` and the launcher go."""


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    skip_unless_available()
    tmp = tmp_path_factory.mktemp("chromium")
    with Lab() as lab:
        site = lab.add_site("home")
        host = lab.add_host("browser", site)
        with lab.passage(tmp / "passage") as passage:
            yield Stage(lab, host, passage, tmp)


def launcher(stage: Stage) -> Path:
    """An executable that runs Chromium inside the browser host's namespace.

    Playwright starts the browser and talks to it over pipes (fds 3 and 4), which
    ``ip netns exec`` passes on; so the browser lives in the lab while the test
    drives it from here.
    """
    path = stage.scratch / "chromium-in-lab"
    command = shlex.join(stage.lab.argv(stage.host, [CHROMIUM]))
    path.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    path.chmod(0o755)
    return path


def nss_home(stage: Stage, name: str, *, trust: Path | None) -> Path:
    """A new ``$HOME`` with an empty NSS database, trusting ``trust`` as a CA if given."""
    home = stage.scratch / name
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = shutil.which("certutil")
    assert certutil is not None
    subprocess.run(
        [certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, timeout=30
    )
    if trust is not None:
        subprocess.run(
            [certutil, "-d", f"sql:{nssdb}", "-A", "-n", "Passage test CA", "-t", "C,,",
             "-i", str(trust)],
            check=True, timeout=30,
        )  # fmt: skip
    return home


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browsers(stage: Stage) -> AsyncIterator[dict[str, Browser]]:
    """Two Chromiums in the lab: ``trusting`` Passage's CA, and ``default`` (not)."""
    executable = launcher(stage)
    homes = {
        "trusting": nss_home(stage, "trusting", trust=stage.passage.info.ca_cert),
        "default": nss_home(stage, "default", trust=None),
    }
    async with async_playwright() as playwright:
        launched: dict[str, Browser] = {}
        try:
            for name, home in homes.items():
                launched[name] = await playwright.chromium.launch(
                    executable_path=executable,
                    headless=True,
                    args=CHROMIUM_FLAGS,
                    env={**os.environ, "HOME": str(home)},
                )
            yield launched
        finally:
            for browser in launched.values():
                await browser.close()


async def new_page(browser: Browser) -> Page:
    page = await browser.new_page()
    await page.set_content("<!doctype html><title>Passage WebRTC</title>")
    return page


async def run_script(page: Page, script: str, argument: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``browser/<script>`` with ``argument``; on a hang, fail with its trace."""
    source = (SCRIPTS / script).read_text()
    try:
        result: dict[str, Any] = await asyncio.wait_for(
            page.evaluate(source, argument), CONNECT_TIMEOUT
        )
    except TimeoutError:
        trace = await page.evaluate("window.passageTrace")
        pytest.fail(f"{script} did not finish: {json.dumps(trace)}")
    return result


def turn_credentials(passage: LabPassage, user: str) -> tuple[str, str]:
    """``passage turn-credentials`` for ``user``, signed with the server's generated secret."""
    done = subprocess.run(
        [sys.executable, "-m", "passage", "turn-credentials", "--user", user, "--ttl", "600",
         "--json", "--data-dir", str(passage.info.data_dir)],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    printed = json.loads(done.stdout)
    return printed["username"], printed["password"]


def allocation_lines(passage: LabPassage, username: str, event: str) -> list[str]:
    return [
        line
        for line in passage.log.read_text().splitlines()
        if f" {event}" in line and f"user={username} " in line
    ]


def assert_relay_pair(end: dict[str, Any], case: Case, passage: LabPassage) -> None:
    """One transport (bundled), its selected pair from a relayed address on Passage,
    over the case's protocol, to a relayed address on Passage."""
    low, high = RELAY_PORTS
    assert end["transports"] == 1, end
    pair, local, remote = end["pair"], end["local"], end["remote"]
    assert pair is not None and pair["nominated"] and pair["writable"], pair
    assert local["candidateType"] == "relay", local
    assert local["relayProtocol"] == case.relay_protocol, local
    assert local["url"] == case.url, local
    assert local["protocol"] == "udp", local  # relayed addresses are UDP (RFC 8656)
    assert remote["candidateType"] == "relay", remote
    for candidate in (local, remote):
        assert candidate["address"] == passage.ip, candidate
        assert low <= candidate["port"] <= high, candidate


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_chromium_data_channel_through_passage(
    stage: Stage, browsers: dict[str, Browser], transport: str
) -> None:
    passage = stage.passage
    case = cases(passage.ip, passage.info.turn_port, passage.info.turns_port)[transport]
    username, password = turn_credentials(passage, f"chromium-{transport}")
    sent = messages()
    page = await new_page(browsers["trusting"])
    try:
        result = await run_script(
            page,
            "relay_pair.js",
            {"iceServer": {"urls": case.url, "username": username, "credential": password},
             "messages": sent},
        )  # fmt: skip
    finally:
        await page.close()

    # Every message arrived, in order and byte for byte, and came back.
    assert result["atCallee"] == sent
    assert result["echoed"] == sent
    # Each end chose a pair of two relayed addresses on Passage, over this transport.
    caller, callee = result["caller"], result["callee"]
    assert_relay_pair(caller, case, passage)
    assert_relay_pair(callee, case, passage)
    relayed = {
        "caller": (caller["local"]["address"], caller["local"]["port"]),
        "callee": (callee["local"]["address"], callee["local"]["port"]),
    }
    assert relayed["caller"] != relayed["callee"]
    assert (caller["remote"]["address"], caller["remote"]["port"]) == relayed["callee"]
    assert (callee["remote"]["address"], callee["remote"]["port"]) == relayed["caller"]

    # Passage made those two allocations for this user, over this client transport,
    # from the browser's NAT ...
    started = allocation_lines(passage, username, "started:")
    assert len(started) == 2, started
    assert stage.host.site is not None
    for line in started:
        assert f" client={case.client} {stage.host.site.ip}:" in line, line
    in_log = {m.group(1) for line in started for m in [re.search(r" relayed=(\S+) ", line)] if m}
    assert in_log == {f"{ip}:{port}" for ip, port in relayed.values()}
    # ... and relayed the data: closing the page ends them, each with everything sent
    # to its peer counted (the messages, and the echoes, plus DTLS and SCTP framing).
    await until(lambda: len(allocation_lines(passage, username, "ended")) == 2)
    payload = payload_bytes(sent)
    for line in allocation_lines(passage, username, "ended"):
        to_peer = int(line.split(" to peer ")[1].split(" B/")[0])
        assert to_peer >= payload, line


async def test_chromium_checks_passage_certificate(
    stage: Stage, browsers: dict[str, Browser]
) -> None:
    """Without the generated CA in its trust store, Chromium refuses Passage's TLS
    certificate: gathering over ``turns:`` ends with no relayed candidate and an
    icecandidateerror for that URL, while the same browser gathers one over plain
    TURN/TCP. (The ``tls`` case above, with the CA trusted, gets through: the
    certificate names the address dialled.)"""
    passage = stage.passage
    urls = cases(passage.ip, passage.info.turn_port, passage.info.turns_port)
    username, password = turn_credentials(passage, "chromium-untrusted")
    page = await new_page(browsers["default"])
    gathered = {}
    try:
        for transport in ("tls", "tcp"):
            server = {"urls": urls[transport].url, "username": username, "credential": password}
            gathered[transport] = await run_script(page, "gather.js", {"iceServer": server})
    finally:
        await page.close()
    refused = gathered["tls"]
    assert refused["candidates"] == [], refused
    assert refused["iceErrors"], refused
    assert {error["url"] for error in refused["iceErrors"]} == {urls["tls"].url}, refused
    plain = gathered["tcp"]
    assert len(plain["candidates"]) == 1, plain
    assert f" {passage.ip} " in plain["candidates"][0] and " typ relay " in plain["candidates"][0]
    # Passage saw only the TURN/TCP allocation.
    started = allocation_lines(passage, username, "started:")
    assert len(started) == 1 and " client=tcp " in started[0], started


SHARED_SECRET = ("--auth-secret", "one deployment's secret")
"""Nodes of one deployment share it, and with it the key of their nonces: libwebrtc keeps
its nonce when it follows 300 Try Alternate, and gives up on a 438 to an Allocate."""

HOLD_RELAY = """async ({ iceServer }) => {
  // One RTCPeerConnection that keeps its allocation until the page closes.
  const pc = new RTCPeerConnection({ iceServers: [iceServer], iceTransportPolicy: "relay" });
  window.held = pc;
  const relayed = new Promise((resolve) => {
    pc.onicecandidate = (event) => resolve(event.candidate ? event.candidate.candidate : null);
  });
  pc.createDataChannel("hold");
  await pc.setLocalDescription();
  return await relayed;
}"""


async def test_chromium_follows_300_try_alternate_to_a_second_passage(
    stage: Stage, browsers: dict[str, Browser]
) -> None:
    """A draining Passage answers Chromium's Allocate with 300 Try Alternate naming a
    second Passage; Chromium (libwebrtc's TurnPort) allocates there instead, while the
    allocation it already held on the first one lives on until its page closes, and then
    the first one's drain ends by itself."""
    ip = stage.passage.ip
    second_ports = {"turn_port": 3480, "turns_port": 4443, "api_port": 8444,
                    "relay_ports": (49408, 49663)}  # fmt: skip
    first_ports = {"turn_port": 3490, "turns_port": 4453, "api_port": 8454,
                   "relay_ports": (49664, 49919)}  # fmt: skip
    with (
        stage.lab.passage(
            stage.scratch / "second" / "data",
            *SHARED_SECRET,
            **second_ports,  # type: ignore[arg-type]
        ) as second,
        stage.lab.passage(
            stage.scratch / "first" / "data",
            "--alternate-server",
            f"{ip}:3480",
            *SHARED_SECRET,
            **first_ports,  # type: ignore[arg-type]
        ) as first,
    ):
        info = first.info
        server = {"urls": f"turn:{ip}:3490?transport=udp", "username": info.username,
                  "credential": info.password}  # fmt: skip
        holder = await new_page(browsers["trusting"])
        try:
            held = await asyncio.wait_for(
                holder.evaluate(HOLD_RELAY, {"iceServer": server}), CONNECT_TIMEOUT
            )
            assert held is not None and " typ relay " in held, held
            first.process.send_signal(signal.SIGTERM)
            await until(lambda: "draining (SIGTERM)" in first.log.read_text())

            page = await new_page(browsers["trusting"])
            try:
                gathered = await run_script(page, "gather.js", {"iceServer": server})
            finally:
                await page.close()
            (candidate,) = gathered["candidates"]
            port = int(candidate.split()[5])  # foundation component protocol priority ip port
            low, high = second_ports["relay_ports"]  # type: ignore[misc]
            assert f" {ip} " in candidate and low <= port <= high, candidate
            started = [line for line in second.log.read_text().splitlines()
                       if " started: user=alice " in line and " client=udp " in line]  # fmt: skip
            assert len(started) == 1, started
            assert first.process.poll() is None  # still draining: the held allocation lives
            await holder.evaluate("window.held.close()")  # libwebrtc deletes its allocation
            await until(lambda: first.process.poll() is not None)  # the drain is over
        finally:
            await holder.close()
    text = first.log.read_text()
    assert "new Allocates get 300 Try Alternate" in text and "drained:" in text, text[-3000:]
