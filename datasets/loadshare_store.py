"""The load-sharing manager's durable state: ``<root>/loadshare.duckdb``.

Three tables, written by the one LoadShareManager of that root and read by ``gridfare
loadshare credits`` between its writes (the connection lasts one transaction, as the
catalog's):

- ``environments``: the open-state table, one row per environment, replaced on change
  and deleted when the manager prunes it (its ledger entries stay);
- ``ledger``: contribution credit entries, keyed by ``(env_id, seq)``; a repeated entry is
  ignored, so a retried write never doubles credit;
- ``manager``: one JSON document with the trigger memory (phase, episode, ...).

The manager rebuilds the table, the memory and each environment's last entry from here on
restart. Rows and entries cross this edge as plain dicts (``Environment.to_dict()``,
``dataclasses.asdict(LedgerEntry)``): datasets/ knows only the kernel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from datasets.duckdb_files import connect_waiting
from gridfare.errors import DataCentreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS environments (
    env_id VARCHAR PRIMARY KEY,
    row_json VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    env_id VARCHAR NOT NULL,
    seq INTEGER NOT NULL,
    node_id VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    since DOUBLE NOT NULL,
    until DOUBLE NOT NULL,
    cpus DOUBLE NOT NULL,
    memory_bytes BIGINT NOT NULL,
    tasks BIGINT NOT NULL,
    tasks_total BIGINT NOT NULL,
    millicredits BIGINT NOT NULL,
    PRIMARY KEY (env_id, seq)
);
CREATE TABLE IF NOT EXISTS manager (
    id INTEGER PRIMARY KEY,
    state_json VARCHAR NOT NULL
);
"""

_LEDGER_FIELDS = ("env_id", "seq", "node_id", "period", "since", "until", "cpus",
                  "memory_bytes", "tasks", "tasks_total", "millicredits")


class LoadShareStore:
    """One root's load-sharing tables."""

    def __init__(self, root: str | Path, *, lock_timeout_s: float = 10.0) -> None:
        self.path = Path(root) / "loadshare.duckdb"
        self._lock_timeout_s = lock_timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataCentreError(f"load-sharing store {self.path}: {exc}") from exc
        with self._connect():
            pass

    # -- writes ---------------------------------------------------------------------------

    def save(self, rows: Sequence[dict] = (), entries: Sequence[dict] = (),
             state: dict | None = None, forgotten: Sequence[str] = ()) -> None:
        """Changed rows, new ledger entries, the manager's memory and the rows it pruned,
        in one transaction."""
        if not rows and not entries and state is None and not forgotten:
            return
        with self._connect() as con:
            con.execute("BEGIN")
            if forgotten:
                con.executemany("DELETE FROM environments WHERE env_id = ?",
                                [[env_id] for env_id in forgotten])
            for row in rows:
                con.execute("INSERT OR REPLACE INTO environments VALUES (?, ?)",
                            [row["env_id"], json.dumps(row, sort_keys=True)])
            if entries:
                con.executemany(
                    f"INSERT OR IGNORE INTO ledger VALUES ({', '.join('?' * 11)})",
                    [[e[f] for f in _LEDGER_FIELDS] for e in entries])
            if state is not None:
                con.execute("INSERT OR REPLACE INTO manager VALUES (1, ?)",
                            [json.dumps(state, sort_keys=True)])
            con.execute("COMMIT")

    # -- reads ----------------------------------------------------------------------------

    def environments(self) -> list[dict]:
        with self._connect() as con:
            rows = con.execute("SELECT row_json FROM environments ORDER BY env_id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def state(self) -> dict | None:
        with self._connect() as con:
            row = con.execute("SELECT state_json FROM manager WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None

    def entries(self, env_id: str | None = None) -> list[dict]:
        where, params = ("WHERE env_id = ?", [env_id]) if env_id else ("", [])
        with self._connect() as con:
            rows = con.execute(f"SELECT {', '.join(_LEDGER_FIELDS)} FROM ledger {where} "
                               "ORDER BY env_id, seq", params).fetchall()
        return [dict(zip(_LEDGER_FIELDS, r, strict=True)) for r in rows]

    def last_entries(self) -> dict[str, dict]:
        """Each environment's latest entry: where its next accrual starts."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT {', '.join(_LEDGER_FIELDS)} FROM ledger "
                "QUALIFY row_number() OVER (PARTITION BY env_id ORDER BY seq DESC) = 1"
            ).fetchall()
        return {r[0]: dict(zip(_LEDGER_FIELDS, r, strict=True)) for r in rows}

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect_waiting(self.path, lock_timeout_s=self._lock_timeout_s,
                              what=f"load-sharing store {self.path}")
        try:
            con.execute(_SCHEMA)
            yield con
        except duckdb.Error as exc:
            raise DataCentreError(f"load-sharing store {self.path}: {exc}") from exc
        finally:
            con.close()
