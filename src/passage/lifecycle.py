"""How a running ``passage serve`` answers signals: SIGHUP reloads, SIGINT and SIGTERM stop.

SIGHUP (``passage reload --data-dir D`` sends it) re-reads the configuration
file and the certificate and key (:meth:`passage.app.Running.reload`), flushes
usage, and writes the outcome into ``DATA_DIR/server.json`` under
``last_reload`` (a sequence number, ok, the message), where ``passage reload``
reads it back to print it. A reload that fails keeps the running configuration
and logs one line; nothing a reload meets stops the server. Reloads do not
overlap: a SIGHUP during one runs another once it is done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passage.config import Config, ConfigError
from passage.runtime import RuntimeRecord, RuntimeRecordError, write_record
from passage.tlsmaterial import TlsMaterialError, load_key_pair

if TYPE_CHECKING:
    from passage.app import Running

__all__ = ["LAST_RELOAD", "Lifecycle"]

logger = logging.getLogger("passage")

LAST_RELOAD = "last_reload"
"""The key of ``server.json`` that holds the outcome of the latest reload."""


class Lifecycle:
    """The signals of one ``passage serve`` process, from its start to its stop."""

    def __init__(
        self,
        running: Running,
        record: RuntimeRecord,
        reread: Callable[[], Config],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``reread`` loads the configuration again as the process was started with it (its
        flags, its environment, the file they name)."""
        self.running = running
        self.record = record
        self.reread = reread
        self.clock = clock
        self.stopped = asyncio.Event()
        """Set when the process should stop: ``serve`` then shuts down and flushes usage."""
        self.reloads = 0
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take SIGHUP, SIGINT and SIGTERM on ``loop``."""
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopped.set)

    async def close(self) -> None:
        """Before the server stops: let a reload under way finish, start none after it."""
        self._reload_again = False
        if self._reloading is not None:
            await self._reloading

    # --- reload -----------------------------------------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP: reload now, or once more after the reload under way (none once stopping)."""
        if self.stopped.is_set():
            return
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload_until_current())

    async def _reload_until_current(self) -> None:
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again:
                return

    async def reload(self) -> bool:
        """Reload once; log and record the outcome. True if the new configuration runs."""
        try:
            plan = await self.running.reload(self.reread())
        except ConfigError as error:
            ok, message = False, f"reload failed, still running the previous configuration: {error}"
            logger.error("%s", message)
        except Exception:  # a reload never takes the server down
            ok, message = False, "reload failed (a bug: see the traceback in the log)"
            logger.exception("reload failed, still running the previous configuration")
        else:
            ok, message = True, f"reloaded the configuration ({plan.describe()}); {self._tls()}"
            logger.info("%s", message)
            if plan.needs_restart:
                restart = (
                    f"not applied until a restart (running values kept): "
                    f"{', '.join(plan.needs_restart)}"
                )
                logger.warning("reload: %s", restart)
                message += f"; {restart}"
        self.reloads += 1
        self._record_outcome({"sequence": self.reloads, "at": self.clock(), "ok": ok,
                              "message": message})  # fmt: skip
        return ok

    def _tls(self) -> str:
        """``TLS certificate server.pem (expires 2027-01-01)``: what new handshakes present."""
        contexts = self.running.tls_contexts
        try:
            chain, _ = load_key_pair(contexts.cert, contexts.key)
        except TlsMaterialError:
            return f"TLS certificate {contexts.cert}"
        expires = chain[0].not_valid_after_utc.strftime("%Y-%m-%d")
        return f"TLS certificate {contexts.cert} (expires {expires})"

    def _record_outcome(self, outcome: dict[str, Any]) -> None:
        self.record = dataclasses.replace(
            self.record, extra=self.record.extra | {LAST_RELOAD: outcome}
        )
        try:
            write_record(Path(self.running.datadir.path), self.record)
        except RuntimeRecordError as error:
            logger.warning("could not record the reload's outcome: %s", error)
