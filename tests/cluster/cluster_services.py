"""Where the PostgreSQL and Redis that ``make test`` starts are (environment overrides)."""

from __future__ import annotations

import os

POSTGRES_URL = os.environ.get(
    "PASSAGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PASSAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
