"""The readable report of ``passage doctor``, and its progress lines. Pure: values in, text out.

docs/doctor.md shows a report and says what each line means.
"""

from __future__ import annotations

import textwrap

from passage.addresses import Address

from .report import NatReport, Outcome, PathReport, Report, TransportResult, Via, shown_address
from .verdict import MediaPath

__all__ = ["describe_nat", "describe_path", "describe_transport", "render_report"]

_WIDTH = 78

_BEHAVIOUR = {
    "endpoint_independent": "endpoint-independent",
    "address_dependent": "address-dependent",
    "address_and_port_dependent": "address- and port-dependent",
}

_OUTCOME = {
    Outcome.ALLOCATED: "allocated",
    Outcome.ANSWERED: "answered",
    Outcome.REFUSED: "refused",
    Outcome.NO_ANSWER: "no answer",
    Outcome.CONNECT_FAILED: "no connection",
    Outcome.TLS_FAILED: "TLS failed",
}


def render_report(report: Report) -> str:
    """The whole report, for stdout."""
    lines = [f"passage doctor: {report.server} (credentials: {_credentials(report)})", ""]
    lines += ["NAT behaviour (RFC 5780)", *_nat_lines(report.nat), ""]
    lines.append("Transports to the relay")
    lines += [f"  {describe_transport(result)}" for result in report.transports]
    lines.append("")
    if report.path is not None:
        lines += [*_path_lines(report.path), ""]
    lines.append(f"Verdict: {_headline(report.media_path)}")
    lines += textwrap.wrap(report.summary, _WIDTH, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines) + "\n"


def describe_transport(result: TransportResult) -> str:
    """``UDP 3478   allocated   3.1 ms   relayed 203.0.113.10:49200``: one probe, one line."""
    text = f"{result.target.label:<9}  {_OUTCOME[result.outcome]:<13}  {_ms(result.seconds):>9}"
    if result.relayed is not None:
        text += f"   relayed {_address(result.relayed)}"
    elif result.mapped is not None and result.outcome is Outcome.ANSWERED:
        text += f"   mapped {_address(result.mapped)}"
    if result.detail:
        text += f"   {result.detail}"
    return text


def describe_nat(nat: NatReport) -> str:
    """The NAT's behaviour in one line, for progress."""
    if nat.mapping is None and nat.filtering is None:
        return f"NAT behaviour unknown: {nat.note}" if nat.note else "NAT behaviour unknown"
    return f"NAT mapping {_behaviour(nat.mapping)}, filtering {_behaviour(nat.filtering)}"


def describe_path(path: PathReport) -> str:
    """Round trip, jitter and loss in one line, for progress."""
    stats = path.stats
    lost = f"{stats.loss:.1%} lost"
    if stats.rtt_median is None:
        return f"{path.target.label}: nothing came back ({lost})"
    return (
        f"{path.target.label}: round trip {_ms(stats.rtt_median)} median, "
        f"jitter {_ms(stats.jitter)}, {lost}"
    )


def _credentials(report: Report) -> str:
    credentials = report.credentials
    if credentials.error:
        return f"{credentials.source}, failed: {credentials.error}"
    if credentials.source == "none":
        return "none, so STUN Binding only"
    return credentials.source


def _nat_lines(nat: NatReport) -> list[str]:
    behind = {True: " (behind a NAT)", False: " (no NAT)", None: ""}[nat.behind_nat]
    lines = [
        f"  local address     {_address(nat.local)}",
        f"  mapped address    {_address(nat.mapped)}{behind}",
        f"  mapping           {_behaviour(nat.mapping)}",
        f"  filtering         {_behaviour(nat.filtering)}",
    ]
    if nat.alg:
        lines.append("  warning           MAPPED-ADDRESS was rewritten on the way (an ALG)")
    if nat.note:
        lines += textwrap.wrap(
            f"note: {nat.note}", _WIDTH, initial_indent="  ", subsequent_indent="        "
        )
    return lines


def _path_lines(path: PathReport) -> list[str]:
    stats = path.stats
    where = "Through the relay" if path.via is Via.RELAY else "To the server (not relayed)"
    lines = [
        f"{where} over {path.target.label} ({path.duration:g} s, {stats.sent} probes of "
        f"{path.size} bytes every {path.interval * 1000:g} ms)"
    ]
    if stats.rtt_min is not None:
        lines.append(
            f"  round trip   min {_ms(stats.rtt_min)}, median {_ms(stats.rtt_median)}, "
            f"p95 {_ms(stats.rtt_p95)}, max {_ms(stats.rtt_max)}"
        )
        lines.append(f"  jitter       {_ms(stats.jitter)} (RFC 3550 interarrival)")
    else:
        lines.append("  round trip   nothing came back")
    lines.append(
        f"  loss         {stats.loss:.1%} ({stats.lost} of {stats.sent} lost), "
        f"{stats.duplicates} duplicated, {stats.reordered} reordered"
    )
    if path.note:
        lines += textwrap.wrap(
            f"note: {path.note}", _WIDTH, initial_indent="  ", subsequent_indent="        "
        )
    return lines


def _headline(media_path: str) -> str:
    return MediaPath(media_path).headline


def _behaviour(value: object) -> str:
    return "unknown" if value is None else _BEHAVIOUR.get(str(value), str(value))


def _ms(seconds: float | None) -> str:
    """Milliseconds, to 0.01 ms below 10 ms (a LAN's round trip), else to 0.1 ms."""
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def _address(address: Address | None) -> str:
    return shown_address(address) or "-"
