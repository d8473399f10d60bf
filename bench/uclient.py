"""Run coturn's ``turnutils_uclient`` against one server and read its final counters."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from servers import HOST, PASSWORD, USER

_COUNTERS = re.compile(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)")
_LOSS = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\)")


@dataclass(frozen=True)
class UclientResult:
    """What one uclient run reports."""

    sent: int
    """Messages the client sent (client → server → peer)."""
    received: int
    """Echoes the client received (peer → server → client)."""
    loss_percent: float | None
    """uclient's ``Total lost packets`` percentage; None when it never printed one."""
    status: str
    """``ok``, ``timeout`` or ``exit N``."""

    @property
    def relayed(self) -> int:
        """Datagrams the server forwarded, both directions (turn.md §3b)."""
        return self.sent + self.received


def run_uclient(
    server_port: int, peer_port: int, flags: list[str], timeout: float, log: str
) -> UclientResult:
    """Run one uclient load; its output is appended to ``log``."""
    command = [
        "turnutils_uclient", "-u", USER, "-w", PASSWORD, "-e", HOST, "-r", str(peer_port),
        *flags, "-p", str(server_port), HOST,
    ]  # fmt: skip
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        output, status = finished.stdout + finished.stderr, "ok"
        if finished.returncode != 0:
            status = f"exit {finished.returncode}"
    except subprocess.TimeoutExpired as expired:
        output, status = _text(expired.stdout) + _text(expired.stderr), "timeout"
    with open(log, "a") as file:
        file.write(f"$ {' '.join(command)}\n{output}\n")
    counters = _COUNTERS.findall(output)
    sent, received = (int(counters[-1][0]), int(counters[-1][1])) if counters else (0, 0)
    loss = _LOSS.search(output)
    return UclientResult(sent, received, float(loss.group(2)) if loss else None, status)


def _text(output: bytes | str | None) -> str:
    if output is None:
        return ""
    return output if isinstance(output, str) else output.decode(errors="replace")
