"""Opening a DuckDB file that other processes also open.

DuckDB lets one process at a time hold a file's write lock, so gridfare's writers (the
catalog, the load-sharing store) keep each connection for one short transaction and a
second process waits for the lock rather than failing.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from gridfare.errors import DataCentreError


def connect_waiting(path: Path | str, *, read_only: bool = False, lock_timeout_s: float,
                    what: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the file at ``path``, waiting up to ``lock_timeout_s`` while
    another process holds its write lock (one short transaction); any other DuckDB error,
    or the wait running out, is a DataCentreError beginning with ``what``."""
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise DataCentreError(f"{what}: {exc}") from exc
            time.sleep(0.05)
        except duckdb.Error as exc:
            raise DataCentreError(f"{what}: {exc}") from exc
