"""Import a utility's own meter readings (CSV or Parquet) into the data centre.

Every row is checked against ``READINGS`` and the domain rules; a row that breaks one is
not loaded but written to a rejects file (``REJECTS``: line, rule, detail, record) with its
source line (CSV: the header is line 1, so the first data row is line 2; Parquet: row index
+ 1). Good rows are grouped by the section their account belongs to and merged into that
section's readings for the period, replacing rows with the same
``(account_id, meter_point_id)``: importing the same file twice leaves the same data.

Checks run in the order of ``RULES``; a row is rejected under the first rule it breaks.
Only a file-level problem (unreadable file or header, missing column) raises, as
``InvalidInput``; a line that cannot be read (not UTF-8, longer than ``MAX_LINE_BYTES``,
unbalanced quotes) is one rejected line and the rest of the file goes on.

Nothing is written before everything can finish: the rejects path is checked (not the
source, nor a link of it, nor inside the data centre, a regular file whose directory takes
a new file) before the file is read, and every partition to be merged is checked writable
after validation and before the first write. Then the rejects go to a temporary file, the
partitions are merged, and the rejects file is moved into place. A refusal therefore
changes nothing; a failure while writing (a full disk) may leave some sections merged,
and a rerun, being idempotent, completes them.

Quantities are bounded by ``bounds`` (``gridfare.money.QuantityBounds``; the CLI passes
the tariff book's, ``gridfare.tariffs.bounds``): a register beyond float64's 0.01 steps, or
an advance, TOU split, demand or kvarh whose product with the multiplier is beyond what
exact int64 fen prices, is ``out_of_range``.

Meter points (the rule, in ``_check_meters``): a meter point id is at least 1; a meter point
belongs to the account it was read for, in any period of the data centre or on an earlier
line of the file (``foreign_meter`` otherwise); an account that has meter points takes a new
one only in a period that also reads one it has (its predecessor's last reading: a meter
replacement), otherwise ``unknown_meter``.
"""

from __future__ import annotations

import csv
import gzip
import os
import stat
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from datasets.datacentre import DataCentre, check_period
from datasets.schemas import READINGS, REJECTS
from gridfare.errors import DataCentreError, InvalidInput, UnsafeOutputPath
from gridfare.money import ENERGY_SCALE, FLOAT_EXACT_UNITS, QuantityBounds

__all__ = ["MAX_LINE_BYTES", "RULES", "ImportSummary", "import_readings"]

# Row rules, in the order they are checked.
RULES: tuple[str, ...] = (
    "unreadable_line",  # not UTF-8, longer than MAX_LINE_BYTES, or unbalanced quotes
    "malformed_row",  # a CSV line with the wrong number of fields
    "missing_value",  # a required column is empty
    "unparseable",  # a value is not a number / date of the column's type
    "bad_period",  # period is not YYYY-MM
    "period_mismatch",  # period differs from the one being imported
    "bad_multiplier",  # multiplier < 1 (or beyond int32)
    "negative_register",  # a register, TOU advance, demand or reactive value below zero
    "out_of_range",  # beyond float64's 0.01 steps or, times the multiplier, the bounds
    "register_resolution",  # a value finer than 0.01 (kWh, kW, kvarh)
    "tou_split_mismatch",  # TOU advances present but not summing to cur - prev
    "unknown_account",  # account_id not in the data centre's accounts
    "bad_meter",  # meter_point_id below 1
    "foreign_meter",  # the meter point was read for another account
    "unknown_meter",  # a new meter point for an account with others, not a replacement
    "duplicate",  # (account_id, meter_point_id, period) seen on an earlier line
)

_REQUIRED = tuple(field.name for field in READINGS if not field.nullable)
_TOU = ("critical_kwh", "peak_kwh", "flat_kwh", "valley_kwh")
_NON_NEGATIVE = ("prev_register", "cur_register", *_TOU, "max_demand_kw", "reactive_kvarh")
_INT_PATTERN = r"^[+-]?[0-9]{1,18}$"
_FLOAT_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_INT32_MAX = 2**31 - 1
MAX_LINE_BYTES = 65_536  # a readings line is ~100 bytes; longer is not a reading
_BLOCK_BYTES = 1 << 20  # pyarrow's CSV block: any line up to MAX_LINE_BYTES fits in one
_SHOWN_CHARS = 200  # of an unreadable line's record in the rejects file


@dataclass(frozen=True)
class ImportSummary:
    """What one import did."""

    source: str
    rows: int  # data rows read (blank lines not counted)
    loaded: int
    rejected: int
    by_rule: dict[str, int]  # rejected rows per rule (only rules that fired)
    partitions: tuple[tuple[str, str], ...]  # (period, section) written, sorted
    rejects_path: str
    ignored_columns: tuple[str, ...]  # source columns that are not READINGS columns

    @property
    def sections(self) -> tuple[str, ...]:
        """Sorted ids of the sections whose readings were written."""
        return tuple(sorted({section for _, section in self.partitions}))

    def describe(self) -> str:
        """A few lines for a person: counts, rejects by rule, where the rejects are."""
        lines = [
            f"  {self.source}: {self.rows:,} rows, {self.loaded:,} loaded into "
            f"{len(self.partitions):,} sections, {self.rejected:,} rejected"
        ]
        if self.by_rule:
            lines.append(
                "  rejected: " + ", ".join(f"{rule} {n:,}" for rule, n in self.by_rule.items())
            )
        lines.append(f"  rejects file: {self.rejects_path}")
        if self.ignored_columns:
            lines.append(f"  ignored columns: {', '.join(self.ignored_columns)}")
        return "\n".join(lines)


@dataclass
class _Source:
    """A source file as columns (string or typed), each row's line and raw record."""

    columns: dict[str, pa.Array]
    lines: np.ndarray  # int64 per row
    records: pa.Array  # string per row
    malformed: list[tuple[int, str, str, str]]  # (line, rule, detail, text) of lines not read
    ignored: tuple[str, ...]


def import_readings(
    datacentre: DataCentre,
    source_path: str | os.PathLike[str],
    *,
    period: str | None = None,
    rejects_path: str | os.PathLike[str] | None = None,
    bounds: QuantityBounds | None = None,
) -> ImportSummary:
    """Validate and load readings from a CSV or Parquet file into ``datacentre``.

    ``period`` (``YYYY-MM``), when given, is the only period accepted (and fills a missing
    ``period`` column). Rejected rows go to ``rejects_path`` (default
    ``<source>.rejects.csv``), which is always rewritten, empty or not. ``bounds`` caps
    every quantity (default: what float64 holds to 0.01; the CLI passes its tariff book's).
    """
    source = Path(source_path)
    if period is not None:
        check_period(period)
    try:
        found = source.is_file()
    except OSError as exc:  # a name the OS refuses to look up (too long, say)
        raise InvalidInput(f"import {source}: cannot read: {exc.strerror}") from exc
    if not found:
        raise InvalidInput(f"import {source}: no such file")
    rejects = Path(rejects_path) if rejects_path is not None else Path(f"{source}.rejects.csv")
    suffix = source.name.lower()
    if not suffix.endswith((".parquet", ".pq", ".csv", ".csv.gz", ".txt")):
        raise InvalidInput(f"import {source}: unknown format (expected .csv or .parquet)")
    _check_rejects_path(source, rejects, datacentre)
    datacentre.read_account_sections([])  # a missing data centre fails before any write
    reserved = _reserve(rejects)
    try:
        summary = _import(datacentre, source, period, rejects, reserved,
                          bounds or QuantityBounds.unpriced())
    finally:
        reserved.unlink(missing_ok=True)  # moved into place on success
    return summary


def _import(datacentre: DataCentre, source: Path, period: str | None, rejects: Path,
            reserved: Path, bounds: QuantityBounds) -> ImportSummary:
    if source.name.lower().endswith((".parquet", ".pq")):
        loaded = _load_parquet(source)
    else:
        loaded = _load_csv(source)

    missing = [name for name in _REQUIRED if name not in loaded.columns]
    if "period" in missing and period is not None:
        missing.remove("period")
        loaded.columns["period"] = pa.array([period] * len(loaded.lines), pa.string())
    if missing:
        raise InvalidInput(f"import {source}: missing required column {missing[0]!r}")

    checker = _Checker(len(loaded.lines))
    table = _convert(loaded.columns, checker)
    _check_domain(table, checker, period, bounds)
    _check_accounts(datacentre, table, checker)
    _check_meters(datacentre, table, checker, loaded.lines)
    _check_duplicates(table, checker, loaded.lines)

    good = np.flatnonzero(checker.rule < 0)
    merged = _merge_good(datacentre, table, good, checker.sections)
    _check_writable(datacentre, [key for key, _ in merged])
    rejects_table = checker.rejects(loaded.lines, loaded.records, loaded.malformed)
    _write_rejects(reserved, rejects, rejects_table)
    for (part_period, section_id), readings in merged:
        datacentre.write_readings(part_period, section_id, readings)
    try:
        os.replace(reserved, rejects)
    except OSError as exc:
        raise DataCentreError(f"import: cannot move the rejects file into {rejects}: {exc}; "
                              "the readings were merged, a rerun rewrites it") from exc
    by_rule: dict[str, int] = {}
    for rule in rejects_table["rule"].to_pylist():
        by_rule[rule] = by_rule.get(rule, 0) + 1
    return ImportSummary(
        source=str(source),
        rows=len(loaded.lines) + len(loaded.malformed),
        loaded=len(good),
        rejected=rejects_table.num_rows,
        by_rule={rule: by_rule[rule] for rule in RULES if rule in by_rule},
        partitions=tuple(key for key, _ in merged),
        rejects_path=str(rejects),
        ignored_columns=loaded.ignored,
    )


# ---------------------------------------------------------------------------- outputs
def _check_rejects_path(source: Path, rejects: Path, datacentre: DataCentre) -> None:
    """Refuse a rejects path that would overwrite the source or land in the data centre."""
    where = f"import {source}: rejects path {rejects}"
    real = Path(os.path.realpath(rejects))
    if real == Path(os.path.realpath(source)):
        raise UnsafeOutputPath(f"{where} is the source file (or a link to it)")
    try:
        info = os.stat(rejects)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UnsafeOutputPath(f"{where} cannot be used: {exc.strerror}") from exc
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeOutputPath(f"{where} exists and is not a regular file")
        if os.path.samefile(rejects, source):
            raise UnsafeOutputPath(f"{where} is a hard link of the source file")
    if datacentre.is_local:
        root = Path(os.path.realpath(datacentre.root))
        if real == root or root in real.parents:
            raise UnsafeOutputPath(f"{where} is inside the data centre {datacentre.uri}")


def _reserve(rejects: Path) -> Path:
    """Create the rejects file's temporary now: it proves the path writable before any
    row is merged (a permission, a full or read-only disk, a file where a directory is)."""
    temp = rejects.with_name(f".{rejects.name}.tmp-{uuid.uuid4().hex}")
    try:
        rejects.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(descriptor)
    except OSError as exc:
        raise UnsafeOutputPath(
            f"import: cannot write the rejects file {rejects}: {exc.strerror or exc}; "
            "nothing was imported") from exc
    return temp


def _check_writable(datacentre: DataCentre, partitions: Sequence[tuple[str, str]]) -> None:
    """Every partition directory to merge into takes a new file, checked without creating
    anything: a probe file in its nearest existing ancestor, removed at once."""
    fs = datacentre.filesystem
    probed: set[str] = set()
    for period, section in partitions:
        directory = datacentre.path("readings", period=period, section=section).rsplit("/", 1)[0]
        try:
            # Up to the root at most: on an object store a directory may exist only implicitly.
            while len(directory) > len(datacentre.root):
                info = fs.get_file_info(directory)
                if info.type == pafs.FileType.Directory:
                    break
                if info.type != pafs.FileType.NotFound:
                    raise OSError(f"{directory} is not a directory")
                directory = directory.rsplit("/", 1)[0]
            if directory in probed:
                continue
            probe = f"{directory}/.probe-{uuid.uuid4().hex}"
            with fs.open_output_stream(probe) as sink:
                sink.write(b"")
            fs.delete_file(probe)
            probed.add(directory)
        except (OSError, pa.ArrowException) as exc:
            raise DataCentreError(
                f"import: data centre {datacentre.uri} cannot take readings for {period} "
                f"{section}: {exc}; nothing was imported") from exc


# ---------------------------------------------------------------------------- loading
def _load_csv(path: Path) -> _Source:
    data = _read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    view = np.frombuffer(data, np.uint8)
    breaks = np.flatnonzero(view == 10)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, len(data)]
    if len(data) and data.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]
    if not len(starts) or not data[starts[0]:ends[0]].strip():
        raise InvalidInput(f"import {path}: empty file (no header line)")
    header = _header(path, data[starts[0]:ends[0]])
    malformed, clean = _screen_lines(data, view, starts[1:], ends[1:])
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    skipped: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        skipped.append((row.number, row.text))
        return "skip"

    def read(threads: bool) -> pa.Table:
        parse = pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False)
        options = pacsv.ReadOptions(use_threads=threads, column_names=header,
                                    block_size=_BLOCK_BYTES)
        try:
            return pacsv.read_csv(pa.py_buffer(clean), read_options=options,
                                  parse_options=parse, convert_options=convert)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"import {path}: unreadable CSV: {exc}") from exc

    if clean.strip(b"\r\n"):
        table = read(threads=True)
        if skipped:
            # Only a single-threaded read knows the line numbers of the rows it skipped.
            skipped.clear()
            table = read(threads=False)
    else:
        table = pa.table({name: pa.array([], pa.string()) for name in header})
    # The buffer keeps every physical line (unreadable ones emptied), so its line k is the
    # file's line k + 1 (the header is line 1).
    bad = sorted((number + 1 if number is not None else 0, text) for number, text in skipped)
    malformed += [(number, "malformed_row", "wrong number of fields", text)
                  for number, text in bad]
    skipped_lines = np.array([number for number, _ in bad], dtype=np.int64)
    candidates = np.arange(2, 2 + table.num_rows + len(bad), dtype=np.int64)
    lines = candidates[~np.isin(candidates, skipped_lines)][: table.num_rows]

    if table.num_rows:
        record = pc.binary_join_element_wise(*table.columns, ",")
    else:
        record = pa.chunked_array([pa.array([], pa.string())])
    blank = pc.equal(record, pa.scalar("," * (len(header) - 1))).to_numpy(zero_copy_only=False)
    keep = np.flatnonzero(~blank)
    columns = {name: table[name].combine_chunks().take(keep) for name in header}
    known = {name: array for name, array in columns.items() if name in READINGS.names}
    ignored = tuple(name for name in header if name not in READINGS.names)
    return _Source(
        columns=known,
        lines=lines[keep],
        records=record.combine_chunks().take(keep),
        malformed=sorted(malformed),
        ignored=ignored,
    )


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInput(f"import {path}: unreadable file: {exc}") from exc
    return data


def _header(path: Path, line: bytes) -> list[str]:
    if len(line) > MAX_LINE_BYTES:
        raise InvalidInput(f"import {path}: line 1 (the header) is longer than "
                           f"{MAX_LINE_BYTES:,} bytes")
    try:
        text = line.decode("utf-8").rstrip("\r")
        header = next(csv.reader([text]))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"import {path}: line 1 (the header) is not UTF-8: {exc}") from exc
    except (csv.Error, StopIteration) as exc:
        raise InvalidInput(f"import {path}: unreadable header: {exc}") from exc
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise InvalidInput(f"import {path}: duplicate column names in the header")
    return header


def _lines_holding(data: bytes, view: np.ndarray, starts: np.ndarray, body: np.ndarray,
                   byte: int, *, odd: bool) -> np.ndarray:
    """Lines whose body holds ``byte`` (an odd number of times, with ``odd``)."""
    if bytes([byte]) not in data:  # the usual file: one C scan, no arrays
        return np.zeros(0, np.int64)
    if not len(starts):
        return np.zeros(0, np.int64)
    at = np.flatnonzero(view[starts[0]:] == byte) + starts[0]  # not the header's
    line = np.searchsorted(starts, at, side="right") - 1
    inside = at < body[line]
    counts = np.bincount(line[inside], minlength=len(starts))
    return np.flatnonzero(counts % 2 == 1 if odd else counts > 0)


def _screen_lines(data: bytes, view: np.ndarray, starts: np.ndarray,
                  ends: np.ndarray) -> tuple[list[tuple[int, str, str, str]], bytes]:
    """Data lines pyarrow must not see, as rejects ``(line, rule, detail, record)``, and
    the data with those lines emptied (so that every line keeps its number).

    Unreadable: longer than MAX_LINE_BYTES, not UTF-8, a carriage return inside the line
    (pyarrow would end a row there) or an odd number of quotes (a quoted field going on to
    the next line: one row over two lines would shift every later line number).
    """
    body = ends - (ends > starts) * (view[np.maximum(ends - 1, 0)] == 13)  # CRLF: CR is the end
    reasons: dict[int, str] = {}
    for k in np.flatnonzero(body - starts > MAX_LINE_BYTES).tolist():
        reasons[k] = f"line is longer than {MAX_LINE_BYTES:,} bytes"
    for k in _lines_holding(data, view, starts, body, 34, odd=True).tolist():
        reasons.setdefault(k, "unbalanced quotes (a field may not go on to the next line)")
    for k in _lines_holding(data, view, starts, body, 13, odd=False).tolist():
        reasons.setdefault(k, "a carriage return inside the line")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        for k in range(len(starts)):
            try:
                data[starts[k]:ends[k]].decode("utf-8")
            except UnicodeDecodeError as exc:
                reasons.setdefault(k, f"not UTF-8: byte 0x{data[starts[k] + exc.start]:02x} "
                                      f"at column {exc.start + 1}")
    if not reasons:
        return [], data[starts[0]:] if len(starts) else b""
    rejects = []
    pieces = []
    at = int(starts[0])
    for k in sorted(reasons):
        text = data[starts[k]:body[k]].decode("utf-8", errors="backslashreplace")
        if len(text) > _SHOWN_CHARS:
            text = text[:_SHOWN_CHARS] + "..."
        rejects.append((k + 2, "unreadable_line", reasons[k], text))
        pieces.append(data[at:starts[k]])
        at = int(ends[k])
    pieces.append(data[at:])
    return rejects, b"".join(pieces)


def _load_parquet(path: Path) -> _Source:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"import {path}: unreadable Parquet: {exc}") from exc
    table = table.combine_chunks()
    as_text = []
    for column in table.columns:
        try:
            text = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(f"import {path}: column of type {column.type}: {exc}") from exc
        as_text.append(pc.fill_null(text, ""))
    if as_text:
        records = pc.binary_join_element_wise(*as_text, ",").combine_chunks()
    else:
        records = pa.array([], pa.string())
    columns = {
        name: table[name].combine_chunks() for name in table.column_names if name in READINGS.names
    }
    return _Source(
        columns=columns,
        lines=np.arange(1, table.num_rows + 1, dtype=np.int64),
        records=records,
        malformed=[],
        ignored=tuple(name for name in table.column_names if name not in READINGS.names),
    )


# ---------------------------------------------------------------------------- checking
class _Checker:
    """Per-row verdicts: the first rule a row breaks, and a detail for it."""

    def __init__(self, n: int):
        self.rule = np.full(n, -1, dtype=np.int16)
        self.detail = np.empty(n, dtype=object)
        self.sections: pa.Array | None = None

    def good(self) -> np.ndarray:
        return self.rule < 0

    def reject(
        self, mask: np.ndarray, rule: str, detail: Callable[[np.ndarray], list[str]]
    ) -> None:
        """Reject the still-good rows of ``mask`` under ``rule``; ``detail(rows)`` explains."""
        rows = np.flatnonzero(np.asarray(mask, dtype=bool) & self.good())
        if len(rows):
            self.rule[rows] = RULES.index(rule)
            self.detail[rows] = detail(rows)

    def rejects(
        self, lines: np.ndarray, records: pa.Array, malformed: Sequence[tuple[int, str, str, str]]
    ) -> pa.Table:
        rows = np.flatnonzero(self.rule >= 0)
        line = np.concatenate([lines[rows], np.array([m[0] for m in malformed], np.int64)])
        rule = [RULES[code] for code in self.rule[rows]] + [m[1] for m in malformed]
        detail = list(self.detail[rows]) + [m[2] for m in malformed]
        record = records.take(rows).to_pylist() + [m[3] for m in malformed]
        order = np.argsort(line, kind="stable")
        table = pa.table(
            {
                "line": pa.array(line[order], pa.int64()),
                "rule": pa.array([rule[i] for i in order], pa.string()),
                "detail": pa.array([detail[i] for i in order], pa.string()),
                "record": pa.array([record[i] for i in order], pa.string()),
            }
        )
        return table.cast(REJECTS)


def _np(array: pa.Array, fill: float | int | bool) -> np.ndarray:
    return pc.fill_null(array, fill).to_numpy(zero_copy_only=False)


def _is_null(array: pa.Array) -> np.ndarray:
    return pc.is_null(array).to_numpy(zero_copy_only=False)


def _convert(columns: dict[str, pa.Array], checker: _Checker) -> dict[str, pa.Array]:
    """Each READINGS column converted to its type; rows with bad values are rejected."""
    n = len(checker.rule)
    out: dict[str, pa.Array] = {}
    for field in READINGS:
        if field.name not in columns:
            out[field.name] = pa.nulls(n, field.type)
            continue
        raw = columns[field.name]
        if raw.type != field.type and not pa.types.is_string(raw.type):
            try:
                raw = raw.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raw = pc.fill_null(raw.cast(pa.string()), "")
        if pa.types.is_string(raw.type) and field.type != pa.string():
            values, empty, bad = _parse_strings(raw, field.type)
        elif pa.types.is_large_string(raw.type) or pa.types.is_string(raw.type):
            values = pc.utf8_trim_whitespace(raw.cast(pa.string()))
            empty = _np(pc.equal(values, ""), True)
            bad = np.zeros(n, bool)
            values = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), values)
        else:
            values = raw
            empty = _is_null(raw)
            bad = np.zeros(n, bool)
            if pa.types.is_floating(field.type):
                bad = ~empty & ~_np(pc.is_finite(raw), True)
                values = pc.add(pc.if_else(pa.array(bad), pa.scalar(None, field.type), raw), 0.0)
        if not field.nullable:
            checker.reject(
                empty, "missing_value", lambda rows, f=field.name: [f"{f} is empty"] * len(rows)
            )
        texts = columns[field.name]
        checker.reject(
            bad,
            "unparseable",
            lambda rows, f=field, t=texts: [
                f"{f.name}: {value!r} is not {_type_text(f.type)}"
                for value in t.take(rows).to_pylist()
            ],
        )
        out[field.name] = values
    return out


def _type_text(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return f"an integer ({kind})"
    if pa.types.is_floating(kind):
        return "a finite number"
    if pa.types.is_date(kind):
        return "a date (YYYY-MM-DD)"
    return f"a {kind}"


def _parse_strings(text: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Parse a string column to ``target`` row by row (vectorized): values (null where
    empty or bad), the empty mask and the bad mask."""
    trimmed = pc.utf8_trim_whitespace(text)
    empty = _np(pc.equal(trimmed, ""), True)
    if pa.types.is_integer(target):
        pattern = _INT_PATTERN
    elif pa.types.is_floating(target):
        pattern = _FLOAT_PATTERN
    else:
        pattern = _DATE_PATTERN
    ok = _np(pc.match_substring_regex(trimmed, pattern), False)
    keep = pc.if_else(pa.array(ok), trimmed, pa.scalar(None, pa.string()))
    if pa.types.is_integer(target) or pa.types.is_floating(target):
        # Arrow's cast refuses a leading "+" (it was a traceback): the pattern allowed it.
        keep = pc.replace_substring_regex(keep, pattern=r"^\+", replacement="")
    if pa.types.is_integer(target):
        values = keep.cast(pa.int64())
        if target == pa.int32():
            # A value beyond int32 is not a multiplier this schema can hold: unparseable.
            too_big = _np(pc.greater(pc.abs(values), _INT32_MAX), False)
            values = pc.if_else(pa.array(too_big), pa.scalar(None, pa.int64()), values)
            values = values.cast(pa.int32())
            ok = ok & ~too_big
    elif pa.types.is_floating(target):
        values = keep.cast(pa.float64())
        finite = _np(pc.is_finite(values), False)
        ok = ok & finite
        # -0.0 + 0.0 is 0.0: a negative zero is stored as zero (identical files on rerun).
        values = pc.add(pc.if_else(pa.array(ok), values, pa.scalar(None, pa.float64())), 0.0)
    else:
        stamps = pc.strptime(keep, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls 2026-02-30 over to March; a real date prints back the same.
        same = _np(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), keep), False)
        ok = ok & same
        values = pc.if_else(pa.array(ok), stamps, pa.scalar(None, stamps.type)).cast(pa.date32())
    bad = ~empty & ~ok
    return values, empty, bad


def _units(values: pa.Array) -> np.ndarray:
    """Float kWh as int64 0.01 units (null, and beyond float64's 0.01 steps -> 0: those
    rows are out_of_range, and a cast of 1e300 would be garbage)."""
    scaled = _np(values, 0.0) * ENERGY_SCALE
    return np.rint(np.where(np.abs(scaled) <= FLOAT_EXACT_UNITS, scaled, 0.0)).astype(np.int64)


def _check_domain(table: dict[str, pa.Array], checker: _Checker, period: str | None,
                  bounds: QuantityBounds) -> None:
    periods = table["period"]
    well_formed = _np(pc.match_substring_regex(periods, _PERIOD_PATTERN), True)
    checker.reject(
        ~well_formed,
        "bad_period",
        lambda rows: [f"period {p!r} is not YYYY-MM" for p in periods.take(rows).to_pylist()],
    )
    if period is not None:
        checker.reject(
            _np(pc.not_equal(periods, period), False),
            "period_mismatch",
            lambda rows: [
                f"period {p} is not the imported period {period}"
                for p in periods.take(rows).to_pylist()
            ],
        )
    multiplier = _np(table["multiplier"].cast(pa.int64()), 1)
    raw_multiplier = table["multiplier"]
    checker.reject(
        multiplier < 1,
        "bad_multiplier",
        lambda rows: [f"multiplier {m} is below 1" for m in raw_multiplier.take(rows).to_pylist()],
    )
    for name in _NON_NEGATIVE:
        column = table[name]
        checker.reject(
            _np(column, 0.0) < 0,
            "negative_register",
            lambda rows, c=column, f=name: [
                f"{f} {v} is negative" for v in c.take(rows).to_pylist()
            ],
        )
    _check_bounds(table, checker, multiplier, bounds)
    for name in _NON_NEGATIVE:
        column = table[name]
        values = _np(column, 0.0)
        finer = np.rint(values * 100) / 100 != values
        checker.reject(
            finer,
            "register_resolution",
            lambda rows, c=column, f=name: [
                f"{f} {v!r} is finer than 0.01" for v in c.take(rows).to_pylist()
            ],
        )
    metered = np.zeros(len(checker.rule), bool)
    split = np.zeros(len(checker.rule), np.int64)
    for name in _TOU:
        metered |= ~_is_null(table[name])
        split += _units(table[name])
    advance = _units(table["cur_register"]) - _units(table["prev_register"])
    checker.reject(
        metered & (split != advance),
        "tou_split_mismatch",
        lambda rows: [
            f"TOU advances sum to {split[i] / 100:.2f} but cur - prev is {advance[i] / 100:.2f}"
            for i in rows
        ],
    )


def _check_bounds(table: dict[str, pa.Array], checker: _Checker, multiplier: np.ndarray,
                  bounds: QuantityBounds) -> None:
    """``out_of_range``: a value beyond float64's 0.01 steps, or a product with the
    multiplier beyond ``bounds``, compared exactly as ``units > bound // multiplier``."""
    n = len(checker.rule)
    multiplier = np.maximum(multiplier, 1)
    reason = np.full(n, "", dtype=object)
    beyond = np.zeros(n, bool)
    for name in _NON_NEGATIVE:
        scaled = _np(table[name], 0.0) * ENERGY_SCALE
        over = ~beyond & ~(np.abs(scaled) <= FLOAT_EXACT_UNITS)
        for row in np.flatnonzero(over & checker.good()):
            reason[row] = QuantityBounds.unpriced().describe(name, table[name][row].as_py())
        beyond |= over
    units = {name: _units(table[name]) for name in _NON_NEGATIVE}
    quantities = {
        "cur_register - prev_register": units["cur_register"] - units["prev_register"],
        **{name: units[name] for name in (*_TOU, "reactive_kvarh", "max_demand_kw")},
    }
    for what, value in quantities.items():
        limit = bounds.limit(what)
        over = ~beyond & (value > limit // multiplier)
        for row in np.flatnonzero(over & checker.good()):
            product = Decimal(int(value[row])) * int(multiplier[row]) / ENERGY_SCALE
            reason[row] = bounds.describe(f"{what} x multiplier {multiplier[row]} =", product,
                                          demand=what == "max_demand_kw")
        beyond |= over
    checker.reject(beyond, "out_of_range", lambda rows: list(reason[rows]))


def _check_accounts(datacentre: DataCentre, table: dict[str, pa.Array], checker: _Checker) -> None:
    ids = table["account_id"]
    good = checker.good()
    wanted = pc.unique(ids.filter(pa.array(good))).drop_null() if good.any() else None
    known = datacentre.read_account_sections(wanted if wanted is not None else [])
    position = pc.index_in(ids, value_set=known["account_id"])
    checker.reject(
        _is_null(position),
        "unknown_account",
        lambda rows: [f"account {a} is not in accounts" for a in ids.take(rows).to_pylist()],
    )
    checker.sections = known["section_id"].combine_chunks().take(position)


def _check_meters(datacentre: DataCentre, table: dict[str, pa.Array], checker: _Checker,
                  lines: np.ndarray) -> None:
    """The meter point rule (module docstring): ``bad_meter``, ``foreign_meter``,
    ``unknown_meter``, against every period's readings in the data centre (vectorized:
    joins, not a loop over rows)."""
    meter = _np(table["meter_point_id"], 0)
    account = _np(table["account_id"], 0)
    checker.reject(meter < 1, "bad_meter",
                   lambda rows: [f"meter_point_id {meter[i]} is below 1" for i in rows])
    good = np.flatnonzero(checker.good())
    if not len(good):
        return
    known = _known_meters(datacentre, pa.array(np.unique(meter[good])),
                          pa.array(np.unique(account[good])))
    pairs = known.group_by(["account_id", "meter_point_id"]).aggregate([])
    rows = pa.table({"row": pa.array(good), "account_id": pa.array(account[good]),
                     "meter_point_id": pa.array(meter[good]),
                     "period": pc.fill_null(table["period"], "").take(pa.array(good)),
                     "line": pa.array(lines[good])})
    n = len(checker.rule)
    own = _marked(rows, pairs, ["account_id", "meter_point_id"], n)
    # A meter point the data centre has read for other accounts only: its least owner.
    owner = pairs.group_by("meter_point_id").aggregate([("account_id", "min")])
    owner_of = _looked_up(rows, owner, "meter_point_id", "account_id_min", n)
    foreign = ~own & (owner_of >= 0)
    # A meter point new to the data centre: the account on its first line owns it.
    fresh = rows.filter(pa.array(~own[good] & (owner_of[good] < 0)))
    first = fresh.sort_by([("line", "ascending")]).group_by(
        "meter_point_id", use_threads=False).aggregate(
        [("account_id", "first"), ("line", "first")])
    first_account = _looked_up(rows, first, "meter_point_id", "account_id_first", n)
    first_line = _looked_up(rows, first, "meter_point_id", "line_first", n)
    taken = ~own & (owner_of < 0) & (first_account >= 0) & (first_account != account)
    # A new meter point of an account that has others: only beside a reading of one of
    # them in the same period (a replacement), stored or in this file.
    has_meters = np.isin(account, pairs["account_id"].to_numpy())
    keys = pa.schema([("account_id", pa.int64()), ("period", pa.string())])
    read_in = pa.concat_tables([
        known.select(["account_id", "period"]).cast(keys),
        rows.filter(pa.array(own[good])).select(["account_id", "period"]).cast(keys),
    ]).group_by(["account_id", "period"]).aggregate([])
    replacing = _marked(rows, read_in, ["account_id", "period"], n)
    unknown = ~own & (owner_of < 0) & ~taken & has_meters & ~replacing

    def dc_owner(rows_: np.ndarray) -> list[str]:
        return [f"meter {meter[i]} belongs to account {owner_of[i]}, not {account[i]} "
                "(read for it in the data centre)" if owner_of[i] >= 0 else
                f"meter {meter[i]} belongs to account {first_account[i]} (line "
                f"{first_line[i]}), not {account[i]}" for i in rows_]

    checker.reject(foreign | taken, "foreign_meter", dc_owner)
    checker.reject(unknown, "unknown_meter", lambda rows_: [
        f"meter {meter[i]} is not one of account {account[i]}'s meter points; a new one is "
        "taken in a period that also reads one of them (a replacement)" for i in rows_])


def _marked(rows: pa.Table, keys: pa.Table, on: list[str], n: int) -> np.ndarray:
    """Per source row (``rows["row"]``): whether its ``on`` values are among ``keys``'."""
    hit = rows.select(["row", *on]).join(keys.select(on).append_column(
        "_hit", pa.repeat(pa.scalar(True), keys.num_rows)), keys=on, join_type="inner")
    mask = np.zeros(n, bool)
    mask[hit["row"].to_numpy()] = True
    return mask


def _looked_up(rows: pa.Table, keys: pa.Table, on: str, column: str, n: int) -> np.ndarray:
    """Per source row: ``keys[column]`` where ``keys[on]`` equals the row's (-1: none)."""
    hit = rows.select(["row", on]).join(keys.select([on, column]), keys=on, join_type="inner")
    out = np.full(n, -1, np.int64)
    out[hit["row"].to_numpy()] = hit[column].to_numpy()
    return out


def _known_meters(datacentre: DataCentre, meters: pa.Array, accounts: pa.Array) -> pa.Table:
    """``(account_id, meter_point_id, period)`` of every stored reading, any period, that
    names one of ``meters`` or ``accounts``."""
    import pyarrow.dataset as ds  # lazily, as the data centre does

    columns = ["account_id", "meter_point_id", "period"]
    wanted = ds.field("meter_point_id").isin(meters) | ds.field("account_id").isin(accounts)
    tables = [datacentre.dataset("readings", period).to_table(columns=columns, filter=wanted)
              for period in datacentre.periods("readings")]
    schema = pa.schema([READINGS.field(name) for name in columns])
    return pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()


def _check_duplicates(table: dict[str, pa.Array], checker: _Checker, lines: np.ndarray) -> None:
    good = np.flatnonzero(checker.good())
    if len(good) < 2:
        return
    account = _np(table["account_id"], 0)[good]
    meter = _np(table["meter_point_id"], 0)[good]
    periods = pc.fill_null(table["period"], "").take(pa.array(good))
    period_code = pc.dictionary_encode(periods).indices.to_numpy(zero_copy_only=False)
    order = np.lexsort((good, period_code, meter, account))
    same = np.zeros(len(good), bool)
    same[1:] = (
        (account[order][1:] == account[order][:-1])
        & (meter[order][1:] == meter[order][:-1])
        & (period_code[order][1:] == period_code[order][:-1])
    )
    # The first line of each run of equal keys is loaded; later ones are rejected.
    run_start = np.maximum.accumulate(np.where(~same, np.arange(len(good)), 0))
    first_line = lines[good[order][run_start]]
    duplicate = np.zeros(len(checker.rule), bool)
    duplicate[good[order][same]] = True
    first_of = dict(zip(good[order][same].tolist(), first_line[same].tolist(), strict=True))
    checker.reject(
        duplicate,
        "duplicate",
        lambda rows: [
            f"account {account_id} meter {meter_id} period {p} already on line {first_of[i]}"
            for i, account_id, meter_id, p in zip(
                rows.tolist(),
                table["account_id"].take(rows).to_pylist(),
                table["meter_point_id"].take(rows).to_pylist(),
                table["period"].take(rows).to_pylist(),
                strict=True,
            )
        ],
    )


# ---------------------------------------------------------------------------- writing
def _merge_good(
    datacentre: DataCentre, table: dict[str, pa.Array], good: np.ndarray, sections: pa.Array | None
) -> list[tuple[tuple[str, str], pa.Table]]:
    """Each partition's readings after the merge, ``((period, section), table)``, sorted;
    built in memory, so that nothing is written before all of them are known."""
    if not len(good) or sections is None:
        return []
    indices = pa.array(good)
    arrays = [table[name].take(indices) for name in READINGS.names]
    readings = pa.Table.from_arrays(arrays, schema=READINGS)
    readings = readings.append_column("_section", sections.take(indices)).sort_by(
        [
            ("period", "ascending"),
            ("_section", "ascending"),
            ("account_id", "ascending"),
            ("meter_point_id", "ascending"),
        ]
    )
    key = pc.binary_join_element_wise(readings["period"], readings["_section"], "/")
    codes = pc.dictionary_encode(key).combine_chunks().indices.to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    written = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        group = readings.slice(start, end - start)
        period, section_id = group["period"][0].as_py(), group["_section"][0].as_py()
        new = group.drop_columns(["_section"])
        existing = datacentre.read_readings(period, section_id)
        if existing.num_rows:
            existing = existing.join(
                new.select(["account_id", "meter_point_id"]),
                keys=["account_id", "meter_point_id"],
                join_type="left anti",
            ).select(READINGS.names)
            new = pa.concat_tables([existing.cast(READINGS), new])
        new = new.sort_by([("account_id", "ascending"), ("meter_point_id", "ascending")])
        written.append(((period, section_id), new.cast(READINGS)))
    return written


def _write_rejects(reserved: Path, path: Path, table: pa.Table) -> None:
    """Write the rejects CSV into its reserved temporary (moved into place at the end)."""
    try:
        pacsv.write_csv(table, reserved)
    except (OSError, pa.ArrowException) as exc:
        raise UnsafeOutputPath(f"import: cannot write rejects file {path}: {exc}; nothing "
                               "was imported") from exc
