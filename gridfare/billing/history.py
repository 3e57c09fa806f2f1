"""Per-account consumption history behind annual tiers and the spike audit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gridfare.money import ENERGY_SCALE
from gridfare.period import Period, index_of, month_index


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
    index = month_index(column)
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
    fresh = bills.select(["account_id", "period", "kwh"]).cast(rows.schema)
    if not rows.num_rows:
        return fresh.combine_chunks()
    index = month_index(rows["period"])
    if index is None:  # labels other than YYYY-MM: compared as strings
        span = pc.min_max(rows["period"])
        low, high = span["min"].as_py() < oldest, span["max"].as_py() >= own
        keep = pc.greater_equal(rows["period"], oldest) if low else None
        late = pc.equal(rows["period"], own) if bills.num_rows and high else None
    else:
        low = bool(index.min() < index_of(period) - (months - 1))
        high = bool(index.max() >= index_of(period))
        keep = pa.array(index >= index_of(period) - (months - 1)) if low else None
        late = pa.array(index == index_of(period)) if bills.num_rows and high else None
    if late is not None:
        # Only a legacy row of this month or later can meet a bill (usually there is none).
        billed = pc.is_in(rows["account_id"], value_set=bills["account_id"])
        shadowed = pc.and_(billed, late)
        keep = pc.invert(shadowed) if keep is None else pc.and_(keep, pc.invert(shadowed))
    if keep is not None:
        rows = rows.filter(keep)
    return pa.concat_tables([rows, fresh]).combine_chunks()


def history_window(carried: pa.Table, period: Period, months: int) -> pa.Table:
    """The rows of ``carried`` in the ``months`` periods before ``period`` (the table
    itself when every row is: the common case, one min/max and no copy)."""
    if carried.num_rows == 0:
        return carried
    first, last = period.shift(-months), period.shift(-1)
    index = month_index(carried["period"])
    if index is not None:
        inside = (index >= index_of(first)) & (index <= index_of(last))
        return carried if inside.all() else carried.filter(pa.array(inside))
    first_label, last_label = str(first), str(last)
    span = pc.min_max(carried["period"])
    if span["min"].as_py() >= first_label and span["max"].as_py() <= last_label:
        return carried
    inside = pc.and_(pc.greater_equal(carried["period"], first_label),
                     pc.less_equal(carried["period"], last_label))
    return carried.filter(inside)
