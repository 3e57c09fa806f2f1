"""URDB minimum charge: ``mincharge`` in ``minchargeunits`` (``$/month``, ``$/day``,
``$/year``).

It comes last: when a month's other lines (energy, demand, fixed) sum to less than the
minimum, the difference is billed as ``minimum_adjustment``, so the month's total is never
below it (NREL's SAM counts the fixed charge towards the minimum too). A ``$/year`` minimum
is the year's: its shortfall is billed in December, the year's last bill, as SAM does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.tariffs.component import Stage
from gridfare.tariffs.hourly import HourlyUsage
from gridfare.tariffs.urdb_fixed import monthly_amounts, parse_amount
from gridfare.tariffs.urdb_record import Record

__all__ = ["UrdbMinimum", "parse"]


@dataclass(frozen=True)
class UrdbMinimum:
    amount: int  # 1e-8 of the currency
    per: str  # "$/month", "$/day" or "$/year"
    minor_per_major: int = 100

    kind: ClassVar[str] = "urdb_minimum"
    stage: ClassVar[Stage] = Stage.MINIMUM
    lines: ClassVar[tuple[str, ...]] = ("minimum_adjustment",)

    def charge(self, usage: HourlyUsage, lines: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
        billed = sum((v for k, v in lines.items() if k not in self.lines),
                     np.zeros((len(usage), 12), np.int64))
        if self.per == "$/year":
            least = int(monthly_amounts(self.amount, "$/month", usage.days,
                                        self.minor_per_major)[0])
            topup = np.zeros_like(billed)
            topup[:, 11] = np.maximum(least - billed.sum(axis=1), 0)
            return {"minimum_adjustment": topup}
        least = monthly_amounts(self.amount, self.per, usage.days, self.minor_per_major)
        return {"minimum_adjustment": np.maximum(least - billed, 0)}


def parse(record: Record) -> UrdbMinimum | None:
    found = parse_amount(record, "mincharge", "minchargeunits", ("$/month", "$/day", "$/year"))
    return None if found is None else UrdbMinimum(*found)
