"""``passage doctor`` in the NAT lab: one scenario per verdict, against a real ``passage serve``.

One lab for the module: a site per network kind, a public host, and two
Passage servers in the server namespace. Passage A has a second address for
RFC 5780 (``--alt-ip 203.0.113.11``) and TURN over TLS on 5349 and 443;
Passage B (other ports) has no second address. Every scenario's doctor runs
as its own process inside its host's namespace, all at once (they share
nothing but the servers), and each test reads its scenario's result.

| scenario | host | network | verdict |
| --- | --- | --- | --- |
| ``eim`` | alice | EIM NAT (APDF filtering) | direct likely |
| ``public`` | pat | no NAT | direct likely |
| ``unknown`` | alice, against Passage B | EIM NAT, no OTHER-ADDRESS | direct possible |
| ``symmetric`` | sam | symmetric NAT | relay over UDP |
| ``udp-blocked`` | tom | UDP dropped | relay over TCP |
| ``tls-only`` | tina | UDP and TCP 3478 dropped | relay over TLS (5349) |
| ``corp`` | carol | only TCP 443 out | relay over TLS on 443 |
| ``closed`` | nobody | UDP and TCP dropped | nothing gets through (exit 1) |
| ``refused`` | alice, wrong password | EIM NAT | direct likely, exit 3 |
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from natlab import Firewall, Host, Lab, Nat, netns
from natlab.fixtures import skip_unless_available
from natlab.serve import LabPassage

TIMEOUT = "1"
"""Seconds per probe: the lab loses nothing, so an answer that is not back in a
second is one a firewall dropped (the drop counters prove which)."""
DURATION = "1"
B_PORTS = {"turn_port": 3490, "turns_port": 5350, "api_port": 8444, "relay_ports": (49408, 49663)}


@dataclass(frozen=True)
class Scenario:
    host: str
    args: tuple[str, ...]
    server: str = "a"
    json: bool = True


@dataclass(frozen=True)
class Run:
    scenario: Scenario
    process: subprocess.CompletedProcess[str]

    @property
    def report(self) -> dict[str, Any]:
        assert self.scenario.json
        document: dict[str, Any] = json.loads(self.process.stdout)
        return document

    def transports(self) -> dict[str, dict[str, Any]]:
        """``{"UDP 3478": {...}, ...}``."""
        return {f"{t['transport'].upper()} {t['port']}": t for t in self.report["transports"]}

    def outcomes(self) -> dict[str, str]:
        return {label: t["outcome"] for label, t in self.transports().items()}


@dataclass(frozen=True)
class World:
    lab: Lab
    a: LabPassage
    b: LabPassage
    runs: dict[str, Run]


def _static(passage: LabPassage, *more: str) -> tuple[str, ...]:
    info = passage.info
    return (
        info.host, "--turn-user", info.username, "--turn-password", info.password,
        "--ca-file", str(info.ca_cert), "--port", str(info.turn_port),
        "--tls-port", str(info.turns_port), *more,
    )  # fmt: skip


def _scenarios(a: LabPassage, b: LabPassage) -> dict[str, Scenario]:
    a_tls = ("--tls-port", "443")
    return {
        "eim": Scenario("alice", ("--connection-string", a.info.connection_string(),
                                  "--ca-file", str(a.info.ca_cert))),
        "public": Scenario("pat", _static(a, *a_tls)),
        "unknown": Scenario("alice", _static(b), server="b"),
        "symmetric": Scenario("sam", (a.ip, "--data-dir", str(a.info.data_dir), *a_tls)),
        "udp-blocked": Scenario("tom", _static(a, *a_tls)),
        "tls-only": Scenario("tina", _static(a, *a_tls)),
        "corp": Scenario("carol", _static(a, *a_tls)),
        "corp-text": Scenario("carol", _static(a, *a_tls), json=False),
        "closed": Scenario("nobody", _static(a, *a_tls)),
        "refused": Scenario("alice", (a.ip, "--turn-user", "alice", "--turn-password", "nope",
                                      "--ca-file", str(a.info.ca_cert), *a_tls)),
    }  # fmt: skip


def _build(lab: Lab) -> dict[str, Host]:
    sites = {
        "alice": lab.add_site("eim", Nat.ENDPOINT_INDEPENDENT),
        "sam": lab.add_site("sym", Nat.SYMMETRIC),
        "tom": lab.add_site("noudp", Nat.ENDPOINT_INDEPENDENT, Firewall.UDP_BLOCKED),
        "tina": lab.add_site("tlsonly", Nat.ENDPOINT_INDEPENDENT, Firewall.UDP_BLOCKED),
        "carol": lab.add_site("corp", Nat.ENDPOINT_INDEPENDENT, Firewall.TCP_443_ONLY),
        "nobody": lab.add_site("closed", Nat.ENDPOINT_INDEPENDENT, Firewall.ALL_BLOCKED),
    }
    # The TLS-only site also drops TCP to the TURN port: only TURN over TLS leaves.
    lab.run(sites["tina"], [netns.tool("nft"), "insert", "rule", "ip", "natlab", "forward",
                            "iifname", "lan", "tcp", "dport", "3478", "drop"])  # fmt: skip
    hosts = {name: lab.add_host(name, site) for name, site in sites.items()}
    hosts["pat"] = lab.add_host("pat")
    return hosts


def _doctor(lab: Lab, host: Host, scenario: Scenario) -> subprocess.Popen[str]:
    argv = ["-m", "passage", "doctor", *scenario.args, "--duration", DURATION]
    argv += ["--timeout", TIMEOUT] + (["--json"] if scenario.json else [])
    return lab.python(host, *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    skip_unless_available()
    tmp = tmp_path_factory.mktemp("doctor-lab")
    with ExitStack() as stack:
        lab = stack.enter_context(Lab())
        hosts = _build(lab)
        alt = ("--alt-ip", lab.server.alt_ip, "--turns-extra-port", "443")
        a = stack.enter_context(lab.passage(tmp / "a" / "data", *alt, turns_port=5349))
        b = stack.enter_context(lab.passage(tmp / "b" / "data", **B_PORTS))  # type: ignore[arg-type]
        scenarios = _scenarios(a, b)
        started = {name: _doctor(lab, hosts[s.host], s) for name, s in scenarios.items()}
        runs = {}
        for name, process in started.items():
            out, err = process.communicate(timeout=120)
            runs[name] = Run(
                scenarios[name], subprocess.CompletedProcess([], process.returncode, out, err)
            )
        yield World(lab, a, b, runs)


def verdict(run: Run) -> tuple[str, int]:
    assert run.process.returncode in (0, 1, 3), run.process.stderr
    return run.report["verdict"]["media_path"], run.report["exit_status"]


def test_eim_nat_direct_likely(world: World) -> None:
    run = world.runs["eim"]
    assert verdict(run) == ("direct_likely", 0)
    assert run.process.returncode == 0
    report = run.report
    nat = report["nat"]
    assert (nat["mapping"], nat["filtering"]) == (
        "endpoint_independent",
        "address_and_port_dependent",
    )
    assert nat["behind_nat"] is True and nat["mapped"].startswith(world.lab.sites["eim"].ip + ":")
    assert nat["other_address"] == f"{world.lab.server.alt_ip}:3479"
    # The relay configuration named the four transports; every one allocated.
    assert run.outcomes() == {"UDP 3478": "allocated", "TCP 3478": "allocated",
                              "TLS 5349": "allocated", "TLS 443": "allocated"}  # fmt: skip
    assert report["credentials"] == {"source": "connection-string", "error": None}
    path = report["path"]
    assert (path["via"], path["transport"], path["port"]) == ("relay", "udp", 3478)
    assert path["received"] > 0 and path["rtt_ms"]["median"] > 0


def test_public_host_direct_likely(world: World) -> None:
    run = world.runs["public"]
    assert verdict(run) == ("direct_likely", 0)
    nat = run.report["nat"]
    assert nat["behind_nat"] is False
    assert nat["mapped"] == nat["local"] and nat["local"].startswith(world.lab.hosts["pat"].ip)
    # Nothing filters a public host: the answer from the other address comes in.
    assert (nat["mapping"], nat["filtering"]) == ("endpoint_independent", "endpoint_independent")


def test_server_without_second_address_direct_possible(world: World) -> None:
    run = world.runs["unknown"]
    assert verdict(run) == ("direct_possible", 0)
    nat = run.report["nat"]
    assert (nat["mapping"], nat["filtering"], nat["other_address"]) == ("unknown", "unknown", None)
    assert "the server has no second address" in nat["note"]
    assert "the server has no second address" in run.report["verdict"]["summary"]
    assert run.outcomes() == {"UDP 3490": "allocated", "TCP 3490": "allocated",
                              "TLS 5350": "allocated"}  # fmt: skip


def test_symmetric_nat_relay_over_udp(world: World) -> None:
    run = world.runs["symmetric"]
    assert verdict(run) == ("relay_udp", 0)
    assert run.report["nat"]["mapping"] == "address_and_port_dependent"
    assert run.report["credentials"]["source"] == "data-dir"  # minted from Passage A's secret
    assert run.outcomes()["UDP 3478"] == "allocated"
    assert run.report["path"]["via"] == "relay" and run.report["path"]["transport"] == "udp"


def test_udp_blocked_relay_over_tcp(world: World) -> None:
    run = world.runs["udp-blocked"]
    assert verdict(run) == ("relay_tcp", 0)
    assert run.outcomes() == {"UDP 3478": "no_answer", "TCP 3478": "allocated",
                              "TLS 5349": "allocated", "TLS 443": "allocated"}  # fmt: skip
    assert run.report["nat"]["note"] == "no answer to a STUN Binding request over UDP"
    path = run.report["path"]
    assert (path["via"], path["transport"], path["port"]) == ("relay", "tcp", 3478)
    assert world.lab.counters(world.lab.sites["noudp"])["udp_out_dropped"] > 0


def test_tls_only_relay_over_tls(world: World) -> None:
    run = world.runs["tls-only"]
    assert verdict(run) == ("relay_tls", 0)
    outcomes = run.outcomes()
    assert (outcomes["UDP 3478"], outcomes["TCP 3478"]) == ("no_answer", "connect_failed")
    assert (outcomes["TLS 5349"], outcomes["TLS 443"]) == ("allocated", "allocated")
    assert run.transports()["TCP 3478"]["detail"] == "timed out"
    path = run.report["path"]
    assert (path["via"], path["transport"], path["port"]) == ("relay", "tls", 5349)


def test_tcp_443_only_relay_over_tls_on_443(world: World) -> None:
    run = world.runs["corp"]
    assert verdict(run) == ("relay_tls_443", 0)
    assert run.outcomes() == {"UDP 3478": "no_answer", "TCP 3478": "connect_failed",
                              "TLS 5349": "connect_failed", "TLS 443": "allocated"}  # fmt: skip
    path = run.report["path"]
    assert (path["via"], path["transport"], path["port"]) == ("relay", "tls", 443)
    assert path["received"] > 0
    dropped = world.lab.counters(world.lab.sites["corp"])
    assert dropped["udp_out_dropped"] > 0 and dropped["tcp_out_dropped"] > 0


def test_closed_site_nothing_gets_through_and_exits_1(world: World) -> None:
    run = world.runs["closed"]
    assert run.process.returncode == 1
    assert verdict(run) == ("nothing", 1)
    assert set(run.outcomes().values()) == {"no_answer", "connect_failed"}
    assert run.report["path"] is None
    assert not any(t["reached"] for t in run.report["transports"])


def test_refused_credentials_exit_3_with_the_network_verdict(world: World) -> None:
    run = world.runs["refused"]
    assert run.process.returncode == 3
    assert verdict(run) == ("direct_likely", 3)
    transports = run.transports().values()
    assert {(t["outcome"], t["error_code"]) for t in transports} == {("refused", 401)}
    assert "granted no allocation" in run.report["verdict"]["summary"]
    assert run.report["path"]["via"] == "server"  # no allocation: Binding round trips instead


def test_the_readable_report_and_its_progress(world: World) -> None:
    run = world.runs["corp-text"]
    assert run.process.returncode == 0, run.process.stderr
    lines = run.process.stdout.splitlines()
    assert lines[0] == "passage doctor: 203.0.113.10 (credentials: static)"
    transports = lines[lines.index("Transports to the relay") + 1 :][:4]
    labels = [line.strip().split("  ")[0] for line in transports]
    assert labels == ["UDP 3478", "TCP 3478", "TLS 5349", "TLS 443"]
    assert "no answer" in transports[0] and "no connection" in transports[1]
    assert "allocated" in transports[3] and "relayed 203.0.113.10:" in transports[3]
    assert any(line.startswith("Through the relay over TLS 443 (1 s, 50 probes") for line in lines)
    verdict_at = lines.index("Verdict: relay over TLS on 443")
    assert "UDP does not reach the relay; TLS 443 does (a firewall" in " ".join(lines[verdict_at:])
    # Progress went to stderr as it happened (not a terminal: a line per step).
    progress = run.process.stderr.splitlines()
    assert progress[0].startswith("doctor: probing 4 transports")
    assert any(line.startswith("doctor: TLS 443") and "allocated" in line for line in progress)
    assert progress[-1].startswith("doctor: TLS 443: round trip")


def test_passage_logged_the_doctors_allocations(world: World) -> None:
    """The relay saw the doctor's allocations and their relayed traffic (not a stub answering)."""
    log = world.a.log.read_text()
    assert "user=alice" in log and "client=tls" in log
