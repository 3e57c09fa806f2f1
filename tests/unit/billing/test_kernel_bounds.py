"""The kernel's input bounds: a quantity that would wrap int64, is not finite or makes no
sense is one account's exception, never a wrapped bill and never a failed section."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gridfare.billing import bill_section
from gridfare.billing.audit import METER_CONFLICT, OUT_OF_RANGE
from gridfare.tariffs import load_tariff_book
from tests.unit.billing.test_kernel import PERIOD, accounts, history, readings, rules_of

GOOD = {"account_id": 1, "prev_register": 10.0, "cur_register": 250.0}


@pytest.fixture(scope="module")
def book():
    return load_tariff_book()


def bill(book, account_rows, reading_rows, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cast of NaN or 1e19 to int64 warns: none may
        return bill_section(accounts(*account_rows), readings(*reading_rows), book, PERIOD,
                            **kw)


def billed(result) -> dict[int, dict]:
    return {row["account_id"]: row for row in result.bills.to_pylist()}


def test_the_issues_wrapping_reading_is_out_of_range_not_500_kwh(book):
    result = bill(book, [{"account_id": 1}, {"account_id": 2}],
                  [GOOD, {"account_id": 2, "prev_register": 0.0,
                          "cur_register": 67471631579040.24, "multiplier": 2734}])
    assert set(billed(result)) == {1}
    assert rules_of(result) == {2: [OUT_OF_RANGE]}
    assert "multiplier 2734" in result.exceptions["detail"][0].as_py()


def test_at_the_bound_bills_exactly_and_one_unit_more_is_refused(book):
    limit = book.bounds.energy  # 0.01 kWh units after the multiplier
    multiplier = 7
    at = (limit // multiplier) / 100
    over = (limit // multiplier + 1) / 100
    rows = [{"account_id": 1, "prev_register": 0.0, "cur_register": at,
             "multiplier": multiplier},
            {"account_id": 2, "prev_register": 0.0, "cur_register": over,
             "multiplier": multiplier}]
    result = bill(book, [{"account_id": 1}, {"account_id": 2}], rows)
    bills = billed(result)
    assert set(bills) == {1} and rules_of(result) == {2: [OUT_OF_RANGE]}
    assert bills[1]["total_fen"] > 0
    assert bills[1]["total_fen"] == sum(bills[1][k] for k in bills[1] if k.endswith("_fen")
                                        and k != "total_fen")


def test_two_meters_each_within_but_summed_beyond_are_refused(book):
    half = book.bounds.energy // 2 + 1
    rows = [{"account_id": 1, "meter_point_id": m, "prev_register": 0.0,
             "cur_register": half / 100} for m in (11, 12)]
    result = bill(book, [{"account_id": 1}], rows)
    assert rules_of(result) == {1: [OUT_OF_RANGE]} and not result.bills.num_rows


@pytest.mark.parametrize("change", [
    {"cur_register": float("nan")}, {"cur_register": float("inf")},
    {"prev_register": 1e300}, {"multiplier": 0}, {"multiplier": -3},
    {"max_demand_kw": -1.0}, {"reactive_kvarh": float("nan")},
    {"peak_kwh": 1e17, "valley_kwh": 0.0},
])
def test_impossible_readings_are_one_accounts_exception(book, change):
    result = bill(book, [{"account_id": 1}, {"account_id": 2}],
                  [GOOD, {"account_id": 2, "prev_register": 0.0, "cur_register": 5.0,
                          **change}])
    assert set(billed(result)) == {1}
    assert rules_of(result) == {2: [OUT_OF_RANGE]}


@pytest.mark.parametrize("account", [
    {"capacity_kva": float("nan")}, {"capacity_kva": -5.0}, {"capacity_kva": 1e30},
    {"pf_standard": 0.95}, {"pf_standard": float("inf")},
])
def test_impossible_account_figures_do_not_fail_the_section(book, account):
    result = bill(book, [{"account_id": 1}, {"account_id": 2, **account}],
                  [GOOD, {"account_id": 2, "prev_register": 0.0, "cur_register": 5.0}])
    assert set(billed(result)) == {1}
    assert OUT_OF_RANGE in rules_of(result)[2]


def test_bad_history_is_an_exception_not_a_garbage_year(book):
    result = bill(book, [{"account_id": 1}, {"account_id": 2,
                                             "tariff_code": "cn-bj-residential-annual"}],
                  [GOOD, {"account_id": 2, "prev_register": 0.0, "cur_register": 5.0}],
                  history=history([(2, "2026-09", float("nan")), (2, "2026-08", 1e300),
                                   (1, "2026-09", 200.0)]))
    assert set(billed(result)) == {1}
    assert rules_of(result) == {2: [OUT_OF_RANGE]}


def test_a_meter_read_twice_or_below_one_is_not_billed_twice(book):
    rows = [GOOD, {**GOOD, "meter_point_id": 10},  # account 1's meter 10 twice
            {"account_id": 2, "meter_point_id": -1, "prev_register": 0.0,
             "cur_register": 5.0},
            {"account_id": 3, "meter_point_id": 31, "prev_register": 0.0,
             "cur_register": 5.0}]
    result = bill(book, [{"account_id": 1}, {"account_id": 2}, {"account_id": 3}], rows)
    assert set(billed(result)) == {3}
    assert rules_of(result) == {1: [METER_CONFLICT], 2: [METER_CONFLICT]}


def test_unsorted_meters_are_checked_too(book):
    rows = [{"account_id": 2, "meter_point_id": 5, "prev_register": 0.0, "cur_register": 1.0},
            {"account_id": 1, "meter_point_id": 9, "prev_register": 0.0, "cur_register": 1.0},
            {"account_id": 2, "meter_point_id": 5, "prev_register": 0.0, "cur_register": 1.0}]
    result = bill(book, [{"account_id": 1}, {"account_id": 2}], rows)
    assert set(billed(result)) == {1}
    assert rules_of(result) == {2: [METER_CONFLICT]}
    assert np.all(result.bills["total_fen"].to_numpy() > 0)
