"""gridfare's URDB bills against an independent reference, NREL PySAM ``Utilityrate5``.

Every line of every month matches PySAM's figure rounded half up to the cent: energy, TOU
demand, flat demand, fixed. The minimum adjustment is the minimum less gridfare's rounded
lines (the bill is the sum of its rounded lines), so it may differ from PySAM's, computed
on unrounded lines, by the rounding of those lines: at most 2 cents, and the totals of a
month where the minimum binds are equal. PySAM lays the schedules on a 365-day year that
starts on a Monday: 2018 and 2029 are that calendar; the other years are tested around it.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySAM.Utilityrate5", reason="nrel-pysam is not installed (the dev "
                    "extra installs it): the URDB reference comparison cannot run")

from bench._pysam_rates import (
    REFERENCE_LINES,
    agrees,
    cents,
    pysam_bill,
    pysam_supports,
)
from gridfare.tariffs.hourly import hourly_usage, load_wh
from gridfare.tariffs.urdb import translate

SAMPLE = str(files("datasets") / "samples" / "urdb" / "sample-export.json")
RECORDS = {item["label"]: item
           for item in json.loads(Path(SAMPLE).read_text(), parse_float=Decimal)["items"]}
TIERED, TOU, DEMAND, HOURS_USE, DAILY = (f"66a0f3c1e9b2a4d3c8f1a00{i}" for i in (4, 2, 3, 5, 1))


def _profile(seed: int, low: float, high: float, hours: int = 8760) -> np.ndarray:
    """A seasonal, daily-shaped load at 0.001 kWh, random within [low, high] kW."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    shape = 1 + 0.4 * np.sin(2 * np.pi * (t % 24 - 9) / 24) + 0.3 * np.cos(2 * np.pi * t / 8760)
    return np.round(low + (high - low) * shape / 1.7 * rng.uniform(0.5, 1.0, hours), 3)


PROFILES = {"home": _profile(1, 0.1, 2.5), "small": _profile(2, 0.05, 0.4),
            "large": _profile(3, 5.0, 90.0)}


def _ours(record, load, year):
    usage = hourly_usage(load_wh(load, year)[None], year)
    return {line: amounts[0] for line, amounts in translate(record).charge(usage).items()}


def _assert_matches(ours, reference, months=range(12), lines=tuple(REFERENCE_LINES),
                    annual_minimum=False):
    for line in lines:
        slack = 2 if line == "minimum_adjustment" else 0
        for m in months:
            assert agrees(ours[line][m], reference[line][m], slack), (
                line, m, ours[line][m], reference[line][m])
    if annual_minimum:  # it binds on the year: both years total the minimum
        assert sum(int(ours[line].sum()) for line in ours) == cents(
            sum(reference[line].sum() for line in REFERENCE_LINES))
        return
    for m in months:
        if reference["minimum_adjustment"][m] > 0:  # the minimum binds: the same total
            assert sum(int(ours[line][m]) for line in ours) == cents(
                sum(reference[line][m] for line in REFERENCE_LINES))


def test_a_float_half_cent_is_the_tie_it_stands_for():
    assert 1.46 * 7.25 == 10.584999999999999  # PySAM's figure for 10.585
    assert agrees(1059, 1.46 * 7.25) and agrees(1058, 1.46 * 7.25)
    assert not agrees(1059, 10.5849) and agrees(1058, 10.5849)


@pytest.mark.parametrize("year", [2018, 2029])
@pytest.mark.parametrize(("label", "profile"), [
    (TIERED, "home"), (TIERED, "large"), (TOU, "home"), (TOU, "small"),
    (DEMAND, "large"), (DEMAND, "small"), (DEMAND, "home"), (HOURS_USE, "large"),
])
def test_bills_match_pysam_to_the_cent(label, profile, year):
    record, load = RECORDS[label], PROFILES[profile]
    assert pysam_supports(record)
    ours, reference = _ours(record, load, year), pysam_bill(record, load)
    _assert_matches(ours, reference)
    if (label, profile) == (DEMAND, "small"):
        assert (reference["minimum_adjustment"] > 0).all()  # the minimum is exercised


def test_the_tou_tiered_demand_flat_minimum_rate_exercises_every_line():
    reference = pysam_bill(RECORDS[DEMAND], PROFILES["large"])
    assert all(reference[line].sum() > 0 for line in REFERENCE_LINES
               if line != "minimum_adjustment")


def test_a_yearly_minimum_matches_pysams_annual_minimum():
    record = copy.deepcopy(RECORDS[TIERED])
    record["mincharge"], record["minchargeunits"] = Decimal("2500"), "$/year"
    ours, reference = _ours(record, PROFILES["small"], 2018), pysam_bill(record,
                                                                         PROFILES["small"])
    assert reference["minimum_adjustment"][11] > 0
    _assert_matches(ours, reference, annual_minimum=True)


def test_daily_tier_maxima_match_with_the_daily_charges_left_out():
    # PySAM states fixed and minimum charges per month only; the kWh daily energy matches.
    record = copy.deepcopy(RECORDS[DAILY])
    assert not pysam_supports(record)
    for field in ("fixedchargefirstmeter", "mincharge"):
        record.pop(field)
    _assert_matches(_ours(RECORDS[DAILY], PROFILES["home"], 2018),
                    pysam_bill(record, PROFILES["home"]), lines=("energy",))


def test_other_years_match_where_the_rate_has_no_weekday_rule():
    for label in (TIERED, HOURS_USE):
        _assert_matches(_ours(RECORDS[label], PROFILES["large"], 2026),
                        pysam_bill(RECORDS[label], PROFILES["large"]))


def test_weekends_are_the_real_years_not_pysams():
    # 2026 starts on a Thursday; PySAM puts every year's weekends where 2018's are. The
    # TOU rate's winter weekdays have a mid-peak its weekends lack, so the bills differ.
    load = PROFILES["home"]
    ours, reference = _ours(RECORDS[TOU], load, 2026), pysam_bill(RECORDS[TOU], load)
    assert ours["energy"][0] != cents(reference["energy"][0])
    assert ours["energy"][6] == cents(reference["energy"][6])  # summer: every day alike


def test_a_leap_year_bills_29_february_that_pysam_has_no_hour_for():
    # 2024 starts on a Monday, like PySAM's year, and is a leap year: January matches on
    # every line; PySAM, given the profile without 29 February, bills a shorter February.
    leap = _profile(4, 0.05, 0.4, hours=8784)
    without = np.delete(leap, np.s_[59 * 24:60 * 24])
    ours, reference = _ours(RECORDS[DEMAND], leap, 2024), pysam_bill(RECORDS[DEMAND], without)
    _assert_matches(ours, reference, months=[0])
    february = leap[31 * 24:60 * 24].sum()
    assert abs(without[31 * 24:59 * 24].sum() - february) > 0
