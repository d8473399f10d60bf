"""The ``--json`` document and the readable report, from typed results (docs/doctor.md)."""

from __future__ import annotations

import json

from passage.doctor.render import describe_nat, describe_path, describe_transport, render_report
from passage.doctor.report import (
    JSON_VERSION,
    CredentialsReport,
    NatReport,
    Outcome,
    PathReport,
    Report,
    TransportResult,
    Via,
    report_json,
)
from passage.doctor.stats import LoopStats
from passage.doctor.targets import default_targets
from passage.stun.discovery import FilteringBehavior, MappingBehavior

_, (UDP, TCP, TLS5349, TLS443) = default_targets("203.0.113.10")

NAT = NatReport(
    local=("10.1.0.2", 40000),
    mapped=("198.51.100.2", 40000),
    other_address=("203.0.113.11", 3479),
    mapping=MappingBehavior.ENDPOINT_INDEPENDENT,
    filtering=FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT,
)
TRANSPORTS = (
    TransportResult(UDP, Outcome.ALLOCATED, 0.0031234, mapped=("198.51.100.2", 40000),
                    relayed=("203.0.113.10", 49200)),
    TransportResult(TCP, Outcome.CONNECT_FAILED, 1.0, "timed out"),
    TransportResult(TLS5349, Outcome.TLS_FAILED, 0.02, "certificate: unable to get local issuer"),
    TransportResult(TLS443, Outcome.REFUSED, 0.015, "401 Unauthenticated", 401),
)  # fmt: skip
STATS = LoopStats(
    sent=50, received=49, duplicates=1, reordered=2, rtt_min=0.0004, rtt_median=0.0006,
    rtt_mean=0.00065, rtt_p95=0.0011, rtt_max=0.002, jitter=0.0001,
)  # fmt: skip
PATH = PathReport(UDP, Via.RELAY, STATS, 1.0, 0.02, 172)
REPORT = Report(
    "203.0.113.10", CredentialsReport("static"), NAT, TRANSPORTS, PATH, "direct_likely",
    "The NAT maps endpoint-independently.", 0,
)  # fmt: skip


def test_the_json_document_has_every_field_docs_doctor_md_names() -> None:
    document = json.loads(json.dumps(report_json(REPORT)))
    assert set(document) == {
        "version", "server", "credentials", "nat", "transports", "path", "verdict", "exit_status",
    }  # fmt: skip
    assert document["version"] == JSON_VERSION == 1
    assert document["credentials"] == {"source": "static", "error": None}
    assert document["nat"] == {
        "local": "10.1.0.2:40000", "mapped": "198.51.100.2:40000",
        "other_address": "203.0.113.11:3479", "behind_nat": True,
        "mapping": "endpoint_independent", "filtering": "address_and_port_dependent",
        "alg": False, "note": "",
    }  # fmt: skip
    udp, tcp, tls, tls443 = document["transports"]
    assert udp == {
        "transport": "udp", "host": "203.0.113.10", "port": 3478, "outcome": "allocated",
        "reached": True, "ms": 3.12, "detail": "", "error_code": None,
        "mapped": "198.51.100.2:40000", "relayed": "203.0.113.10:49200",
    }  # fmt: skip
    assert (tcp["outcome"], tcp["reached"], tcp["detail"]) == ("connect_failed", False, "timed out")
    assert (tls["outcome"], tls["reached"]) == ("tls_failed", False)
    assert (tls443["outcome"], tls443["reached"], tls443["error_code"]) == ("refused", True, 401)
    path = document["path"]
    assert (path["via"], path["transport"], path["port"], path["sent"], path["lost"]) == (
        "relay", "udp", 3478, 50, 1,
    )  # fmt: skip
    assert path["loss"] == 0.02 and path["jitter_ms"] == 0.1
    assert path["rtt_ms"] == {"min": 0.4, "median": 0.6, "mean": 0.65, "p95": 1.1, "max": 2.0}
    assert document["verdict"] == {
        "media_path": "direct_likely", "summary": "The NAT maps endpoint-independently.",
    }  # fmt: skip
    assert document["exit_status"] == 0


def test_unknowns_are_said_as_such() -> None:
    unknown = NatReport(note="no answer to a STUN Binding request over UDP")
    document = report_json(Report("h", CredentialsReport("none"), unknown, (), None, "nothing",
                                  "No transport reached the relay.", 1))  # fmt: skip
    assert document["nat"]["mapping"] == document["nat"]["filtering"] == "unknown"
    assert document["nat"]["behind_nat"] is None
    assert document["path"] is None
    assert describe_nat(unknown) == (
        "NAT behaviour unknown: no answer to a STUN Binding request over UDP"
    )


def test_the_readable_report_reads_top_to_bottom() -> None:
    text = render_report(REPORT)
    lines = text.splitlines()
    assert lines[0] == "passage doctor: 203.0.113.10 (credentials: static)"
    assert "  mapped address    198.51.100.2:40000 (behind a NAT)" in lines
    assert "  mapping           endpoint-independent" in lines
    assert "  filtering         address- and port-dependent" in lines
    transports = lines[lines.index("Transports to the relay") + 1 :][:4]
    assert [line.split()[:3] for line in transports] == [
        ["UDP", "3478", "allocated"], ["TCP", "3478", "no"], ["TLS", "5349", "TLS"],
        ["TLS", "443", "refused"],
    ]  # fmt: skip
    assert transports[0].endswith("relayed 203.0.113.10:49200")
    assert "timed out" in transports[1] and "401 Unauthenticated" in transports[3]
    assert any(line.startswith("Through the relay over UDP 3478 (1 s, 50 probes") for line in lines)
    assert "  round trip   min 0.40 ms, median 0.60 ms, p95 1.10 ms, max 2.00 ms" in lines
    assert "  loss         2.0% (1 of 50 lost), 1 duplicated, 2 reordered" in lines
    assert lines[-2:] == ["Verdict: direct likely", "  The NAT maps endpoint-independently."]


def test_progress_lines() -> None:
    assert describe_transport(TRANSPORTS[0]).split() == [
        "UDP", "3478", "allocated", "3.12", "ms", "relayed", "203.0.113.10:49200",
    ]  # fmt: skip
    assert describe_nat(NAT) == (
        "NAT mapping endpoint-independent, filtering address- and port-dependent"
    )
    assert describe_path(PATH) == "UDP 3478: round trip 0.60 ms median, jitter 0.10 ms, 2.0% lost"
    to_server = PathReport(TCP, Via.SERVER, STATS, 1.0, 0.02, 172, "measured to the server: x")
    assert "To the server (not relayed) over TCP 3478" in render_report(
        Report("h", CredentialsReport("none"), NAT, TRANSPORTS, to_server, "relay_tcp", "s", 0)
    )
