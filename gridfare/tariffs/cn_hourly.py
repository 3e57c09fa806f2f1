"""CN tariffs billed on hourly profiles: each month's usage registers read off the hours.

The month's energy, its TOU registers (by hour of day, ``tou_hours``) and its largest
hourly demand become one ``Usage`` row per profile, rounded half up to the 0.01 kWh / kW a
meter register holds (the total is the sum of the rounded registers), and the same
``Tariff.charge`` as monthly billing prices them; annual tiers carry the year's energy from
January on. A profile has no reactive energy, so the power-factor adjustment is 0; a tariff
that needs a contracted capacity takes it as ``capacity_kva`` (kVA, 0.01 resolution), and
is refused without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gridfare.errors import InvalidInput
from gridfare.money import ENERGY_SCALE, scaled_int, to_decimal
from gridfare.tariffs.hourly import HourlyUsage
from gridfare.tariffs.tariff import Tariff
from gridfare.tariffs.usage import Usage

__all__ = ["LINE_GROUPS", "PEAK_VALLEY_HOURS", "TOU_HOURS", "capacity_units", "charge_cn_hourly",
           "tou_hours_for"]

# Beijing-like: valley 23-07, peak 10-15 and 18-21, critical 11-13 and 16-17 (priced as
# critical only in the tariff's critical months), flat otherwise.
TOU_HOURS: tuple[str, ...] = (
    *["valley"] * 7, *["flat"] * 3, "peak", "critical", "critical", "peak", "peak", "flat",
    "critical", "flat", "peak", "peak", "peak", "flat", "flat", "valley",
)
# Residential peak / valley (Zhejiang-like): peak 08-22, valley 22-08.
PEAK_VALLEY_HOURS: tuple[str, ...] = (*["valley"] * 8, *["peak"] * 14, *["valley"] * 2)

# The bill's lines, from the tariff's CHARGE_LINES.
LINE_GROUPS: dict[str, tuple[str, ...]] = {
    "energy": ("tier1_fen", "tier2_fen", "tier3_fen", "critical_fen", "peak_fen", "flat_fen",
               "valley_fen", "pf_adjust_fen", "funds_fen"),
    "demand_tou": (),
    "demand_flat": ("basic_fen",),  # by maximum demand or contracted capacity
    "fixed": ("fixed_fen",),
    "minimum_adjustment": ("minimum_topup_fen",),
}


def tou_hours_for(tariff: Tariff, hours: Sequence[str] | None = None) -> tuple[str, ...]:
    """The hour-of-day -> TOU period map for ``tariff``, checked against its periods."""
    if not tariff.tou_periods:
        return ()
    if hours is None:
        hours = TOU_HOURS if "flat" in tariff.tou_periods else PEAK_VALLEY_HOURS
    hours = tuple(hours)
    if len(hours) != 24:
        raise InvalidInput(f"tou_hours: expected 24 periods (one per hour), got {len(hours)}")
    allowed = {*tariff.tou_periods, "critical", "peak"}  # critical falls back to peak
    for hour, period in enumerate(hours):
        if period not in allowed:
            raise InvalidInput(f"tou_hours[{hour}]: {period!r} is not a period of tariff "
                               f"{tariff.code} ({', '.join(tariff.tou_periods)})")
    return hours


def _register(wh: np.ndarray) -> np.ndarray:
    return (wh + 5) // 10  # Wh -> 0.01 kWh, half up


def capacity_units(capacity_kva: object) -> int:
    """A contracted capacity in kVA (text, int or Decimal) as 0.01 kVA units."""
    number = to_decimal(capacity_kva, "capacity_kva")
    if number <= 0:
        raise InvalidInput(f"capacity_kva: {number} must be positive")
    return scaled_int(number, ENERGY_SCALE, "capacity_kva")


def charge_cn_hourly(tariff: Tariff, usage: HourlyUsage, hours: Sequence[str] | None = None,
                     capacity_kva: object = None) -> dict[str, np.ndarray]:
    """``LINE_GROUPS`` lines as (n, 12) int64 fen (the basic charge is a flat demand)."""
    n = len(usage)
    capacity = np.zeros(n, dtype=np.int64)
    if capacity_kva is not None:
        capacity[:] = capacity_units(capacity_kva)
    elif "capacity" in tariff.requires:
        raise InvalidInput(f"tariff {tariff.code} needs a contracted capacity, which an "
                           "hourly profile does not give: pass capacity_kva")
    hours = tou_hours_for(tariff, hours)
    out = {line: np.zeros((n, 12), dtype=np.int64) for line in LINE_GROUPS}
    ytd = np.zeros(n, dtype=np.int64)
    peak = usage.month_peak
    registers: Mapping[str, np.ndarray] = {}
    if hours:
        by_hour = usage.energy.sum(axis=2)  # (n, 12, 24)
        registers = {period: by_hour[:, :, np.array(hours) == period].sum(axis=2)
                     for period in ("critical", "peak", "flat", "valley")}
    for month in range(12):
        if hours:
            split = {period: _register(wh[:, month]) for period, wh in registers.items()}
            kwh = sum(split.values())
            columns = {**split, "tou_metered": np.ones(n, bool)}
        else:
            kwh = _register(usage.month_energy[:, month])
            columns = {}
        month_usage = Usage.of(month + 1, n, kwh=kwh, ytd_kwh=ytd, capacity_kva=capacity,
                               max_demand_kw=_register(peak[:, month]), **columns)
        charged = tariff.charge(month_usage)
        for line, parts in LINE_GROUPS.items():
            out[line][:, month] = sum((charged[part] for part in parts), np.zeros(n, np.int64))
        ytd = ytd + kwh
    return out
