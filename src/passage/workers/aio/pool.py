"""The parent's worker processes: spawn them on the sockets it bound, answer them, restart
the ones that die, stop them all.

Each worker is ``python -m passage.worker_main FD POST_FD``: ``FD`` is its end of a
``socketpair`` for messages, ``POST_FD`` of one for the kept ports the parent moves
between workers (a RESERVATION-TOKEN used on another worker than its maker's); the
client-facing sockets it serves on are inherited too
(``pass_fds``), so a restarted worker takes over the very sockets of the one that
died. They stay open in the parent meanwhile: the kernel's ``SO_REUSEPORT`` group
keeps its size, so no other worker's clients are moved, and what arrives for the
dead worker waits in its socket's buffer for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from passage.live import LiveAllocation, ThroughputSeries, TurnCounters, stats_line
from passage.meters import Histogram
from passage.usage import USAGE_BUFFER_RECORDS, UsageOverflow, UsageRecord, write_back
from passage.workers.aio.channel import Channel
from passage.workers.aio.link import CLAIM_TIMEOUT
from passage.workers.aio.post import Posted, SocketPost
from passage.workers.protocol import (
    Admit,
    Admitted,
    ChannelError,
    Claim,
    ClusterView,
    Drain,
    EndAllocation,
    HandOver,
    Holding,
    Identity,
    ListenerSocket,
    Message,
    Ready,
    Reload,
    Snapshot,
    Start,
    Stop,
    Stopped,
    Usage,
    reservation_owner,
)
from passage.workers.quota import SharedQuota
from passage.workers.restarts import RestartPolicy
from passage.workers.retired import Family, RetiredCounts

__all__ = ["READY_TIMEOUT", "STOP_TIMEOUT", "WorkerPool", "WorkerStartError"]

logger = logging.getLogger("passage.workers")

READY_TIMEOUT = 30.0
"""Seconds a worker has to say it serves, at the first start."""

STOP_TIMEOUT = 15.0
"""Seconds the workers have to end their allocations and send their last usage on stop;
then they are killed (their last records lost, their allocations closed in the ledger)."""

STATS_INTERVAL = 60.0
"""Seconds between ``stats:`` lines for every worker together (written when they changed)."""

IDENTITY_CHECK_INTERVAL = 0.25
"""Seconds between looks at the parent's keys and revocations, sent on when they change:
whoever changed them (the API, the store poll, a cluster event), every worker has them
within this much more."""

RETRY_INTERVAL = 1.0
"""Seconds between tries of a ledger write that failed."""

UsageSink = Callable[[list[UsageRecord], int], Awaitable[None]]
"""Writes one batch under its sequence number (``UsageLedger.record``): a batch whose write
failed is offered again alone, under the same number, so it is never counted twice."""
LostSink = Callable[[list[str]], Awaitable[int]]
StartMessage = Callable[[int, tuple[ListenerSocket, ...]], Start]


class WorkerStartError(Exception):
    """A worker did not start; the message says which and how it ended."""


@dataclass(slots=True)
class _Slot:
    index: int
    sockets: Sequence[tuple[str, socket.socket]]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    channel: Channel | None = None
    post: SocketPost | None = None
    """Where kept ports move to and from the running process."""
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = 0.0
    open_allocations: set[str] = field(default_factory=set)
    """Allocation ids of the running process the ledger holds open: closed if it dies."""
    snapshot: Snapshot | None = None
    """What the running process last said it holds."""
    restarts: int = 0


class WorkerPool:
    """N worker processes, one :class:`~passage.workers.quota.SharedQuota`, one ledger writer."""

    def __init__(
        self,
        count: int,
        start_message: StartMessage,
        quota: SharedQuota,
        *,
        usage_sink: UsageSink,
        close_lost: LostSink,
        usage_overflow: UsageOverflow | None = None,
        usage_buffer_records: int = USAGE_BUFFER_RECORDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``count`` workers; ``start_message`` builds each start's :class:`Start`.
        ``usage_sink`` writes records to the ledger; ``close_lost`` closes a dead worker's
        open allocations there. While the ledger fails, at most ``usage_buffer_records``
        records wait in memory; the rest, and all of them at stop, go to
        ``usage_overflow`` (a file) when given."""
        self.slots = [_Slot(index + 1, ()) for index in range(count)]
        self.throughput = ThroughputSeries()
        """Bytes relayed in the last hour, as the workers' usage records come in."""
        self.quota = quota
        self._start_message = start_message
        self._usage_sink = usage_sink
        self._close_lost = close_lost
        self._overflow = usage_overflow
        self._buffer_records = usage_buffer_records
        self.flush_latency = Histogram()
        """Seconds each ledger write took, failed ones included (``/metrics``: the workers
        hand their records here, and only these writes reach the store)."""
        self.flush_failures = 0
        """Ledger writes that failed (their records were kept, in memory or the spill)."""
        self._clock = clock
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._ledger: list[tuple[list[UsageRecord], list[str]]] = []
        """Ledger work in order: records to write, then a dead worker's ids to close."""
        self._ledger_wakeup = asyncio.Event()
        self._sequence = 0
        self._retry: tuple[int, list[UsageRecord]] | None = None
        """The batch whose write failed, with its number: written again first, alone."""
        self._ledger_task: asyncio.Task[None] | None = None
        self._finishing = False
        self._started = False
        self._draining: Drain | None = None
        self._cluster: ClusterView | None = None
        """Cluster mode: what every worker was last told of the cluster."""
        self._tasks_aside: list[asyncio.Task[None]] = []
        """Tasks beside the workers' (the identity watch), cancelled at stop."""
        self.retired = RetiredCounts()
        """What workers that died had counted: added to every sum, so none goes back."""
        self._last_stats = stats_line(TurnCounters({}, 0, 0, {}, {}, {}))
        """The last ``stats:`` line written (none yet: nothing happened)."""
        self._claims: set[asyncio.Task[None]] = set()
        """Kept ports on their way from one worker to another."""
        self._next_claim = 0
        """Every worker served once: from then on, one that dies is started again."""

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, sockets: Sequence[Sequence[tuple[str, socket.socket]]]) -> None:
        """Start every worker on its sockets and wait until each serves; raises
        :class:`WorkerStartError` (after stopping the others) if one cannot.

        ``sockets[i]`` are worker i+1's listeners as (``udp``/``tcp``/``tls``, socket).
        """
        for slot, mine in zip(self.slots, sockets, strict=True):
            slot.sockets = mine
        self._ledger_task = asyncio.create_task(self._write_ledger())
        self._tasks = [asyncio.create_task(self._supervise(slot)) for slot in self.slots]
        ready = asyncio.create_task(self._all_ready())
        await asyncio.wait(
            [ready, *self._tasks], timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        ready.cancel()
        failed = [slot for slot in self.slots if not slot.ready.is_set()]
        if failed:
            await self.stop()
            raise WorkerStartError(
                f"worker {failed[0].index} did not start: it {_exit_text(failed[0].process)} "
                "(its log lines above say why)"
            )
        self._started = True
        self._tasks_aside.append(asyncio.create_task(self._stats_forever()))

    async def _stats_forever(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            self.log_stats()

    def log_stats(self) -> None:
        """Write the ``stats:`` line of every worker's counters summed, if they changed
        since the last one (the workers write theirs at DEBUG only)."""
        line = stats_line(self.turn_counters())
        if line != self._last_stats:
            self._last_stats = line
            logging.getLogger("passage.turn").info("%s", line)

    async def _all_ready(self) -> None:
        for slot in self.slots:
            await slot.ready.wait()

    async def stop(self) -> None:
        """Tell every worker to stop, wait for their last usage (killing any that take
        longer than :data:`STOP_TIMEOUT`), and write it all to the ledger."""
        self._stopping = True
        for task in (*self._tasks_aside, *self._claims):  # a claim's port closes with it
            task.cancel()
        for slot in self.slots:
            if slot.channel is not None:
                slot.channel.send(Stop())
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for slot in self.slots:
                if slot.process is not None and slot.process.returncode is None:
                    logger.warning("worker %d did not stop in %.0f s: killed", slot.index,
                                   STOP_TIMEOUT)  # fmt: skip
                    with contextlib.suppress(ProcessLookupError):
                        slot.process.kill()
            if late:
                await asyncio.wait(late)
        if self._ledger_task is not None:
            self._finishing = True
            self._ledger_wakeup.set()
            await self._ledger_task  # one last pass, never cut off mid-write

    def share_identity(self, state: object) -> None:
        """Keep every worker's copy of ``state`` (the ``IdentityState``) current: it is
        looked at every :data:`IDENTITY_CHECK_INTERVAL` and sent whole when it changed."""
        self._tasks_aside.append(asyncio.create_task(self._watch_identity(state)))

    async def _watch_identity(self, state: object) -> None:
        last = pickle.dumps(state)
        while True:
            await asyncio.sleep(IDENTITY_CHECK_INTERVAL)
            now = pickle.dumps(state)
            if now != last:
                last = now
                for slot in self.slots:
                    if slot.channel is not None:
                        slot.channel.send(Identity(state))

    def reload(self, config: object, datadir: object) -> None:
        """A reload: every worker applies the new TURN policy; the quotas change here."""
        turn = getattr(config, "turn", None)
        if turn is not None:
            self.quota.max_per_user = turn.max_allocations_per_user
            self.quota.max_total = turn.max_allocations_total
        for slot in self.slots:
            if slot.channel is not None:
                slot.channel.send(Reload(config, datadir))

    def share_cluster(self, full_alternates: object, store_stale: bool) -> None:
        """Cluster mode: tell every worker (now, and any restarted later) where a full node
        sends new Allocates and whether the store is stale, when either changed."""
        view = ClusterView(full_alternates, store_stale)
        if view == self._cluster:
            return
        self._cluster = view
        for slot in self.slots:
            if slot.channel is not None:
                slot.channel.send(view)

    def start_draining(self, alternates: object) -> None:
        """SIGTERM: every worker sends new Allocates to ``alternates``, now and after a
        restart; live allocations carry on."""
        self._draining = Drain(alternates)
        for slot in self.slots:
            if slot.channel is not None:
                slot.channel.send(self._draining)

    # -- what the console shows (``passage.live``) -----------------------------

    def live_allocations(self) -> list[LiveAllocation]:
        """Every worker's allocations, as of its last snapshot (at most a second old)."""
        return [a for slot in self.slots if slot.snapshot for a in slot.snapshot.allocations]

    def end_allocation(self, allocation_id: str) -> bool:
        """Ask the worker that holds ``allocation_id`` to end it; False if none does. The
        worker ends it when the message arrives, a moment after this returns; the live
        view drops it with that worker's next snapshot."""
        for slot in self.slots:
            if slot.snapshot is None or slot.channel is None:
                continue
            if any(a.id == allocation_id for a in slot.snapshot.allocations):
                slot.channel.send(EndAllocation(allocation_id))
                return True
        return False

    def turn_counters(self) -> TurnCounters:
        """The workers' counters summed, with those of the workers that died before."""
        every = [slot.snapshot.counters for slot in self.slots if slot.snapshot is not None]
        summed: dict[str, Counter[Any]] = {
            name: Counter() for name in ("live", "errors", "drops", "auth_failures")
        }
        started = ended = 0
        for counters in (*every, self.retired.counters()):
            summed["live"].update(counters.live_by_transport)
            summed["errors"].update(counters.errors)
            summed["drops"].update(counters.drops)
            summed["auth_failures"].update(counters.auth_failures)
            started += counters.allocations_started
            ended += counters.allocations_ended
        return TurnCounters(
            live_by_transport=dict(summed["live"]),
            allocations_started=started,
            allocations_ended=ended,
            errors=dict(summed["errors"]),
            drops=dict(summed["drops"]),
            auth_failures=dict(summed["auth_failures"]),
        )

    def metric_reports(self) -> list[tuple[object, ...]]:
        """Each worker's metric families (``passage.scrape``), as of its last snapshot, and
        the counters of the workers that died (so that no sum goes back)."""
        reports = [slot.snapshot.metrics for slot in self.slots if slot.snapshot is not None]
        return [*reports, self.retired.families()]

    @property
    def pids(self) -> list[int]:
        """The running workers' process ids, by worker number."""
        return [s.process.pid for s in self.slots if s.process and s.process.returncode is None]

    # -- one worker slot -----------------------------------------------------------

    async def _supervise(self, slot: _Slot) -> None:
        """Run ``slot``'s worker, and the next one each time it dies, until stopping."""
        while True:
            await self._run_once(slot)
            if self._stopping or not self._started:
                return  # at the first start, one failure fails the start
            delay = slot.policy.died(slot.started_at, self._clock())
            slot.restarts += 1
            logger.warning(
                "worker %d (pid %s) %s; starting it again%s",
                slot.index, slot.process.pid if slot.process else "?",
                _exit_text(slot.process), f" in {delay:.1f} s" if delay else "",
            )  # fmt: skip
            if delay:
                await asyncio.sleep(delay)
            if self._stopping:
                return

    async def _run_once(self, slot: _Slot) -> None:
        parent_end, child_end = socket.socketpair()
        parent_post, child_post = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listeners = tuple(ListenerSocket(kind, sock.fileno()) for kind, sock in slot.sockets)
        try:
            slot.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "passage.worker_main",
                str(child_end.fileno()), str(child_post.fileno()),
                pass_fds=(child_end.fileno(), child_post.fileno(),
                          *(sock.fileno() for _, sock in slot.sockets)),
            )  # fmt: skip
        finally:
            child_end.close()
            child_post.close()
        slot.post = SocketPost(parent_post)
        slot.started_at = self._clock()
        slot.ready.clear()
        channel = slot.channel = await Channel.open(parent_end)
        channel.send(self._start_message(slot.index, listeners))
        if self._cluster is not None:
            channel.send(self._cluster)
        if self._draining is not None:  # a worker restarted during a drain drains too
            channel.send(self._draining)
        try:
            async for message in channel.messages():
                self._handle(slot, message)
        except ChannelError as error:
            logger.error("worker %d sent what no worker sends (%s): killing it", slot.index, error)
            with contextlib.suppress(ProcessLookupError):
                slot.process.kill()
        slot.channel = None
        slot.post.close()
        slot.post = None
        await channel.close()
        await slot.process.wait()
        self._lost(slot)

    def _handle(self, slot: _Slot, message: Message) -> None:
        if isinstance(message, Holding):
            self.quota.set(slot.index, message.quota_key, message.held)
        elif isinstance(message, Admit):
            reason = self.quota.admit(slot.index, message.quota_key, message.held, message.extra)
            assert slot.channel is not None
            slot.channel.send(Admitted(message.request, reason is None, reason or ""))
        elif isinstance(message, Claim):
            self._claim(slot, message)
        elif isinstance(message, Usage):
            records = list(message.records)
            for record in records:
                if record.ended:
                    slot.open_allocations.discard(record.allocation_id)
                else:
                    slot.open_allocations.add(record.allocation_id)
            self._ledger.append((records, []))
            self._ledger_wakeup.set()
            self.throughput.add(
                sum(record.bytes_to_peer for record in records),
                sum(record.bytes_from_peer for record in records),
                time.time(),
            )
        elif isinstance(message, Snapshot):
            slot.snapshot = message
        elif isinstance(message, Ready):
            slot.ready.set()
            logger.debug("worker %d serves (pid %d)", slot.index, message.pid)
        elif isinstance(message, Stopped):
            logger.debug("worker %d stopped", slot.index)

    def _claim(self, slot: _Slot, claim: Claim) -> None:
        """A client on ``slot``'s worker presents another worker's token: have that worker
        hand the kept port over, and post it on; post nothing when no worker can."""
        asker = slot.post
        if asker is None:
            return
        index = reservation_owner(claim.token)
        owner = self.slots[index - 1] if 1 <= index <= len(self.slots) else None
        if owner is None or owner is slot or owner.channel is None or owner.post is None:
            asker.send(claim.request, None)
            return
        self._next_claim += 1
        handed = owner.post.expect(self._next_claim)
        owner.channel.send(HandOver(self._next_claim, claim.token))
        task = asyncio.create_task(self._pass_on(handed, asker, claim.request, owner, slot))
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    async def _pass_on(
        self, handed: asyncio.Future[Posted], asker: SocketPost, request: int,
        owner: _Slot, taker: _Slot,
    ) -> None:  # fmt: skip
        try:
            posted = await asyncio.wait_for(handed, CLAIM_TIMEOUT)
        except TimeoutError:
            posted = None
        asker.send(request, posted)  # a restarted asker's post is closed: nothing is sent
        if posted is not None:
            logger.debug("a port kept by worker %d moved to worker %d for its reservation token",
                         owner.index, taker.index)  # fmt: skip
            posted[1].close()

    def _lost(self, slot: _Slot) -> None:
        """``slot``'s process is gone: free its quota, close its open allocations after its
        last records are written."""
        self.quota.forget(slot.index)
        if slot.snapshot is not None:
            metrics = cast(tuple[Family, ...], slot.snapshot.metrics)
            self.retired.fold(metrics, slot.snapshot.counters)
        slot.snapshot = None
        lost, slot.open_allocations = sorted(slot.open_allocations), set()
        if lost:
            self._ledger.append(([], lost))
            self._ledger_wakeup.set()

    # -- the ledger ----------------------------------------------------------------

    async def _write_ledger(self) -> None:
        """Write what the workers send as it comes; after ``stop``, one last pass."""
        while True:
            await self._ledger_wakeup.wait()
            self._ledger_wakeup.clear()
            finishing = self._finishing
            written = await self._drain_ledger(final=finishing)
            if finishing:
                return
            if not written:
                await asyncio.sleep(RETRY_INTERVAL)
                self._ledger_wakeup.set()

    async def _drain_ledger(self, *, final: bool) -> bool:
        """Write the spill, then what is queued, in order; False (the rest kept) at the
        first failure. Past the memory bound, or when ``final``, the records kept go to
        the spill."""
        if await self._replay_spill() and await self._drain_queue(final=final):
            return True
        self._spill_queue(final=final)
        return False

    async def _drain_queue(self, *, final: bool) -> bool:
        if self._retry is not None:
            sequence, batch = self._retry
            if not await self._write(sequence, batch, final=final):
                return False
            self._retry = None
        while self._ledger:
            records: list[UsageRecord] = []
            while self._ledger and self._ledger[0][0]:  # consecutive batches: one transaction
                records += self._ledger.pop(0)[0]
            if records:
                self._sequence += 1
                if not await self._write(self._sequence, records, final=final):
                    self._retry = (self._sequence, records)
                    return False
                continue
            try:
                closed = await self._close_lost(self._ledger[0][1])
            except Exception:
                logger.exception("could not close a dead worker's allocations in the ledger")
                return False
            self._ledger.pop(0)
            logger.warning(
                "closed %d allocation%s of a worker that died (billed as the ledger had them)",
                closed, "" if closed == 1 else "s",
            )  # fmt: skip
        return True

    async def _replay_spill(self) -> bool:
        try:
            return await write_back(self._overflow, time.perf_counter, self.flush_latency.observe)
        except Exception:
            self.flush_failures += 1
            logger.warning(
                "usage ledger still unreachable; %d records wait in the spill",
                self._overflow.records if self._overflow else 0, exc_info=True,
            )  # fmt: skip
            return False

    @property
    def unsaved_records(self) -> int:
        """Usage records held in memory for the ledger (a write failed, or is queued)."""
        retry = len(self._retry[1]) if self._retry is not None else 0
        return retry + sum(len(records) for records, _ in self._ledger)

    def _spill_queue(self, *, final: bool) -> None:
        """Move the records held in memory to the spill, oldest first; a dead worker's
        allocations to close stay queued (closed once the spill is written)."""
        overflow = self._overflow
        moved = self.unsaved_records
        if overflow is None or not moved or not (final or moved > self._buffer_records):
            return
        kept: list[tuple[list[UsageRecord], list[str]]] = []
        try:
            if self._retry is not None:
                overflow.append(*self._retry)
                self._retry = None
            while self._ledger:
                records, lost = self._ledger[0]
                if records:
                    overflow.append(self._sequence + 1, records)
                    self._sequence += 1
                else:
                    kept.append((records, lost))  # closed once the spill before it is written
                self._ledger.pop(0)
        except OSError:
            logger.exception(
                "usage spill could not be written; %d usage records stay in memory",
                self.unsaved_records,
            )
            return
        finally:
            self._ledger = kept + self._ledger
        logger.warning(
            "usage ledger unreachable (or still writing the spill back): %d usage records moved "
            "from memory to the spill file "
            "(%s; %d records wait there); they are written when the store is back",
            moved, "stopping" if final else f"over --usage-buffer-records {self._buffer_records}",
            overflow.records,
        )  # fmt: skip

    async def _write(self, sequence: int, records: list[UsageRecord], *, final: bool) -> bool:
        started = time.perf_counter()
        try:
            await self._usage_sink(records, sequence)
        except Exception:
            self.flush_failures += 1
            kept = "the next try" if not final else "the spill" if self._overflow else "nothing"
            logger.exception(
                "usage ledger write failed; %d records kept for %s", len(records), kept
            )
            return False
        finally:
            self.flush_latency.observe(time.perf_counter() - started)
        return True


def _exit_text(process: asyncio.subprocess.Process | None) -> str:
    """How a worker ended, for a log line: "exited with status 1", "was killed by SIGKILL"."""
    code = process.returncode if process is not None else None
    if code is None:
        return "did not answer in time"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
