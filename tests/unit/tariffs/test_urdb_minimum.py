"""URDB minimum charge: tops the month's lines, fixed charge included, up to the minimum."""

from __future__ import annotations

from gridfare.tariffs.urdb import translate
from tests.unit.tariffs.urdb_helpers import usage_of


def test_the_minimum_tops_up_and_never_cuts(urdb_record):
    record = translate(urdb_record(fixedchargefirstmeter=10, mincharge=25,
                                   minchargeunits="$/month"))
    usage = usage_of((1, 0, 100_000), (2, 0, 200_000))  # 10.00 and 20.00 of energy
    lines = record.charge(usage)
    assert list(lines["minimum_adjustment"][0, :3]) == [500, 0, 1500]
    totals = sum(lines.values())[0]
    assert list(totals[:3]) == [2500, 3000, 2500]


def test_a_daily_minimum_counts_the_days(urdb_record):
    record = translate(urdb_record(mincharge=1, minchargeunits="$/day"))
    lines = record.charge(usage_of())
    assert lines["minimum_adjustment"][0, 0] == 3100 and lines["minimum_adjustment"][0, 1] == 2800


def test_a_yearly_minimum_tops_up_december_by_the_years_shortfall(urdb_record):
    record = translate(urdb_record(fixedchargefirstmeter=10, mincharge=200,
                                   minchargeunits="$/year"))
    lines = record.charge(usage_of((1, 0, 100_000)))  # 10.00 of energy in January
    assert list(lines["minimum_adjustment"][0, :11]) == [0] * 11
    assert lines["minimum_adjustment"][0, 11] == 20_000 - 12 * 1000 - 1000
    plenty = record.charge(usage_of((1, 0, 2_000_000)))
    assert not plenty["minimum_adjustment"].any()
