"""Profiles x tariffs: each profile's year billed under each tariff, as one Arrow table.

The unit of work of ``rayjobs.tariff_compare`` (one chunk of profiles per task) and of the
benchmark; ``bill_profiles`` does the pricing, so a row is exactly ``bill_hourly`` of that
profile. Rows come in profile order, then tariff order; ``rank`` orders a profile's
tariffs of one currency by total (ties: the earlier tariff first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from datasets.schemas import TARIFF_COMPARISON_LINES, TARIFF_COMPARISONS
from gridfare.errors import InvalidInput
from gridfare.tariffs.hourly import MILLI, hourly_usage
from gridfare.tariffs.hourly_bill import bill_profiles, currency_of
from gridfare.tariffs.tariff import Tariff
from gridfare.tariffs.urdb import UrdbTariff

__all__ = ["compare_profiles"]


def compare_profiles(tariffs: Sequence[Tariff | UrdbTariff], profile_ids: Sequence[str],
                     load: np.ndarray, year: int, comparison_id: str) -> pa.Table:
    """``TARIFF_COMPARISONS`` rows for ``load`` ((n, hours) int64 Wh, checked)."""
    n, t = len(profile_ids), len(tariffs)
    if len(load) != n:
        raise InvalidInput(f"compare: {len(load)} profiles of load for {n} profile ids")
    codes = [tariff.code for tariff in tariffs]
    if len(set(codes)) != t or not t:
        raise InvalidInput(f"compare: expected distinct tariffs, got {codes}")
    usage = hourly_usage(load, year)
    annual = np.empty((len(TARIFF_COMPARISON_LINES), n, t), dtype=np.int64)
    for j, tariff in enumerate(tariffs):
        lines = bill_profiles(tariff, usage)
        lines["demand"] = lines.pop("demand_tou") + lines.pop("demand_flat")
        for i, line in enumerate(TARIFF_COMPARISON_LINES):
            annual[i, :, j] = lines[line.removesuffix("_minor")].sum(axis=1)
    totals = annual.sum(axis=0)  # (n, t)
    currencies = [currency_of(tariff)[0] for tariff in tariffs]
    rank = np.zeros((n, t), dtype=np.int32)
    for currency in set(currencies):
        columns = np.array([c == currency for c in currencies])
        order = np.argsort(totals[:, columns], axis=1, kind="stable")
        rank[:, columns] = np.argsort(order, axis=1, kind="stable") + 1
    columns = {
        "comparison_id": pa.array([comparison_id] * (n * t), pa.string()),
        "profile_id": pa.array(np.repeat(np.asarray(profile_ids, dtype=object), t), pa.string()),
        "tariff": pa.array(codes * n, pa.string()),
        "currency": pa.array(currencies * n, pa.string()),
        "year": pa.array(np.full(n * t, year, dtype=np.int32)),
        "kwh": pa.array(np.repeat(usage.month_energy.sum(axis=1) / MILLI, t)),
        **{name: pa.array(annual[i].ravel())
           for i, name in enumerate(TARIFF_COMPARISON_LINES)},
        "total_minor": pa.array(totals.ravel()),
        "rank": pa.array(rank.ravel()),
    }
    return pa.Table.from_pydict(columns, schema=TARIFF_COMPARISONS)
