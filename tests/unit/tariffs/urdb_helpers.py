"""Hand-built hourly loads for the URDB component tests."""

from __future__ import annotations

import numpy as np

from gridfare.tariffs.hourly import HourlyUsage, hourly_usage

YEAR = 2026  # 1 January is a Thursday; 3 and 4 January are a weekend
HOUR_OF_MONTH = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30]) * 24


def usage_of(*hours: tuple[int, int, int]) -> HourlyUsage:
    """One profile, zero except the given (month 1..12, hour of the month, Wh)."""
    load = np.zeros(8760, dtype=np.int64)
    for month, hour, wh in hours:
        load[HOUR_OF_MONTH[month - 1] + hour] += wh
    return hourly_usage(load[None], YEAR)
