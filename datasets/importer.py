"""Import a utility's own meter readings (CSV or Parquet) into the data centre.

Every row is checked against ``READINGS`` and the domain rules; a row that breaks one is
not loaded but written to a rejects file (``REJECTS``: line, rule, detail, record) with its
source line (CSV: the header is line 1, so the first data row is line 2; Parquet: row index
+ 1). Good rows are grouped by the section their account belongs to and merged into that
section's readings for the period, replacing rows with the same
``(account_id, meter_point_id)``: importing the same file twice leaves the same data.

Checks run in the order of ``RULES``; a row is rejected under the first rule it breaks.
Only a file-level problem (unreadable file, missing column) raises, as ``InvalidInput``.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from datasets.datacentre import DataCentre, check_period
from datasets.schemas import READINGS, REJECTS
from gridfare.errors import DataCentreError, InvalidInput

__all__ = ["RULES", "ImportSummary", "import_readings"]

# Row rules, in the order they are checked.
RULES: tuple[str, ...] = (
    "malformed_row",  # a CSV line with the wrong number of fields
    "missing_value",  # a required column is empty
    "unparseable",  # a value is not a number / date of the column's type
    "bad_period",  # period is not YYYY-MM
    "period_mismatch",  # period differs from the one being imported
    "bad_multiplier",  # multiplier < 1 (or beyond int32)
    "negative_register",  # a register, TOU advance, demand or reactive value below zero
    "register_resolution",  # a value finer than 0.01 (kWh, kW, kvarh)
    "tou_split_mismatch",  # TOU advances present but not summing to cur - prev
    "unknown_account",  # account_id not in the data centre's accounts
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
    malformed: list[tuple[int, str]]  # (line, text) of rows that could not be split
    ignored: tuple[str, ...]


def import_readings(
    datacentre: DataCentre,
    source_path: str | os.PathLike[str],
    *,
    period: str | None = None,
    rejects_path: str | os.PathLike[str] | None = None,
) -> ImportSummary:
    """Validate and load readings from a CSV or Parquet file into ``datacentre``.

    ``period`` (``YYYY-MM``), when given, is the only period accepted (and fills a missing
    ``period`` column). Rejected rows go to ``rejects_path`` (default
    ``<source>.rejects.csv``), which is always rewritten, empty or not.
    """
    source = Path(source_path)
    if period is not None:
        check_period(period)
    if not source.is_file():
        raise InvalidInput(f"import {source}: no such file")
    rejects = Path(rejects_path) if rejects_path is not None else Path(f"{source}.rejects.csv")
    suffix = source.name.lower()
    if suffix.endswith((".parquet", ".pq")):
        loaded = _load_parquet(source)
    elif suffix.endswith((".csv", ".csv.gz", ".txt")):
        loaded = _load_csv(source)
    else:
        raise InvalidInput(f"import {source}: unknown format (expected .csv or .parquet)")

    missing = [name for name in _REQUIRED if name not in loaded.columns]
    if "period" in missing and period is not None:
        missing.remove("period")
        loaded.columns["period"] = pa.array([period] * len(loaded.lines), pa.string())
    if missing:
        raise InvalidInput(f"import {source}: missing required column {missing[0]!r}")

    checker = _Checker(len(loaded.lines))
    table = _convert(loaded.columns, checker)
    _check_domain(table, checker, period)
    _check_accounts(datacentre, table, checker)
    _check_duplicates(table, checker, loaded.lines)

    good = np.flatnonzero(checker.rule < 0)
    partitions = _write_good(datacentre, table, good, checker.sections)
    rejects_table = checker.rejects(loaded.lines, loaded.records, loaded.malformed)
    _write_rejects(rejects, rejects_table)
    by_rule: dict[str, int] = {}
    for rule in rejects_table["rule"].to_pylist():
        by_rule[rule] = by_rule.get(rule, 0) + 1
    return ImportSummary(
        source=str(source),
        rows=len(loaded.lines) + len(loaded.malformed),
        loaded=len(good),
        rejected=rejects_table.num_rows,
        by_rule={rule: by_rule[rule] for rule in RULES if rule in by_rule},
        partitions=partitions,
        rejects_path=str(rejects),
        ignored_columns=loaded.ignored,
    )


# ---------------------------------------------------------------------------- loading
def _load_csv(path: Path) -> _Source:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        try:
            header = next(csv.reader(handle))
        except StopIteration:
            raise InvalidInput(f"import {path}: empty file (no header line)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(f"import {path}: unreadable header: {exc}") from exc
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise InvalidInput(f"import {path}: duplicate column names in the header")
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    malformed: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append((row.number, row.text))
        return "skip"

    def read(threads: bool) -> pa.Table:
        parse = pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False)
        options = pacsv.ReadOptions(use_threads=threads, column_names=header, skip_rows=1)
        try:
            return pacsv.read_csv(
                path, read_options=options, parse_options=parse, convert_options=convert
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"import {path}: unreadable CSV: {exc}") from exc

    table = read(threads=True)
    if malformed:
        # Only a single-threaded read knows the line numbers of the rows it skipped.
        malformed.clear()
        table = read(threads=False)
    bad = sorted((number if number is not None else 0, text) for number, text in malformed)
    skipped = np.array([number for number, _ in bad], dtype=np.int64)
    candidates = np.arange(2, 2 + table.num_rows + len(bad), dtype=np.int64)
    lines = candidates[~np.isin(candidates, skipped)][: table.num_rows]

    record = pc.binary_join_element_wise(*table.columns, ",")
    blank = pc.equal(record, pa.scalar("," * (len(header) - 1))).to_numpy(zero_copy_only=False)
    keep = np.flatnonzero(~blank)
    columns = {name: table[name].combine_chunks().take(keep) for name in header}
    known = {name: array for name, array in columns.items() if name in READINGS.names}
    ignored = tuple(name for name in header if name not in READINGS.names)
    return _Source(
        columns=known,
        lines=lines[keep],
        records=record.combine_chunks().take(keep),
        malformed=[(number, text) for number, text in bad],
        ignored=ignored,
    )


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
        self, lines: np.ndarray, records: pa.Array, malformed: Sequence[tuple[int, str]]
    ) -> pa.Table:
        rows = np.flatnonzero(self.rule >= 0)
        line = np.concatenate([lines[rows], np.array([n for n, _ in malformed], np.int64)])
        rule = [RULES[code] for code in self.rule[rows]] + ["malformed_row"] * len(malformed)
        detail = list(self.detail[rows]) + ["wrong number of fields" for _ in malformed]
        record = records.take(rows).to_pylist() + [text for _, text in malformed]
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
                values = pc.if_else(pa.array(bad), pa.scalar(None, field.type), raw)
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
        values = pc.if_else(pa.array(ok), values, pa.scalar(None, pa.float64()))
    else:
        stamps = pc.strptime(keep, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls 2026-02-30 over to March; a real date prints back the same.
        same = _np(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), keep), False)
        ok = ok & same
        values = pc.if_else(pa.array(ok), stamps, pa.scalar(None, stamps.type)).cast(pa.date32())
    bad = ~empty & ~ok
    return values, empty, bad


def _units(values: pa.Array) -> np.ndarray:
    """Float kWh as int64 0.01 units (null -> 0)."""
    return np.rint(_np(values, 0.0) * 100).astype(np.int64)


def _check_domain(table: dict[str, pa.Array], checker: _Checker, period: str | None) -> None:
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
def _write_good(
    datacentre: DataCentre, table: dict[str, pa.Array], good: np.ndarray, sections: pa.Array | None
) -> tuple[tuple[str, str], ...]:
    if not len(good) or sections is None:
        return ()
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
        datacentre.write_readings(period, section_id, new)
        written.append((period, section_id))
    return tuple(written)


def _write_rejects(path: Path, table: pa.Table) -> None:
    """Write the rejects CSV atomically (temporary name, then rename)."""
    temp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pacsv.write_csv(table, temp)
        os.replace(temp, path)
    except (OSError, pa.ArrowException) as exc:
        temp.unlink(missing_ok=True)
        raise DataCentreError(f"import: cannot write rejects file {path}: {exc}") from exc
