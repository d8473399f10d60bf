"""Does a transport reach the relay? A TCP connect, a TLS handshake, then a TURN Allocate.

"Reaches the relay" means the relay's answer came back over that transport:
with credentials, an Allocate answered (a success grants a relayed address:
:attr:`Outcome.ALLOCATED`; an error such as 401 still proves the path:
:attr:`Outcome.REFUSED`); without, a STUN Binding answered
(:attr:`Outcome.ANSWERED`). Each step shares one deadline of ``within``
seconds, and the step that failed names the outcome: the connect, the TLS
handshake (the certificate is checked against the host name), or the answer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from dataclasses import dataclass

from passage.addresses import Address, Transport
from passage.stun import AttributeType, ErrorCodeValue, Message, MessageClass
from passage.turnclient import Credentials
from passage.turnclient.aio import NoAnswer, TurnConnection

from ..report import Outcome, TransportResult
from ..targets import Target

__all__ = ["Reached", "reach"]


@dataclass(frozen=True, slots=True)
class Reached:
    """A probe's result, and its connection when the relay answered over it (to measure on)."""

    result: TransportResult
    connection: TurnConnection | None


async def reach(
    target: Target,
    address: str,
    credentials: Credentials | None,
    tls: ssl.SSLContext,
    within: float,
) -> Reached:
    """Probe ``target`` at ``address`` (its host resolved); never raises for network trouble."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + within

    def result(
        outcome: Outcome,
        detail: str = "",
        *,
        error_code: int | None = None,
        mapped: Address | None = None,
        relayed: Address | None = None,
    ) -> TransportResult:
        seconds = loop.time() - started
        return TransportResult(target, outcome, seconds, detail, error_code, mapped, relayed)

    server = (address, target.port)
    try:
        sock = await _connected(target.transport, server, within)
    except (OSError, TimeoutError) as exc:
        return Reached(result(Outcome.CONNECT_FAILED, _why(exc)), None)
    try:
        connection = await TurnConnection.open(
            target.transport, server, credentials, ssl_context=tls, server_hostname=target.host,
            sock=sock, connect_within=max(deadline - loop.time(), 0.0),
        )  # fmt: skip
    except (OSError, TimeoutError) as exc:
        outcome = (
            Outcome.TLS_FAILED if target.transport is Transport.TLS else Outcome.CONNECT_FAILED
        )
        return Reached(result(outcome, _why(exc)), None)
    remaining = max(deadline - loop.time(), 0.1)
    try:
        if credentials is None:
            answer = await connection.binding(within=remaining)
        else:
            answer = await connection.allocate(within=remaining)
    except NoAnswer:
        await connection.close()
        return Reached(result(Outcome.NO_ANSWER, _silence(connection)), None)
    xor_mapped = answer.get(AttributeType.XOR_MAPPED_ADDRESS, tuple)
    mapped = (str(xor_mapped[0]), int(xor_mapped[1])) if xor_mapped else None
    if answer.message_class is MessageClass.SUCCESS:
        outcome = Outcome.ANSWERED if credentials is None else Outcome.ALLOCATED
        found = result(outcome, mapped=mapped, relayed=connection.relayed)
        return Reached(found, connection)
    error = answer.get(AttributeType.ERROR_CODE, ErrorCodeValue)
    code = error.code if error is not None else None
    return Reached(result(Outcome.REFUSED, _error_text(answer), error_code=code), connection)


async def _connected(transport: Transport, server: tuple[str, int], within: float) -> socket.socket:
    """A socket connected to ``server``: for TCP, the three-way handshake within ``within``."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    kind = socket.SOCK_DGRAM if transport is Transport.UDP else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, server), within)
    except BaseException:
        sock.close()
        raise
    return sock


def _why(exc: BaseException) -> str:
    """A failure in words: "timed out", "connection refused", the TLS reason."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # asyncio's own text names the address too
    return str(exc) or type(exc).__name__


def _silence(connection: TurnConnection) -> str:
    """Why no answer came, when the socket knows."""
    if connection.stream_broken:
        return "the answer was not STUN (another service on this port?)"
    if connection.last_error is not None:
        return _why(connection.last_error)
    return ""


def _error_text(answer: Message) -> str:
    error = answer.get(AttributeType.ERROR_CODE, ErrorCodeValue)
    if error is None:
        return "an error without ERROR-CODE"
    return f"{error.code} {error.reason}".strip()
