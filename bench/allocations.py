"""Allocation rate: N authenticated Allocates through aioice's TURN client, then N deletes.

Each allocation is two round trips (Allocate → 401 → Allocate with MESSAGE-INTEGRITY),
as a WebRTC client does it. Allocations are held until all are made, then deleted
(Refresh with LIFETIME 0), so the two phases are timed and costed apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aioice.turn

from servers import HOST, PASSWORD, USER


@dataclass(frozen=True)
class AllocationResult:
    count: int
    """Allocations made (and then deleted)."""
    seconds: float
    """Wall time of the allocate phase."""
    cpu_allocate: float
    """Server CPU seconds during the allocate phase."""
    cpu_delete: float
    """Server CPU seconds during the delete phase."""
    failures: int
    """Allocations that failed or timed out."""

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


class _Closed(asyncio.DatagramProtocol):
    """Learns when aioice has deleted the allocation (``connection_lost``)."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _allocate_all(
    port: int, transport: str, count: int, concurrency: int, server_cpu: Callable[[], float]
) -> AllocationResult:
    slots = asyncio.Semaphore(concurrency)
    held: list[tuple[aioice.turn.TurnTransport, _Closed]] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with slots:
            try:
                endpoint = await asyncio.wait_for(
                    aioice.turn.create_turn_endpoint(
                        _Closed, (HOST, port), USER, PASSWORD, transport=transport
                    ),
                    timeout=10,
                )
            except (OSError, TimeoutError, ConnectionError, aioice.stun.TransactionError):
                failures += 1
                return
            held.append(endpoint)

    async def delete(endpoint: tuple[aioice.turn.TurnTransport, _Closed]) -> None:
        async with slots:
            endpoint[0].close()
            await asyncio.wait_for(endpoint[1].closed, timeout=10)

    cpu0, start = server_cpu(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    seconds = time.perf_counter() - start
    cpu1 = server_cpu()
    await asyncio.gather(*(delete(endpoint) for endpoint in held))
    await asyncio.sleep(0.2)  # let the last deletes be answered and logged
    cpu2 = server_cpu()
    return AllocationResult(len(held), seconds, cpu1 - cpu0, cpu2 - cpu1, failures)


def measure_allocations(
    port: int, transport: str, count: int, concurrency: int, server_cpu: Callable[[], float]
) -> AllocationResult:
    """Allocate ``count`` times, ``concurrency`` at once, then delete them all."""
    return asyncio.run(_allocate_all(port, transport, count, concurrency, server_cpu))
