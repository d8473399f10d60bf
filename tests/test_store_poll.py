"""``StorePoll`` (passage.app) when the store goes silent: a read that never answers is given
up after ``STORE_READ_TIMEOUT``, and ``on_read`` (cluster mode's staleness bound) runs every
interval all the same. The store is a fake that hangs; the staleness clock is injected."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

import passage.app
from passage.app import StorePoll


class SilentStore:
    """``IdentitySync.poll`` and ``HybridAdmin.refresh`` of a store nobody answers for."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()  # never set: the store never answers
        self.reads = 0

    async def poll(self) -> None:
        self.reads += 1
        await self.answered.wait()

    async def refresh(self) -> None:
        await self.poll()


def store_poll(store: SilentStore, clock: list[float]) -> StorePoll:
    return StorePoll(cast(Any, store), cast(Any, store), lambda: clock[0])


async def test_a_read_the_store_never_answers_is_given_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(passage.app, "STORE_READ_TIMEOUT", 0.05)
    store, clock = SilentStore(), [1000.0]
    poll = store_poll(store, clock)
    clock[0] = 1030.0  # a 30 s outage, as the injected clock tells it
    await asyncio.wait_for(poll.identities(), 5.0)  # without the bound: waits for TCP
    assert poll.read_at == 1000.0  # nothing read: what was read stays, and its age grows
    assert "the store is unreachable (TimeoutError)" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


async def test_staleness_is_judged_every_interval_while_a_read_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passage.app, "STORE_READ_TIMEOUT", 3600.0)  # a read that hangs on
    store, clock = SilentStore(), [1000.0]
    poll = store_poll(store, clock)
    ages: list[float] = []
    judged = asyncio.Event()

    def on_read() -> None:
        ages.append(poll.clock() - poll.read_at)
        clock[0] += 30.0  # each interval, 30 s of outage on the injected clock
        if len(ages) == 3:
            judged.set()

    poll.on_read = on_read
    polling = asyncio.create_task(poll.forever(0.01))
    try:
        await asyncio.wait_for(judged.wait(), 5.0)  # without the ticks: never, one read hangs
    finally:
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
    assert store.reads == 1  # one read, still hanging, and the bound judged three times
    assert ages == [0.0, 30.0, 60.0]
