"""The collection database and fee control's own tables, in the data centre.

Layout under the data centre's root::

    collected/date=2026-11-03/batch-000001.parquet     the append-only feed (COLLECTED)
    feecontrol/state/date=2026-11-03/part-0.parquet    accounts' state after that date (batch)
    feecontrol/state/date=.../delta-00000007-batch-000123.parquet   continuous: the rows one
                                                       notice decided, in commit order
    feecontrol/state/date=.../base-00000007.parquet    continuous: the whole state after delta 7
    feecontrol/decisions/date=.../part-0.parquet       one row per decided account
    feecontrol/commands/date=.../part-0.parquet        commands sent to terminals
    feecontrol/rejects/date=.../part-0.parquet         records pre-processing refused
    feecontrol/holds/date=.../part-0.parquet           accounts the audit held for review

The feed only grows: a batch is a new file, never rewritten. Appending a batch that is
already there with the same rows is a no-op (a collector retrying after a lost answer), with
other rows it is refused. Fee control's tables are one file per run date, replaced whole by
a rerun (the data centre's atomic write), so a rerun of a date gives the same files.

The state of a date is its newest base (``part-0`` counts as base 0, ``base-S`` as base S)
with the deltas numbered above it laid over it in order; a date without a base starts from
the state of the date before. The continuous mode writes one delta per notice (only the
accounts that notice decided), and now and then a base from its memory; a delta is its
notice's commit point and stays after a base covers it, so a redelivered notice is known as
decided. Batch mode writes ``part-0`` and removes the date's bases and deltas first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from datasets.datacentre import DataCentre, _conform, _writer_options
from datasets.fee_state import StateTable
from datasets.schemas import (
    COLLECTED,
    FEE_COMMANDS,
    FEE_DECISIONS,
    FEE_HOLDS,
    FEE_REJECTS,
    FEE_STATE,
)
from gridfare.errors import DataCentreError, FeedConflict

__all__ = ["FEE_TABLES", "CollectionFeed", "FeeControlStore", "StateFiles"]

FEE_TABLES: dict[str, pa.Schema] = {
    "state": FEE_STATE,
    "decisions": FEE_DECISIONS,
    "commands": FEE_COMMANDS,
    "rejects": FEE_REJECTS,
    "holds": FEE_HOLDS,
}
_BATCH = re.compile(r"^batch-(\d{6,})\.parquet$")
_STATE_BASE = re.compile(r"^base-(\d{8})\.parquet$")
_STATE_DELTA = re.compile(r"^delta-(\d{8})-([A-Za-z0-9T_-]+)\.parquet$")
_NOTICE = re.compile(r"^[A-Za-z0-9T_-]+$")


@dataclass(frozen=True)
class StateFiles:
    """What one date's state directory holds: its newest base and its deltas."""

    base: int | None  # the newest base's number (part-0 is 0); None: no base
    base_name: str | None
    deltas: tuple[tuple[int, str], ...]  # (number, notice), ascending by number

    @property
    def last(self) -> int:
        """The highest number written (base or delta); 0 when none."""
        return max([self.base or 0, *(seq for seq, _ in self.deltas)])

    def notices(self) -> set[str]:
        return {notice for _, notice in self.deltas}


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
        continuous mode one part per feed batch (``batch-000123``). ``state`` is written
        here only whole (``part-0``, batch mode): the date's continuous bases and deltas
        are removed first, so the new file is the date's state (a crash between leaves the
        date undecided, and the batch run is run again)."""
        if table == "state":
            if part != "part-0":
                raise DataCentreError("fee control: the state is written whole as part-0, "
                                      "or a notice at a time with write_state_delta")
            directory = self._dir("state", date)
            for name in self._names(directory):
                if _STATE_BASE.match(name) or _STATE_DELTA.match(name):
                    self._delete(f"{directory}/{name}")
        schema = FEE_TABLES[table]
        path = f"{self._dir(table, date)}/{part}.parquet"
        _write(self._fs, path, _conform(rows, schema, table), schema)

    def write_state_delta(self, date: dt.date, seq: int, notice: str, rows: pa.Table) -> None:
        """Write delta ``seq`` of ``date``: the state rows notice ``notice`` decided (its
        commit point). ``seq`` must be above every number the date holds."""
        if not _NOTICE.match(notice):
            raise DataCentreError(f"fee control: bad notice name {notice!r} for a state delta")
        files = self.state_files(date)
        if notice in files.notices():
            raise DataCentreError(f"fee control: state of {date}: notice {notice} is "
                                  "already decided")
        if seq <= files.last:
            raise DataCentreError(f"fee control: state of {date}: delta {seq} is not above "
                                  f"{files.last}")
        _write(self._fs, self._delta_path(date, seq, notice), _conform(rows, FEE_STATE,
                                                                       "state"), FEE_STATE)

    def write_state_base(self, date: dt.date, seq: int, state: pa.Table) -> None:
        """Write base ``seq`` of ``date``: the whole state after its delta ``seq`` (or, 0,
        the state it starts from); older continuous bases of the date are removed after."""
        directory = self._dir("state", date)
        _write(self._fs, f"{directory}/base-{seq:08d}.parquet",
               _conform(state, FEE_STATE, "state"), FEE_STATE)
        for name in self._names(directory):
            match = _STATE_BASE.match(name)
            if match and int(match.group(1)) < seq:
                self._delete(f"{directory}/{name}")

    def state_files(self, date: dt.date) -> StateFiles:
        names = self._names(self._dir("state", date))
        bases = {int(m.group(1)): name for name in names if (m := _STATE_BASE.match(name))}
        if "part-0.parquet" in names:
            bases.setdefault(0, "part-0.parquet")
        base = max(bases) if bases else None
        deltas = sorted((int(m.group(1)), m.group(2)) for name in names
                        if (m := _STATE_DELTA.match(name)))
        return StateFiles(base, bases.get(base) if base is not None else None, tuple(deltas))

    def state_at(self, date: dt.date) -> StateTable:
        """The accounts' state after everything decided for ``date`` and before (the
        newest date with a state at or before it); empty when none."""
        earlier = [d for d in self.dates("state") if d <= date]
        if not earlier:
            return StateTable()
        files = self.state_files(earlier[-1])
        if files.base is not None:
            state = StateTable(_read(self._fs, f"{self._dir('state', earlier[-1])}/"
                                               f"{files.base_name}", FEE_STATE))
        else:
            state = self.state_at(earlier[-1] - dt.timedelta(days=1))
        for seq, notice in files.deltas:
            if files.base is None or seq > files.base:
                state.apply(_read(self._fs, self._delta_path(earlier[-1], seq, notice),
                                  FEE_STATE))
        return state

    def _delta_path(self, date: dt.date, seq: int, notice: str) -> str:
        return f"{self._dir('state', date)}/delta-{seq:08d}-{notice}.parquet"

    def _names(self, directory: str) -> list[str]:
        selector = pafs.FileSelector(directory, allow_not_found=True)
        try:
            infos = self._fs.get_file_info(selector)
        except (OSError, pa.ArrowException) as exc:
            raise DataCentreError(f"cannot list {directory}: {exc}") from exc
        return sorted(info.base_name for info in infos if info.type == pafs.FileType.File
                      and info.base_name.endswith(".parquet")
                      and not info.base_name.startswith("."))

    def _delete(self, path: str) -> None:
        try:
            self._fs.delete_file(path)
        except FileNotFoundError:
            pass
        except (OSError, pa.ArrowException) as exc:
            raise DataCentreError(f"cannot remove {path}: {exc}") from exc

    def read(self, table: str, date: dt.date) -> pa.Table:
        """Every part of ``table`` for ``date``, in part name order; for ``state``, the
        date's state (its base and deltas resolved, ascending by account)."""
        directory = self._dir(table, date)
        if table == "state":
            files = self.state_files(date)
            if files.base == 0 and not files.deltas:  # a batch run's date: one file
                return _read(self._fs, f"{directory}/part-0.parquet", FEE_STATE)
            if files.base is None and not files.deltas:
                return FEE_STATE.empty_table()
            return self.state_at(date).to_table()
        schema = FEE_TABLES[table]
        parts = [_read(self._fs, f"{directory}/{name}", schema)
                 for name in self._names(directory)]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def state_before(self, date: dt.date) -> pa.Table:
        """The accounts' state after the latest run date before ``date`` (empty: none)."""
        earlier = [d for d in self.dates("state") if d < date]
        return self.read("state", earlier[-1]) if earlier else FEE_STATE.empty_table()
