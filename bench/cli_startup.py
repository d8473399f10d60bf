"""How long ``passage --help`` and ``passage --version`` take to start (goal: under 150 ms).

Each run is a new interpreter, as a user's shell starts it. With hyperfine on the
PATH it is used (its statistics are better); otherwise a loop of ``--runs``
starts, reporting the median and the worst. Also prints what ``--help`` imports
that it should not (a command module, the server, the SDKs), from ``-X importtime``.

    .venv/bin/python bench/cli_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

GOAL_MS = 150.0
HEAVY = ("passage.app", "passage.cli.serve", "aiohttp", "sqlalchemy", "aioice", "cryptography")


def time_runs(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return times


def heavy_imports(argv: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]], capture_output=True, text=True
    )
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    return sorted(name for name in loaded if name.startswith(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    for flag in ("--help", "--version"):
        argv = [sys.executable, "-m", "passage", flag]
        if shutil.which("hyperfine"):
            command = " ".join(argv)
            subprocess.run(["hyperfine", "--warmup", "3", "--runs", str(runs), command], check=True)
        else:
            times = time_runs(argv, runs)
            median, worst = statistics.median(times), max(times)
            verdict = "meets" if median < GOAL_MS else "misses"
            print(
                f"passage {flag}: median {median:.1f} ms, worst {worst:.1f} ms over {runs} runs "
                f"({verdict} the {GOAL_MS:.0f} ms goal)"
            )
        print(f"  heavy modules imported: {', '.join(heavy_imports(argv)) or 'none'}")


if __name__ == "__main__":
    main()
