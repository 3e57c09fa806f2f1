"""URDB fixed charge: per month, or per day of each month."""

from __future__ import annotations

from decimal import Decimal

from gridfare.tariffs.urdb import translate
from tests.unit.tariffs.urdb_helpers import usage_of


def test_per_month_and_per_day(urdb_record):
    usage = usage_of()
    monthly = translate(urdb_record(fixedchargefirstmeter=Decimal("45.5"),
                                    fixedchargeunits="$/month")).charge(usage)["fixed"][0]
    assert (monthly == 4550).all()
    daily = translate(urdb_record(fixedchargefirstmeter=Decimal("0.32854"),
                                  fixedchargeunits="$/day")).charge(usage)["fixed"][0]
    assert daily[0] == 1018 and daily[1] == 920  # 31 x 0.32854 = 10.18474; 28 x = 9.19912


def test_no_units_means_per_month_and_zero_prices_nothing(urdb_record):
    record = translate(urdb_record(fixedchargefirstmeter=3))
    assert (record.charge(usage_of())["fixed"] == 300).all()
    assert [c.kind for c in translate(urdb_record(fixedchargefirstmeter=0)).components] == [
        "urdb_energy"]
