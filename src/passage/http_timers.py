"""The timeouts of one HTTP connection, as a state machine with time passed in.

A connection of the front door is always in one :class:`Phase`, and each phase
but two has one deadline:

=========  =========================================  ==============================
phase      what the server waits for                  deadline
=========  =========================================  ==============================
HEAD       the rest of a request head                 first byte + request_head_timeout
IDLE       the first byte of the next request         last response + idle_timeout
BODY       the request body a handler is reading      each body_timeout window spent
                                                      waiting must bring body_min_rate
                                                      × body_timeout bytes
HANDLER    nothing: the handler answers               none
=========  =========================================  ==============================

A new connection starts in HEAD (from the end of its TLS handshake): a client
that connects and says nothing gets ``request_head_timeout``, not the longer
``idle_timeout`` that a connection earns with a first request. In every
phase, a response the client does not read (the transport has asked the
server to stop writing) may stay stalled for ``write_timeout``. A connection
that becomes a WebSocket leaves the clock behind: its product's ping and idle
rules apply instead.

Time the server itself holds off a body (it stopped reading: the handler has
not consumed what came) does not count against the client. The adapter
(:mod:`passage.frontdoor.guard`) tells the clock what happens, arms one timer
at :meth:`ConnectionClock.deadline`, and asks :meth:`ConnectionClock.expired`
when it fires. A leaf: it imports nothing of ours but :mod:`passage.http_limits`
and reads no clock.
"""

from __future__ import annotations

import enum
import math

from passage.http_limits import HttpLimits

__all__ = ["ConnectionClock", "Expiry", "Phase"]


class Phase(enum.Enum):
    HEAD = "head"
    IDLE = "idle"
    BODY = "body"
    HANDLER = "handler"


class Expiry(enum.Enum):
    """Why a connection is closed: the reason logged, and whether the client is told with
    a 408 first (it is waiting for an answer to the head it was sending)."""

    REQUEST_HEAD = ("request_head_timeout", True)
    IDLE = ("idle_timeout", False)
    SILENT = ("no_request", False)
    """A new connection that sent nothing at all within ``request_head_timeout``."""
    BODY_TOO_SLOW = ("request_body_too_slow", False)
    RESPONSE_STALLED = ("response_stalled", False)

    def __init__(self, reason: str, answer_408: bool) -> None:
        self.reason = reason
        self.answer_408 = answer_408


class ConnectionClock:
    """Deadlines of one connection; every method takes ``now`` (seconds, monotonic)."""

    def __init__(self, limits: HttpLimits, now: float) -> None:
        self.limits = limits
        self.phase = Phase.HEAD
        self._since = now
        """When the phase began (HEAD, IDLE)."""
        self._head_bytes = 0
        self._reading_paused = False
        self._writing_paused_at: float | None = None
        # BODY: the current window, counting only time spent waiting (reading not paused).
        self._window_bytes = 0
        self._window_waited = 0.0
        self._waiting_since: float | None = now

    @property
    def min_window_bytes(self) -> int:
        """Bytes each ``body_timeout`` window of waiting must bring (at least one)."""
        return max(1, math.ceil(self.limits.body_min_rate * self.limits.body_timeout))

    # --- what happened ---------------------------------------------------------------

    def received(self, size: int, now: float) -> None:
        """``size`` bytes arrived from the client."""
        if size <= 0:
            return
        if self.phase is Phase.IDLE:
            self.phase, self._since, self._head_bytes = Phase.HEAD, now, size
        elif self.phase is Phase.HEAD:
            self._head_bytes += size
        elif self.phase is Phase.BODY:
            self._window_bytes += size

    def request_started(self, now: float, *, body_complete: bool) -> None:
        """A request head is complete and its handler runs; its body may still be coming."""
        if body_complete:
            self.phase = Phase.HANDLER
            return
        self.phase = Phase.BODY
        self._window_bytes, self._window_waited = 0, 0.0
        self._waiting_since = None if self._reading_paused else now

    def body_complete(self) -> None:
        """The whole request body has arrived."""
        if self.phase is Phase.BODY:
            self.phase = Phase.HANDLER

    def response_finished(self, now: float) -> None:
        """A response went out whole; the connection waits for the next request."""
        self.phase, self._since, self._head_bytes = Phase.IDLE, now, 0

    def reading_paused(self, paused: bool, now: float) -> None:
        """The server stopped (or resumed) reading from the client: back-pressure, not the
        client's doing, so a body's window stands still meanwhile."""
        if paused == self._reading_paused:
            return
        self._reading_paused = paused
        if paused:
            if self._waiting_since is not None:
                self._window_waited += now - self._waiting_since
            self._waiting_since = None
        else:
            self._waiting_since = now

    def writing_paused(self, paused: bool, now: float) -> None:
        """The transport asked the server to stop writing (the client does not read), or
        to go on."""
        self._writing_paused_at = now if paused else None

    # --- what is due -----------------------------------------------------------------

    def deadline(self) -> float | None:
        """When :meth:`expired` should next be asked; None: nothing to wait for."""
        due = [self._phase_deadline(), self._write_deadline()]
        return min((when for when in due if when is not None), default=None)

    def expired(self, now: float) -> Expiry | None:
        """What has run out at ``now``, if anything; a body window that brought enough
        bytes starts the next one instead."""
        write = self._write_deadline()
        if write is not None and now >= write:
            return Expiry.RESPONSE_STALLED
        due = self._phase_deadline()
        if due is None or now < due:
            return None
        if self.phase is Phase.HEAD:
            return Expiry.REQUEST_HEAD if self._head_bytes else Expiry.SILENT
        if self.phase is Phase.IDLE:
            return Expiry.IDLE
        if self._window_bytes < self.min_window_bytes:
            return Expiry.BODY_TOO_SLOW
        self._window_bytes, self._window_waited, self._waiting_since = 0, 0.0, now
        return None

    def _phase_deadline(self) -> float | None:
        if self.phase is Phase.HEAD:
            return self._since + self.limits.request_head_timeout
        if self.phase is Phase.IDLE:
            return self._since + self.limits.idle_timeout
        if self.phase is Phase.BODY and self._waiting_since is not None:
            return self._waiting_since + self.limits.body_timeout - self._window_waited
        return None

    def _write_deadline(self) -> float | None:
        if self._writing_paused_at is None:
            return None
        return self._writing_paused_at + self.limits.write_timeout
