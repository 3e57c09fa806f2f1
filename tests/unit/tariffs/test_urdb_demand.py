"""URDB TOU demand: each period's largest hour fills its own tiers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gridfare.tariffs.urdb import translate
from tests.unit.tariffs.urdb_helpers import usage_of

ON_PEAK = [[1 if 12 <= h < 18 else 0 for h in range(24)] for _ in range(12)]
OFF = [[0] * 24 for _ in range(12)]


def _record(urdb_record, **fields):
    return urdb_record(demandratestructure=[[{"rate": 2}],
                                            [{"max": 50, "rate": Decimal("14.86")},
                                             {"rate": Decimal("16.31")}]],
                       demandweekdayschedule=ON_PEAK, demandweekendschedule=OFF, **fields)


@pytest.mark.parametrize(("kw_wh", "cents"), [
    (0, 0), (50_000, 50 * 1486), (50_001, 50 * 1486 + 2),  # 0.001 kW x 16.31 = 1.6 c
    (60_000, 50 * 1486 + 10 * 1631),
])
def test_on_peak_tiers_and_their_edges(urdb_record, kw_wh, cents):
    usage = usage_of((3, 1 * 24 + 13, kw_wh))  # Mon 2 March 2026, 13:00: on-peak
    demand = translate(_record(urdb_record)).charge(usage)["demand_tou"][0]
    assert demand[2] == cents and demand.sum() == cents


def test_each_period_bills_its_own_largest_hour(urdb_record):
    usage = usage_of((3, 1 * 24 + 13, 10_000), (3, 1 * 24 + 20, 30_000),
                     (3, 6 * 24 + 13, 90_000))  # the 90 kW hour is Saturday: off-peak
    demand = translate(_record(urdb_record)).charge(usage)["demand_tou"][0]
    assert demand[2] == 90 * 200 + 10 * 1486
