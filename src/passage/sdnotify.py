"""systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram per state.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET``, an AF_UNIX datagram socket
(a path, or ``@name`` in the abstract namespace), and reads newline-separated
``KEY=VALUE`` assignments from it: ``READY=1`` once every listener is bound,
``RELOADING=1`` (with ``MONOTONIC_USEC``) while a SIGHUP is applied, then ``READY=1``
again, ``STOPPING=1`` when a drain or a stop begins, ``STATUS=...`` for
``systemctl status``, and ``WATCHDOG=1`` at least every ``WATCHDOG_USEC`` / 2 when the
unit has ``WatchdogSec=``. Without ``NOTIFY_SOCKET`` every call does nothing, so the
same process runs under systemd, in a container, or in a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier"]

logger = logging.getLogger("passage")


class Notifier:
    """The service manager's socket, as the environment names it; or nothing."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        name = environ.get("NOTIFY_SOCKET", "")
        self.address: str | None = ("\0" + name[1:] if name.startswith("@") else name) or None
        self.watchdog_interval = _watchdog_interval(environ)
        """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``); None: no watchdog."""
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *_status(status))

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self, status: str = "") -> None:
        self.send("STOPPING=1", *_status(status))

    def status(self, status: str) -> None:
        self.send(*_status(status))

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def send(self, *assignments: str) -> bool:
        """Send one datagram of ``assignments``; False (one WARNING, once) if it cannot go."""
        if self.address is None or not assignments:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(assignments).encode())
        except OSError as error:
            if not self._warned:
                self._warned = True
                logger.warning("cannot notify systemd at NOTIFY_SOCKET: %s", error.strerror)
            return False
        return True


def _status(text: str) -> tuple[str, ...]:
    return (f"STATUS={' '.join(text.split())}",) if text else ()


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when it is meant for this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
