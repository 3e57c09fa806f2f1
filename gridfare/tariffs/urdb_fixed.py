"""URDB fixed customer charge: ``fixedchargefirstmeter`` in ``fixedchargeunits``.

``$/month`` bills the amount each month; ``$/day`` bills it for each day of the month.
(``$`` is URDB's spelling for the record's currency.) One meter: ``fixedchargeeaaddl``, the
charge for each additional meter, does not apply to a single profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gridfare.money import round_raw_to_fen
from gridfare.tariffs.component import Stage
from gridfare.tariffs.hourly import HourlyUsage
from gridfare.tariffs.urdb_record import Record

__all__ = ["PER", "UrdbFixed", "monthly_amounts", "parse"]

PER = ("$/month", "$/day")
FIELD, UNITS = "fixedchargefirstmeter", "fixedchargeunits"


def monthly_amounts(amount: int, per: str, days: np.ndarray, minor_per_major: int
                    ) -> np.ndarray:
    """(12,) an amount in 1e-8 of the currency ``per`` month or day, in minor units."""
    scale = 10**8 // minor_per_major
    return round_raw_to_fen(amount * (days if per == "$/day" else np.ones(12, np.int64)),
                            scale)


@dataclass(frozen=True)
class UrdbFixed:
    amount: int  # 1e-8 of the currency
    per: str  # one of PER
    minor_per_major: int = 100

    kind: ClassVar[str] = "urdb_fixed"
    stage: ClassVar[Stage] = Stage.FIXED
    lines: ClassVar[tuple[str, ...]] = ("fixed",)

    def charge(self, usage: HourlyUsage, lines: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
        months = monthly_amounts(self.amount, self.per, usage.days, self.minor_per_major)
        return {"fixed": np.broadcast_to(months, (len(usage), 12)).copy()}


def parse_amount(record: Record, field: str, units: str, allowed: tuple[str, ...] = PER
                 ) -> tuple[int, str] | None:
    """``(amount, per)`` of an amount field and its units field; None when absent or 0."""
    if not record.has(field):
        record.text(units)
        return None
    amount = record.price(field, record.raw(field))
    per = record.text(units, "$/month")
    if per not in allowed:
        raise record.error(units, f"{per!r} is not supported; expected {', '.join(allowed)}")
    return (amount, per) if amount else None


def parse(record: Record) -> UrdbFixed | None:
    found = parse_amount(record, FIELD, UNITS)
    return None if found is None else UrdbFixed(*found)
