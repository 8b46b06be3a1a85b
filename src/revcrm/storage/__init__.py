"""Storage protocols and backends (in-memory, SQL)."""

__all__: list[str] = []
