"""The embedded store: SQLite in the data directory by default, PostgreSQL for several nodes."""
