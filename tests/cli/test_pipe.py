"""``passage pipe``: its command line, and what it says when it cannot connect.

The two-host runs are in ``tests/natlab/test_pipe.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from passage_server import free_port


def pipe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passage", "pipe", *args],
        capture_output=True, text=True, timeout=60, input="", env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--room", "a b", "--token", "t", "--endpoint", "https://x/"], "--room: room names"),
        (["--room", "r", "--token", "t"], "--token needs --endpoint"),
        (
            ["--room", "r"],
            "pass --token (env PASSAGE_TOKEN) and --endpoint, or --connection-string",
        ),
        (["--room", "r", "--connection-string", "nonsense"], "a connection string is"),
    ],
)
def test_a_bad_command_line_exits_2(args: list[str], message: str) -> None:
    done = pipe(*args, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done
    assert message in done.stderr


def test_an_unreachable_api_is_found_before_waiting_for_the_other_side() -> None:
    port = free_port()  # nothing listens there
    done = pipe("--room", "r", "--token", "t", "--endpoint", f"https://127.0.0.1:{port}/")
    assert done.returncode == 2, done
    assert done.stderr == (
        f"passage: error: --endpoint https://127.0.0.1:{port}/: cannot reach "
        f"127.0.0.1:{port}: [Errno 111] Connection refused\n"
    )
    assert done.stdout == ""
