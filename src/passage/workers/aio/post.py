"""Sockets passed between the parent and a worker: one end of a Unix ``SOCK_SEQPACKET``
``socketpair`` (kept apart from the message channel), each packet a
:data:`~passage.workers.protocol.POSTED` header with the socket attached (``SCM_RIGHTS``)
or none.

The receiver says first which number it waits for (:meth:`SocketPost.expect`), then asks
on the message channel; a packet that nobody waits for (the wait timed out) has its
socket closed at once, so a kept port is never leaked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from passage.workers.protocol import POSTED

__all__ = ["Posted", "SocketPost"]

logger = logging.getLogger("passage.workers")

Posted = tuple[int, socket.socket] | None
"""(address family, socket) as posted; None when the sender had none to give."""


class SocketPost:
    """Send sockets under a number; wait for the socket posted under a number."""

    def __init__(self, sock: socket.socket) -> None:
        """``sock`` is this process's end of the pair; reading starts at once."""
        sock.setblocking(False)
        self.sock = sock
        self._waiting: dict[int, asyncio.Future[Posted]] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._read)

    def expect(self, number: int) -> asyncio.Future[Posted]:
        """The socket posted under ``number``, when it comes (None if the post closes first)."""
        future: asyncio.Future[Posted] = self._loop.create_future()
        self._waiting[number] = future
        future.add_done_callback(lambda _: self._forget(number, future))
        return future

    def _forget(self, number: int, future: asyncio.Future[Posted]) -> None:
        if self._waiting.get(number) is future:
            del self._waiting[number]

    def send(self, number: int, posted: Posted) -> None:
        """Post ``posted`` under ``number``; the caller still closes its own socket. A full
        or closed pair loses it, and the other end's wait ends empty (its timeout)."""
        if self.sock.fileno() == -1:  # the process it led to is gone
            return
        family, fds = (posted[0], [posted[1].fileno()]) if posted is not None else (0, [])
        try:
            socket.send_fds(self.sock, [POSTED.pack(number, family)], fds)
        except OSError as error:
            logger.warning("could not pass a kept port to another process: %s", error)

    def _read(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, POSTED.size, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not data and not fds:  # the other end is gone
                self.close()
                return
            self._deliver(data, fds)

    def _deliver(self, data: bytes, fds: list[int]) -> None:
        sockets = [socket.socket(fileno=fd) for fd in fds]
        future = None
        if len(data) == POSTED.size:
            number, family = POSTED.unpack(data)
            future = self._waiting.pop(number, None)
        if future is None or future.done() or len(sockets) > 1:
            for sock in sockets:
                sock.close()
            return
        future.set_result((family, sockets[0]) if sockets else None)

    def close(self) -> None:
        """Stop reading; every wait ends empty."""
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for future in list(self._waiting.values()):
            if not future.done():
                future.set_result(None)
        self._waiting.clear()
