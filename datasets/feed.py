"""The collection database and fee control's own tables, in the data centre.

Layout under the data centre's root::

    collected/date=2026-11-03/batch-000001.parquet     the append-only feed (COLLECTED)
    feecontrol/state/date=2026-11-03/part-0.parquet    accounts' state after that date
    feecontrol/decisions/date=.../part-0.parquet       one row per decided account
    feecontrol/commands/date=.../part-0.parquet        commands sent to terminals
    feecontrol/rejects/date=.../part-0.parquet         records pre-processing refused
    feecontrol/holds/date=.../part-0.parquet           accounts the audit held for review

The feed only grows: a batch is a new file, never rewritten. Appending a batch that is
already there with the same rows is a no-op (a collector retrying after a lost answer), with
other rows it is refused. Fee control's tables are one file per run date, replaced whole by
a rerun (the data centre's atomic write), so a rerun of a date gives the same files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from datasets.datacentre import DataCentre, _conform, _writer_options
from datasets.schemas import (
    COLLECTED,
    FEE_COMMANDS,
    FEE_DECISIONS,
    FEE_HOLDS,
    FEE_REJECTS,
    FEE_STATE,
)
from gridfare.errors import DataCentreError, FeedConflict

__all__ = ["FEE_TABLES", "CollectionFeed", "FeeControlStore"]

FEE_TABLES: dict[str, pa.Schema] = {
    "state": FEE_STATE,
    "decisions": FEE_DECISIONS,
    "commands": FEE_COMMANDS,
    "rejects": FEE_REJECTS,
    "holds": FEE_HOLDS,
}
_BATCH = re.compile(r"^batch-(\d{6,})\.parquet$")


def _write(fs: pafs.FileSystem, path: str, table: pa.Table, schema: pa.Schema) -> None:
    """Write ``table`` to a dot-named temporary file beside ``path``, then move it there."""
    directory, name = path.rsplit("/", 1)
    temp = f"{directory}/.{name}.tmp-{uuid.uuid4().hex}"
    try:
        encoded = pa.BufferOutputStream()
        pq.write_table(table, encoded, **_writer_options(schema))
        fs.create_dir(directory, recursive=True)
        with fs.open_output_stream(temp) as sink:
            sink.write(encoded.getvalue())
        fs.move(temp, path)
    except (OSError, pa.ArrowException) as exc:
        with contextlib.suppress(OSError, pa.ArrowException):
            fs.delete_file(temp)
        raise DataCentreError(f"cannot write {path}: {exc}") from exc


def _read(fs: pafs.FileSystem, path: str, schema: pa.Schema) -> pa.Table:
    try:
        with fs.open_input_stream(path) as source:
            data = source.read()
        table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    except FileNotFoundError:
        return schema.empty_table()
    except (OSError, pa.ArrowException) as exc:
        raise DataCentreError(f"cannot read {path}: {exc}") from exc
    return _conform(table, schema, path)


def _dates(fs: pafs.FileSystem, directory: str) -> list[dt.date]:
    selector = pafs.FileSelector(directory, allow_not_found=True)
    try:
        infos = fs.get_file_info(selector)
    except (OSError, pa.ArrowException) as exc:
        raise DataCentreError(f"cannot list {directory}: {exc}") from exc
    return sorted(dt.date.fromisoformat(info.base_name.split("=", 1)[1]) for info in infos
                  if info.type == pafs.FileType.Directory and info.base_name.startswith("date="))


class CollectionFeed:
    """The append-only feed of collected records, one directory per collection date."""

    def __init__(self, datacentre: DataCentre) -> None:
        self._fs = datacentre.filesystem
        self._root = f"{datacentre.root}/collected"

    def _dir(self, date: dt.date) -> str:
        return f"{self._root}/date={date.isoformat()}"

    def dates(self) -> list[dt.date]:
        return _dates(self._fs, self._root)

    def batches(self, date: dt.date) -> list[int]:
        """The batch numbers present for ``date``, ascending."""
        selector = pafs.FileSelector(self._dir(date), allow_not_found=True)
        try:
            infos = self._fs.get_file_info(selector)
        except (OSError, pa.ArrowException) as exc:
            raise DataCentreError(f"cannot list {self._dir(date)}: {exc}") from exc
        found = (_BATCH.match(info.base_name) for info in infos)
        return sorted(int(match.group(1)) for match in found if match)

    def append(self, date: dt.date, batch: int, table: pa.Table) -> bool:
        """Add batch ``batch`` of ``date``; False if that batch is already there unchanged."""
        conformed = _conform(table, COLLECTED, f"feed batch {batch}")
        if conformed.num_rows and set(conformed["batch"].unique().to_pylist()) != {batch}:
            raise DataCentreError(f"feed batch {batch}: rows carry another batch number")
        path = f"{self._dir(date)}/batch-{batch:06d}.parquet"
        existing = _read(self._fs, path, COLLECTED)
        if existing.num_rows or self._exists(path):
            if existing.equals(conformed):
                return False
            raise FeedConflict(f"feed {date} batch {batch}: already appended with other rows "
                               "(the feed is append-only)")
        _write(self._fs, path, conformed, COLLECTED)
        return True

    def read(self, date: dt.date, batches: list[int] | None = None) -> pa.Table:
        """The records of ``date`` (of the given batches only), in batch order."""
        wanted = self.batches(date) if batches is None else batches
        tables = [_read(self._fs, f"{self._dir(date)}/batch-{b:06d}.parquet", COLLECTED)
                  for b in wanted]
        return pa.concat_tables(tables) if tables else COLLECTED.empty_table()

    def _exists(self, path: str) -> bool:
        return self._fs.get_file_info(path).type == pafs.FileType.File


class FeeControlStore:
    """Fee control's per-run-date tables (``FEE_TABLES``), each replaced whole by a rerun."""

    def __init__(self, datacentre: DataCentre) -> None:
        self._fs = datacentre.filesystem
        self._root = f"{datacentre.root}/feecontrol"

    def _dir(self, table: str, date: dt.date) -> str:
        if table not in FEE_TABLES:
            raise DataCentreError(f"fee control: unknown table {table!r}")
        return f"{self._root}/{table}/date={date.isoformat()}"

    def dates(self, table: str) -> list[dt.date]:
        return _dates(self._fs, f"{self._root}/{table}")

    def write(self, table: str, date: dt.date, rows: pa.Table, part: str = "part-0") -> None:
        """Replace one part of ``table`` for ``date``: a batch run writes ``part-0``, the
        continuous mode one part per feed batch (``batch-000123``); ``state`` has one part,
        the accounts' whole state after the latest decided batch."""
        if table == "state" and part != "part-0":
            raise DataCentreError("fee control: the state has one part per date")
        schema = FEE_TABLES[table]
        path = f"{self._dir(table, date)}/{part}.parquet"
        _write(self._fs, path, _conform(rows, schema, table), schema)

    def read(self, table: str, date: dt.date) -> pa.Table:
        """Every part of ``table`` for ``date``, in part name order."""
        directory = self._dir(table, date)
        selector = pafs.FileSelector(directory, allow_not_found=True)
        try:
            infos = self._fs.get_file_info(selector)
        except (OSError, pa.ArrowException) as exc:
            raise DataCentreError(f"cannot list {directory}: {exc}") from exc
        names = sorted(info.base_name for info in infos if info.type == pafs.FileType.File
                       and info.base_name.endswith(".parquet")
                       and not info.base_name.startswith("."))
        schema = FEE_TABLES[table]
        parts = [_read(self._fs, f"{directory}/{name}", schema) for name in names]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def state_before(self, date: dt.date) -> pa.Table:
        """The accounts' state after the latest run date before ``date`` (empty: none)."""
        earlier = [d for d in self.dates("state") if d < date]
        return self.read("state", earlier[-1]) if earlier else FEE_STATE.empty_table()
