"""What the URDB components share: schedules as cell masks, tier tables, exact rounding.

Quantities are 0.001 units (Wh, 0.001 kW) and prices 1e-8 of the currency per unit, so a
product is in 1e-11 of the currency: ``RAW_PER_CENT`` of them make a cent. Each line is
summed exactly in these raw units and rounded half up once, to the currency's minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gridfare.errors import QuantityOutOfRange
from gridfare.tariffs.hourly import MILLI, WEEKDAY, WEEKEND
from gridfare.tariffs.urdb_record import Record

__all__ = [
    "RAW_PER_CENT",
    "Schedule",
    "Tiers",
    "guard",
    "parse_schedule",
    "parse_tiers",
    "raw_to_minor",
    "tiered_raw",
]

RAW_PER_CENT = 10**9  # 1e-11 currency units per 0.01 of the currency
_INT64_SAFE = 2**62  # headroom for sums and half-up rounding


@dataclass(frozen=True)
class Schedule:
    """URDB's weekday and weekend 12 x 24 tables of period indexes."""

    weekday: tuple[tuple[int, ...], ...]
    weekend: tuple[tuple[int, ...], ...]

    def masks(self, periods: int) -> np.ndarray:
        """(periods, 12, 2, 24) bool: the cells of each period."""
        cells = np.empty((12, 2, 24), dtype=np.int64)
        cells[:, WEEKDAY, :] = self.weekday
        cells[:, WEEKEND, :] = self.weekend
        return cells[None] == np.arange(periods)[:, None, None, None]

    def periods_in(self, month: int) -> tuple[int, ...]:
        """The periods month ``month`` (0..11) uses, sorted."""
        return tuple(sorted(set(self.weekday[month]) | set(self.weekend[month])))


@dataclass(frozen=True)
class Tiers:
    """One period's tiers: ``maxima`` in 0.001 units (None: open top), rate + adj each."""

    maxima: tuple[int | None, ...]
    rates: tuple[int, ...]  # 1e-8 currency per unit
    unit: str = ""  # energy tiers: "kWh", "kWh daily" or "kWh/kW"


def parse_schedule(record: Record, prefix: str, periods: int) -> Schedule:
    return Schedule(weekday=record.schedule(f"{prefix}weekdayschedule", periods),
                    weekend=record.schedule(f"{prefix}weekendschedule", periods))


def parse_tiers(record: Record, field: str, tiers: Sequence[dict[str, object]], p: int,
                *, units: tuple[str, ...] = ()) -> Tiers:
    """Validate one period's tier objects; the top tier is open whatever its ``max``."""
    maxima: list[int | None] = []
    rates: list[int] = []
    unit_seen: set[str] = set()
    for t, tier in enumerate(tiers):
        where = f"{field}[{p}][{t}]"
        rate = record.decimal(f"{where}.rate", tier["rate"])
        adj = record.decimal(f"{where}.adj", tier.get("adj") or 0)
        if rate + adj < 0:
            raise record.error(where, f"rate + adj = {rate + adj} is negative (a credit "
                               "gridfare does not price)")
        rates.append(record.price(f"{where}.rate + adj", rate + adj))
        if units:
            unit = tier.get("unit") or "kWh"
            if unit not in units:
                raise record.error(f"{where}.unit",
                                   f"{unit!r} is not supported; expected {', '.join(units)}")
            unit_seen.add(str(unit))
        top = t == len(tiers) - 1
        if tier.get("max") is None or top:
            if not top:
                raise record.error(f"{where}.max", "only the top tier may have no max")
            maxima.append(None)
            continue
        scale = MILLI
        if tier.get("unit") == "kWh/kW":
            scale = 1  # whole kWh per kW: the bound is max x peak Wh, exactly
        bound = record.scaled(f"{where}.max", tier["max"], scale,
                              "kWh per kW" if scale == 1 else "unit")
        if bound == 0 or (maxima and maxima[-1] is not None and bound <= maxima[-1]):
            raise record.error(f"{where}.max", "tier maxima must be positive and increasing")
        maxima.append(bound)
    if len(unit_seen) > 1:
        raise record.error(f"{field}[{p}]", f"tiers mix units {sorted(unit_seen)}")
    return Tiers(maxima=tuple(maxima), rates=tuple(rates),
                 unit=next(iter(unit_seen), "kWh") if units else "")


def tiered_raw(quantity: np.ndarray, bounds: Sequence[np.ndarray | int | None],
               rates: Sequence[int]) -> np.ndarray:
    """Sum over tiers of rate x the part of ``quantity`` in the tier, in raw units."""
    raw = np.zeros(quantity.shape, dtype=np.int64)
    low: np.ndarray | int = 0
    for bound, rate in zip(bounds, rates, strict=True):
        high = quantity if bound is None else np.minimum(quantity, bound)
        raw += np.maximum(high - low, 0) * rate
        if bound is None:
            break
        low = bound
    return raw


def guard(quantity: np.ndarray, rate: int, what: str) -> None:
    """Refuse quantities whose raw amounts would not fit int64 (it wraps silently)."""
    if quantity.size and int(quantity.max()) * max(rate, 1) >= _INT64_SAFE:
        raise QuantityOutOfRange(f"{what}: {int(quantity.max()) / MILLI} is too large for exact "
                           "int64 arithmetic at this tariff's prices")


def raw_to_minor(raw: np.ndarray, raw_per_minor: int) -> np.ndarray:
    """Non-negative raw amounts rounded half up to the minor unit."""
    return (np.asarray(raw, dtype=np.int64) + raw_per_minor // 2) // raw_per_minor
