"""The Parquet side of the data centre: hive-partitioned datasets on any ``pyarrow.fs``.

Layout under the root (a local directory or a filesystem URI such as ``s3://bucket/city``)::

    accounts/section=S00001/part-0.parquet
    readings/period=2026-10/section=S00001/part-0.parquet
    usage_history/section=S00001/part-0.parquet
    bills/period=2026-10/bundle=<run_id>-<hex>/part-0.parquet   (a row group a section)
    history/period=2026-10/bundle=<run_id>-<hex>/part-0.v2.arrow (a record batch a section)
    catalog.duckdb         (runs, section states, audit exceptions: ``datasets/catalog.py``;
                            remote: catalog.duckdb.zst, the file as one compressed object)
    catalog.lease          (remote data centres: the catalog writer's lease)
    datacentre.json        (the manifest that marks the root as a data centre)

Partition values are in the path *and* in the files (``period``, ``section_id``), so one
file read alone matches its schema in ``datasets/schemas.py``. Every write is atomic and
idempotent: the table goes to a dot-named temporary file in the target directory and is
then moved over ``part-0.parquet``; a rerun replaces, never duplicates. Lower-layer errors
become :class:`~gridfare.errors.DataCentreError` (``DataCentreFull`` for ENOSPC).

Bills and history folds are written a file per *bundle* (the sections one task bills): a
bundle's files always have new names, and a section's bills are found only through the
catalog's manifest (``section_files``: period, section, dataset -> file, part), which the
one catalog writer moves in the transaction that marks the section done. A bundle file
that no manifest row names (a crash between its rename and the commit, a section billed
again elsewhere) is invisible to every reader and removed by the next run's sweep
(``Catalog.sweep``). Files of the older ``section=`` layout get manifest rows once
(``Catalog.migrate``), so that there is one read path.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pyarrow.dataset

from datasets.schemas import (
    ACCOUNTS,
    BILLS,
    FOLD_MONTHS,
    GENERATOR_STATE,
    HISTORY_FOLD,
    READINGS,
    TARIFF_COMPARISONS,
    USAGE_HISTORY,
    ManifestRow,
    SectionFiles,
    check_section_id,
    history_months,
    months_within,
)
from datasets.uri import identity, open_filesystem, redact
from gridfare.errors import (
    DataCentreError,
    DataCentreFull,
    ForeignData,
    InvalidInput,
    NotADataCentre,
)
from gridfare.period import Period, index_of, label_of

__all__ = [
    "BUNDLED",
    "CATALOG_NAME",
    "DATASETS",
    "FOLD_PART_NAME",
    "MANIFEST",
    "PART_NAME",
    "REMOTE_CATALOG_NAME",
    "DataCentre",
    "SectionFiles",
    "bundle_run",
    "check_bundle",
    "check_period",
    "periods_before",
    "shift_period",
]

PART_NAME = "part-0.parquet"
# The history folds are derived state no other engine reads (they are not views): Arrow
# IPC, uncompressed, whose write and read of a section's ~6,000 rows cost 0.20 ms each where
# Parquet took 0.39 ms to encode and 0.46 ms to decode (300 k city, one CPU slot).
# Its months are indices (HISTORY_FOLD), hence ``v2``: a fold of ``YYYY-MM`` labels is
# ``part-0.arrow``.
FOLD_PART_NAME = "part-0.v2.arrow"
_PART_NAMES = {"history": FOLD_PART_NAME}
# Folds of earlier formats (Parquet, then Arrow IPC with labels): derived rows the readers
# ignore (they read the bills files instead, which give the same rows); the next write of
# the fold removes them.
_OLD_PART_NAMES = {"history": (PART_NAME, "part-0.arrow")}
CATALOG_NAME = "catalog.duckdb"
# A remote data centre's catalog: the DuckDB file as one zstd-compressed object (a DuckDB
# file is mostly empty blocks: the bench city's 3.4 MB catalog is a fraction of that).
REMOTE_CATALOG_NAME = "catalog.duckdb.zst"
# What marks a root as a data centre (written by ``DataCentre(create=True)``: generate).
MANIFEST = "datacentre.json"
_MANIFEST_BYTES = b'{"format": "gridfare-datacentre", "version": 1}\n'

# dataset name -> (schema, partition keys in path order)
DATASETS: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "accounts": (ACCOUNTS, ("section",)),
    "readings": (READINGS, ("period", "section")),
    "usage_history": (USAGE_HISTORY, ("section",)),
    "bills": (BILLS, ("period", "section")),
    "tariff_comparisons": (TARIFF_COMPARISONS, ("comparison",)),
    "generator_state": (GENERATOR_STATE, ("section",)),
    # Billed kWh as of the close of a period (written with that period's bills): the one
    # file the next period reads for its history (``read_history``).
    "history": (HISTORY_FOLD, ("period", "section")),
}

HISTORY_COLUMNS = ("account_id", "period", "kwh")
# A partition key of the path -> the column that repeats it in the files (where it does).
_PARTITION_COLUMNS = {"period": "period", "section": "section_id",
                      "comparison": "comparison_id"}
_FOOTER_READERS = 8

# Fixed writer settings: the same table always gives the same bytes (for one pyarrow version).
# Snappy, not zstd: billing is CPU-bound on many small section files, and zstd-3 cost twice
# the CPU per write and read (0.96 vs 0.44 ms writing a 456-row bills file, 0.64 vs 0.34 ms
# reading it) for files only 20 % smaller. Dictionaries only for string columns and
# statistics only for the key columns readers filter on: a 451-row bills file then takes
# 0.28 ms instead of 0.42 and is 20 % smaller (dictionaries of money columns never paid).
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "row_group_size": 1 << 20,
    "version": "2.6",
    "data_page_version": "1.0",
    "store_schema": True,
}
_KEY_COLUMNS = ("account_id", "period", "section_id")


def _writer_options(schema: pa.Schema) -> dict[str, Any]:
    return {
        **_PARQUET_OPTIONS,
        "use_dictionary": [f.name for f in schema if pa.types.is_string(f.type)],
        "write_statistics": [name for name in _KEY_COLUMNS if name in schema.names],
    }


_WRITER_OPTIONS = {name: _writer_options(schema) for name, (schema, _) in DATASETS.items()}

# Datasets written a file per bundle and found through the catalog's manifest: a bills
# file with a row group a section, a fold file with a record batch a section. One file of
# 48 sections each cost 0.59-0.63 ms a section where a file a section cost 1.70-2.15 ms
# (stop 26's measurement, docs/benchmarks.md).
BUNDLED = ("bills", "history")
_BUNDLE_ID = re.compile(r"(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_bundle(bundle: object) -> str:
    """``bundle`` if it is a valid bundle name (``<run_id>-<hex>``), else InvalidInput."""
    if not isinstance(bundle, str) or not _BUNDLE_ID.fullmatch(bundle):
        raise InvalidInput(f"bundle {bundle!r} is not a valid bundle name: 1-128 letters, "
                           "digits, '_', '-' or '.' (not first, no '..')")
    return bundle


def bundle_run(file: str) -> str | None:
    """The run that wrote a bundle file (``.../bundle=<run_id>-<hex>/...``); None for a file
    of the older ``section=`` layout."""
    for part in file.split("/"):
        if part.startswith("bundle="):
            return part[len("bundle="):].rsplit("-", 1)[0]
    return None


def check_period(period: str) -> str:
    """Return ``period`` if it is ``YYYY-MM`` (month 01..12); else raise InvalidInput."""
    return str(Period.parse(period))


def shift_period(period: str, months: int) -> str:
    """``period`` moved by ``months`` (negative: earlier)."""
    return str(Period.parse(period).shift(months))


def periods_before(period: str, months: int) -> list[str]:
    """The ``months`` periods before ``period``, oldest first."""
    return [str(p) for p in Period.parse(period).previous(months)]


def _is_enospc(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything it was raised from) says the device is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


class DataCentre:
    """Hive-partitioned Parquet datasets under one root on a ``pyarrow.fs`` filesystem.

    ``uri`` is a local path (relative or absolute) or a filesystem URI understood by
    ``pyarrow.fs.FileSystem.from_uri``. Pass ``filesystem`` to use a given filesystem (a
    test's fault-injecting wrapper, a configured S3 client); ``uri`` is then the root path
    inside it. The root must exist for reads and writes; ``create=True`` makes it.
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        filesystem: pafs.FileSystem | None = None,
        *,
        create: bool = False,
    ):
        text = os.fspath(uri)
        if not text:
            raise DataCentreError("data centre: empty URI")
        try:  # pyarrow's filesystems take UTF-8 paths only; a shell may pass other bytes
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DataCentreError(f"data centre {text!r}: the path holds bytes that are not "
                                  "UTF-8") from None
        if filesystem is not None:
            self._fs = filesystem
            self._root = text.rstrip("/") or "/"
            self._uri = text
        elif "://" in text:
            self._fs, root = open_filesystem(text)
            self._root = root.rstrip("/") or "/"
            self._uri = text
        else:
            self._fs = pafs.LocalFileSystem()
            self._root = os.path.abspath(text)
            self._uri = self._root
        self._shown = redact(self._uri)
        # A plain local directory: files are read and written with the os module.
        self._local = type(self._fs) is pafs.LocalFileSystem
        self._root_known = False
        self._centre_known = False
        self._files: SectionFiles | None = None  # bound manifest rows (``reading``)
        if create:
            self._create()

    def __repr__(self) -> str:
        return f"DataCentre({self._shown!r})"

    # ------------------------------------------------------------------ where things are
    @property
    def uri(self) -> str:
        """The data centre's URI (an absolute path for a local data centre)."""
        return self._uri

    @property
    def shown(self) -> str:
        """The URI as messages show it: credentials redacted (``datasets.uri.redact``)."""
        return self._shown

    @property
    def identity(self) -> str:
        """The data centre the URI names, without credentials (``datasets.uri.identity``)."""
        return identity(self._uri)

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The ``pyarrow.fs`` filesystem the data centre lives on."""
        return self._fs

    @property
    def root(self) -> str:
        """The root path inside :attr:`filesystem`."""
        return self._root

    @property
    def is_local(self) -> bool:
        """Whether the data centre is a plain local directory (DuckDB can read it directly)."""
        return isinstance(self._fs, pafs.LocalFileSystem)

    @property
    def catalog_path(self) -> str:
        """Path of ``catalog.duckdb`` inside :attr:`filesystem` (a local path when local)."""
        return f"{self._root}/{CATALOG_NAME}"

    def path(self, dataset: str, *, period: str | None = None, section: str | None = None,
             comparison: str | None = None) -> str:
        """Path of one partition's ``part-0.parquet`` (keys as the dataset requires)."""
        directory = self._partition_dir(dataset, period=period, section=section,
                                        comparison=comparison)
        return f"{directory}/{_PART_NAMES.get(dataset, PART_NAME)}"

    def glob(self, dataset: str) -> str | None:
        """A DuckDB-readable glob of every file of ``dataset`` (use ``hive_partitioning``),
        e.g. ``<root>/bills/*/*/*.parquet``; None when the data centre is not local."""
        _, keys = self._dataset(dataset)
        if not self.is_local:
            return None
        stars = "/".join("*" for _ in keys)
        return f"{self._root}/{dataset}/{stars}/*.parquet"

    def view_globs(self) -> dict[str, str]:
        """``{dataset: glob}`` for every dataset of the city (empty when the data centre is
        not local); the generator's state and the history folds (derived from the bills)
        are not views."""
        globs = {name: self.glob(name) for name in DATASETS
                 if name not in ("generator_state", "history")}
        return {name: pattern for name, pattern in globs.items() if pattern is not None}

    def exists(self) -> bool:
        """Whether the root directory exists."""
        return self._info(self._root).type == pafs.FileType.Directory

    def require(self) -> None:
        """Raise ``NotADataCentre`` unless the root holds a data centre (checked once)."""
        self._require_root()

    def is_datacentre(self) -> bool:
        """Whether the root holds a data centre: its manifest (``datacentre.json``, written
        when the data centre is created), or, for one older than manifests, a dataset
        folder or a catalog. One listing of the root."""
        names = {info.base_name for info in self._list(self._root, recursive=False)}
        return bool(names & {MANIFEST, CATALOG_NAME, REMOTE_CATALOG_NAME, *DATASETS})

    # ------------------------------------------------------------------ listing
    def sections(self, period: str) -> list[str]:
        """Sorted ids of the sections that have readings for ``period``."""
        return [values["section"]
                for values, _ in self._layout("readings", check_period(period))]

    def section_sizes(self, period: str) -> dict[str, int]:
        """Bytes of each section's readings for ``period``: the weight a scheduler uses."""
        return {values["section"]: info.size
                for values, info in self._layout("readings", check_period(period))}

    def all_sections(self) -> list[str]:
        """Sorted ids of every section that has accounts."""
        return [values["section"] for values, _ in self._layout("accounts")]

    def generated_sections(self) -> list[str]:
        """Sorted ids of the sections that have generator state (``gridfare generate``)."""
        return [values["section"] for values, _ in self._layout("generator_state")]

    def periods(self, dataset: str = "readings") -> list[str]:
        """Sorted periods present in a period-partitioned dataset."""
        _, keys = self._dataset(dataset)
        if "period" not in keys:
            raise DataCentreError(f"data centre {self._shown}: {dataset} has no periods")
        self._require_root()
        found = []
        for info in self._list(f"{self._root}/{dataset}", recursive=False):
            if info.base_name.startswith("."):
                continue
            if info.type != pafs.FileType.Directory:
                raise self._foreign(info.path, "a file where only period=YYYY-MM "
                                               "directories belong")
            found.append(self._partition_value(info.base_name, "period", info.path))
        return sorted(found)

    # ------------------------------------------------------------------ readers
    def dataset(self, dataset: str, period: str | None = None) -> pyarrow.dataset.Dataset:
        """Every section of ``dataset`` (of ``period`` for period-partitioned datasets) as
        one lazy Arrow dataset in section order: scans read only what they need, so a whole
        province's bills are never loaded at once. Temporary files are never part of it.

        Each file's footer is read and checked here, before any scan: its columns and
        types against the schema, and its partition columns (``period``, ``section_id``)
        against its path, from the row groups' statistics. The footers stay with the
        dataset's fragments, so a scan does not read them again.
        """
        import pyarrow.dataset as ds  # lazily: it costs a quarter second to import

        schema, keys = self._dataset(dataset)
        if ("period" in keys) != (period is not None):
            needs = "needs a period" if "period" in keys else "has no period"
            raise DataCentreError(f"data centre {self._shown}: {dataset} {needs}")
        if dataset in BUNDLED:
            return self._bundled_dataset(dataset, check_period(period))
        files = self._layout(dataset, None if period is None else check_period(period))
        if not files:
            return ds.dataset(schema.empty_table())
        if dataset in _PART_NAMES:  # Arrow IPC (the folds): no footers to check
            return ds.dataset([info.path for _, info in files], schema=schema,
                              format="ipc", filesystem=self._fs)
        parquet = ds.ParquetFileFormat()

        def checked(item: tuple[dict[str, str], pafs.FileInfo]):
            values, info = item
            try:
                fragment = parquet.make_fragment(info.path, filesystem=self._fs)
                metadata = fragment.metadata
            except (OSError, pa.ArrowException) as exc:
                raise self._error(f"cannot read {info.path}", exc) from exc
            self._check_footer(metadata, dataset, values, info.path, fragment)
            return fragment

        # Footers are small reads that wait on the filesystem (a round trip each on S3):
        # several at once, as Arrow's own scan would read them.
        with ThreadPoolExecutor(max_workers=_FOOTER_READERS) as pool:
            fragments = list(pool.map(checked, files))
        return ds.FileSystemDataset(fragments, schema, parquet, self._fs)

    def _bundled_dataset(self, dataset: str, period: str) -> pyarrow.dataset.Dataset:
        """``dataset`` for the bundled datasets: each section's part of the file the manifest
        names (a Parquet fragment of its one row group), in section order; a row group of a
        file no manifest row names for it (a section billed again since) is never read."""
        import pyarrow.dataset as ds

        schema, _ = self._dataset(dataset)
        located = [(section, file, part) for section, file, part in
                   self.section_files(periods=[period]).of_period(dataset, period)
                   if part >= 0]
        if dataset in _PART_NAMES:  # the folds: small derived rows, read as they are
            return ds.dataset(pa.concat_tables(
                [self._read(dataset, period=period, section=section)
                 for section, _, _ in located] or [schema.empty_table()]))
        if not located:
            return ds.dataset(schema.empty_table())
        self._require_root()
        parquet = ds.ParquetFileFormat()

        def footer(file: str) -> tuple[str, pq.FileMetaData]:
            path = f"{self._root}/{file}"
            try:
                metadata = parquet.make_fragment(path, filesystem=self._fs).metadata
            except FileNotFoundError as exc:
                raise DataCentreError(f"data centre {self._shown}: {dataset} file {path} is "
                                      "named by the catalog's manifest but missing") from exc
            except (OSError, pa.ArrowException) as exc:
                raise self._error(f"cannot read {path}", exc) from exc
            _check_columns(metadata.schema.to_arrow_schema(), schema, f"{dataset} file {path}")
            return file, metadata

        # Footers are small reads that wait on the filesystem (a round trip each on S3):
        # several at once, as Arrow's own scan would read them; once a file.
        with ThreadPoolExecutor(max_workers=_FOOTER_READERS) as pool:
            footers = dict(pool.map(footer, sorted({file for _, file, _ in located})))
        fragments = []
        for section, file, part in located:
            path, metadata = f"{self._root}/{file}", footers[file]
            what = f"{dataset} file {path} (part {part})"
            if part >= metadata.num_row_groups:
                raise ForeignData(f"{what}: the file has {metadata.num_row_groups} row "
                                  "groups; the manifest names another")
            fragment = parquet.make_fragment(path, filesystem=self._fs, row_groups=[part])
            for column, value in (("period", period), ("section_id", section)):
                if _stats_say(metadata, column, value, part):
                    continue
                stats = metadata.row_group(part).column(
                    metadata.schema.names.index(column)).statistics
                if (stats is not None and stats.has_min_max and stats.has_null_count
                        and stats.null_count == 0):
                    raise ForeignData(f"{what}: {column} is {stats.min!r}..{stats.max!r}, "
                                      f"not {value!r} (its partition)")
                # No usable statistics: read that one column to be sure.
                _check_partition_column(fragment.to_table(columns=[column]), what, column,
                                        value)
            fragments.append(fragment)
        return ds.FileSystemDataset(fragments, schema, parquet, self._fs)

    def read_accounts(self, section: str) -> pa.Table:
        """The accounts of one section (empty if the section has none)."""
        return self._read("accounts", section=section)

    def read_account_sections(
        self, account_ids: Sequence[int] | pa.Array | None = None
    ) -> pa.Table:
        """``(account_id int64, section_id string)`` of every account (or of those given),
        read across all sections in one pass."""
        import pyarrow.dataset as ds

        expression = None
        if account_ids is not None:
            if isinstance(account_ids, (pa.Array, pa.ChunkedArray)):
                ids = account_ids.cast(pa.int64())
            else:
                ids = pa.array(account_ids, type=pa.int64())
            expression = ds.field("account_id").isin(ids)
        dataset = self.dataset("accounts")
        try:
            table = dataset.to_table(columns=["account_id", "section_id"], filter=expression)
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot read {self._root}/accounts", exc) from exc
        return table.cast(pa.schema([ACCOUNTS.field("account_id"),
                                     ACCOUNTS.field("section_id")]))

    def read_readings(self, period: str, section: str) -> pa.Table:
        """One section's readings for ``period`` (empty if there are none)."""
        return self._read("readings", period=period, section=section)

    def read_usage_history(self, section: str) -> pa.Table:
        """One section's legacy usage history, as stored (empty if there is none)."""
        return self._read("usage_history", section=section)

    def read_history(self, section: str, period: str, months: int = 12, *,
                     ordered: bool = True) -> pa.Table:
        """Billed kWh per account for the ``months`` periods before ``period``.

        Columns ``(account_id int64, period string, kwh float64)``, sorted by account and
        period: legacy ``usage_history`` rows plus the ``bills`` of those periods, a bill
        taking precedence over a history row for the same ``(account_id, period)``. With
        ``ordered=False`` the same rows come in no particular order (billing folds them
        per account and does not need the sort).

        When the previous period's history fold is there (the manifest names it: written
        with that period's bills) the rows come from it alone, one file whatever the
        month; otherwise from the legacy file and the bills files. Both give the same rows.
        """
        check_period(period)
        if months < 0:
            raise InvalidInput(f"read_history: months {months} is negative")
        wanted = periods_before(period, months)
        if not wanted:
            return USAGE_HISTORY.empty_table()
        centre = self._bound([section])
        fold = None
        if months <= FOLD_MONTHS:
            fold = centre._read_fold(wanted[-1], section)
        if fold is not None:
            # The previous period's fold holds exactly these rows (written with its bills
            # from the same rule): one file whatever the month.
            history = months_within(fold, _index(wanted[0]), _index(wanted[-1]))
        else:
            history = centre._history_from_bills(section, wanted)
        if ordered:
            history = history.sort_by([("account_id", "ascending"), ("month", "ascending")])
        return _labelled(history)

    def read_history_carry(self, section: str, period: str) -> pa.Table:
        """What a fold of ``period`` starts from: the 12-month window before it as
        ``read_history`` gives it, plus any legacy rows of ``period`` or later (a legacy
        file may reach past the first billed period; the window leaves them out), as
        billing's history rows (``HISTORY_FOLD``: months as indices, not labels)."""
        wanted = periods_before(period, FOLD_MONTHS)
        centre = self._bound([section])
        fold = centre._read_fold(wanted[-1], section)
        if fold is not None:
            return months_within(fold, _index(wanted[0]))
        return centre._history_from_bills(section, wanted, later_than=wanted[-1])

    def _bound(self, sections: Sequence[str]) -> DataCentre:
        """This data centre with its manifest rows of ``sections`` at hand: one catalog
        read for a reader's several files, none when bound already (a task)."""
        if self._files is not None:
            return self
        return self.reading(self.section_files(sections=sections))

    def _read_fold(self, period: str, section: str) -> pa.Table | None:
        """The section's fold as of the close of ``period`` (HISTORY_FOLD rows); None if
        there is none."""
        return self._read("history", period=period, section=section, missing_ok=True)

    def _history_from_bills(self, section: str, wanted: list[str],
                            later_than: str | None = None) -> pa.Table:
        """``read_history``'s rows from the legacy file and up to ``months`` bills files, as
        HISTORY_FOLD rows (months as indices: each label is read once, here); with
        ``later_than``, the legacy rows of later months too (one read of the legacy file)."""
        # The labels as Parquet's dictionary: a dozen distinct months parsed, not ~6,000
        # strings built and parsed (one process, 60 k city: see the commit).
        legacy = history_months(self._read("usage_history", section=section,
                                           columns=HISTORY_COLUMNS, dictionary=("period",)))
        first, last = _index(wanted[0]), _index(wanted[-1])
        if later_than is None:
            history = months_within(legacy, first, last)
        elif later_than == wanted[-1]:
            # The window and every later month: one comparison (none when the file starts
            # in the window, the usual legacy file).
            history = months_within(legacy, first)
        else:
            index = legacy["month"].to_numpy()
            keep = ((index >= first) & (index <= last)) | (index > _index(later_than))
            history = legacy.filter(pa.array(keep))
        # The manifest's rows of those months, looked up once (most have no bills yet).
        billed_periods = self.section_files(periods=wanted).periods("bills")
        # Only the three columns: in steady monthly billing this is up to 12 files a
        # section, and decoding the whole bill costs three times as much (0.29 vs 0.10 ms).
        billed = [
            self._read("bills", period=earlier, section=section, columns=HISTORY_COLUMNS)
            for earlier in wanted
            if earlier in billed_periods
        ]
        billed = [table for table in billed if table.num_rows]
        if billed:
            bills = history_months(pa.concat_tables(billed))
            history = history.join(
                bills.select(["account_id", "month"]),
                keys=["account_id", "month"],
                join_type="left anti",
            ).select(HISTORY_FOLD.names).cast(HISTORY_FOLD)
            history = pa.concat_tables([history, bills])
        return history.combine_chunks()

    def read_generator_state(self, section: str) -> pa.Table:
        """One section's generator state (``gridfare generate``); empty if there is none."""
        return self._read("generator_state", section=section)

    def write_generator_state(self, section: str, table: pa.Table) -> int:
        """Replace one section's generator state; returns the bytes written."""
        return self._write("generator_state", table, section=section)

    def read_bills(self, period: str, section: str) -> pa.Table:
        """One section's bills for ``period`` (empty if not billed), found through the
        catalog's manifest."""
        check_period(period)
        check_section_id(section)
        return self._bound([section])._read("bills", period=period, section=section)

    # ------------------------------------------------------------------ writers
    def write_accounts(self, section: str, table: pa.Table) -> int:
        """Replace one section's accounts; returns the bytes written."""
        return self._write("accounts", table, section=section)

    def write_readings(self, period: str, section: str, table: pa.Table) -> int:
        """Replace one section's readings for ``period``; returns the bytes written."""
        return self._write("readings", table, period=period, section=section)

    def write_history(self, section: str, table: pa.Table) -> int:
        """Replace one section's legacy usage history; returns the bytes written."""
        return self._write("usage_history", table, section=section)

    def write_bundle(self, period: str, bundle: str,
                     sections: Sequence[tuple[str, pa.Table, pa.Table]]) -> list[ManifestRow]:
        """Write a bundle's bills and history folds: ``sections`` are ``(section_id, bills,
        fold)``; one bills file with a row group a section and one fold file
        (``HISTORY_FOLD``) with a record batch a section, each moved into place under
        ``bills|history/period=P/bundle=B/``. Returns the manifest rows that make them
        visible (``(dataset, period, section_id, file, part)``, part -1 for a section
        with no rows); until the catalog records them, no reader sees these files.

        Every table is checked first (a section's own error names it, and nothing is
        written). Audit exceptions are not a file: they go with the section's outcome to
        the catalog, recorded in the transaction that marks the section done.
        """
        check_period(period)
        check_bundle(bundle)
        bills_parts, fold_parts = [], []
        for section, bills, fold in sections:
            check_section_id(section)
            what = f"bills of section {section}"
            if not isinstance(bills, pa.Table) or not isinstance(fold, pa.Table):
                raise DataCentreError(f"{what}: expected pyarrow.Tables")
            table = _conform(bills, BILLS, what)
            _check_partition_column(table, what, "period", period, DataCentreError)
            _check_partition_column(table, what, "section_id", section, DataCentreError)
            bills_parts.append((section, table))
            fold_parts.append((section, _conform(fold.select(HISTORY_FOLD.names),
                                                 HISTORY_FOLD, f"history fold of section "
                                                 f"{section}")))
        rows: list[ManifestRow] = []
        for dataset, parts in (("bills", bills_parts), ("history", fold_parts)):
            name = _PART_NAMES.get(dataset, PART_NAME)
            file = f"{dataset}/period={period}/bundle={bundle}/{name}"
            data, numbers = self._encode_bundle(dataset, parts)
            self._put(f"{self._root}/{file}", data)
            rows += [(dataset, period, section, file, number)
                     for (section, _), number in zip(parts, numbers, strict=True)]
        return rows

    @staticmethod
    def _encode_bundle(dataset: str, parts: list[tuple[str, pa.Table]]
                       ) -> tuple[pa.Buffer, list[int]]:
        """A bundle file in memory and each section's part in it (-1: no rows, no part)."""
        schema = DATASETS[dataset][0]
        encoded = pa.BufferOutputStream()
        numbers, next_part = [], 0
        if dataset in _PART_NAMES:
            with pa.ipc.new_file(encoded, schema) as writer:
                for _, table in parts:
                    # One batch a section, an empty one too (a batch is what part counts).
                    writer.write_batch(pa.RecordBatch.from_arrays(
                        [column.combine_chunks() for column in table.columns], schema=schema))
                    numbers.append(next_part)
                    next_part += 1
            return encoded.getvalue(), numbers
        options = {k: v for k, v in _WRITER_OPTIONS[dataset].items() if k != "row_group_size"}
        with pq.ParquetWriter(encoded, schema, **options) as writer:
            for _, table in parts:
                if not table.num_rows:
                    numbers.append(-1)
                    continue
                writer.write_table(table, row_group_size=table.num_rows)
                numbers.append(next_part)
                next_part += 1
        return encoded.getvalue(), numbers

    def _put(self, path: str, data: pa.Buffer) -> None:
        """``data`` to a temporary name beside ``path``, then moved onto it (atomic)."""
        self._require_root(writing=True)
        directory, name = path.rsplit("/", 1)
        temp = f"{directory}/.{name}.tmp-{uuid.uuid4().hex}"
        try:
            if self._local:
                self._write_local(directory, temp, path, data)
            else:
                self._fs.create_dir(directory, recursive=True)
                with self._fs.open_output_stream(temp) as sink:
                    sink.write(data)
                self._fs.move(temp, path)
        except Exception as exc:
            # Best effort: a temporary name starts with a dot, so readers skip a leftover.
            with contextlib.suppress(OSError, pa.ArrowException):
                self._fs.delete_file(temp)
            if _is_enospc(exc):
                raise DataCentreFull(
                    f"data centre {self._shown}: no space left writing {path}; nothing "
                    f"partial is visible: {exc}"
                ) from exc
            raise self._error(f"cannot write {path}", exc) from exc

    # ------------------------------------------------------------------ the manifest
    def reading(self, files: SectionFiles) -> DataCentre:
        """This data centre, its bills and folds found through ``files`` (the manifest rows
        a task was sent with) instead of the catalog."""
        bound = copy.copy(self)
        bound._files = files
        return bound

    def section_files(self, periods: Iterable[str] | None = None,
                      sections: Iterable[str] | None = None) -> SectionFiles:
        """The manifest rows of ``periods`` (and ``sections``) from the catalog, read-only;
        the rows this data centre was bound to (``reading``) when it was."""
        if self._files is not None:
            return self._files
        from datasets.catalog import open_catalog

        return open_catalog(self).section_files(self, periods=periods, sections=sections)

    def legacy_files(self) -> list[ManifestRow]:
        """Manifest rows for the bills and folds of the older layout (a file a section,
        ``section=`` directories): what ``Catalog.migrate`` records once."""
        rows: list[ManifestRow] = []
        for dataset in BUNDLED:
            for values, info in self._layout(dataset):
                if "section" in values:
                    rows.append((dataset, values["period"], values["section"],
                                 info.path[len(self._root) + 1:], 0))
        return rows

    def bundled_files(self, period: str) -> list[str]:
        """Every bills and fold file of ``period`` (either layout), relative to the root."""
        check_period(period)
        return [info.path[len(self._root) + 1:] for dataset in BUNDLED
                for _, info in self._layout(dataset, period, old_formats=True)]

    def remove_files(self, files: Iterable[str]) -> int:
        """Delete files (relative to the root) and the directories they leave empty; best
        effort (a file already gone is not an error). Returns how many were deleted."""
        removed = 0
        for file in files:
            path = f"{self._root}/{file}"
            try:
                self._fs.delete_file(path)
                removed += 1
            except FileNotFoundError:
                pass
            except (OSError, pa.ArrowException) as exc:
                raise self._error(f"cannot remove {path}", exc) from exc
            directory = path.rsplit("/", 1)[0]
            with contextlib.suppress(OSError, pa.ArrowException):
                if not self._fs.get_file_info(pafs.FileSelector(directory)):
                    self._fs.delete_dir(directory)
        return removed

    def write_comparison(self, comparison: str, table: pa.Table) -> int:
        """Replace one tariff comparison's table; returns the bytes written."""
        return self._write("tariff_comparisons", table, comparison=comparison)

    def read_comparison(self, comparison: str) -> pa.Table:
        """One tariff comparison's table (empty if there is none)."""
        return self._read("tariff_comparisons", comparison=comparison)

    def comparisons(self) -> list[str]:
        """Sorted ids of the tariff comparisons stored."""
        return [values["comparison"] for values, _ in self._layout("tariff_comparisons")]

    # ------------------------------------------------------------------ internals
    def _dataset(self, dataset: str) -> tuple[pa.Schema, tuple[str, ...]]:
        try:
            return DATASETS[dataset]
        except KeyError:
            raise DataCentreError(
                f"data centre {self._shown}: unknown dataset {dataset!r} "
                f"(known: {', '.join(sorted(DATASETS))})"
            ) from None

    def _partition_dir(self, dataset: str, *, period: str | None, section: str | None,
                       comparison: str | None = None) -> str:
        _, keys = self._dataset(dataset)
        given = {"period": period, "section": section, "comparison": comparison}
        parts = [f"{self._root}/{dataset}"]
        for key in keys:
            value = given[key]
            if value is None:
                raise DataCentreError(f"data centre {self._shown}: {dataset} needs a {key}")
            parts.append(f"{key}={_checked_key(key, value)}")
        extra = [key for key, value in given.items() if value is not None and key not in keys]
        if extra:
            raise DataCentreError(f"data centre {self._shown}: {dataset} has no {extra[0]} key")
        return "/".join(parts)

    def _error(self, what: str, exc: BaseException) -> DataCentreError:
        return DataCentreError(redact(f"data centre {self._shown}: {what}: {exc}"))

    def _create(self) -> None:
        """Make the root and write its manifest (once: an existing one is kept)."""
        manifest = f"{self._root}/{MANIFEST}"
        try:
            self._fs.create_dir(self._root, recursive=True)
            if self._fs.get_file_info(manifest).type == pafs.FileType.NotFound:
                temp = f"{self._root}/.{MANIFEST}.tmp-{uuid.uuid4().hex}"
                with self._fs.open_output_stream(temp) as sink:
                    sink.write(_MANIFEST_BYTES)
                self._fs.move(temp, manifest)
        except (OSError, pa.ArrowException) as exc:
            raise self._error("cannot create the root", exc) from exc

    def _info(self, path: str) -> pafs.FileInfo:
        try:
            return self._fs.get_file_info(path)
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot stat {path}", exc) from exc

    def _list(self, directory: str, *, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(directory, allow_not_found=True, recursive=recursive)
        try:
            return self._fs.get_file_info(selector)
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot list {directory}", exc) from exc

    def _require_root(self, *, writing: bool = False) -> None:
        """Reads need a data centre ("not a data centre" otherwise, never empty answers);
        writes need the root to exist."""
        if self._centre_known or (writing and self._root_known):
            return
        if writing:
            if not self.exists():
                raise NotADataCentre(f"not a data centre: {self._shown} (missing root)")
            self._root_known = True
            return
        if not self.is_datacentre():
            missing = "" if self.exists() else "missing root; "
            raise NotADataCentre(
                f"not a data centre: {self._shown} ({missing}no {MANIFEST}, dataset "
                "folders or catalog; `gridfare generate` makes one)")
        self._root_known = self._centre_known = True

    def _foreign(self, path: str, rule: str) -> ForeignData:
        return ForeignData(f"data centre {self._shown}: {path}: {rule} (move it out of the "
                           "data centre)")

    @staticmethod
    def _bundle_key(dataset: str, key: str, name: str) -> str:
        """A bundled dataset's directory below the period is a bundle (or, in the older
        layout, a section)."""
        if dataset in BUNDLED and key == "section" and name.startswith("bundle="):
            return "bundle"
        return key

    def _partition_value(self, name: str, key: str, path: str) -> str:
        """The value of a ``key=value`` directory name, checked as that key's values are."""
        prefix = f"{key}="
        if not name.startswith(prefix):
            raise self._foreign(path, f"expected a {prefix}... directory here")
        value = name[len(prefix):]
        checks = {"period": check_period, "bundle": check_bundle}
        try:
            return checks.get(key, check_section_id)(value)
        except InvalidInput as exc:
            raise self._foreign(path, f"not a valid partition: {exc}") from None

    def _layout(self, dataset: str, period: str | None = None, *, old_formats: bool = False
                ) -> list[tuple[dict[str, str], pafs.FileInfo]]:
        """Every file of ``dataset`` (of one ``period``), with its partition values, in
        path order, checked against the layout: ``key=value`` directories in the dataset's
        key order, then ``part-0.parquet``.

        Names starting with a dot are skipped on purpose: they are the writers' temporary
        files (a crash can leave one) and the OS's hidden files, never data. Anything else
        out of place (another file name, another format, a directory too deep, a bad
        partition value) is refused as ForeignData naming it: skipped silently, a copied-in
        ``part-1.parquet`` would be bills nobody counts.
        """
        _, keys = self._dataset(dataset)
        part_name = _PART_NAMES.get(dataset, PART_NAME)
        old_names = _OLD_PART_NAMES.get(dataset, ())
        self._require_root()
        base = f"{self._root}/{dataset}"
        fixed: dict[str, str] = {}
        if period is not None:
            base += f"/period={period}"
            fixed, keys = {"period": period}, keys[1:]
        found = []
        for info in self._list(base, recursive=True):
            parts = info.path[len(base) + 1:].split("/")
            if any(part.startswith(".") for part in parts):
                continue
            if info.type == pafs.FileType.Directory:
                if len(parts) > len(keys):
                    raise self._foreign(info.path, "a directory below the partitions")
                key = self._bundle_key(dataset, keys[len(parts) - 1], parts[-1])
                self._partition_value(parts[-1], key, info.path)
            elif info.type == pafs.FileType.File:
                if len(parts) == len(keys) + 1 and parts[-1] in old_names:
                    if old_formats:  # never read; listed for the sweep to remove
                        found.append(({}, info))
                    continue
                if len(parts) != len(keys) + 1 or parts[-1] != part_name:
                    layout = "/".join(f"{key}=..." for key in keys) + f"/{part_name}"
                    raise self._foreign(info.path, f"not a {dataset} file (expected "
                                                   f"{dataset}/{layout})")
                values = dict(fixed)
                for key, part in zip(keys, parts, strict=False):
                    key = self._bundle_key(dataset, key, part)
                    values[key] = self._partition_value(part, key, info.path)
                found.append((values, info))
        return sorted(found, key=lambda item: item[1].path)

    def _check_footer(self, metadata: pq.FileMetaData, dataset: str, values: dict[str, str],
                      path: str, fragment: pyarrow.dataset.ParquetFileFragment) -> None:
        """A file's columns and partition, from its footer alone (no data is read unless a
        foreign writer left no statistics on a partition column)."""
        schema, _ = self._dataset(dataset)
        what = f"{dataset} file {path}"
        _check_columns(metadata.schema.to_arrow_schema(), schema, what)
        names = schema.names
        for key, value in values.items():
            column = _PARTITION_COLUMNS[key]
            if column not in names:
                continue
            index = metadata.schema.names.index(column)
            for group in range(metadata.num_row_groups):
                chunk = metadata.row_group(group)
                if chunk.num_rows == 0:
                    continue
                stats = chunk.column(index).statistics
                if stats is not None and stats.has_min_max and stats.has_null_count:
                    if stats.null_count == 0 and stats.min == stats.max == value:
                        continue
                    if stats.null_count == 0:
                        raise ForeignData(f"{what}: {column} is {stats.min!r}..{stats.max!r}"
                                          f", not {value!r} (its partition)")
                # No usable statistics: read that one column to be sure.
                try:
                    table = fragment.to_table(columns=[column])
                except (OSError, pa.ArrowException) as exc:
                    raise self._error(f"cannot read {path}", exc) from exc
                _check_partition_column(table, what, column, value)
                break

    def _read(self, dataset: str, *, period: str | None = None, section: str | None = None,
              comparison: str | None = None, columns: Sequence[str] | None = None,
              missing_ok: bool = False, dictionary: Sequence[str] = ()) -> pa.Table | None:
        """One partition's file (for the bundled datasets: the section's part of the file
        the manifest names), checked against the schema and against its partition; a
        missing file (a section with no manifest row) reads as an empty table (None with
        ``missing_ok``). The string columns named in ``dictionary`` come as Parquet's
        dictionary (``dictionary<int32, string>``), for a caller that wants each distinct
        value once, not a table to hand on; they must not be partition columns."""
        schema, _ = self._dataset(dataset)
        part = None
        if dataset in BUNDLED:
            check_period(period)
            check_section_id(section)
            location = self.section_files(periods=[period]).get(dataset, period, section)
            if location is None:
                return None if missing_ok else self._columns(schema, columns).empty_table()
            path, part = f"{self._root}/{location[0]}", location[1]
        else:
            path = self.path(dataset, period=period, section=section, comparison=comparison)
        what = f"{dataset} file {path}" + ("" if part is None else f" (part {part})")
        schema = self._columns(schema, columns)
        plain = schema  # what the file's columns are checked against (errors name its types)
        for name in dictionary:
            index = schema.get_field_index(name)
            schema = schema.set(index, schema.field(index).with_type(
                pa.dictionary(pa.int32(), schema.field(index).type)))
        self._require_root()
        if part is not None and part < 0:  # the manifest says: billed, no rows
            return schema.empty_table()
        try:
            # A section file is small: one read of the whole of it, then the plain Parquet
            # reader over memory. read_table's dataset machinery (a scan plan, a thread
            # pool) cost several times the read, and reading column chunks from the file
            # one by one cost 0.23-0.46 ms a file where this takes 0.14-0.27 ms (and one
            # request, not one per column, on a remote filesystem). No stat first: a
            # missing partition is the open's FileNotFoundError. A bundle file (one part
            # of it wanted) is mapped, not read, when local.
            data = (pa.memory_map(path) if part is not None and self._local
                    else self._read_bytes(path))
            if dataset in _PART_NAMES:
                return self._read_ipc(data, self._dataset(dataset)[0], schema, what, columns,
                                      part)
            source = data if isinstance(data, pa.NativeFile) else pa.BufferReader(data)
            try:
                # No pre-buffering: the file is in memory already (~10 us a read).
                parquet = pq.ParquetFile(source, read_dictionary=dictionary or None,
                                         pre_buffer=False)
            except KeyError:  # a column to read as a dictionary is not in the file
                parquet = pq.ParquetFile(pa.BufferReader(self._read_bytes(path)))
                _check_columns(parquet.schema_arrow, self._dataset(dataset)[0], what)
                raise
            if columns is not None and not set(columns) <= set(parquet.schema_arrow.names):
                _check_columns(parquet.schema_arrow, self._dataset(dataset)[0], what)
            wanted = None if columns is None else list(columns)
            if part is None:
                table = parquet.read(columns=wanted, use_threads=False)
            elif part >= parquet.metadata.num_row_groups:
                raise ForeignData(f"{what}: the file has {parquet.metadata.num_row_groups} "
                                  "row groups; the manifest names another")
            else:
                table = parquet.read_row_group(part, columns=wanted, use_threads=False)
        except FileNotFoundError as exc:
            if part is not None:  # the manifest names it: a lost file, never "no bills"
                raise DataCentreError(f"data centre {self._shown}: {what} is named by the "
                                      "catalog's manifest but missing") from exc
            return None if missing_ok else schema.empty_table()
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot read {path}", exc) from exc
        # The table read is the file's schema (or the columns asked for): checked from it,
        # since the footer's own Arrow schema costs ~40 us to build, a fifth of the read.
        # Exactly the schema asked for (our own files): the names and types are right, and
        # rebuilding it without its dictionaries first cost ~25 us (a legacy file's read).
        if not (dictionary and table.schema.equals(schema)):
            _check_columns(_undictionaried(table.schema, dictionary), plain, what)
        table = _conform(table, schema, what)
        for column, value in (("period", period), ("section_id", section),
                              ("comparison_id", comparison)):
            # The footer's statistics say it for our own files (2-3 us); the values are
            # looked at only when they do not (a hash of the column: 30-40 us a file).
            if value is not None and not _stats_say(parquet.metadata, column, value, part):
                _check_partition_column(table, what, column, value)
        return table

    @staticmethod
    def _columns(schema: pa.Schema, columns: Sequence[str] | None) -> pa.Schema:
        return schema if columns is None else pa.schema([schema.field(n) for n in columns])

    def _read_bytes(self, path: str) -> bytes | pa.Buffer:
        """A whole file (FileNotFoundError when missing). A local one through plain file I/O:
        pyarrow's LocalFileSystem stream cost about 0.1 ms more a file."""
        if self._local:
            with open(path, "rb") as source:
                return source.read()
        with self._fs.open_input_stream(path) as source:
            return source.read()

    @staticmethod
    def _read_ipc(data: bytes | pa.Buffer | pa.NativeFile, full: pa.Schema, schema: pa.Schema,
                  what: str, columns: Sequence[str] | None, part: int | None = None
                  ) -> pa.Table:
        """An Arrow IPC file (the history folds), or its record batch ``part``, checked
        against its dataset's schema as a Parquet file is (it has no partition columns to
        check); ``schema``: the columns asked for."""
        source = data if isinstance(data, pa.NativeFile) else pa.BufferReader(data)
        reader = pa.ipc.open_file(source)
        if part is None:
            table = reader.read_all()
        elif part >= reader.num_record_batches:
            raise ForeignData(f"{what}: the file has {reader.num_record_batches} record "
                              "batches; the manifest names another")
        else:
            table = pa.Table.from_batches([reader.get_batch(part)])
        _check_columns(table.schema, full, what)
        if columns is not None:
            table = table.select(list(columns))
        return _conform(table, schema, what)

    def _write(
        self,
        dataset: str,
        table: pa.Table,
        *,
        period: str | None = None,
        section: str | None = None,
        comparison: str | None = None,
    ) -> int:
        """Check ``table`` against its dataset, write it to a temporary file and move that
        into place; returns the bytes written."""
        schema, _ = self._dataset(dataset)
        path = self.path(dataset, period=period, section=section, comparison=comparison)
        if not isinstance(table, pa.Table):
            raise DataCentreError(
                f"{dataset}: expected a pyarrow.Table, got {type(table).__name__}"
            )
        conformed = _conform(table, schema, dataset)
        _check_partition_column(conformed, dataset, "period", period, DataCentreError)
        _check_partition_column(conformed, dataset, "section_id", section, DataCentreError)
        _check_partition_column(conformed, dataset, "comparison_id", comparison,
                                DataCentreError)
        # Encoded in memory, then one write: the Parquet writer makes ~50 small writes a
        # file (0.08 ms of a section's 0.8 ms write) and, on a remote filesystem, would
        # make as many requests.
        encoded = pa.BufferOutputStream()
        try:
            if dataset in _PART_NAMES:  # a fold of the section layout (Arrow IPC)
                with pa.ipc.new_file(encoded, conformed.schema) as writer:
                    writer.write_table(conformed)
            else:
                pq.write_table(conformed, encoded, **_WRITER_OPTIONS[dataset])
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot write {path}", exc) from exc
        data = encoded.getvalue()
        self._put(path, data)
        return data.size

    @staticmethod
    def _write_local(directory: str, temp: str, path: str, data: pa.Buffer) -> None:
        """Write ``data`` to ``temp`` and rename it over ``path`` (atomic on POSIX), making
        the directory only when it is missing: LocalFileSystem's recursive create_dir,
        stream and move cost about 0.4 ms a file, these calls about a tenth of that."""
        try:
            sink = open(temp, "wb")  # noqa: SIM115 - closed below, before the rename
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            sink = open(temp, "wb")  # noqa: SIM115
        with sink:
            sink.write(data)
        os.replace(temp, path)


def _index(label: str) -> int:
    """The month index of a ``YYYY-MM`` period label (``HISTORY_FOLD.month``)."""
    return index_of(Period.parse(label))


def _labelled(rows: pa.Table) -> pa.Table:
    """HISTORY_FOLD rows as USAGE_HISTORY rows (``YYYY-MM`` labels): a label per distinct
    month, then one take."""
    distinct, codes = np.unique(rows["month"].to_numpy(), return_inverse=True)
    labels = pa.array([label_of(int(month)) for month in distinct], pa.string())
    return pa.table([rows["account_id"], labels.take(pa.array(codes.reshape(-1))),
                     rows["kwh"]], schema=USAGE_HISTORY)


@functools.lru_cache(maxsize=8192)
def _checked_str_key(key: str, value: str) -> str:
    return check_period(value) if key == "period" else check_section_id(value)


def _checked_key(key: str, value: object) -> str:
    """A partition value checked as its key's values are (a period, a section id); strings
    are checked once per process (three regex matches a path were a tenth of a read)."""
    if isinstance(value, str):
        return _checked_str_key(key, value)
    return check_period(value) if key == "period" else check_section_id(value)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=32)
def _required(schema: pa.Schema) -> tuple[str, ...]:
    """The non-nullable fields of ``schema``."""
    return tuple(field.name for field in schema if not field.nullable)


def _conform(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, order, types and no metadata."""
    # Already the schema (our own files and tables): nothing to rebuild. Arrow does not
    # enforce non-nullable fields, so their nulls are still counted.
    if table.schema.equals(schema, check_metadata=True) and not any(
            table.column(name).null_count for name in _required(schema)):
        return table
    names = set(table.column_names)
    missing = [field.name for field in schema if field.name not in names]
    if missing:
        raise DataCentreError(f"{what}: missing column {missing[0]!r}")
    extra = [name for name in table.column_names if name not in schema.names]
    if extra:
        raise DataCentreError(f"{what}: unexpected column {extra[0]!r}")
    arrays = []
    for field in schema:
        column = table[field.name]
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise DataCentreError(
                    f"{what}: column {field.name!r} of type {column.type} does not cast to "
                    f"{field.type}: {exc}"
                ) from exc
        if not field.nullable and column.null_count:
            raise DataCentreError(
                f"{what}: column {field.name!r} has {column.null_count} nulls but is not nullable"
            )
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


def _undictionaried(found: pa.Schema, names: Sequence[str]) -> pa.Schema:
    """``found`` with the dictionary columns among ``names`` as their values' type."""
    for name in names:
        index = found.get_field_index(name)
        if index >= 0 and pa.types.is_dictionary(found.field(index).type):
            found = found.set(index, found.field(index).with_type(
                found.field(index).type.value_type))
    return found


def _check_columns(found: pa.Schema, schema: pa.Schema, what: str) -> None:
    """A file's own schema has exactly ``schema``'s column names and types (any order;
    nullability and metadata aside): a file of another dataset or writer is ForeignData,
    never rows with NULL keys or values cast on a guess."""
    if found.equals(schema) or (found.names == schema.names and all(
            a.type == b.type for a, b in zip(found, schema, strict=True))):
        return
    names = set(found.names)
    missing = [name for name in schema.names if name not in names]
    if missing:
        raise ForeignData(f"{what}: missing column {missing[0]!r}: not a file of this dataset")
    extra = [name for name in found.names if name not in schema.names]
    if extra:
        raise ForeignData(f"{what}: unexpected column {extra[0]!r}: not a file of this "
                          "dataset")
    for field in schema:
        actual = found.field(field.name).type
        if actual != field.type:
            raise ForeignData(f"{what}: column {field.name!r} is {actual}, the schema says "
                              f"{field.type}")


def _stats_say(metadata: pq.FileMetaData, column: str, value: str,
               part: int | None = None) -> bool:
    """Whether every row group's statistics (row group ``part``'s alone, if given) show
    ``column`` equal to ``value`` throughout (False when a column has no statistics, or
    they say otherwise: look at the values)."""
    try:
        index = metadata.schema.names.index(column)
    except ValueError:
        return False
    for group in (range(metadata.num_row_groups) if part is None else (part,)):
        chunk = metadata.row_group(group)
        stats = chunk.column(index).statistics
        if chunk.num_rows and not (stats is not None and stats.has_min_max
                                   and stats.has_null_count and stats.null_count == 0
                                   and stats.min == stats.max == value):
            return False
    return True


def _check_partition_column(table: pa.Table, what: str, column: str, value: str | None,
                            error: type[DataCentreError] = ForeignData) -> None:
    if value is None or table.num_rows == 0:
        return
    index = table.schema.get_field_index(column)  # not column_names: a list of every name
    if index < 0:
        return
    # The distinct values first: a few microseconds, where counting the rows that differ
    # cost tens (four checks a section); the count is only for the error message.
    if table.column(index).unique().to_pylist() == [value]:
        return
    wrong = pc.sum(pc.invert(pc.fill_null(pc.equal(table[column], value), False))).as_py()
    if wrong:
        raise error(f"{what}: {wrong} rows have {column} other than {value!r} (the partition)")
