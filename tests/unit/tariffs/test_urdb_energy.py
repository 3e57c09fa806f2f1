"""URDB energy: tier edges, kWh daily and kWh/kW maxima, TOU shares of the month's tiers."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from gridfare.tariffs.urdb import translate
from tests.unit.tariffs.urdb_helpers import usage_of

BLOCKS = [[{"max": 600, "rate": Decimal("0.1062")}, {"max": 1200, "rate": Decimal("0.1189")},
           {"rate": Decimal("0.1347")}]]


def _energy(record, usage):
    return translate(record).charge(usage)["energy"][0]


@pytest.mark.parametrize(("wh", "cents"), [
    (0, 0), (600_000, 6372), (600_001, 6372), (600_050, 6373),  # 0.05 kWh x 0.1189 = 0.59 c
    (1_200_000, 6372 + 7134), (1_300_000, 6372 + 7134 + 1347),
])
def test_monthly_blocks_and_their_edges(urdb_record, wh, cents):
    energy = _energy(urdb_record(energyratestructure=BLOCKS), usage_of((1, 0, wh)))
    assert energy[0] == cents and energy[1:].sum() == 0


def test_the_half_cent_rounds_up_once_per_line(urdb_record):
    # 5 Wh at 0.1 /kWh = 0.05 cent per hour: 10 such hours are half a cent -> 1 cent.
    record = urdb_record()
    assert _energy(record, usage_of(*((1, h, 5) for h in range(10))))[0] == 1
    assert _energy(record, usage_of(*((1, h, 5) for h in range(9))))[0] == 0


def test_kwh_daily_maxima_scale_with_the_days_of_the_month(urdb_record):
    structure = [[{"max": 10, "unit": "kWh daily", "rate": 1}, {"unit": "kWh daily", "rate": 2}]]
    # February 2026 has 28 days: 280 kWh in tier 1; January's 310.
    usage = usage_of((1, 0, 300_000), (2, 0, 300_000))
    energy = _energy(urdb_record(energyratestructure=structure), usage)
    assert energy[0] == 300 * 100 and energy[1] == (280 + 2 * 20) * 100


def test_kwh_per_kw_maxima_follow_the_months_peak(urdb_record):
    structure = [[{"max": 200, "unit": "kWh/kW", "rate": Decimal("0.1")},
                  {"unit": "kWh/kW", "rate": Decimal("0.05")}]]
    # Peak 2 kW (one hour of 2 kWh): the first 400 kWh at 0.10, the rest at 0.05.
    usage = usage_of((1, 0, 2_000), *((1, h, 1_000) for h in range(1, 599)))
    energy = _energy(urdb_record(energyratestructure=structure), usage)
    assert energy[0] == 400 * 10 + 200 * 5


def test_tou_periods_share_the_months_tiers_in_proportion(urdb_record):
    structure = [[{"max": 200, "rate": Decimal("0.1")}, {"rate": Decimal("0.2")}],
                 [{"max": 200, "rate": Decimal("0.3")}, {"rate": Decimal("0.4")}]]
    weekday = [[0] * 12 + [1] * 12 for _ in range(12)]
    record = urdb_record(energyratestructure=structure, energyweekdayschedule=weekday,
                         energyweekendschedule=weekday)
    # January: 123.457 kWh at 01:00 (period 0), 211.111 kWh at 13:00 (period 1).
    usage = usage_of((1, 1, 123_457), (1, 13, 211_111))
    e0, e1 = Fraction(123_457, 1000), Fraction(211_111, 1000)
    e = e0 + e1

    def cost(low, high):  # the month's energy through one period's tier prices
        return low * min(e, 200) + high * max(e - 200, 0)

    exact = (e0 / e * cost(Fraction(1, 10), Fraction(2, 10))
             + e1 / e * cost(Fraction(3, 10), Fraction(4, 10)))
    assert _energy(record, usage)[0] == int(exact * 100 + Fraction(1, 2))


def test_weekend_hours_take_the_weekend_schedule(urdb_record):
    record = urdb_record(energyratestructure=[[{"rate": 1}], [{"rate": 2}]],
                         energyweekendschedule=[[1] * 24 for _ in range(12)])
    friday, saturday = 1 * 24 + 5, 2 * 24 + 5  # 2 and 3 January 2026
    assert _energy(record, usage_of((1, friday, 1000)))[0] == 100
    assert _energy(record, usage_of((1, saturday, 1000)))[0] == 200


def test_a_month_beyond_exact_int64_arithmetic_is_refused(urdb_record):
    from gridfare.errors import QuantityOutOfRange

    with pytest.raises(QuantityOutOfRange, match="3,000 MWh"):
        _energy(urdb_record(), usage_of(*((1, h, 2_000_000_000) for h in range(2))))
