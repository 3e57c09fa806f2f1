"""bill_hourly: twelve monthly bills from a year of hours, for URDB and CN tariffs alike."""

from __future__ import annotations

from decimal import Decimal
from importlib.resources import files

import numpy as np
import pytest

from gridfare.errors import InvalidInput, ProfileError
from gridfare.tariffs import load_tariff_book
from gridfare.tariffs.cn_hourly import PEAK_VALLEY_HOURS, TOU_HOURS
from gridfare.tariffs.hourly import hourly_usage, load_wh
from gridfare.tariffs.hourly_bill import bill_hourly, bill_profiles
from gridfare.tariffs.quote import quote
from gridfare.tariffs.urdb import load_urdb

SAMPLE = str(files("datasets") / "samples" / "urdb" / "sample-export.json")


@pytest.fixture(scope="module")
def gs2():
    return load_urdb(SAMPLE, label="66a0f3c1e9b2a4d3c8f1a003")[0]


def test_twelve_months_whose_total_is_the_sum_of_their_lines(gs2, profile):
    bill = bill_hourly(gs2, profile(2.0), 2026)
    assert [m.month for m in bill.months] == list(range(1, 13))
    assert bill.total == sum(m.energy + m.demand + m.fixed + m.minimum_adjustment
                             for m in bill.months)
    as_dict = bill.to_dict()
    assert as_dict["currency"] == "USD" and as_dict["months"][0]["fixed"] == "45.50"
    assert set(as_dict["months"][0]) == {"month", "energy", "demand", "demand_tou",
                                         "demand_flat", "fixed", "minimum_adjustment", "total"}
    summer = as_dict["months"][6]
    assert Decimal(summer["demand"]) == Decimal(summer["demand_tou"]) + Decimal(
        summer["demand_flat"]) and Decimal(summer["demand_tou"]) > 0


def test_a_leap_year_needs_8784_hours(gs2, profile):
    with pytest.raises(ProfileError, match="8760 hourly values, expected 8784 for 2028"):
        bill_hourly(gs2, profile(1.0, 2026), 2028)
    assert len(bill_hourly(gs2, profile(1.0, 2028), 2028).months) == 12


def test_one_profile_bills_like_the_same_profile_among_many(gs2):
    rng = np.random.default_rng(9)
    loads = np.round(rng.uniform(0, 40, (4, 8760)), 3)
    many = bill_profiles(gs2, hourly_usage(np.stack([load_wh(x, 2026) for x in loads]), 2026))
    one = bill_hourly(gs2, loads[2], 2026)
    assert [m.energy for m in one.months] == list(many["energy"][2])
    assert [m.demand_tou for m in one.months] == list(many["demand_tou"][2])
    assert [m.demand_flat for m in one.months] == list(many["demand_flat"][2])


def test_a_cn_tou_tariff_on_hours_is_the_monthly_quote_of_its_registers(profile):
    tariff = load_tariff_book()["cn-bj-commercial-tou"]
    load = profile(1.5)
    bill = bill_hourly(tariff, load, 2026)
    july = bill.months[6]
    hours = np.array(TOU_HOURS)
    per_day = {p: 1.5 * (hours == p).sum() for p in ("critical", "peak", "flat", "valley")}
    expected = quote(tariff, kwh=f"{1.5 * 24 * 31:.2f}", month=7,
                     **{f"{p}_kwh": f"{kwh * 31:.2f}" for p, kwh in per_day.items()})
    assert bill.currency == "CNY"
    assert july.total == int(expected.total * 100)


def test_cn_annual_tiers_carry_the_years_energy(profile):
    book = load_tariff_book()
    tariff = book["cn-bj-residential-annual"]
    annual = bill_hourly(tariff, profile(0.5), 2026)  # 12 kWh a day
    before_december = 12 * (365 - 31)
    december = quote(tariff, kwh="372", ytd_kwh=str(before_december), month=12)
    assert annual.months[11].total == int(december.total * 100)
    assert annual.months[0].total == int(quote(tariff, kwh="372", month=1).total * 100)


def test_cn_peak_valley_hours_and_refusals(profile):
    book = load_tariff_book()
    bill_hourly(book["cn-zj-residential-tou"], profile(1.0), 2026, tou_hours=PEAK_VALLEY_HOURS)
    with pytest.raises(InvalidInput, match=r"tou_hours\[7\]: 'flat' is not a period"):
        bill_hourly(book["cn-zj-residential-tou"], profile(1.0), 2026, tou_hours=TOU_HOURS)
    with pytest.raises(InvalidInput, match="needs a contracted capacity"):
        bill_hourly(book["cn-bj-industrial-two-part"], profile(1.0), 2026)
    with pytest.raises(InvalidInput, match="capacity_kva is for CN tariffs"):
        bill_hourly(load_urdb(SAMPLE)[0], profile(1.0), 2026, capacity_kva="800")


def test_cn_two_part_tariffs_take_the_contracted_capacity(profile):
    book = load_tariff_book()
    capacity = bill_hourly(book["cn-bj-industrial-two-part"], profile(300.0), 2026,
                           capacity_kva="800")
    assert all(m.demand_flat == 800 * 30 * 100 for m in capacity.months)  # 30 CNY/kVA
    # By demand with a floor of 40 % of capacity: 300 kW is below 0.4 x 800 = 320, so the
    # floor is billed, 320 kW x 48 CNY.
    demand = bill_hourly(book["cn-bj-industrial-demand"], profile(300.0), 2026,
                         capacity_kva="800")
    assert all(m.demand_flat == 320 * 48 * 100 for m in demand.months)
