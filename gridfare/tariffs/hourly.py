"""Hourly load profiles over one calendar year, folded into the cells tariffs are made of.

Every schedule a tariff can state (URDB's 12 x 24 weekday and weekend period tables, a CN
tariff's TOU hours) is a function of (month, weekday or weekend, hour of day): 12 x 2 x 24
cells. ``hourly_usage`` folds n profiles once into each cell's energy and largest hour, so
pricing a profile under any number of tariffs never rereads its 8,760 hours.

Load is integer Wh (0.001 kWh). An hourly kWh figure is also the hour's mean kW, so the
largest hourly Wh is the demand in 0.001 kW. Weekdays and weekends follow the real
calendar of ``year`` (Saturday and Sunday are the weekend; URDB names no holidays), and a
leap year has 8,784 hours.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from gridfare.errors import ProfileError
from gridfare.money import to_decimal

__all__ = ["CELLS", "HourlyUsage", "hourly_usage", "hours_in_year", "load_wh", "profiles_wh"]

MILLI = 1000  # Wh per kWh: load and demand resolution
MAX_HOUR_WH = 2**31 - 1  # profiles are int32 Wh: 2,147 MWh in one hour
CELLS = (12, 2, 24)  # month, day kind (0 weekday, 1 weekend), hour of day
WEEKDAY, WEEKEND = 0, 1


def hours_in_year(year: int) -> int:
    return 8784 if calendar.isleap(year) else 8760


@functools.lru_cache(maxsize=8)
def _calendar(year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(runs, order, starts, days) of ``year``.

    ``runs``: the first day of each run of consecutive days of one (month, day kind)
    group; ``order`` sorts the runs by group and ``starts`` is where each group's runs
    begin in that order (every month has weekdays and weekend days: no group is empty);
    ``days``: days in each month.
    """
    if not 1900 <= year <= 2200:
        raise ProfileError(f"year {year}: expected a calendar year 1900..2200")
    days = np.array([calendar.monthrange(year, m)[1] for m in range(1, 13)], dtype=np.int64)
    day_month = np.repeat(np.arange(12), days)
    first = calendar.weekday(year, 1, 1)  # Monday = 0
    group = day_month * 2 + ((first + np.arange(days.sum())) % 7 >= 5)
    runs = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    order = np.argsort(group[runs], kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(group[runs], minlength=24))[:-1]))
    for array in (runs, order, starts, days):
        array.setflags(write=False)
    return runs, order, starts, days


@dataclass(frozen=True)
class HourlyUsage:
    """The year of n profiles, cell by cell; arrays are int64."""

    year: int
    energy: np.ndarray  # (n, 12, 2, 24) Wh in each cell
    peak: np.ndarray  # (n, 12, 2, 24) the cell's largest hourly Wh = demand in 0.001 kW
    days: np.ndarray  # (12,) days in each month of ``year``

    def __len__(self) -> int:
        return len(self.energy)

    # Cached: every tariff priced on this usage reads them.
    @functools.cached_property
    def month_energy(self) -> np.ndarray:
        """(n, 12) Wh in each month."""
        return self.energy.sum(axis=(2, 3))

    @functools.cached_property
    def month_peak(self) -> np.ndarray:
        """(n, 12) each month's largest hourly Wh (0.001 kW)."""
        return self.peak.max(axis=(2, 3))

    @functools.cached_property
    def _energy_by_month(self) -> np.ndarray:
        """(12, n, 48) float64 copy of ``energy`` for BLAS: whole Wh below 2**53 are exact."""
        return np.ascontiguousarray(
            self.energy.reshape(len(self), 12, 48).transpose(1, 0, 2), dtype=np.float64)

    def periods_energy(self, masks: np.ndarray) -> np.ndarray:
        """(n, periods, 12) Wh in the cells of each mask of ``masks`` (periods, 12, 2, 24).

        A float matrix product, exact: a month's cells sum to far less than 2**53 Wh (the
        energy charge refuses months of 3,000 MWh). 0.03 s for 1,000 profiles and 20
        tariffs, where multiplying by each mask and summing took 0.29 s."""
        weights = masks.reshape(len(masks), 12, 48).transpose(1, 2, 0).astype(np.float64)
        sums = np.matmul(self._energy_by_month, weights)  # (12, n, periods)
        return np.rint(sums).astype(np.int64).transpose(1, 2, 0)

    def period_peak(self, mask: np.ndarray) -> np.ndarray:
        """(n, 12) largest hourly Wh in the cells where ``mask`` is true (0 if none)."""
        return (self.peak * mask).max(axis=(2, 3))


def hourly_usage(load: np.ndarray, year: int) -> HourlyUsage:
    """Fold ``load`` ((n, hours) int32 or int64 Wh, checked by ``load_wh``) into cells."""
    runs, order, starts, days = _calendar(year)
    load = np.atleast_2d(np.asarray(load))
    if load.dtype not in (np.int32, np.int64):
        load = load.astype(np.int64)
    hours = int(days.sum()) * 24
    if load.shape[1] != hours:
        raise ProfileError(f"profile: {load.shape[1]} hourly values, {year} has {hours} hours")
    by_day = load.reshape(len(load), -1, 24)
    # Reduce each run of like days in place (no copy of the year), then the ~110 runs
    # into their 24 groups: 0.10 s for 1,000 profiles where sorting the hours first
    # took 0.28 s.
    energy = np.add.reduceat(np.add.reduceat(by_day, runs, axis=1, dtype=np.int64)[:, order],
                             starts, axis=1)
    # int64 before any pricing: numpy keeps int32 times a Python int in int32.
    peak = np.maximum.reduceat(np.maximum.reduceat(by_day, runs, axis=1)[:, order], starts,
                               axis=1).astype(np.int64)
    return HourlyUsage(year=year, energy=energy.reshape(len(load), *CELLS),
                       peak=peak.reshape(len(load), *CELLS), days=days)


def load_wh(values: Sequence[object] | np.ndarray, year: int, profile: str = "profile"
            ) -> np.ndarray:
    """One profile's hourly kWh (numbers or numeric text) as int32 Wh, checked.

    Refused, naming ``profile`` and the hour: a count other than the year's hours, a value
    that is not a finite number, a negative value, a value finer than 0.001 kWh, an hour
    above ``MAX_HOUR_WH``. int32 halves what the fold reads (the year of 1,000 profiles is
    35 MB, not 70) and what a comparison task is sent.
    """
    expected = hours_in_year(year)
    if len(values) != expected:
        leap = " (a leap year)" if expected == 8784 else ""
        raise ProfileError(
            f"{profile}: {len(values)} hourly values, expected {expected} for {year}{leap}"
        )
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        wh = array.astype(np.int64) * MILLI
    elif array.dtype.kind == "f":
        wh = _floats_to_wh(array, profile)
    else:
        wh = np.array([_text_to_wh(v, profile, hour) for hour, v in enumerate(values)],
                      dtype=np.int64)
    big = np.flatnonzero(wh > MAX_HOUR_WH)
    if big.size:
        hour = int(big[0])
        raise ProfileError(f"{profile}: hour {hour}: load {wh[hour] / MILLI} kWh is above "
                           f"{MAX_HOUR_WH // MILLI:,} kWh in an hour")
    negative = np.flatnonzero(wh < 0)
    if negative.size:
        hour = int(negative[0])
        raise ProfileError(
            f"{profile}: hour {hour}: load {wh[hour] / MILLI} kWh is negative "
            f"({negative.size} negative hours)"
        )
    return wh.astype(np.int32)


def profiles_wh(ids: Sequence[str], rows: Sequence[Sequence[object]], year: int,
                source: str) -> np.ndarray:
    """(n, hours) int32 Wh of n profiles, each checked by ``load_wh`` and named."""
    if not ids:
        raise ProfileError(f"{source}: no profiles")
    return np.stack([load_wh(row, year, f"{source}: profile {pid}")
                     for pid, row in zip(ids, rows, strict=True)])


def _floats_to_wh(array: np.ndarray, profile: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        hour = int(bad[0])
        raise ProfileError(f"{profile}: hour {hour}: load {array[hour]} is not a finite number")
    scaled = array * MILLI
    wh = np.rint(scaled)
    # A float is the nearest double to the decimal it was written as; more than a
    # millionth of a Wh off a whole Wh means the figure itself is finer than 0.001 kWh.
    fine = np.flatnonzero(np.abs(scaled - wh) > 1e-6 * np.maximum(1.0, np.abs(scaled)))
    if fine.size:
        hour = int(fine[0])
        raise ProfileError(
            f"{profile}: hour {hour}: load {array[hour]!r} kWh is finer than 0.001 kWh"
        )
    return wh.astype(np.int64)


def _text_to_wh(value: object, profile: str, hour: int) -> int:
    text = value if isinstance(value, (str, Decimal, int)) else repr(value)
    try:
        number = to_decimal(text, f"{profile}: hour {hour}: load")
    except Exception:
        raise ProfileError(
            f"{profile}: hour {hour}: load {value!r} is not a finite number"
        ) from None
    scaled = number * MILLI
    if scaled != scaled.to_integral_value():
        raise ProfileError(f"{profile}: hour {hour}: load {value} kWh is finer than 0.001 kWh")
    return int(scaled)
