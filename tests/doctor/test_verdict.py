"""The verdict table: which media path to expect, and the exit status (docs/doctor.md)."""

from __future__ import annotations

import pytest

from passage.doctor.report import NatReport, Outcome, TransportResult
from passage.doctor.targets import default_targets
from passage.doctor.verdict import ExitStatus, MediaPath, exit_status, judge, no_allocation
from passage.stun.discovery import FilteringBehavior, MappingBehavior

_, TARGETS = default_targets("relay.example")  # UDP 3478, TCP 3478, TLS 5349, TLS 443
EIM, ADM, APDM = (
    MappingBehavior.ENDPOINT_INDEPENDENT,
    MappingBehavior.ADDRESS_DEPENDENT,
    MappingBehavior.ADDRESS_AND_PORT_DEPENDENT,
)
EIF, APDF = FilteringBehavior.ENDPOINT_INDEPENDENT, FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT
LOCAL, MAPPED = ("10.1.0.2", 40000), ("198.51.100.2", 40000)


def results(*reached: str, outcome: Outcome = Outcome.ALLOCATED) -> list[TransportResult]:
    """The four default transports; those named (``UDP 3478``, ``TLS 443``) reached the relay."""
    return [
        TransportResult(t, outcome if t.label in reached else Outcome.NO_ANSWER, 0.01)
        for t in TARGETS
    ]


def nat(mapping: MappingBehavior | None, filtering: FilteringBehavior | None = APDF) -> NatReport:
    return NatReport(local=LOCAL, mapped=MAPPED, mapping=mapping, filtering=filtering)


ALL = ("UDP 3478", "TCP 3478", "TLS 5349", "TLS 443")


@pytest.mark.parametrize(
    ("reached", "nat_report", "expected"),
    [
        (ALL, nat(EIM), MediaPath.DIRECT_LIKELY),
        (ALL, NatReport(local=MAPPED, mapped=MAPPED), MediaPath.DIRECT_LIKELY),  # no NAT
        (ALL, nat(APDM, EIF), MediaPath.DIRECT_LIKELY),  # anyone may send to the mapping
        (ALL, nat(APDM), MediaPath.RELAY_UDP),
        (ALL, nat(ADM), MediaPath.RELAY_UDP),
        (ALL, NatReport(local=LOCAL, mapped=MAPPED, note="no second address"),
         MediaPath.DIRECT_POSSIBLE),
        (("TCP 3478", "TLS 5349", "TLS 443"), nat(EIM), MediaPath.RELAY_TCP),
        (("TLS 5349", "TLS 443"), nat(None), MediaPath.RELAY_TLS),
        (("TLS 443",), nat(None), MediaPath.RELAY_TLS_443),
        ((), nat(EIM), MediaPath.NOTHING),
    ],
    ids=["eim", "no-nat", "eif", "symmetric", "address-dependent", "unknown", "tcp",
         "tls", "tls-443", "nothing"],
)  # fmt: skip
def test_the_best_transport_and_the_nat_decide(
    reached: tuple[str, ...], nat_report: NatReport, expected: MediaPath
) -> None:
    path, summary = judge(results(*reached), nat_report)
    assert path is expected
    assert summary


def test_preference_is_by_transport_not_by_listing_order() -> None:
    tls_first = [r for r in reversed(results(*ALL))]
    assert judge(tls_first, nat(APDM))[0] is MediaPath.RELAY_UDP


def test_a_refused_allocate_still_proves_the_path() -> None:
    refused = results("UDP 3478", outcome=Outcome.REFUSED)
    assert judge(refused, nat(EIM))[0] is MediaPath.DIRECT_LIKELY
    assert exit_status(MediaPath.DIRECT_LIKELY, refused, credentials_expected=True) is (
        ExitStatus.NO_ALLOCATION
    )


def test_direct_possible_says_why_the_nat_is_unknown() -> None:
    unknown = NatReport(local=LOCAL, mapped=MAPPED, note="the server has no second address")
    assert "the server has no second address" in judge(results(*ALL), unknown)[1]


@pytest.mark.parametrize(
    ("path", "outcome", "expected_credentials", "status"),
    [
        (MediaPath.DIRECT_LIKELY, Outcome.ALLOCATED, True, ExitStatus.OK),
        (MediaPath.RELAY_TLS_443, Outcome.ALLOCATED, True, ExitStatus.OK),
        (MediaPath.DIRECT_LIKELY, Outcome.ANSWERED, False, ExitStatus.OK),  # STUN only
        (MediaPath.DIRECT_LIKELY, Outcome.ANSWERED, True, ExitStatus.NO_ALLOCATION),
        (MediaPath.NOTHING, Outcome.NO_ANSWER, True, ExitStatus.NOTHING_GETS_THROUGH),
        (MediaPath.NOTHING, Outcome.NO_ANSWER, False, ExitStatus.NOTHING_GETS_THROUGH),
    ],
)
def test_exit_status(
    path: MediaPath, outcome: Outcome, expected_credentials: bool, status: ExitStatus
) -> None:
    found = results(*ALL, outcome=outcome)
    assert exit_status(path, found, credentials_expected=expected_credentials) is status
    assert [int(s) for s in ExitStatus] == [0, 1, 2, 3]


def test_no_allocation_names_the_refusal_or_the_credentials_problem() -> None:
    refused = [TransportResult(TARGETS[0], Outcome.REFUSED, 0.01, "401 Unauthenticated", 401)]
    assert "401 Unauthenticated" in no_allocation(refused, None)
    assert "cannot reach relay.example:8443" in no_allocation(
        results(*ALL, outcome=Outcome.ANSWERED), "cannot reach relay.example:8443"
    )


def test_every_verdict_has_a_headline() -> None:
    assert MediaPath.RELAY_TLS_443.headline == "relay over TLS on 443"
    assert len({path.headline for path in MediaPath}) == len(MediaPath)
