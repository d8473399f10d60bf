"""The highest packet rate each server relays with zero loss, and its CPU per packet.

coturn, Passage in one process (``--workers 1``) and Passage with N workers
(``--workers N``), one after the other on the same machine in one run, under
coturn's own load generator: ``turnutils_uclient`` with M clients, each sending a
ChannelData message of 160 B every millisecond to ``turnutils_peer``, which echoes
it back (UDP client legs, then TCP client legs). M steps up until a run loses a
packet (uclient's ``Total lost packets`` above 0, or fewer echoes than messages)
twice in a row; the last clean step is the zero-loss rate. Relayed packets per second count both
directions (client → peer and peer → client), over the time uclient was sending.

Server CPU is the whole process tree's (the parent and its workers), read from
/proc before and after each run; CPU per packet is that over relayed packets.
The load generator and the echo peer run on the same cores as the servers, so a
machine with few cores measures them too: the report says how many cores and what
load there was. Only 127.0.0.1 is ever used.

With ``--python``, Passage with ``--fast-path off`` (every packet through Python)
runs too, for an A/B of the compiled fast path.

Usage: ``python bench/relay_rate.py --workers 2 --markdown out.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from servers import (
    COTURN,
    PASSAGE,
    PASSAGE_PYTHON,
    EchoPeer,
    RunningServer,
    ServerKind,
    passage_workers,
)
from uclient import UclientResult, run_uclient

STEPS = (4, 8, 12, 16, 24, 32, 48, 64)
"""Clients per run, in order: each sends 1,000 messages a second."""

MESSAGES = 3000
"""Messages per client: three seconds of sending at one per millisecond."""

RETRIES = 1
"""A lossy run is run again this many times before the step counts as lossy: the load
generator shares the machine, and one bad second of it is not the server's rate."""


@dataclass(frozen=True)
class Run:
    server: str
    transport: str
    clients: int
    result: UclientResult
    seconds: float
    """Wall time of the uclient run (start-up and its random start offsets included)."""
    server_cpu: float
    load: float
    """The 1-minute load average when the run started."""

    @property
    def clean(self) -> bool:
        r = self.result
        return r.status == "ok" and r.loss_percent == 0.0 and r.sent > 0 and r.received == r.sent

    @property
    def offered_pps(self) -> int:
        """Relayed packets a second the clients ask for once all of them send: both ways."""
        return 2 * 1000 * self.clients

    @property
    def cpu_per_million(self) -> float:
        return self.server_cpu / self.result.relayed * 1e6 if self.result.relayed else float("nan")


def run_step(kind: ServerKind, transport: str, clients: int, peer: EchoPeer, work: Path) -> Run:
    flags = ["-m", str(clients), "-n", str(MESSAGES), "-l", "160", "-z", "1", "-c"]
    if transport == "tcp":
        flags.insert(0, "-t")
    load = os.getloadavg()[0]
    with RunningServer(kind, work / kind.name, work / f"{kind.name}.log") as server:
        time.sleep(0.5)  # start-up work settles; it is not counted anyway
        cpu0, started = server.cpu(), time.monotonic()
        result = run_uclient(
            server.port, peer.port, flags, timeout=120, log=str(work / "uclient.log")
        )
        seconds, cpu1 = time.monotonic() - started, server.cpu()
    return Run(kind.name, transport, clients, result, seconds, cpu1 - cpu0, load)


def search(
    kind: ServerKind, transport: str, peer: EchoPeer, work: Path, steps: tuple[int, ...]
) -> list[Run]:
    """Step up the clients until a run is not clean; every run made, in order."""
    runs: list[Run] = []
    for clients in steps:
        for _ in range(1 + RETRIES):
            run = run_step(kind, transport, clients, peer, work)
            runs.append(run)
            print(
                f"  {kind.name} {transport} {clients:3d} clients: {run.result.status}, "
                f"sent {run.result.sent} recv {run.result.received} "
                f"loss {run.result.loss_percent}%, "
                f"server {run.server_cpu:.2f} s CPU = {run.cpu_per_million:.2f} s/Mpkt, "
                f"load {run.load:.1f}",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            if run.clean:
                break
        if not run.clean:
            break
    return runs


def best(runs: list[Run]) -> Run | None:
    clean = [run for run in runs if run.clean]
    return clean[-1] if clean else None


def first_lossy(runs: list[Run]) -> Run | None:
    """The step that stayed lossy (its last run), if the search ended on one."""
    return runs[-1] if runs and not runs[-1].clean else None


def report(
    results: dict[tuple[str, str], list[Run]],
    names: tuple[str, ...],
    command: str,
    last_step: int,
) -> str:
    lines = [
        f"Command: `{command}` on {os.cpu_count()} cores "
        f"(load average at the start of each run: "
        f"{min(r.load for runs in results.values() for r in runs):.1f}"
        f"–{max(r.load for runs in results.values() for r in runs):.1f}).",
        "",
        "| transport | server | zero-loss offered rate (relayed pkts/s, both ways) "
        "| clients | server CPU s per 1 M pkts at that rate | first lossy step | vs coturn |",
        "|---|---|---|---|---|---|---|",
    ]
    for transport in ("udp", "tcp"):
        coturn = best(results.get(("coturn", transport), []))
        for name in names:
            runs = results.get((name, transport))
            if runs is None:
                continue
            top = best(runs)
            lossy = first_lossy(runs)
            rate = f"{top.offered_pps:,}" if top else "none clean"
            ratio = f"{top.offered_pps / coturn.offered_pps:.2f}×" if top and coturn else "–"
            lossy_text = (
                f"{lossy.clients} clients: {lossy.result.loss_percent or 0:.1f} % lost"
                + ("" if lossy.result.status == "ok" else f" ({lossy.result.status})")
                if lossy
                else f"none up to {last_step} clients"
            )
            lines.append(
                f"| {transport} | {name} | {rate} | {top.clients if top else '–'} "
                f"| {top.cpu_per_million:.2f} | {lossy_text} | {ratio} |"
                if top
                else f"| {transport} | {name} | {rate} | – | – | {lossy_text} | – |"
            )
    lines += [
        "",
        "| transport | same load for all (clients, offered pkts/s) | "
        + " | ".join(f"{name} CPU s per 1 M pkts" for name in names)
        + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for transport in ("udp", "tcp"):
        common = _common_step(results, transport, names)
        if common is None:
            continue
        cells = []
        for name in names:
            run = next(r for r in results[(name, transport)] if r.clients == common and r.clean)
            cells.append(f"{run.cpu_per_million:.2f}")
        lines.append(f"| {transport} | {common}, {2000 * common:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _common_step(
    results: dict[tuple[str, str], list[Run]], transport: str, names: tuple[str, ...]
) -> int | None:
    """The most clients every server relayed without loss, for a like-for-like CPU figure."""
    clean_steps = [
        {run.clients for run in results.get((name, transport), []) if run.clean} for name in names
    ]
    common = set.intersection(*clean_steps) if all(clean_steps) else set()
    return max(common) if common else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workers", type=int, default=2, help="Passage's N (default 2; 1: no such row)"
    )
    parser.add_argument(
        "--python", action="store_true", help="add Passage with --fast-path off (passage-python)"
    )
    parser.add_argument("--transports", nargs="+", default=["udp", "tcp"], choices=["udp", "tcp"])
    parser.add_argument("--markdown", type=Path, help="write the table here too")
    parser.add_argument(
        "--steps", type=int, nargs="+", default=list(STEPS), help="clients per run, ascending"
    )
    arguments = parser.parse_args()
    kinds = [COTURN, PASSAGE]
    if arguments.python:
        kinds.append(PASSAGE_PYTHON)
    if arguments.workers > 1:
        kinds.append(passage_workers(arguments.workers))
    names = tuple(kind.name for kind in kinds)
    results: dict[tuple[str, str], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="passage-relay-rate-") as root:
        work = Path(root)
        peer = EchoPeer(work / "peer.log")
        try:
            for transport in arguments.transports:
                for kind in kinds:
                    runs = search(kind, transport, peer, work, tuple(arguments.steps))
                    results[(kind.name, transport)] = runs
        finally:
            peer.stop()
    client = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"(load generator CPU, all runs: {client.ru_utime + client.ru_stime:.1f} s)",
        file=sys.stderr,
    )
    command = "python bench/relay_rate.py " + " ".join(sys.argv[1:])
    table = report(results, names, command, arguments.steps[-1])
    print(table)
    if arguments.markdown is not None:
        arguments.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
