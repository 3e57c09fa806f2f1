"""Per-account consumption history behind annual tiers and the spike audit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gridfare.money import ENERGY_SCALE
from gridfare.period import Period


@dataclass(frozen=True)
class HistoryProfile:
    """For accounts in ``account_ids`` order: energy billed earlier this year, monthly mean."""

    ytd_kwh: np.ndarray  # int64, 0.01 kWh, same calendar year and before the period
    avg_kwh: np.ndarray  # int64, 0.01 kWh, mean over the months present (0 = no history)


def locate(account_ids: np.ndarray, offsets: np.ndarray | None, ids: np.ndarray,
           segments: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``ids`` is among ``account_ids``, and whether it is there at all.

    ``account_ids`` is sorted within each segment (``offsets``: segment starts plus the end);
    ``segments`` gives each id's segment, non-decreasing, so an id only matches an account
    of its own segment. Without segments, everything is one segment. A position is only
    meaningful where found.
    """
    n = len(account_ids)
    if offsets is None or segments is None or len(offsets) <= 2:
        pos = np.searchsorted(account_ids, ids)
        found = account_ids[np.minimum(pos, n - 1)] == ids if n else np.zeros(len(ids), bool)
        return pos, found
    pos = np.zeros(len(ids), np.int64)
    found = np.zeros(len(ids), bool)
    rows = np.searchsorted(segments, np.arange(len(offsets)))
    for at in range(len(offsets) - 1):
        lo, hi, first, last = offsets[at], offsets[at + 1], rows[at], rows[at + 1]
        if hi == lo or first == last:
            continue
        own = account_ids[lo:hi]
        where = np.searchsorted(own, ids[first:last])
        found[first:last] = own[np.minimum(where, hi - lo - 1)] == ids[first:last]
        pos[first:last] = where + lo
    return pos, found


def summarize_history(history: pa.Table | None, account_ids: np.ndarray, period: Period,
                      months: int, *, account_offsets: np.ndarray | None = None,
                      row_segments: np.ndarray | None = None) -> HistoryProfile:
    """Fold ``(account_id, period, kwh)`` rows of the ``months`` periods before ``period``.

    ``account_ids`` must be sorted (within each segment, when several sections are folded
    at once: see ``locate``). Rows of other periods or other accounts are ignored.
    """
    n = len(account_ids)
    ytd = np.zeros(n, np.int64)
    total = np.zeros(n, np.int64)
    count = np.zeros(n, np.int64)
    if history is None or history.num_rows == 0 or n == 0:
        return HistoryProfile(ytd, total)
    in_window, this_year = _classify_periods(history["period"], period, months)

    ids = history["account_id"].to_numpy()
    pos, found = locate(account_ids, account_offsets, ids, row_segments)
    keep = in_window & found
    pos = pos[keep]
    kwh = np.rint(history["kwh"].to_numpy()[keep] * ENERGY_SCALE).astype(np.int64)
    total = np.bincount(pos, weights=kwh, minlength=n).astype(np.int64)
    count = np.bincount(pos, minlength=n).astype(np.int64)
    ytd = np.bincount(pos, weights=np.where(this_year[keep], kwh, 0),
                      minlength=n).astype(np.int64)
    avg = np.where(count > 0, total // np.maximum(count, 1), 0)
    return HistoryProfile(ytd, avg)


def _classify_periods(column: pa.ChunkedArray, period: Period,
                      months: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: is its period one of the ``months`` before ``period``; is it in its year."""
    index = _month_index(column)
    if index is not None:
        # Well-formed ``YYYY-MM`` everywhere: compare month numbers, no string hashing.
        end = period.year * 12 + period.month - 1
        return (index >= end - months) & (index < end), index // 12 == period.year
    # Anything else: a few distinct labels over many rows, classified once each.
    encoded = pc.dictionary_encode(pc.fill_null(column, "")).combine_chunks()
    window = {str(p) for p in period.previous(months)}
    labels = encoded.dictionary.to_pylist()
    in_window = np.array([label in window for label in labels], dtype=bool)
    this_year = np.array([label.startswith(f"{period.year:04d}-") for label in labels],
                         dtype=bool)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    return in_window[codes], this_year[codes]


_DIGITS = (0, 1, 2, 3, 5, 6)


def _month_index(column: pa.ChunkedArray) -> np.ndarray | None:
    """``year * 12 + month - 1`` of each ``YYYY-MM`` value, read from the string bytes;
    None unless every value is exactly that (then the caller classifies the labels)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type != pa.string() or array.null_count or len(array) == 0:
        return None
    offsets = np.frombuffer(array.buffers()[1], np.int32, len(array) + 1, array.offset * 4)
    if np.any(np.diff(offsets) != 7):
        return None
    chars = np.frombuffer(array.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 7)
    digits = chars[:, _DIGITS].astype(np.int64) - ord("0")
    if np.any((digits < 0) | (digits > 9)) or np.any(chars[:, 4] != ord("-")):
        return None
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 4] * 10 + digits[:, 5]
    if np.any((month < 1) | (month > 12)):
        return None
    return year * 12 + month - 1


def fold_history(carried: pa.Table, bills: pa.Table, period: Period,
                 months: int = 12) -> pa.Table:
    """The history fold as of the close of ``period``: every row the next period's history
    needs, so that it reads one file whatever the month.

    ``carried`` is what this period's history was folded from (the ``months`` periods before
    it, plus any legacy rows of ``period`` or later); ``bills`` are its bills. Rows of the
    oldest month drop out, the bills' ``(account_id, period, kwh)`` are added, and a bill
    takes precedence over a carried row of the same account and period, as in
    ``DataCentre.read_history``. Folding the same inputs again gives the same table.
    """
    oldest, own = str(period.shift(-(months - 1))), str(period)
    rows = carried.select(["account_id", "period", "kwh"])
    if rows.num_rows:
        span = pc.min_max(rows["period"])
        if span["min"].as_py() < oldest:
            rows = rows.filter(pc.greater_equal(rows["period"], oldest))
        # Only a legacy row of this month or later can meet a bill (usually there is none).
        if bills.num_rows and span["max"].as_py() >= own:
            billed = pc.is_in(rows["account_id"], value_set=bills["account_id"])
            rows = rows.filter(pc.invert(pc.and_(billed, pc.equal(rows["period"], own))))
    fresh = bills.select(["account_id", "period", "kwh"]).cast(rows.schema)
    return pa.concat_tables([rows, fresh]).combine_chunks()


def history_window(carried: pa.Table, period: Period, months: int) -> pa.Table:
    """The rows of ``carried`` in the ``months`` periods before ``period`` (the table
    itself when every row is: the common case, one min/max and no copy)."""
    if carried.num_rows == 0:
        return carried
    first, last = str(period.shift(-months)), str(period.shift(-1))
    span = pc.min_max(carried["period"])
    if span["min"].as_py() >= first and span["max"].as_py() <= last:
        return carried
    inside = pc.and_(pc.greater_equal(carried["period"], first),
                     pc.less_equal(carried["period"], last))
    return carried.filter(inside)
