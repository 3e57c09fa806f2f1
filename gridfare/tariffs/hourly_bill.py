"""Hourly annual billing: one year of hourly load under one tariff -> 12 monthly bills.

``bill_hourly`` is one profile; ``bill_profiles`` is the same code over n profiles at once
(the comparison job and the benchmark call it). URDB tariffs and CN tariffs both bill this
way, so one profile can be compared across both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from gridfare.errors import InvalidInput
from gridfare.tariffs.cn_hourly import charge_cn_hourly
from gridfare.tariffs.hourly import HourlyUsage, hourly_usage, load_wh
from gridfare.tariffs.tariff import Tariff
from gridfare.tariffs.urdb import UrdbTariff

__all__ = ["BILL_LINES", "SHOWN_LINES", "AnnualBill", "MonthBill", "bill_hourly", "bill_profiles",
           "currency_of"]

BILL_LINES = ("energy", "demand_tou", "demand_flat", "fixed", "minimum_adjustment")
# What a bill shows: demand is TOU + flat, with both parts.
SHOWN_LINES = ("energy", "demand", "demand_tou", "demand_flat", "fixed", "minimum_adjustment")


def currency_of(tariff: Tariff | UrdbTariff) -> tuple[str, int]:
    """(ISO code, minor units per major unit)."""
    if isinstance(tariff, UrdbTariff):
        return tariff.currency, tariff.minor_per_major
    return "CNY", 100


def bill_profiles(tariff: Tariff | UrdbTariff, usage: HourlyUsage,
                  tou_hours: Sequence[str] | None = None, capacity_kva: object = None
                  ) -> dict[str, np.ndarray]:
    """``BILL_LINES`` as (n, 12) int64 minor units for n profiles."""
    if isinstance(tariff, UrdbTariff):
        for name, value in (("tou_hours", tou_hours), ("capacity_kva", capacity_kva)):
            if value is not None:
                raise InvalidInput(f"tariff {tariff.label}: {name} is for CN tariffs; a URDB "
                                   "rate carries its own schedules and demand charges")
        return tariff.charge(usage)
    if isinstance(tariff, Tariff):
        return charge_cn_hourly(tariff, usage, tou_hours, capacity_kva)
    raise InvalidInput(f"bill_hourly: {type(tariff).__name__} is not a tariff")


@dataclass(frozen=True)
class MonthBill:
    month: int  # 1..12
    energy: int  # minor units (cents, fen)
    demand_tou: int  # by period (URDB demandratestructure)
    demand_flat: int  # the month's largest hour (URDB flat demand, CN basic by demand)
    fixed: int
    minimum_adjustment: int

    @property
    def demand(self) -> int:
        return self.demand_tou + self.demand_flat

    @property
    def total(self) -> int:
        return self.energy + self.demand + self.fixed + self.minimum_adjustment


@dataclass(frozen=True)
class AnnualBill:
    tariff: str  # URDB label or CN tariff code
    currency: str
    minor_per_major: int
    year: int
    months: tuple[MonthBill, ...]

    @property
    def total(self) -> int:
        return sum(month.total for month in self.months)

    def major(self, minor: int) -> str:
        places = len(str(self.minor_per_major)) - 1
        return f"{Decimal(minor).scaleb(-places):.{places}f}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready; amounts in major units as strings, e.g. ``"82.15"``."""
        return {
            "tariff": self.tariff, "currency": self.currency, "year": self.year,
            "months": [{"month": m.month,
                        **{line: self.major(getattr(m, line)) for line in SHOWN_LINES},
                        "total": self.major(m.total)} for m in self.months],
            "total": self.major(self.total),
        }


def bill_hourly(tariff: Tariff | UrdbTariff, load_kwh: Sequence[object] | np.ndarray,
                year: int, *, tou_hours: Sequence[str] | None = None,
                capacity_kva: object = None, profile: str = "profile") -> AnnualBill:
    """Bill one year of hourly kWh (8,760 values; 8,784 in a leap year) under ``tariff``.

    Weekdays and weekends follow the real calendar of ``year``; demand is the largest
    hourly kW in each month and period. ``tou_hours`` maps each hour of day to a CN TOU
    period (default: ``cn_hourly.TOU_HOURS`` or ``PEAK_VALLEY_HOURS``); ``capacity_kva`` is
    a CN two-part tariff's contracted capacity.
    """
    usage = hourly_usage(load_wh(load_kwh, year, profile)[None, :], year)
    lines = bill_profiles(tariff, usage, tou_hours, capacity_kva)
    currency, minor = currency_of(tariff)
    months = tuple(MonthBill(month + 1, *(int(lines[line][0, month]) for line in BILL_LINES))
                   for month in range(12))
    return AnnualBill(tariff=tariff.code, currency=currency, minor_per_major=minor, year=year,
                      months=months)
