"""What flows through the six stages: one run's named Arrow tables and its context.

A stage is ``run(batch, context) -> batch``: it reads tables by name, adds or replaces some,
and counts what it did. ``FeeBatch`` is immutable, so a stage that fails leaves the batch it
was given as it was, and a stage rerun on it gives the same answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from gridfare.errors import FeeControlError
from gridfare.feecontrol.cache import BalanceCache, Snapshot
from gridfare.money import ENERGY_SCALE

__all__ = ["Context", "FeeBatch", "to_kwh", "to_units"]


@dataclass(frozen=True)
class FeeBatch:
    """One run's tables by name, its run date and the instant it decides at."""

    run_date: dt.date
    decide_at: dt.datetime
    tables: Mapping[str, pa.Table]
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def table(self, name: str) -> pa.Table:
        try:
            return self.tables[name]
        except KeyError:
            raise FeeControlError(f"fee batch {self.run_date}: no table {name!r} yet "
                                  f"(have {', '.join(sorted(self.tables))})") from None

    def with_tables(self, counts: Mapping[str, int] | None = None,
                    **tables: pa.Table) -> FeeBatch:
        return replace(self, tables=MappingProxyType({**self.tables, **tables}),
                       counts=MappingProxyType({**self.counts, **(counts or {})}))


@dataclass(frozen=True)
class Context:
    """What the stages read besides the batch: one cache snapshot, balances, last states."""

    snapshot: Snapshot
    accounts: BalanceCache
    states: pa.Table  # FEE_STATE of the accounts before this run


def to_units(column: pa.ChunkedArray | pa.Array, fill: int = 0) -> np.ndarray:
    """kWh (float64, 0.01 resolution) as int64 0.01 kWh units; nulls become ``fill``."""
    values = column.fill_null(np.nan).to_numpy() if column.null_count else column.to_numpy()
    units = np.rint(np.asarray(values, dtype=np.float64) * ENERGY_SCALE)
    return np.where(np.isnan(units), fill, units).astype(np.int64)


def to_kwh(units: np.ndarray) -> np.ndarray:
    return np.asarray(units, dtype=np.int64) / ENERGY_SCALE
