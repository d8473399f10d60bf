"""coturn and Passage side by side, one after the other, under the same load on loopback.

For every scenario and repetition each server is started fresh (uclient leaves
probe allocations behind, turn.md §3b), its CPU clock (utime + stime of all
threads, /proc/<pid>/stat) is read right before the client starts and right
after it ends, and the cost is reported per million relayed packets, which is
also microseconds per packet. Relayed packets are uclient's ``tot_send_msgs +
tot_recv_msgs``: client → peer and peer → client datagrams the server forwarded.

Usage: ``make bench ARGS="--quick"`` or ``python bench/turn_relay.py --repeat 3
--markdown out.md``. Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from allocations import AllocationResult, measure_allocations
from servers import KINDS, EchoPeer, RunningServer, ServerKind
from uclient import UclientResult, run_uclient


@dataclass(frozen=True)
class RelayScenario:
    """A ``turnutils_uclient`` load; ``{n}`` in the flags is messages per allocation."""

    name: str
    flags: tuple[str, ...]
    description: str

    def uclient_flags(self, messages: int) -> list[str]:
        return [flag.format(n=messages) for flag in self.flags]


@dataclass(frozen=True)
class AllocationScenario:
    """N Allocate + delete through aioice's TURN client, ``concurrency`` at a time."""

    name: str
    transport: str
    concurrency: int
    description: str


_PACED = ("-m", "50", "-n", "{n}", "-l", "160", "-z", "1")
SCENARIOS: dict[str, RelayScenario | AllocationScenario] = {
    scenario.name: scenario
    for scenario in (
        RelayScenario("udp-chan", _PACED, "UDP ChannelData, 160 B, 50 allocations paced 1 ms"),
        RelayScenario("tcp-chan", ("-t", *_PACED), "TCP client leg, ChannelData, 160 B"),
        RelayScenario("udp-send", ("-s", *_PACED), "UDP Send/Data indications, 160 B"),
        AllocationScenario("alloc-udp", "udp", 10, "aioice Allocate (401 + auth) then delete"),
        AllocationScenario("alloc-tcp", "tcp", 10, "as alloc-udp, over TCP"),
    )
}
DEFAULT_SCENARIOS = ("udp-chan", "tcp-chan", "udp-send", "alloc-udp")


@dataclass
class Samples:
    """Repetitions of one (scenario, server) pair."""

    relay: list[tuple[UclientResult, float, float]] = field(default_factory=list)
    """(uclient result, server CPU s, client + peer CPU s) per run."""
    allocations: list[AllocationResult] = field(default_factory=list)


# -- running ---------------------------------------------------------------


def run_relay(
    scenario: RelayScenario, kind: ServerKind, peer: EchoPeer, messages: int, work: Path
) -> tuple[UclientResult, float, float]:
    with RunningServer(kind, work / kind.name, work / f"{kind.name}.log") as server:
        time.sleep(0.5)  # let start-up work settle; it is not counted anyway
        client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        peer0, cpu0 = peer.cpu(), server.cpu()
        result = run_uclient(
            server.port,
            peer.port,
            scenario.uclient_flags(messages),
            timeout=60 + messages / 100,
            log=str(work / "uclient.log"),
        )
        cpu1, peer1 = server.cpu(), peer.cpu()
        client1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime
    return result, cpu1 - cpu0, client + peer1 - peer0


def run_allocations(
    scenario: AllocationScenario, kind: ServerKind, count: int, work: Path
) -> AllocationResult:
    with RunningServer(kind, work / kind.name, work / f"{kind.name}.log") as server:
        time.sleep(0.5)
        return measure_allocations(
            server.port, scenario.transport, count, scenario.concurrency, server.cpu
        )


def run_all(arguments: argparse.Namespace, work: Path) -> dict[tuple[str, str], Samples]:
    samples: dict[tuple[str, str], Samples] = {}
    peer = EchoPeer(work / "peer.log")
    try:
        for repetition in range(arguments.repeat):
            # Alternate who goes first, so neither always runs on a warmer machine.
            kinds = [KINDS[name] for name in arguments.servers]
            if repetition % 2:
                kinds.reverse()
            for name in arguments.scenarios:
                scenario = SCENARIOS[name]
                for kind in kinds:
                    bucket = samples.setdefault((name, kind.name), Samples())
                    _progress(f"[{repetition + 1}/{arguments.repeat}] {name} on {kind.name}")
                    if isinstance(scenario, RelayScenario):
                        run = run_relay(scenario, kind, peer, arguments.messages, work)
                        bucket.relay.append(run)
                        _progress(f"    {_describe_relay(*run)}")
                    else:
                        allocation = run_allocations(scenario, kind, arguments.allocations, work)
                        bucket.allocations.append(allocation)
                        _progress(f"    {_describe_allocations(allocation)}")
    finally:
        peer.stop()
    return samples


def _describe_relay(result: UclientResult, cpu: float, others: float) -> str:
    return (
        f"{result.status}: {result.relayed} pkts, server {cpu:.2f} s CPU "
        f"({_per_million(cpu, result.relayed):.2f} s/Mpkt), loss {result.loss_percent}%, "
        f"client+peer {others:.2f} s"
    )


def _describe_allocations(result: AllocationResult) -> str:
    return (
        f"{result.count} allocations in {result.seconds:.2f} s ({result.per_second:.0f}/s), "
        f"server {result.cpu_allocate:.2f} s + delete {result.cpu_delete:.2f} s, "
        f"{result.failures} failed"
    )


def _per_million(cpu: float, packets: int) -> float:
    return cpu / packets * 1e6 if packets else float("nan")


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- reporting -------------------------------------------------------------


def _spread(values: Sequence[float], digits: int) -> str:
    """Median, and [min–max] when there is more than one value."""
    median = f"{statistics.median(values):.{digits}f}"
    if len(values) < 2:
        return median
    return f"{median} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def _ratio(passage: float | None, coturn: float | None) -> str:
    if passage is None or coturn is None or coturn == 0:
        return "–"
    return f"{passage / coturn:.2f}×"


def relay_table(samples: dict[tuple[str, str], Samples], names: Sequence[str]) -> list[str]:
    lines = [
        "| scenario | server | relayed pkts/run | server CPU s/run "
        "| **server CPU s per 1 M pkts** (= µs/pkt) | loss % (worst) | client+peer CPU s "
        "| status | Passage/coturn |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        scenario = SCENARIOS[name]
        if not isinstance(scenario, RelayScenario):
            continue
        medians: dict[str, float] = {}
        rows: list[tuple[str, list[str]]] = []
        for kind in KINDS:
            runs = samples.get((name, kind))
            if runs is None or not runs.relay:
                continue
            costs = [_per_million(cpu, result.relayed) for result, cpu, _ in runs.relay]
            medians[kind] = statistics.median(costs)
            losses = [r.loss_percent for r, _, _ in runs.relay if r.loss_percent is not None]
            statuses = sorted({r.status for r, _, _ in runs.relay})
            cells = [
                f"{statistics.median(r.relayed for r, _, _ in runs.relay):,.0f}",
                _spread([cpu for _, cpu, _ in runs.relay], 2),
                f"**{_spread(costs, 2)}**",
                f"{max(losses):.3f}" if losses else "–",
                _spread([others for _, _, others in runs.relay], 2),
                ", ".join(statuses),
            ]
            rows.append((kind, cells))
        for kind, cells in rows:
            shown = _ratio(medians.get(kind), medians.get("coturn")) if kind != "coturn" else ""
            lines.append(f"| {name} | {kind} | {' | '.join(cells)} | {shown} |")
    return lines


def allocation_table(samples: dict[tuple[str, str], Samples], names: Sequence[str]) -> list[str]:
    lines = [
        "| scenario | server | allocations | wall s | **allocations/s** "
        "| **server CPU s per 1000 allocations** (+ delete) | failed "
        "| Passage/coturn alloc/s | Passage/coturn CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        scenario = SCENARIOS[name]
        if not isinstance(scenario, AllocationScenario):
            continue
        rates: dict[str, float] = {}
        costs: dict[str, float] = {}
        rows: list[tuple[str, list[str]]] = []
        for kind in KINDS:
            runs = samples.get((name, kind))
            if runs is None or not runs.allocations:
                continue
            per_thousand = [r.cpu_allocate / r.count * 1000 for r in runs.allocations if r.count]
            deletes = [r.cpu_delete / r.count * 1000 for r in runs.allocations if r.count]
            per_second = [r.per_second for r in runs.allocations]
            rates[kind] = statistics.median(per_second)
            costs[kind] = statistics.median(per_thousand) if per_thousand else float("nan")
            cells = [
                f"{statistics.median(r.count for r in runs.allocations):,.0f}",
                _spread([r.seconds for r in runs.allocations], 2),
                f"**{_spread(per_second, 0)}**",
                f"**{_spread(per_thousand, 3)}** (+{statistics.median(deletes):.3f})"
                if per_thousand
                else "–",
                str(sum(r.failures for r in runs.allocations)),
            ]
            rows.append((kind, cells))
        rate_ratio = _ratio(rates.get("passage"), rates.get("coturn"))
        cost_ratio = _ratio(costs.get("passage"), costs.get("coturn"))
        for kind, cells in rows:
            shown = [rate_ratio, cost_ratio] if kind == "passage" else ["", ""]
            lines.append(f"| {name} | {kind} | {' | '.join(cells + shown)} |")
    return lines


def report(samples: dict[tuple[str, str], Samples], arguments: argparse.Namespace) -> str:
    names = arguments.scenarios
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'this machine'}: "
        f"{_machine()}; repetitions {arguments.repeat} (median [min–max]); "
        f"{arguments.messages} messages per allocation; "
        f"{arguments.allocations} allocations per allocation run.",
        "",
    ]
    if any(isinstance(SCENARIOS[name], RelayScenario) for name in names):
        lines += relay_table(samples, names) + [""]
    if any(isinstance(SCENARIOS[name], AllocationScenario) for name in names):
        lines += allocation_table(samples, names) + [""]
    lines += ["Scenarios:", ""]
    for name in names:
        scenario = SCENARIOS[name]
        how = (
            f"`turnutils_uclient {' '.join(scenario.uclient_flags(arguments.messages))}`"
            if isinstance(scenario, RelayScenario)
            else f"aioice, {scenario.transport.upper()}, concurrency {scenario.concurrency}"
        )
        lines.append(f"- `{name}`: {scenario.description}; {how}")
    return "\n".join(lines) + "\n"


def _machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} × {model}, Linux {platform.release()}, Python {python}"


# -- command line ------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages and allocations")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions; the median is shown")
    parser.add_argument(
        "--scenarios",
        type=_names(SCENARIOS),
        default=list(DEFAULT_SCENARIOS),
        help=f"comma-separated from {', '.join(SCENARIOS)}; default {','.join(DEFAULT_SCENARIOS)}",
    )
    parser.add_argument(
        "--servers",
        type=_names(KINDS),
        default=["coturn", "passage"],
        help="from coturn,passage,passage-python (--fast-path off); default coturn,passage",
    )
    parser.add_argument("--messages", type=int, help="uclient -n (default 10000, quick 2000)")
    parser.add_argument("--allocations", type=int, help="per run (default 1000, quick 300)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    arguments = parser.parse_args(argv)
    if arguments.messages is None:
        arguments.messages = 2000 if arguments.quick else 10000
    if arguments.allocations is None:
        arguments.allocations = 300 if arguments.quick else 1000
    return arguments


def _names(known: Mapping[str, object]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(known)}")
        return names

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parse(argv)
    for tool in ("turnserver", "turnutils_uclient", "turnutils_peer"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: install coturn (make system-deps)", file=sys.stderr)
            return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    work = Path(tempfile.mkdtemp(prefix="passage-bench-"))
    try:
        text = report(run_all(arguments, work), arguments)
    finally:
        if arguments.keep:
            _progress(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    if arguments.markdown is not None:
        arguments.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
