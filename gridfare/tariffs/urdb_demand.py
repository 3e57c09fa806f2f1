"""URDB time-of-use demand charge: ``demandratestructure`` over ``demandweekdayschedule``
and ``demandweekendschedule``.

Each period's billed demand is the largest hourly kW in the month's hours of that period;
it fills that period's tiers (``max`` in kW, ``rate + adj`` per kW), each period on its
own. A period not used in a month bills nothing that month.
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
    Schedule,
    Tiers,
    guard,
    parse_schedule,
    parse_tiers,
    raw_to_minor,
    tiered_raw,
)

__all__ = ["UrdbDemand", "parse"]

FIELD = "demandratestructure"


@dataclass(frozen=True)
class UrdbDemand:
    schedule: Schedule
    periods: tuple[Tiers, ...]
    raw_per_minor: int = RAW_PER_CENT

    kind: ClassVar[str] = "urdb_demand"
    stage: ClassVar[Stage] = Stage.BASIC
    lines: ClassVar[tuple[str, ...]] = ("demand_tou",)

    def charge(self, usage: HourlyUsage, lines: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
        raw = np.zeros((len(usage), 12), dtype=np.int64)
        for mask, tiers in zip(self.schedule.masks(len(self.periods)), self.periods,
                               strict=True):
            peak = usage.period_peak(mask)
            guard(peak, max(tiers.rates), "profile: demand")
            raw += tiered_raw(peak, tiers.maxima, tiers.rates)
        return {"demand_tou": raw_to_minor(raw, self.raw_per_minor)}


def parse(record: Record) -> UrdbDemand | None:
    if not record.has(FIELD):
        for field in ("demandweekdayschedule", "demandweekendschedule"):
            if record.has(field):
                raise record.error(field, f"given without {FIELD}")
        return None
    structure = record.structure(FIELD, frozenset({"max", "rate", "adj"}))
    periods = tuple(parse_tiers(record, FIELD, tiers, p) for p, tiers in enumerate(structure))
    return UrdbDemand(schedule=parse_schedule(record, "demand", len(periods)), periods=periods)
