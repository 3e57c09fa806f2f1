"""Per-account consumption history behind annual tiers and the spike audit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.schemas import HISTORY_FOLD, history_months, months_within
from gridfare.money import ENERGY_SCALE
from gridfare.period import Period, index_of


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
    """Fold ``(account_id, month, kwh)`` rows (``history_months``) of the ``months``
    periods before ``period``.

    ``account_ids`` must be sorted (within each segment, when several sections are folded
    at once: see ``locate``). Rows of other periods or other accounts are ignored.
    """
    n = len(account_ids)
    ytd = np.zeros(n, np.int64)
    total = np.zeros(n, np.int64)
    count = np.zeros(n, np.int64)
    if history is None or history.num_rows == 0 or n == 0:
        return HistoryProfile(ytd, total)
    history = history_months(history)
    index = history["month"].to_numpy()
    end = index_of(period)
    in_window, this_year = (index >= end - months) & (index < end), index // 12 == period.year

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


def fold_history(carried: pa.Table, bills: pa.Table, period: Period,
                 months: int = 12) -> pa.Table:
    """The history fold as of the close of ``period``: every row the next period's history
    needs, so that it reads one file whatever the month (``HISTORY_FOLD`` rows).

    ``carried`` is what this period's history was folded from (``history_months`` rows:
    the ``months`` periods before it, plus any legacy rows of ``period`` or later);
    ``bills`` are its bills (all of ``period``). Rows of the oldest month drop out, the
    bills' ``(account_id, kwh)`` are added as ``period``'s, and a bill takes precedence
    over a carried row of the same account and month, as in ``DataCentre.read_history``.
    Folding the same inputs again gives the same table.
    """
    own = index_of(period)
    rows = history_months(carried).select(HISTORY_FOLD.names)
    fresh = pa.table([bills["account_id"],
                      pa.array(np.full(bills.num_rows, own, np.int32)),
                      bills["kwh"]], schema=HISTORY_FOLD)
    if not rows.num_rows:
        return fresh.combine_chunks()
    index = rows["month"].to_numpy()
    oldest = own - (months - 1)
    low, high = bool(index.min() < oldest), bool(index.max() >= own)
    keep = index >= oldest if low else None
    if bills.num_rows and high:
        # Only a legacy row of this month or later can meet a bill (usually there is none).
        billed = pc.is_in(rows["account_id"], value_set=bills["account_id"]).to_numpy(
            zero_copy_only=False)
        shadowed = billed & (index == own)
        keep = ~shadowed if keep is None else keep & ~shadowed
    if keep is not None:
        rows = rows.filter(pa.array(keep))
    return pa.concat_tables([rows, fresh]).combine_chunks()


def history_window(carried: pa.Table, period: Period, months: int) -> pa.Table:
    """The rows of ``carried`` (``history_months`` rows) in the ``months`` periods before
    ``period`` (the table itself when every row is: the common case, no copy)."""
    return months_within(carried, index_of(period.shift(-months)), index_of(period) - 1)
