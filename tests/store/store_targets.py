"""What the store fixtures hand to tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

from dataclasses import dataclass

from passage.store.database import Database, open_database


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """Where a test's database lives; `open` may be called more than once."""

    dialect: str
    url: str
    schema: str | None

    async def open(self) -> Database:
        return await open_database(self.url, schema=self.schema)
