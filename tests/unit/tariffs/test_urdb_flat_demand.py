"""URDB flat demand: the month's largest hour at the period its month names."""

from __future__ import annotations

from decimal import Decimal

from gridfare.tariffs.urdb import translate
from tests.unit.tariffs.urdb_helpers import usage_of


def test_seasons_price_the_months_peak(urdb_record):
    record = urdb_record(flatdemandstructure=[[{"rate": Decimal("9.53")}],
                                              [{"max": 10, "rate": 11}, {"rate": 12}]],
                         flatdemandmonths=[0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    usage = usage_of((1, 5, 3_000), (1, 9, 7_500), (7, 100, 12_000))
    flat = translate(record).charge(usage)["demand_flat"][0]
    assert flat[0] == 750 * 953 // 100 + 1  # 7.5 kW x 9.53 = 71.475 -> 71.48
    assert flat[6] == 10 * 1100 + 2 * 1200
    assert flat.sum() == flat[0] + flat[6]
