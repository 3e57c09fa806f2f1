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
    # A few distinct periods over many rows: classify the periods once, not every row.
    encoded = pc.dictionary_encode(history["period"]).combine_chunks()
    window = {str(p) for p in period.previous(months)}
    labels = encoded.dictionary.to_pylist()
    in_window = np.array([label in window for label in labels], dtype=bool)
    this_year = np.array([label.startswith(f"{period.year:04d}-") for label in labels],
                         dtype=bool)
    codes = encoded.indices.to_numpy(zero_copy_only=False)

    ids = history["account_id"].to_numpy()
    pos, found = locate(account_ids, account_offsets, ids, row_segments)
    keep = in_window[codes] & found
    pos = pos[keep]
    kwh = np.rint(history["kwh"].to_numpy()[keep] * ENERGY_SCALE).astype(np.int64)
    total = np.bincount(pos, weights=kwh, minlength=n).astype(np.int64)
    count = np.bincount(pos, minlength=n).astype(np.int64)
    ytd = np.bincount(pos, weights=np.where(this_year[codes[keep]], kwh, 0),
                      minlength=n).astype(np.int64)
    avg = np.where(count > 0, total // np.maximum(count, 1), 0)
    return HistoryProfile(ytd, avg)
