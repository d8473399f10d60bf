"""One ``passage doctor`` run: every probe, in order, with progress; then the report.

NAT discovery and the transport probes run side by side (each waits at most
``timeout`` seconds), then the measurement runs for ``duration`` seconds on
the best transport that reached the relay. Progress is told as it happens,
one line per finding, through the ``progress`` callback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from passage.turnclient import Credentials

from ..render import describe_nat, describe_path, describe_transport
from ..report import CredentialsReport, NatReport, Outcome, PathReport, Report, TransportResult
from ..targets import Target
from ..verdict import ExitStatus, exit_status, judge, no_allocation
from .discovery import discover_nat
from .loop import measure
from .reach import Reached, reach

__all__ = ["DoctorPlan", "run_doctor"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DoctorPlan:
    """What to probe, and how."""

    server: str
    """The server as the report names it."""
    stun: Target | None
    """Where to run NAT discovery (UDP); None: nowhere (no UDP URL)."""
    targets: tuple[Target, ...]
    credentials: Credentials | None
    credentials_report: CredentialsReport
    tls: ssl.SSLContext
    duration: float
    """Seconds of round-trip, jitter and loss measurement."""
    timeout: float
    """Seconds each probe may take."""


async def run_doctor(plan: DoctorPlan, progress: Progress) -> Report:
    """Probe, measure, judge. Network trouble ends up in the report, never as an exception."""
    hosts = {target.host for target in plan.targets} | ({plan.stun.host} if plan.stun else set())
    addresses = {host: await _resolve(host) for host in sorted(hosts)}
    progress(f"probing {len(plan.targets)} transports and the NAT, up to {plan.timeout:g} s")
    nat_task = asyncio.create_task(_nat(plan, addresses))
    probes = [_probe(target, addresses, plan, progress) for target in plan.targets]
    reached = await asyncio.gather(*probes)
    nat = await nat_task
    progress(describe_nat(nat))
    results = tuple(r.result for r in reached)
    path = await _measure(plan, reached, addresses, progress)
    media_path, summary = judge(results, nat)
    expected = plan.credentials is not None or plan.credentials_report.error is not None
    status = exit_status(media_path, results, credentials_expected=expected)
    if status is ExitStatus.NO_ALLOCATION:
        summary = f"{summary} {no_allocation(results, plan.credentials_report.error)}"
    return Report(
        plan.server, plan.credentials_report, nat, results, path, media_path, summary, int(status)
    )


async def _resolve(host: str) -> str | OSError:
    """An IP address for ``host`` (itself when it is one), or why it has none."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        return exc
    return str(found[0][4][0])


async def _nat(plan: DoctorPlan, addresses: dict[str, str | OSError]) -> NatReport:
    if plan.stun is None:
        return NatReport(note="the relay configuration names no UDP server")
    address = addresses[plan.stun.host]
    if isinstance(address, OSError):
        return NatReport(note=f"{plan.stun.host} does not resolve")
    return await discover_nat((address, plan.stun.port), plan.timeout)


async def _probe(
    target: Target, addresses: dict[str, str | OSError], plan: DoctorPlan, progress: Progress
) -> Reached:
    address = addresses[target.host]
    if isinstance(address, OSError):
        detail = f"{target.host} does not resolve: {address.strerror or address}"
        return Reached(TransportResult(target, Outcome.CONNECT_FAILED, 0.0, detail), None)
    reached = await reach(target, address, plan.credentials, plan.tls, plan.timeout)
    progress(describe_transport(reached.result))
    return reached


async def _measure(
    plan: DoctorPlan,
    reached: Sequence[Reached],
    addresses: dict[str, str | OSError],
    progress: Progress,
) -> PathReport | None:
    """Measure on the best transport with a connection; close every connection after."""
    usable = sorted(
        (r for r in reached if r.connection is not None), key=lambda r: r.result.target.preference
    )
    connections = [r.connection for r in usable if r.connection is not None]
    try:
        if not usable or plan.duration <= 0:
            return None
        best, connection = usable[0].result.target, connections[0]
        progress(f"measuring round trip, jitter and loss over {best.label} for {plan.duration:g} s")
        address = addresses[best.host]
        assert isinstance(address, str)
        path = await measure(
            connection, best, address, plan.credentials, plan.tls,
            duration=plan.duration, within=plan.timeout,
        )  # fmt: skip
        progress(describe_path(path))
        return path
    finally:
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
