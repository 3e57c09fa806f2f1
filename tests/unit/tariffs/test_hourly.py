"""Hourly profiles: lengths, bad values, the real calendar, the cells."""

from __future__ import annotations

import numpy as np
import pytest

from gridfare.errors import ProfileError
from gridfare.tariffs.hourly import WEEKDAY, WEEKEND, hourly_usage, hours_in_year, load_wh


def test_a_year_has_8760_hours_and_a_leap_year_8784():
    assert hours_in_year(2026) == 8760
    assert hours_in_year(2028) == 8784
    assert hours_in_year(2100) == 8760


@pytest.mark.parametrize(("year", "count"), [(2026, 8784), (2028, 8760), (2026, 24)])
def test_a_wrong_length_names_the_expected_count(year, count):
    with pytest.raises(ProfileError, match=f"house-7: {count} hourly values, expected "
                       f"{hours_in_year(year)} for {year}"):
        load_wh(np.ones(count), year, "house-7")


@pytest.mark.parametrize(("value", "rule"), [
    (float("nan"), "not a finite number"), (float("inf"), "not a finite number"),
    (-0.5, "is negative"), (0.0005, "finer than 0.001 kWh"),
    (2_200_000.0, "above 2,147,483 kWh in an hour"),
])
def test_bad_values_name_the_profile_the_hour_and_the_rule(value, rule):
    values = np.ones(8760)
    values[4321] = value
    with pytest.raises(ProfileError, match=f"house-7: hour 4321: .*{rule}"):
        load_wh(values, 2026, "house-7")


@pytest.mark.parametrize(("value", "rule"), [("x", "not a finite number"), ("NaN", "not a "
                         "finite number"), ("-1", "is negative"), ("1.0001", "finer")])
def test_text_values_are_read_exactly_or_refused(value, rule):
    values = ["1.5"] * 8760
    values[10] = value
    with pytest.raises(ProfileError, match=f"hour 10: .*{rule}"):
        load_wh(values, 2026, "p")


def test_text_and_floats_give_the_same_exact_wh():
    floats = np.full(8760, 0.123)
    assert (load_wh(floats, 2026) == 123).all()
    assert (load_wh(["0.123"] * 8760, 2026) == 123).all()
    assert (load_wh(np.full(8760, 2, dtype=np.int64), 2026) == 2000).all()


def test_weekends_follow_the_real_calendar():
    # 2026-01-01 is a Thursday: 3 and 4 January are the first weekend.
    load = np.zeros(8760, dtype=np.int64)
    load[2 * 24 + 5] = 7  # Sat 3 Jan, 05:00
    load[1 * 24 + 5] = 3  # Fri 2 Jan, 05:00
    usage = hourly_usage(load[None], 2026)
    assert usage.energy[0, 0, WEEKEND, 5] == 7
    assert usage.energy[0, 0, WEEKDAY, 5] == 3
    assert usage.peak[0, 0, WEEKEND, 5] == 7


def test_months_sum_and_peak_and_a_leap_february_has_29_days():
    load = np.arange(8784, dtype=np.int64)
    usage = hourly_usage(load[None], 2028)
    assert list(usage.days) == [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert usage.month_energy[0, 1] == load[744:744 + 29 * 24].sum()
    assert usage.month_peak[0, 1] == 744 + 29 * 24 - 1
    assert usage.month_energy.sum() == load.sum()


def test_many_profiles_fold_at_once_like_one():
    rng = np.random.default_rng(3)
    load = rng.integers(0, 5000, (5, 8760))
    many = hourly_usage(load, 2026)
    one = hourly_usage(load[3:4], 2026)
    assert (many.energy[3] == one.energy[0]).all() and (many.peak[3] == one.peak[0]).all()
