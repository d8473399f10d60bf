"""What ``/metrics`` costs the relay: server CPU per relayed packet, with and without it.

Runs the ``udp-chan`` load of ``turn_relay.py`` (``turnutils_uclient``, UDP
ChannelData, 160 B, 50 allocations paced 1 ms) against Passage three ways, in
turn, within each repetition:

- ``before``: the code given by ``--before-src`` (a ``src`` directory of an
  older checkout, put first on ``PYTHONPATH``), which has no metrics listener;
- ``off``: this code with ``--metrics-port 0``;
- ``scraped``: this code with the metrics listener on, scraped every
  ``--scrape-interval`` seconds (1 s: 15 times as often as Prometheus's
  default) for the whole run.

Usage::

    git -C . archive COMMIT src | tar -x -C /tmp/before
    .venv/bin/python bench/metrics_cost.py --before-src /tmp/before/src --repeat 3

Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers import METRICS_OFF, PASSAGE, EchoPeer, ServerKind, free_port
from turn_relay import SCENARIOS, RelayScenario, run_relay


@dataclass(frozen=True)
class Variant(ServerKind):
    """Passage started with extra flags, optionally from another source tree."""

    extra: tuple[str, ...] = ()
    source: str | None = None
    """A ``src`` directory to import ``passage`` from instead of this checkout's."""

    def command(self, port: int, data_dir: Path) -> list[str]:
        base = PASSAGE.command(port, data_dir)
        # Older code knows none of these flags; --workers 1 is what every variant runs.
        dropped = {METRICS_OFF[0], "--workers", "--fast-path"} if self.source is not None else set()
        if self.extra:
            dropped.add(METRICS_OFF[0])
        for flag in dropped:
            at = base.index(flag)
            del base[at : at + 2]
        return [*base, *self.extra]


@contextmanager
def python_path(source: str | None) -> Iterator[None]:
    """``PYTHONPATH`` = ``source`` for the processes started inside (the server)."""
    before = os.environ.get("PYTHONPATH")
    if source is not None:
        os.environ["PYTHONPATH"] = source
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


class Scraper(threading.Thread):
    """GET ``/metrics`` every ``interval`` seconds until stopped; counts what it got."""

    def __init__(self, port: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if b"passage_turn_relayed_packets_total" in response.read():
                        self.scrapes += 1
            except OSError:
                self.failures += 1


def measure(
    variant: Variant, scenario: RelayScenario, peer: EchoPeer, messages: int, work: Path,
    scrape_port: int | None, interval: float,
) -> tuple[float, float, int]:  # fmt: skip
    """(µs of server CPU per relayed packet, loss %, scrapes) of one run."""
    scraper = Scraper(scrape_port, interval) if scrape_port is not None else None
    if scraper is not None:
        scraper.start()
    try:
        with python_path(variant.source):
            result, server_cpu, _ = run_relay(scenario, variant, peer, messages, work)
    finally:
        if scraper is not None:
            scraper.stopping.set()
            scraper.join()
    if result.relayed == 0:
        raise RuntimeError(f"{variant.name}: uclient relayed nothing ({result.status})")
    scrapes = scraper.scrapes if scraper is not None else 0
    return server_cpu / result.relayed * 1e6, result.loss_percent or 0.0, scrapes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-src", help="src directory of the code to compare against")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    arguments = parser.parse_args(argv)
    scenario = SCENARIOS["udp-chan"]
    assert isinstance(scenario, RelayScenario)
    metrics_port = free_port()
    variants = [
        Variant("off", PASSAGE.relay_ports, extra=("--metrics-port", "0")),
        Variant("scraped", PASSAGE.relay_ports, extra=("--metrics-port", str(metrics_port))),
    ]
    if arguments.before_src:
        variants.insert(0, Variant("before", PASSAGE.relay_ports, source=arguments.before_src))
    figures: dict[str, list[tuple[float, float, int]]] = {v.name: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="passage-metrics-bench-") as folder:
        work = Path(folder)
        peer = EchoPeer(work / "peer.log")
        try:
            for repetition in range(arguments.repeat):
                # Alternate the order, so no variant always runs on a warmer machine.
                order = variants if repetition % 2 == 0 else variants[::-1]
                for variant in order:
                    port = metrics_port if variant.name == "scraped" else None
                    figure = measure(variant, scenario, peer, arguments.messages, work, port,
                                     arguments.scrape_interval)  # fmt: skip
                    figures[variant.name].append(figure)
                    print(f"run {repetition + 1} {variant.name}: {figure[0]:.2f} µs/pkt, "
                          f"loss {figure[1]:.2f} %, {figure[2]} scrapes", flush=True)  # fmt: skip
        finally:
            peer.stop()
    print()
    print("| variant | µs of server CPU per relayed packet, median [min–max] | loss % (worst) "
          "| scrapes per run |")  # fmt: skip
    print("|---|---|---|---|")
    for name, runs in figures.items():
        costs = [run[0] for run in runs]
        print(f"| {name} | {statistics.median(costs):.2f} [{min(costs):.2f}–{max(costs):.2f}] "
              f"| {max(run[1] for run in runs):.2f} | {min(run[2] for run in runs)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
