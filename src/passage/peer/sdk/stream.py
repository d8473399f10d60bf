"""Reliable, ordered bytes over a :class:`~passage.peer.sdk.Peer`: the asyncio pump of
:class:`~passage.peer.arq.ReliableStream`.

One task owns the peer's receive side and the core's timer: it feeds each
datagram to the core, sends what the core returns, and sleeps until the next
datagram, the core's timer, or the application's next write. ``write``
waits while the send buffer is full; ``read`` returns b"" at the peer's EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from passage.peer.arq import ReliableStream
from passage.peer.errors import PeerError

if TYPE_CHECKING:
    from passage.peer.sdk.peer import Peer

__all__ = ["PeerStream"]


class PeerStream:
    """A byte stream to the other peer; both ends must open one."""

    def __init__(self, peer: Peer) -> None:
        self._peer = peer
        self._core = ReliableStream()
        self._kick = asyncio.Event()
        self._progress = asyncio.Event()
        self._error: PeerError | None = None
        self._task = asyncio.create_task(self._run())

    async def write(self, data: bytes) -> None:
        """Queue ``data``; waits while the send buffer is full."""
        view = memoryview(data)
        while view:
            self._raise_if_failed()
            taken = self._core.write(bytes(view))
            view = view[taken:]
            self._kick.set()
            if view:
                await self._wait_progress()

    def write_eof(self) -> None:
        """No more data: the peer's reads end (b"") once everything before it arrived."""
        self._core.write_eof()
        self._kick.set()

    async def read(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes, in order; b"" once the peer sent EOF and all was read."""
        while True:
            data = self._core.read(limit)
            if data:
                self._kick.set()  # the read may reopen the window: let the pump say so
                return data
            if self._core.at_eof:
                return b""
            self._raise_if_failed()
            await self._wait_progress()

    async def wait_closed(self) -> None:
        """Until both sides sent EOF and every byte was acknowledged (or the stream failed)."""
        await asyncio.shield(self._task)
        self._raise_if_failed()

    async def abort(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def drops(self) -> dict[str, int]:
        """Datagrams the core ignored, by reason (corrupt, duplicate, ...)."""
        return {str(reason): count for reason, count in self._core.drops.items()}

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    async def _wait_progress(self) -> None:
        self._progress.clear()
        if self._task.done():
            self._raise_if_failed()
            raise PeerError("the stream is closed")
        waiter = asyncio.ensure_future(self._progress.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        core = self._core
        receiving = asyncio.ensure_future(self._peer.recv())
        try:
            while True:
                for datagram in core.datagrams_to_send(loop.time()):
                    await self._peer.send(datagram)
                self._progress.set()
                if core.failure is not None:
                    raise PeerError(f"the stream failed: {core.failure}")
                if core.closed(loop.time()):
                    return
                timer = core.get_timer()
                kicked = asyncio.ensure_future(self._kick.wait())
                timeout = None if timer is None else max(0.0, timer - loop.time())
                await asyncio.wait(
                    {receiving, kicked}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                kicked.cancel()
                self._kick.clear()
                if receiving.done():
                    core.receive_datagram(receiving.result(), loop.time())
                    receiving = asyncio.ensure_future(self._peer.recv())
                timer = core.get_timer()
                if timer is not None and timer <= loop.time():
                    core.handle_timer(loop.time())
        except PeerError as error:
            self._error = error
        finally:
            receiving.cancel()
            self._progress.set()
