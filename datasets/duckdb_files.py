"""Opening a DuckDB file that other processes also open.

DuckDB lets one process at a time hold a file's write lock, so gridfare's writers (the
catalog, the load-sharing store) keep each connection for one short transaction and a
second process waits for the lock rather than failing.

A DuckDB connection costs ~13 ms of CPU to make, whatever the file (an in-memory one too:
the instance builds its function catalog), and its close checkpoints the file. So a
process that opens a file once a transaction (the ControlServer's catalog writes, once a
second) does it with ``attached``: one in-memory instance per process, the file ATTACHed
for the transaction and DETACHed after it (~1-2.5 ms; the detach checkpoints and releases
the file lock as a close does, so other processes get in between transactions as before).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from gridfare.errors import DataCentreError

T = TypeVar("T")


def connect_waiting(path: Path | str, *, read_only: bool = False, lock_timeout_s: float,
                    what: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the file at ``path``, waiting up to ``lock_timeout_s`` while
    another process holds its write lock (one short transaction); any other DuckDB error,
    or the wait running out, is a DataCentreError beginning with ``what``."""
    return _waiting(lambda: duckdb.connect(str(path), read_only=read_only),
                    lock_timeout_s, what)


def _waiting(open_file: Callable[[], T], lock_timeout_s: float, what: str) -> T:
    """``open_file()``, tried again every 50 ms while another process holds the file's
    lock, for up to ``lock_timeout_s``; any other DuckDB error, or the wait running out, is
    a DataCentreError beginning with ``what``."""
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            return open_file()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise DataCentreError(f"{what}: {exc}") from exc
            time.sleep(0.05)
        except duckdb.Error as exc:
            raise DataCentreError(f"{what}: {exc}") from exc


_INSTANCES: dict[int, duckdb.DuckDBPyConnection] = {}  # pid -> this process's instance
_INSTANCES_GUARD = threading.Lock()
_ALIASES = itertools.count()


def _cursor() -> duckdb.DuckDBPyConnection:
    """A new connection (cursor) to this process's in-memory instance. By pid: a forked
    child makes its own (DuckDB's threads do not survive a fork) and never closes the
    parent's copy (closing it would join threads the child does not have)."""
    with _INSTANCES_GUARD:
        base = _INSTANCES.get(os.getpid())
        if base is None:
            base = _INSTANCES[os.getpid()] = duckdb.connect(":memory:")
        return base.cursor()


@contextmanager
def attached(path: Path | str, *, read_only: bool = False, lock_timeout_s: float,
             what: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default database is the file at ``path``, for one transaction:
    ``connect_waiting``'s connection and close, at a tenth of their cost (see the module's
    docstring). The file is attached under a name of its own, waiting up to
    ``lock_timeout_s`` while another process holds its lock, and detached at the end (an
    unfinished transaction rolled back, as a close does). Callers of one process take
    turns on one file (the catalog's per-process lock): DuckDB refuses a file attached
    twice in one instance."""
    con = _cursor()
    alias = f"attached_{next(_ALIASES)}"
    quoted = str(path).replace("'", "''")
    statement = f"ATTACH '{quoted}' AS {alias}" + (" (READ_ONLY)" if read_only else "")
    try:
        _waiting(lambda: con.execute(statement), lock_timeout_s, what)
    except BaseException:
        con.close()
        raise
    try:
        con.execute(f"USE {alias}")
        yield con
    finally:
        con.close()  # its open transaction, if any, rolled back
        detach = _cursor()
        try:
            detach.execute(f"DETACH {alias}")
        finally:
            detach.close()
