"""The section kernel: audit routing, meter aggregation and exact totals."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from datasets.schemas import ACCOUNTS, AUDIT_EXCEPTIONS, BILLS, CHARGE_LINES, READINGS
from gridfare.billing import AuditRules, bill_section
from gridfare.errors import InvalidInput
from gridfare.tariffs import load_tariff_book

PERIOD = "2026-10"


@pytest.fixture(scope="module")
def book():
    return load_tariff_book()


def accounts(*rows: dict) -> pa.Table:
    base = {"section_id": "S00001", "customer_kind": "residential",
            "tariff_code": "cn-bj-residential-monthly", "capacity_kva": None,
            "pf_standard": None, "active": True, "opened_on": dt.date(2020, 1, 1)}
    return pa.Table.from_pylist([{**base, **row} for row in rows], schema=ACCOUNTS)


def readings(*rows: dict) -> pa.Table:
    base = {"period": PERIOD, "reading_date": dt.date(2026, 10, 25), "multiplier": 1,
            "critical_kwh": None, "peak_kwh": None, "flat_kwh": None, "valley_kwh": None,
            "max_demand_kw": None, "reactive_kvarh": None}
    full = [{"meter_point_id": row["account_id"] * 10, **base, **row} for row in rows]
    return pa.Table.from_pylist(full, schema=READINGS)


def history(rows: list[tuple[int, str, float]]) -> pa.Table:
    return pa.table({"account_id": pa.array([r[0] for r in rows], pa.int64()),
                     "period": [r[1] for r in rows], "kwh": [r[2] for r in rows]})


def rules_of(result) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for row in result.exceptions.to_pylist():
        found.setdefault(row["account_id"], []).append(row["rule"])
    return found


def test_bills_a_clean_section_exactly(book):
    result = bill_section(
        accounts({"account_id": 1}, {"account_id": 2}, {"account_id": 3}),
        readings({"account_id": 1, "prev_register": 1000.0, "cur_register": 1500.0},
                 {"account_id": 2, "prev_register": 10.0, "cur_register": 250.0},
                 {"account_id": 3, "prev_register": 10.0, "cur_register": 250.01}),
        book, PERIOD, run_id="r1")
    assert result.bills.schema == BILLS
    assert result.exceptions.schema == AUDIT_EXCEPTIONS
    bills = {row["account_id"]: row for row in result.bills.to_pylist()}
    assert bills[1]["total_fen"] == 28215
    assert (bills[1]["tier1_fen"], bills[1]["tier2_fen"], bills[1]["tier3_fen"]) == (
        11719, 8613, 7883)
    assert bills[2]["total_fen"] == 11719  # exactly 240 kWh: all tier 1
    assert bills[3]["tier2_fen"] == 1  # 0.01 kWh x 0.5383 = 0.0054 CNY, half-up to 0.01
    for row in bills.values():
        assert row["total_fen"] == sum(row[line] for line in CHARGE_LINES)
        assert row["run_id"] == "r1" and row["section_id"] == "S00001"
    assert result.exceptions.num_rows == 0


def test_replaced_meter_energy_is_summed(book):
    result = bill_section(
        accounts({"account_id": 1}),
        readings({"account_id": 1, "meter_point_id": 10, "prev_register": 900.0,
                  "cur_register": 1200.0},
                 {"account_id": 1, "meter_point_id": 11, "prev_register": 0.0,
                  "cur_register": 200.0}),
        book, PERIOD)
    assert result.bills.column("kwh").to_pylist() == [500.0]
    assert result.bills.column("total_fen").to_pylist() == [28215]


def test_each_audit_rule_routes_the_account_to_exceptions(book):
    result = bill_section(
        accounts(
            {"account_id": 1},  # rollback
            {"account_id": 2},  # negative register
            {"account_id": 3},  # zero read
            {"account_id": 4},  # missing reading
            {"account_id": 5, "tariff_code": "cn-xx-unknown"},
            {"account_id": 6},  # spike against history
            {"account_id": 7, "tariff_code": "cn-zj-residential-tou"},  # no TOU split
            {"account_id": 8, "tariff_code": "cn-zj-residential-tou"},  # split mismatch
            {"account_id": 9, "active": False},  # inactive, no reading: nothing at all
            {"account_id": 10},  # clean
        ),
        readings(
            {"account_id": 1, "prev_register": 500.0, "cur_register": 400.0},
            {"account_id": 2, "prev_register": -5.0, "cur_register": 100.0},
            {"account_id": 3, "prev_register": 100.0, "cur_register": 100.0},
            {"account_id": 5, "prev_register": 0.0, "cur_register": 100.0},
            {"account_id": 6, "prev_register": 0.0, "cur_register": 3000.0},
            {"account_id": 7, "prev_register": 0.0, "cur_register": 100.0},
            {"account_id": 8, "prev_register": 0.0, "cur_register": 100.0,
             "peak_kwh": 60.0, "valley_kwh": 30.0},
            {"account_id": 10, "prev_register": 0.0, "cur_register": 100.0},
            {"account_id": 99, "prev_register": 0.0, "cur_register": 100.0},  # not in section
        ),
        book, PERIOD, history=history([(6, "2026-09", 150.0), (6, "2026-08", 170.0)]))
    assert rules_of(result) == {
        1: ["register_rollback"],
        2: ["negative_register"],
        3: ["zero_consumption"],
        4: ["missing_reading"],
        5: ["unknown_tariff"],
        6: ["consumption_spike"],
        7: ["input_not_metered"],
        8: ["tou_split_mismatch"],
        99: ["reading_without_account"],
    }
    assert result.bills.column("account_id").to_pylist() == [10]
    details = {r["account_id"]: r["detail"] for r in result.exceptions.to_pylist()}
    assert "400.00 is below prev 500.00" in details[1]
    assert "cn-xx-unknown" in details[5]
    assert "sum to 90.00 kWh" in details[8] and "advanced 100.00 kWh" in details[8]


def test_spike_threshold_is_configurable(book):
    args = (accounts({"account_id": 1}),
            readings({"account_id": 1, "prev_register": 0.0, "cur_register": 400.0}), book,
            PERIOD)
    hist = history([(1, "2026-09", 100.0)])
    assert rules_of(bill_section(*args, history=hist)) == {}
    tight = AuditRules(spike_factor=2, spike_floor_kwh=1)
    assert rules_of(bill_section(*args, history=hist, rules=tight)) == {1: ["consumption_spike"]}


def test_annual_tiers_carry_over_from_this_years_history(book):
    hist = history([(1, f"2026-{m:02d}", 300.0) for m in range(1, 10)]  # 2,700 kWh this year
                   + [(1, "2025-12", 5000.0)])  # last year does not count towards the tiers
    result = bill_section(
        accounts({"account_id": 1, "tariff_code": "cn-bj-residential-annual"}),
        readings({"account_id": 1, "prev_register": 0.0, "cur_register": 300.0}),
        book, PERIOD, history=hist, rules=AuditRules(spike_factor=100))
    bill = result.bills.to_pylist()[0]
    # 180 kWh fill tier 1 up to 2,880; the other 120 kWh are tier 2.
    assert bill["tier1_fen"] == 8789  # 180 x 0.4883 = 87.894
    assert bill["tier2_fen"] == 6460  # 120 x 0.5383 = 64.596


def test_readings_of_other_periods_are_ignored(book):
    rows = readings({"account_id": 1, "prev_register": 0.0, "cur_register": 100.0},
                    {"account_id": 1, "period": "2026-09", "prev_register": 0.0,
                     "cur_register": 900.0})
    result = bill_section(accounts({"account_id": 1}), rows, book, PERIOD)
    assert result.bills.column("kwh").to_pylist() == [100.0]


def test_multiplier_scales_energy_and_demand(book):
    result = bill_section(
        accounts({"account_id": 1, "tariff_code": "cn-bj-industrial-two-part",
                  "customer_kind": "industrial", "capacity_kva": 800.0, "pf_standard": 0.9}),
        readings({"account_id": 1, "prev_register": 100.0, "cur_register": 600.0,
                  "multiplier": 200, "peak_kwh": 200.0, "flat_kwh": 200.0, "valley_kwh": 100.0,
                  "max_demand_kw": 3.0, "reactive_kvarh": 150.0}),
        book, PERIOD)
    bill = result.bills.to_pylist()[0]
    assert bill["kwh"] == 100_000.0
    assert bill["power_factor"] == 0.96  # 500 / sqrt(500^2 + 150^2) = 0.9578
    assert bill["pf_adjust_fen"] < 0  # above the 0.90 standard: a rebate
    assert bill["basic_fen"] > 0


def test_same_input_gives_identical_tables(book):
    args = (accounts({"account_id": 2}, {"account_id": 1}),
            readings({"account_id": 1, "prev_register": 0.0, "cur_register": 123.45},
                     {"account_id": 2, "prev_register": 5.0, "cur_register": 5.0}), book, PERIOD)
    first, second = bill_section(*args), bill_section(*args)
    assert first.bills.equals(second.bills) and first.exceptions.equals(second.exceptions)
    assert first.bills.column("account_id").to_pylist() == [1]


def test_a_section_of_many_accounts_matches_one_account_quotes(book):
    rng = np.random.default_rng(3)
    kwh = rng.integers(0, 90_000, 500) / 100
    result = bill_section(
        accounts(*({"account_id": i + 1} for i in range(500))),
        readings(*({"account_id": i + 1, "prev_register": 0.0, "cur_register": float(k)}
                   for i, k in enumerate(kwh))),
        book, PERIOD, rules=AuditRules(spike_factor=10**6))
    from gridfare.tariffs import quote

    tariff = book["cn-bj-residential-monthly"]
    billed = dict(zip(result.bills.column("account_id").to_pylist(),
                      result.bills.column("total_fen").to_pylist(), strict=True))
    for i in rng.choice(500, 40, replace=False):
        if kwh[i] == 0:
            continue
        assert billed[i + 1] == int(quote(tariff, kwh=f"{kwh[i]:.2f}").total * 100)


def test_mixed_sections_are_refused(book):
    mixed = accounts({"account_id": 1}, {"account_id": 2, "section_id": "S00002"})
    with pytest.raises(InvalidInput, match="span sections"):
        bill_section(mixed, readings(), book, PERIOD)


def test_bad_period_is_refused(book):
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        bill_section(accounts({"account_id": 1}), readings(), book, "2026-13")


def test_energy_in_a_period_the_tariff_lacks_is_an_exception_not_a_failure(book):
    result = bill_section(
        accounts({"account_id": 1, "tariff_code": "cn-zj-residential-tou"},
                 {"account_id": 2, "tariff_code": "cn-zj-residential-tou"}),
        readings({"account_id": 1, "prev_register": 0.0, "cur_register": 100.0,
                  "peak_kwh": 50.0, "flat_kwh": 20.0, "valley_kwh": 30.0},
                 {"account_id": 2, "prev_register": 0.0, "cur_register": 100.0,
                  "peak_kwh": 60.0, "flat_kwh": 0.0, "valley_kwh": 40.0}),
        book, PERIOD)
    assert rules_of(result) == {1: ["tou_split_mismatch"]}
    assert "no flat period" in result.exceptions.column("detail")[0].as_py()
    assert result.bills.column("account_id").to_pylist() == [2]


# -- bundles: several sections rated in one pass ------------------------------------------

def _section(section: str, ids: list[int], kwh: dict[int, float]):
    accts = accounts(*({"account_id": i, "section_id": section} for i in ids))
    reads = readings(*({"account_id": i, "prev_register": 100.0,
                        "cur_register": 100.0 + kwh.get(i, 0.0)} for i in kwh))
    return accts, reads


def test_a_bundle_bills_each_section_exactly_as_alone(book):
    from gridfare.billing.kernel import SectionInput, bill_bundle

    parts = [
        # S1 meters account 12, which is S2's: an orphan in S1, a bill in S2, never mixed.
        SectionInput("S1", *_section("S1", [3, 1, 2], {1: 120.0, 2: 0.0, 3: 900.0, 12: 5.0}),
                     history([(1, "2026-09", 100.0), (12, "2026-09", 1.0)])),
        SectionInput("S2", *_section("S2", [12, 11], {11: 300.0, 12: 50.0}),
                     history([(12, "2026-09", 2.0), (11, "2026-01", 250.0)])),
        SectionInput("S3", *_section("S3", [21], {})),  # no readings, no history
        SectionInput("S4", *_section("S4", [1], {1: 10.0})),  # same id as in S1
    ]
    together = bill_bundle(parts, book, PERIOD, run_id="r")
    for part, joint in zip(parts, together, strict=True):
        alone = bill_section(part.accounts, part.readings, book, PERIOD,
                             history=part.history, run_id="r", section_id=part.section_id)
        assert joint.section_id == part.section_id
        assert joint.bills.equals(alone.bills) and joint.exceptions.equals(alone.exceptions)
    assert rules_of(together[0])[12] == ["reading_without_account"]
    assert 12 in together[1].bills["account_id"].to_pylist()
    assert rules_of(together[1]).get(12) is None  # S1's history of 12 is not S2's spike
    assert together[2].bills.num_rows == 0 and rules_of(together[2]) == {21: ["missing_reading"]}


def test_a_bad_section_in_a_bundle_fails_alone(book):
    from gridfare.billing.kernel import SectionInput, bill_bundle

    good = SectionInput("S1", *_section("S1", [1, 2], {1: 10.0, 2: 20.0}))
    twice = SectionInput("S2", *_section("S2", [5, 5], {5: 10.0}))
    stranger = SectionInput("S3", _section("S9", [7], {7: 1.0})[0], readings())
    results = bill_bundle([good, twice, stranger], book, PERIOD)
    assert isinstance(results[1], InvalidInput) and "appears twice" in str(results[1])
    assert isinstance(results[2], InvalidInput) and "other sections" in str(results[2])
    alone = bill_section(good.accounts, good.readings, book, PERIOD)
    assert results[0].bills.equals(alone.bills)


def test_an_empty_bundle_bills_nothing(book):
    from gridfare.billing.kernel import bill_bundle

    assert bill_bundle([], book, PERIOD) == []
