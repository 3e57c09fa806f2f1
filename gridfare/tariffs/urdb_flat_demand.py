"""URDB flat (seasonal) demand charge: ``flatdemandstructure`` with ``flatdemandmonths``.

``flatdemandmonths`` names, for each month, the period of ``flatdemandstructure`` that
prices it; the billed demand is the month's largest hourly kW over all its hours, filling
that period's tiers (``max`` in kW, ``rate + adj`` per kW).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.tariffs.component import Stage
from gridfare.tariffs.hourly import HourlyUsage
from gridfare.tariffs.urdb_record import Record
from gridfare.tariffs.urdb_tiers import (
    RAW_PER_CENT,
    Tiers,
    guard,
    parse_tiers,
    raw_to_minor,
    tiered_raw,
)

__all__ = ["UrdbFlatDemand", "parse"]

FIELD = "flatdemandstructure"
MONTHS = "flatdemandmonths"


@dataclass(frozen=True)
class UrdbFlatDemand:
    months: tuple[int, ...]  # 12 period indexes
    periods: tuple[Tiers, ...]
    raw_per_minor: int = RAW_PER_CENT

    kind: ClassVar[str] = "urdb_flat_demand"
    stage: ClassVar[Stage] = Stage.BASIC
    lines: ClassVar[tuple[str, ...]] = ("demand_flat",)

    def charge(self, usage: HourlyUsage, lines: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
        peak = usage.month_peak
        raw = np.zeros(peak.shape, dtype=np.int64)
        for month, p in enumerate(self.months):
            tiers = self.periods[p]
            guard(peak[:, month], max(tiers.rates), "profile: demand")
            raw[:, month] = tiered_raw(peak[:, month], tiers.maxima, tiers.rates)
        return {"demand_flat": raw_to_minor(raw, self.raw_per_minor)}


def parse(record: Record) -> UrdbFlatDemand | None:
    if not record.has(FIELD):
        if record.has(MONTHS):
            record.raw(MONTHS)  # an empty structure's month table prices nothing
        return None
    structure = record.structure(FIELD, frozenset({"max", "rate", "adj"}))
    periods = tuple(parse_tiers(record, FIELD, tiers, p) for p, tiers in enumerate(structure))
    months = record.raw(MONTHS)
    if not isinstance(months, list) or len(months) != 12:
        raise record.error(MONTHS, "expected 12 period indexes, one per month")
    for month, p in enumerate(months):
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < len(periods):
            raise record.error(f"{MONTHS}[{month}]",
                               f"period {p!r} is not one of the {len(periods)} periods defined")
    return UrdbFlatDemand(months=tuple(months), periods=periods)
