"""The embedded store: SQLite in the data directory by default, PostgreSQL for several nodes.

`database` opens either with one code path and runs `migrations`; `schema` holds the
current table definitions; `rollup` turns flushed counter deltas into per-allocation
totals and hourly buckets without touching the database; `ledger` writes and reads them.
"""
