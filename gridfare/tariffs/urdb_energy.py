"""URDB energy charge: ``energyratestructure`` over ``energyweekdayschedule`` and
``energyweekendschedule``.

Periods x tiers of ``{max, rate, adj, unit}``; a tier's price is ``rate + adj`` per kWh.
Tier maxima are on the month's total energy, as OpenEI and NREL's SAM read them, and each
period takes its share of every tier in proportion to its energy: a period with energy
``E_p`` of the month's ``E`` pays ``E_p / E`` of the month's energy priced through its own
tier prices. So every period used in one month must have the same tier maxima (SAM refuses
others too). Units of ``max``: ``kWh`` (a month), ``kWh daily`` (times the month's days),
``kWh/kW`` (whole kWh per kW of the month's largest hourly demand). The top tier is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.errors import QuantityOutOfRange
from gridfare.tariffs.component import Stage
from gridfare.tariffs.hourly import MILLI, HourlyUsage
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

__all__ = ["UNITS", "UrdbEnergy", "parse"]

UNITS = ("kWh", "kWh daily", "kWh/kW")
FIELD = "energyratestructure"
_SAFE_WH = 3_000_000_000  # E_p x (C mod E) < E^2 must fit int64: 3 GWh a month


@dataclass(frozen=True)
class UrdbEnergy:
    schedule: Schedule
    periods: tuple[Tiers, ...]
    raw_per_minor: int = RAW_PER_CENT

    kind: ClassVar[str] = "urdb_energy"
    stage: ClassVar[Stage] = Stage.ENERGY
    lines: ClassVar[tuple[str, ...]] = ("energy",)

    def charge(self, usage: HourlyUsage, lines: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
        total = usage.month_energy
        if total.size and int(total.max()) >= _SAFE_WH:
            raise QuantityOutOfRange(f"profile: monthly energy {int(total.max()) / MILLI} kWh is "
                               "beyond exact int64 arithmetic (3,000 MWh)")
        guard(total, max(max(t.rates) for t in self.periods), "profile: monthly energy")
        masks = self.schedule.masks(len(self.periods))
        by_period = usage.periods_energy(masks)
        peak = usage.month_peak
        energy = np.zeros(total.shape, dtype=np.int64)
        for month in range(12):
            used = self.schedule.periods_in(month)
            e = total[:, month]
            bounds = self._bounds(self.periods[used[0]], month, usage, peak[:, month])
            whole = np.zeros(len(e), dtype=np.int64)
            shares = np.zeros(len(e), dtype=np.int64)
            safe = np.maximum(e, 1)
            for p in used:
                # Period p pays e_p x C_p(e) / e exactly: C = q e + r, so that is
                # e_p q + e_p r / e, and sum(e_p r) < e^2 stays inside int64.
                cost = tiered_raw(e, bounds, self.periods[p].rates)
                q, r = np.divmod(cost, safe)
                whole += by_period[:, p, month] * q
                shares += by_period[:, p, month] * r
            raw = whole + shares // safe  # the dropped fraction never carries a half up
            energy[:, month] = np.where(e > 0, raw_to_minor(raw, self.raw_per_minor), 0)
        return {"energy": energy}

    @staticmethod
    def _bounds(tiers: Tiers, month: int, usage: HourlyUsage, peak: np.ndarray
                ) -> list[np.ndarray | int | None]:
        if tiers.unit == "kWh/kW":
            return [None if m is None else m * peak for m in tiers.maxima]
        days = int(usage.days[month]) if tiers.unit == "kWh daily" else 1
        return [None if m is None else m * days for m in tiers.maxima]


def parse(record: Record) -> UrdbEnergy | None:
    if not record.has(FIELD):
        for field in ("energyweekdayschedule", "energyweekendschedule"):
            if record.has(field):
                raise record.error(field, f"given without {FIELD}")
        return None
    structure = record.structure(FIELD, frozenset({"max", "rate", "adj", "unit", "sell"}))
    periods = tuple(parse_tiers(record, FIELD, tiers, p, units=UNITS)
                    for p, tiers in enumerate(structure))
    schedule = parse_schedule(record, "energy", len(periods))
    for month in range(12):
        used = schedule.periods_in(month)
        first = periods[used[0]]
        for p in used[1:]:
            if (periods[p].maxima, periods[p].unit) != (first.maxima, first.unit):
                raise record.error(
                    f"{FIELD}[{p}]",
                    f"tier maxima differ from period {used[0]}'s, and both are used in month "
                    f"{month + 1}: tiers are on the month's total energy, so they must agree")
    return UrdbEnergy(schedule=schedule, periods=periods)
