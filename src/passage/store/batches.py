"""Usage batches written once: ``ledger_batches`` (migration 6) holds the (node, run,
number) of each batch written, in the batch's own transaction, so a batch retried after a
commit whose answer was lost, or written back from a spill after a crash, is skipped.

The TURN ledger claims under the node's id; the Hybrid Connections ledger under
``NODE/hybrid`` (:data:`HYBRID_WRITER`), so each keeps its own numbers and prunes only
its own claims.
"""

from __future__ import annotations

import time

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from passage.store.database import dialect_insert
from passage.store.schema import ledger_batches

__all__ = ["BATCHES_KEPT", "HYBRID_WRITER", "claim_batch"]

BATCHES_KEPT = 1000
"""Batch numbers of a writer kept in ``ledger_batches`` (older ones are never retried:
only the last batch is, and a spill is written back in order, each batch noted as done)."""

HYBRID_WRITER = "{node}/hybrid"
"""The writer id the Hybrid Connections ledger claims its batches under."""


async def claim_batch(
    connection: AsyncConnection, dialect: str, writer: str, boot_id: str, sequence: int
) -> bool:
    """Note batch ``sequence`` of run ``boot_id`` of ``writer`` as written, in the batch's
    transaction; False if it already was. Keeps the writer's last :data:`BATCHES_KEPT`."""
    claimed = await connection.execute(
        dialect_insert(dialect, ledger_batches)
        .values(node_id=writer, boot_id=boot_id, sequence=sequence, written_at=time.time())
        .on_conflict_do_nothing()
    )
    if sequence % BATCHES_KEPT == 0:
        await connection.execute(
            delete(ledger_batches).where(
                ledger_batches.c.node_id == writer,
                ledger_batches.c.sequence <= sequence - BATCHES_KEPT,
            )
        )
    return bool(claimed.rowcount)
