"""The data centre's catalog: runs, section states and audit exceptions in DuckDB, views
over the Parquet.

One process writes the catalog (the single-process runner, or the ControlServer on a
cluster); readers open it read-only and never create it. A local catalog is the file
``<root>/catalog.duckdb``, opened only for the length of one transaction, so readers (the
analyst API, ``gridfare status``) can get in between writes; a lock conflict is retried for
a bounded time and then reported as a DataCentreError. A remote data centre's catalog is
the object ``<root>/catalog.duckdb.zst``, written under a lease
(``datasets/catalog_remote.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from datasets.duckdb_files import attached
from datasets.schemas import AUDIT_EXCEPTIONS
from gridfare.errors import DataCentreError, UnknownRun

if TYPE_CHECKING:
    from datasets.catalog_remote import RemoteCatalogFile
    from datasets.datacentre import DataCentre, SectionFiles

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    period VARCHAR NOT NULL,
    status VARCHAR NOT NULL,          -- running | done | failed
    sections_total INTEGER NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS section_runs (
    run_id VARCHAR NOT NULL,
    section_id VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    status VARCHAR NOT NULL,          -- pending | done | failed
    accounts BIGINT,
    billed BIGINT,
    exceptions BIGINT,
    total_fen BIGINT,
    node_id VARCHAR,
    seconds DOUBLE,
    error VARCHAR,
    finished_at TIMESTAMP,
    PRIMARY KEY (run_id, section_id)
);
-- The tariff book a run was started with (its files as one JSON object): its sections, a
-- resume and a restarted ControlServer price with it.
CREATE TABLE IF NOT EXISTS run_tariffs (
    run_id VARCHAR PRIMARY KEY,
    digest VARCHAR NOT NULL,
    files VARCHAR NOT NULL
);
-- One section's rows are replaced in the transaction that records it done. No key: at
-- most one row per (period, section_id, account_id, rule) by construction, and DuckDB
-- refuses a key deleted and inserted again in one transaction.
-- The manifest: where each section's bills and history fold are (a file per bundle of
-- sections, ``part`` the section's row group or record batch, -1 for no rows). Moved in the
-- transaction that records the section done, so a file is visible exactly when its section
-- is; no key, for the reason audit_exceptions has none.
CREATE TABLE IF NOT EXISTS section_files (
    period VARCHAR NOT NULL,
    section_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,         -- bills | history
    file VARCHAR NOT NULL,            -- relative to the data centre's root
    part INTEGER NOT NULL,
    run_id VARCHAR                    -- NULL: recorded by the migration of older files
);
CREATE TABLE IF NOT EXISTS catalog_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_exceptions (
    account_id BIGINT NOT NULL,
    period VARCHAR NOT NULL,
    section_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL
);
"""

_VIEWS = ("accounts", "readings", "bills")
_MANIFEST_VIEWS = ("bills",)
_RETIRED_VIEWS = ("exceptions",)  # over the Parquet files exceptions used to be
_OUTCOME_FIELDS = ("accounts", "billed", "exceptions", "total_fen", "node_id", "seconds",
                   "error", "finished_at")
_MIGRATED = "section_files_migrated"  # catalog_meta: the older files have manifest rows
_FILE_ROWS = pa.schema([("section_id", pa.string()), ("dataset", pa.string()),
                        ("file", pa.string()), ("part", pa.int32())])
_EXCEPTION_ROWS = pa.schema([("section_id", pa.string()), ("account_id", pa.int64()),
                             ("rule", pa.string()), ("detail", pa.string())])
_OUTCOME_SCHEMA = pa.schema([
    ("section_id", pa.string()), ("status", pa.string()), ("accounts", pa.int64()),
    ("billed", pa.int64()), ("exceptions", pa.int64()), ("total_fen", pa.int64()),
    ("node_id", pa.string()), ("seconds", pa.float64()), ("error", pa.string()),
    ("finished_at", pa.timestamp("us")),
])


@dataclass(frozen=True)
class RunRecord:
    """A billing run as the catalog holds it."""

    run_id: str
    period: str
    status: str
    sections_total: int
    sections_done: int
    sections_failed: int
    billed: int
    exceptions: int
    total_fen: int
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class SectionRecord:
    """One section's state within a run."""

    section_id: str
    status: str
    accounts: int | None
    billed: int | None
    exceptions: int | None
    total_fen: int | None
    node_id: str | None
    seconds: float | None
    error: str | None


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path.resolve(), threading.Lock())


def open_catalog(centre: DataCentre, *, writer: bool = False,
                 lock_timeout_s: float = 30.0) -> Catalog:
    """The catalog of ``centre``: the file ``<root>/catalog.duckdb`` when the data centre is
    local, the object ``<root>/catalog.duckdb.zst`` when remote (``datasets/catalog_remote.py``).

    Readers (``writer=False``) open it read-only and never create it: a data centre that
    has no catalog yet reads as one with no runs. The data centre must exist, so that a
    directory that is not one answers "not a data centre", never "no runs".
    """
    centre.require()
    if centre.is_local:
        return Catalog(centre.catalog_path, read_only=not writer, lock_timeout_s=lock_timeout_s)
    from datasets.catalog_remote import RemoteCatalogFile

    return Catalog(RemoteCatalogFile(centre.filesystem, centre.root, centre.shown,
                                     writer=writer, lock_timeout_s=lock_timeout_s))


class _LocalCatalogFile:
    """Connections to a local ``catalog.duckdb``, one short transaction each."""

    def __init__(self, path: Path, *, writer: bool, lock_timeout_s: float) -> None:
        self.path = path
        self.shown = str(path)
        self.writer = writer
        self._lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, write: bool) -> Iterator[tuple[duckdb.DuckDBPyConnection, bool]]:
        """A connection and whether it may write (a writer's may, always)."""
        if write and not self.writer:
            raise DataCentreError(f"catalog {self.path}: opened read-only")
        # Threads of one process take turns (DuckDB's instance cache races on concurrent
        # opens of a file, and refuses a read-only and a read-write open of one file at
        # once); processes take turns through DuckDB's file lock, retried below.
        with _process_lock(self.path):
            if self.writer:
                with self._open(read_only=False) as con:
                    yield con, True
            elif not self.path.exists():
                # No catalog yet: an empty one in memory, so that a reader creates nothing.
                con = duckdb.connect(":memory:")
                try:
                    yield con, True
                finally:
                    con.close()
            else:
                with self._open(read_only=True) as con:
                    yield con, False

    def release(self) -> None:
        """Nothing to give up: DuckDB's file lock lasts one transaction."""

    @contextmanager
    def _open(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        # Attached to this process's DuckDB instance, not a connection of its own: the
        # ControlServer writes once a second, and a connection's making and close were
        # 2/3 of its catalog CPU (datasets/duckdb_files.py).
        with attached(self.path, read_only=read_only, lock_timeout_s=self._lock_timeout_s,
                      what=f"catalog {self.path}") as con:
            try:
                yield con
            except duckdb.Error as exc:
                raise DataCentreError(f"catalog {self.path}: {exc}") from exc


class Catalog:
    """Runs and section states of one data centre, in ``catalog.duckdb``.

    ``Catalog(path)`` opens a local file for writing (creating it); ``open_catalog(centre)``
    picks the file or object a data centre's catalog is, for a reader or the writer.
    """

    def __init__(self, path: str | Path | _LocalCatalogFile | RemoteCatalogFile, *,
                 lock_timeout_s: float = 30.0, read_only: bool = False) -> None:
        if isinstance(path, (str, Path)):
            path = _LocalCatalogFile(Path(path), writer=not read_only,
                                     lock_timeout_s=lock_timeout_s)
        self._file = path
        self.path = path.shown
        if isinstance(path, _LocalCatalogFile) and path.writer:
            with self._connect(write=True):
                pass  # the tables, at once: a catalog that cannot be opened fails here

    def release(self) -> None:
        """End this writer's hold on the catalog: a remote catalog's lease is given up, so
        the next writer (a ``bill``, another ControlServer) need not wait for it to expire."""
        self._file.release()

    # -- writing (one process) ------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        period: str,
        sections: list[str],
        started_at: datetime,
        *,
        tariff_digest: str | None = None,
        tariff_files: str | None = None,
    ) -> None:
        """Record a run, its sections as pending and its tariff book (``tariff_files``, the
        files as a JSON object, named by ``tariff_digest``); repeating it changes nothing."""
        with self._connect(write=True) as con:
            con.begin()
            if tariff_files is not None:
                con.execute("INSERT INTO run_tariffs VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                            [run_id, tariff_digest, tariff_files])
            con.execute(
                "INSERT INTO runs VALUES (?, ?, 'running', ?, ?, NULL) ON CONFLICT DO NOTHING",
                [run_id, period, len(sections), started_at],
            )
            con.execute(
                "INSERT INTO section_runs (run_id, section_id, period, status) "
                "SELECT ?, unnest(?::VARCHAR[]), ?, 'pending' ON CONFLICT DO NOTHING",
                [run_id, list(sections), period],
            )
            con.commit()

    def run_tariffs(self, run_id: str) -> str | None:
        """The tariff files (JSON) the run was started with; None for a run recorded
        before books were (or an unknown run)."""
        with self._connect() as con:
            row = con.execute("SELECT files FROM run_tariffs WHERE run_id = ?",
                              [run_id]).fetchone()
        return None if row is None else row[0]

    def record_sections(self, run_id: str, outcomes: Sequence[Mapping[str, object]]) -> None:
        """Set the outcome of several sections in one transaction.

        Each outcome names ``section_id`` and ``status`` (done or failed) and may carry
        accounts, billed, exceptions, total_fen, node_id, seconds, error, finished_at and
        ``exception_rows`` ((account_id, rule, detail) tuples). A done section's audit
        exceptions replace those its period had, in the same transaction; a failed
        section's are left as they were, like its bills file. A repeat overwrites the same
        rows, never adds one; a section outside the run is refused.
        """
        batch = _outcome_batch(outcomes)
        if batch is None:
            return
        with self._connect(write=True) as con:
            con.begin()
            _record(con, run_id, *batch)
            con.commit()

    def reopen_run(self, run_id: str) -> None:
        """Mark a finished run as running again, for a resume of what it did not do."""
        with self._connect(write=True) as con:
            con.execute("UPDATE runs SET status = 'running', finished_at = NULL "
                        "WHERE run_id = ?", [run_id])

    def finish_run(self, run_id: str, finished_at: datetime,
                   outcomes: Sequence[Mapping[str, object]] = ()) -> RunRecord:
        """Close a run: done when every section is done, failed when any failed.

        ``outcomes`` not yet recorded (as for ``record_sections``) go in the same
        transaction: the end of a run is one catalog write, not two and a read.
        """
        batch = _outcome_batch(outcomes)
        with self._connect(write=True) as con:
            con.begin()
            if batch is not None:
                _record(con, run_id, *batch)
            con.execute(
                "UPDATE runs SET finished_at = ?, status = CASE WHEN EXISTS (SELECT 1 FROM "
                "section_runs s WHERE s.run_id = runs.run_id AND s.status <> 'done') "
                "THEN 'failed' ELSE 'done' END WHERE run_id = ?",
                [finished_at, run_id],
            )
            con.commit()
            return self._run_in(con, run_id)

    # -- the manifest (where sections' bills and folds are) --------------------------------

    def migrate(self, centre: DataCentre) -> int:
        """Give the bills and folds of the older layout (a file a section) manifest rows,
        once per catalog (a section that has a row already keeps it); the writer does it
        before it reads or sweeps the manifest. Returns the rows added."""
        with self._connect() as con:
            if _is_migrated(con):
                return 0
        rows = centre.legacy_files()  # one listing, outside the transaction
        with self._connect(write=True) as con:
            con.begin()
            if _is_migrated(con):  # another writer got there first
                con.rollback()
                return 0
            added = 0
            if rows:
                con.register("legacy_files", pa.table(
                    list(zip(*rows, strict=True)),
                    names=["dataset", "period", "section_id", "file", "part"]))
                (added,) = con.execute(
                    "INSERT INTO section_files SELECT l.period, l.section_id, l.dataset, "
                    "l.file, l.part, NULL FROM legacy_files l ANTI JOIN section_files f "
                    "USING (period, section_id, dataset)").fetchone()
                con.unregister("legacy_files")
            con.execute("INSERT INTO catalog_meta VALUES (?, 'yes')", [_MIGRATED])
            con.commit()
            return added

    def section_files(self, centre: DataCentre, *, periods: Iterable[str] | None = None,
                      sections: Iterable[str] | None = None) -> SectionFiles:
        """The manifest rows of ``periods`` and ``sections`` (all when None). A reader of a
        catalog not yet migrated gets the older files' rows too, read from the layout (the
        same rows the migration would record), so that every reader has one read path."""
        from datasets.datacentre import SectionFiles

        periods = None if periods is None else sorted(set(periods))
        sections = None if sections is None else sorted(set(sections))
        sql = "SELECT dataset, period, section_id, file, part FROM section_files WHERE true"
        params: list[object] = []
        for column, values in (("period", periods), ("section_id", sections)):
            if values is not None:
                sql += f" AND list_contains(?::VARCHAR[], {column})"
                params.append(values)
        with self._connect() as con:
            rows = con.execute(sql, params).fetchall()
            migrated = _is_migrated(con)
        if not migrated and self._file.writer:  # once: then the rows again, one read
            self.migrate(centre)
            return self.section_files(centre, periods=periods, sections=sections)
        if not migrated:
            known = {(d, p, s) for d, p, s, _, _ in rows}
            rows += [row for row in centre.legacy_files()
                     if row[:3] not in known
                     and (periods is None or row[1] in periods)
                     and (sections is None or row[2] in sections)]
        return SectionFiles(rows)

    def sweep(self, centre: DataCentre, period: str, finished_run: str | None = None) -> int:
        """Delete ``period``'s bills and fold files that no manifest row names: a bundle
        renamed into place whose run never recorded it (a crash, a retried task), or one
        whose sections were all billed again since. Files of runs still running are kept
        (their tasks may not have reported yet), except ``finished_run``'s, whose tasks
        have all returned. Returns the files deleted."""
        from datasets.datacentre import bundle_run

        with self._connect() as con:
            migrated = _is_migrated(con)
            referenced = {file for (file,) in con.execute(
                "SELECT DISTINCT file FROM section_files WHERE period = ?", [period]
            ).fetchall()}
            running = {run for (run,) in con.execute(
                "SELECT run_id FROM runs WHERE status = 'running'").fetchall()}
        if not migrated:  # never sweep files of the older layout that have no rows yet
            self.migrate(centre)
            return self.sweep(centre, period, finished_run)
        running.discard(finished_run)
        return centre.remove_files(
            file for file in centre.bundled_files(period)
            if file not in referenced and bundle_run(file) not in running)

    def refresh_views(self, globs: dict[str, str]) -> None:
        """(Re)create views over the Parquet datasets that have files (dataset -> glob).

        No globs (a remote data centre, which DuckDB cannot read): nothing to write."""
        if not globs:
            return
        with self._connect(write=True) as con:
            for name in _RETIRED_VIEWS:
                con.execute(f"DROP VIEW IF EXISTS {name}")
            for name in _VIEWS:
                pattern = globs.get(name)
                if pattern is None:
                    continue
                scan = (f"read_parquet('{pattern}', hive_partitioning = false, "
                        "union_by_name = true")
                if name in _MANIFEST_VIEWS:
                    # Through the manifest: a section's rows from the file it names, never
                    # a bundle no row names nor a section's rows in a file billed again.
                    root = pattern[:pattern.rindex(f"/{name}/")]
                    select = (f"SELECT b.* EXCLUDE (filename) FROM {scan}, filename = true) "
                              f"b SEMI JOIN section_files m ON m.dataset = '{name}' AND "
                              "m.period = b.period AND m.section_id = b.section_id AND "
                              f"b.filename = '{root}/' || m.file")
                else:
                    select = f"SELECT * FROM {scan})"
                try:
                    con.execute(f"CREATE OR REPLACE VIEW {name} AS {select}")
                except duckdb.IOException:
                    continue  # no files yet: the view appears after the first write
                except duckdb.InvalidInputException:
                    # A file DuckDB cannot read (the corrupt input a section failed on):
                    # the view stays as it was; the run is recorded already, and a query
                    # of the view meets the file's own error.
                    continue

    # -- reading -------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        with self._connect() as con:
            return self._run_in(con, run_id)

    def failures(self, run_id: str) -> dict[str, str | None]:
        """The failed sections of a run and their errors."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT section_id, error FROM section_runs WHERE run_id = ? AND "
                "status = 'failed' ORDER BY section_id", [run_id]).fetchall()
        return dict(rows)

    def runs(self) -> list[RunRecord]:
        return self._runs("", [])

    def exceptions(self, period: str, sections: Sequence[str] | None = None) -> pa.Table:
        """The audit exceptions of ``period`` (of ``sections`` only, if given), schema
        ``AUDIT_EXCEPTIONS``, by section, account and rule."""
        sql = ("SELECT account_id, period, section_id, rule, detail, run_id "
               "FROM audit_exceptions WHERE period = ?")
        params: list[object] = [period]
        if sections is not None:
            sql += " AND list_contains(?::VARCHAR[], section_id)"
            params.append(list(sections))
        with self._connect() as con:
            table = con.sql(sql + " ORDER BY section_id, account_id, rule",
                            params=params).to_arrow_table()
        return table.cast(AUDIT_EXCEPTIONS)

    def sections(self, run_id: str) -> list[SectionRecord]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT section_id, status, accounts, billed, exceptions, total_fen, node_id, "
                "seconds, error FROM section_runs WHERE run_id = ? ORDER BY section_id",
                [run_id],
            ).fetchall()
        return [SectionRecord(*row) for row in rows]

    def pending_sections(self, run_id: str) -> list[str]:
        """Sections of a run that are not done (pending or failed): what a resume bills."""
        return [s.section_id for s in self.sections(run_id) if s.status != "done"]

    def _runs(self, where: str, params: list) -> list[RunRecord]:
        with self._connect() as con:
            return _run_records(con, where, params)

    def _run_in(self, con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord:
        records = _run_records(con, "WHERE r.run_id = ?", [run_id])
        if not records:
            raise UnknownRun(f"run {run_id!r} is not in the catalog at {self.path}")
        return records[0]

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._file.connect(write) as (con, writable):
            if writable:
                # At every connection, not once: a long-lived holder (the ControlServer)
                # outlives a data centre deleted and generated again (``make demo`` twice
                # on one cluster), whose new file would have no tables. Where they exist it
                # is a no-op (~1.7 ms on the bench's catalog; the attach itself ~1 ms).
                con.execute(_SCHEMA)
            yield con


def _is_migrated(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT 1 FROM catalog_meta WHERE key = ?",
                       [_MIGRATED]).fetchone() is not None


def _run_records(con: duckdb.DuckDBPyConnection, where: str, params: list) -> list[RunRecord]:
    rows = con.execute(
        "SELECT r.run_id, r.period, r.status, r.sections_total, "
        "count(*) FILTER (WHERE s.status = 'done'), "
        "count(*) FILTER (WHERE s.status = 'failed'), "
        "coalesce(sum(s.billed), 0), coalesce(sum(s.exceptions), 0), "
        "coalesce(sum(s.total_fen), 0), r.started_at, r.finished_at "
        f"FROM runs r LEFT JOIN section_runs s USING (run_id) {where} "
        "GROUP BY ALL ORDER BY r.started_at, r.run_id",
        params,
    ).fetchall()
    return [RunRecord(*row) for row in rows]


def _outcome_batch(outcomes: Sequence[Mapping[str, object]]
                   ) -> tuple[pa.Table, pa.Table, pa.Table] | None:
    """The outcomes as a table of section states, the done ones' exception rows and the
    done ones' manifest rows (``files``: (dataset, file, part) of the section)."""
    if not outcomes:
        return None
    for outcome in outcomes:
        if outcome["status"] not in ("done", "failed"):
            raise DataCentreError(f"section {outcome['section_id']}: status "
                                  f"{outcome['status']!r} is not done/failed")
    # A section's last outcome stands: recorded twice in one batch, its exceptions would
    # be inserted twice.
    latest = list({outcome["section_id"]: outcome for outcome in outcomes}.values())
    columns = ("section_id", "status", *_OUTCOME_FIELDS)
    states = pa.Table.from_pylist(
        [{k: outcome.get(k) for k in columns} for outcome in latest],
        schema=_OUTCOME_SCHEMA,
    )
    rows = [(outcome["section_id"], *row) for outcome in latest
            if outcome["status"] == "done" for row in outcome.get("exception_rows", ())]
    by_column = list(zip(*rows, strict=True)) or [()] * len(_EXCEPTION_ROWS)
    exceptions = pa.Table.from_arrays(
        [pa.array(column, field.type)
         for column, field in zip(by_column, _EXCEPTION_ROWS, strict=True)],
        schema=_EXCEPTION_ROWS,
    )
    file_rows = [(outcome["section_id"], *row) for outcome in latest
                 if outcome["status"] == "done" for row in outcome.get("files", ())]
    by_column = list(zip(*file_rows, strict=True)) or [()] * len(_FILE_ROWS)
    files = pa.Table.from_arrays(
        [pa.array(column, field.type)
         for column, field in zip(by_column, _FILE_ROWS, strict=True)], schema=_FILE_ROWS)
    return states, exceptions, files


def _record(con: duckdb.DuckDBPyConnection, run_id: str, states: pa.Table,
            exceptions: pa.Table, files: pa.Table) -> None:
    """Record section states, the done sections' exceptions and their manifest rows
    (inside a transaction): a done section's files replace the ones it had, so a reader
    sees its new bills exactly when the catalog says it is done."""
    con.register("outcome_batch", states)
    unknown = con.execute(
        "SELECT section_id FROM outcome_batch EXCEPT SELECT section_id FROM "
        "section_runs WHERE run_id = ? ORDER BY 1 LIMIT 5", [run_id]).fetchall()
    if unknown:
        raise DataCentreError(f"run {run_id}: sections {[u[0] for u in unknown]} are "
                              "not part of the run")
    con.execute(
        "UPDATE section_runs s SET status = b.status, "
        + ", ".join(f"{k} = b.{k}" for k in _OUTCOME_FIELDS)
        + " FROM outcome_batch b WHERE s.run_id = ? AND s.section_id = b.section_id",
        [run_id],
    )
    (period,) = con.execute("SELECT period FROM runs WHERE run_id = ?", [run_id]).fetchone()
    con.execute(
        "DELETE FROM audit_exceptions WHERE period = ? AND section_id IN "
        "(SELECT section_id FROM outcome_batch WHERE status = 'done')", [period])
    if exceptions.num_rows:
        con.register("exception_batch", exceptions)
        con.execute(
            "INSERT INTO audit_exceptions SELECT account_id, ?, section_id, rule, detail, ? "
            "FROM exception_batch", [period, run_id])
        con.unregister("exception_batch")
    if files.num_rows:
        con.register("file_batch", files)
        con.execute(
            "DELETE FROM section_files WHERE period = ? AND section_id IN "
            "(SELECT DISTINCT section_id FROM file_batch)", [period])
        con.execute(
            "INSERT INTO section_files SELECT ?, section_id, dataset, file, part, ? "
            "FROM file_batch", [period, run_id])
        con.unregister("file_batch")
    con.unregister("outcome_batch")
