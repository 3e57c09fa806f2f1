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


def summarize_history(history: pa.Table | None, account_ids: np.ndarray, period: Period,
                      months: int) -> HistoryProfile:
    """Fold ``(account_id, period, kwh)`` rows of the ``months`` periods before ``period``."""
    n = len(account_ids)
    ytd = np.zeros(n, np.int64)
    total = np.zeros(n, np.int64)
    count = np.zeros(n, np.int64)
    if history is None or history.num_rows == 0:
        return HistoryProfile(ytd, total)
    window = {str(p) for p in period.previous(months)}
    rows = history.filter(pc.is_in(history["period"], pa.array(sorted(window))))
    ids = rows["account_id"].to_numpy()
    pos = np.searchsorted(account_ids, ids)
    pos = np.minimum(pos, max(n - 1, 0))
    known = (account_ids[pos] == ids) if n else np.zeros(len(ids), bool)
    pos = pos[known]
    kwh = np.rint(rows["kwh"].to_numpy()[known] * ENERGY_SCALE).astype(np.int64)
    this_year = np.char.startswith(
        rows["period"].to_numpy(zero_copy_only=False)[known].astype(str), f"{period.year:04d}-"
    )
    np.add.at(total, pos, kwh)
    np.add.at(count, pos, 1)
    np.add.at(ytd, pos, np.where(this_year, kwh, 0))
    avg = np.where(count > 0, total // np.maximum(count, 1), 0)
    return HistoryProfile(ytd, avg)
