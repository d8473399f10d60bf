"""Round trip, jitter and loss on the best transport: through the relay, else to the server.

Through the relay: a second allocation on the same transport, a channel on
each bound to the other's relayed address, and a stream of probes sent as
ChannelData on the first allocation. The relay sends each from the first
relayed address to the second, which relays it back down to this host: out
and back over the transport under test, and through the relay's forwarding
path, as media would go. Passage relays to its own relayed addresses, even
loopback or private ones, unless its operator denied them (``--deny-peer``).

When that cannot be done, the probes are STUN Binding requests to the
server over the same connection, and the report says so and why: no
credentials, the relay refused the allocation or relaying to itself (403),
or nothing came back through the relay within a second (a relay behind a
NAT that does not hairpin cannot reach its own public address).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable

from passage.stun import AttributeType, ErrorCodeValue, MessageClass
from passage.stun.discovery import binding_request
from passage.turnclient import Credentials, Relayed
from passage.turnclient.aio import NoAnswer, TurnConnection

from ..report import PathReport, Via
from ..stats import MAX_LINGER, LoopMeter
from ..targets import Target
from .reach import reach

__all__ = ["measure"]

CHANNEL = 0x4000
"""The channel number each allocation binds to the other's relayed address."""

FIRST_ANSWER_WITHIN = 1.0
"""Seconds the relay gets to bring back the first probe before the doctor gives up on it."""


class _NoLoop(Exception):
    """The path through the relay cannot be measured; the message says why."""


async def measure(
    first: TurnConnection,
    target: Target,
    address: str,
    credentials: Credentials | None,
    tls: ssl.SSLContext,
    *,
    duration: float,
    within: float,
) -> PathReport:
    """Measure for ``duration`` seconds over ``first`` (the best transport's connection)."""
    if first.relayed is None or credentials is None:
        why = "no credentials" if credentials is None else "the relay granted no allocation"
    else:
        try:
            return await _through_relay(first, target, address, credentials, tls, duration, within)
        except _NoLoop as exc:
            why = str(exc)
    return await _to_server(first, target, duration, why)


async def _through_relay(
    first: TurnConnection,
    target: Target,
    address: str,
    credentials: Credentials,
    tls: ssl.SSLContext,
    duration: float,
    within: float,
) -> PathReport:
    reached = await reach(target, address, credentials, tls, within)
    second = reached.connection
    if second is None or second.relayed is None:
        if second is not None:
            await second.close()
        raise _NoLoop(f"a second allocation failed ({reached.result.outcome})")
    try:
        assert first.relayed is not None
        await _bind(first, second.relayed, within)
        await _bind(second, first.relayed, within)
        meter = LoopMeter(os.urandom(8), duration=duration)
        second.on_relayed = lambda relayed, now: _arrived(meter, relayed, now)

        def send(probe: bytes) -> None:
            first.send_channel_data(CHANNEL, meter.payload(probe))

        await _run(meter, send, give_up_if_silent=True)
        return PathReport(target, Via.RELAY, meter.stats(), duration, meter.interval, meter.size)
    finally:
        second.on_relayed = None
        await second.close()


async def _bind(connection: TurnConnection, peer: tuple[str, int], within: float) -> None:
    try:
        answer = await connection.channel_bind(CHANNEL, peer, within)
    except NoAnswer:
        raise _NoLoop("the relay did not answer a ChannelBind") from None
    if answer.message_class is not MessageClass.SUCCESS:
        error = answer.get(AttributeType.ERROR_CODE, ErrorCodeValue)
        why = f"{error.code} {error.reason}".strip() if error else "an error"
        raise _NoLoop(f"the relay refused to relay to its own relayed address ({why})")


def _arrived(meter: LoopMeter, relayed: Relayed, now: float) -> None:
    if relayed.channel == CHANNEL:
        meter.received(relayed.data, now)


async def _to_server(
    connection: TurnConnection, target: Target, duration: float, why: str
) -> PathReport:
    loop = asyncio.get_running_loop()
    meter = LoopMeter(os.urandom(8), duration=duration)
    waiting: set[asyncio.Task[None]] = set()

    async def one(probe: bytes) -> None:
        try:
            await connection.transact(
                probe, binding_request(probe), MAX_LINGER + duration, retransmit=False
            )
        except NoAnswer:
            return
        meter.received(probe, loop.time())

    def send(probe: bytes) -> None:
        task = loop.create_task(one(probe))
        waiting.add(task)
        task.add_done_callback(waiting.discard)

    try:
        await _run(meter, send, give_up_if_silent=False)
    finally:
        for task in list(waiting):
            task.cancel()
    note = f"measured to the server with STUN Binding requests: {why}"
    return PathReport(target, Via.SERVER, meter.stats(), duration, meter.interval, meter.size, note)


async def _run(meter: LoopMeter, send: Callable[[bytes], None], *, give_up_if_silent: bool) -> None:
    """Pump the meter until it is done: send what is due, sleep until its next timer."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    meter.start(started)
    while (timer := meter.get_timer()) is not None:
        await asyncio.sleep(max(timer - loop.time(), 0.0))
        now = loop.time()
        for probe in meter.handle_timer(now):
            send(probe)
        silent = meter.returned == 0
        if give_up_if_silent and silent and now - started >= FIRST_ANSWER_WITHIN:
            raise _NoLoop(
                "nothing came back through the relay within "
                f"{FIRST_ANSWER_WITHIN:g} s (can it reach its own relayed addresses?)"
            )
    if give_up_if_silent and meter.returned == 0:
        raise _NoLoop("nothing came back through the relay")
