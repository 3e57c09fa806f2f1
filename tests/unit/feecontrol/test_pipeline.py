"""The six stages together over hand-made feeds (no Ray): dirt, holds, payments, reruns."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from gridfare.feecontrol.config import StrategyRules, Thresholds
from gridfare.feecontrol.pipeline import STAGES
from tests.unit.feecontrol.helpers import (
    DAY,
    customers,
    event,
    freeze,
    payment,
    records,
    run,
    run_days,
    snapshot,
)
from tests.unit.feecontrol.memory import MemoryAccounts

MONTHLY = "cn-bj-residential-monthly"
D0, D1, D2, D3 = (DAY + dt.timedelta(days=i) for i in range(4))
PRICE = 48830000  # tier 1, 1e-8 CNY/kWh


def _fen(kwh: float) -> int:
    return (round(kwh * 100) * PRICE + 50000000) // 10**8


def _snap(*ids: int, **kwargs):
    return snapshot(customers(*((i, "residential", MONTHLY) for i in ids)), **kwargs)


def _by_account(outcome, table="decisions"):
    return {row["account_id"]: row for row in outcome.tables[table].to_pylist()}


def test_the_registry_is_the_six_stages_in_order():
    assert [stage.name for stage in STAGES] == [
        "preprocess", "prepare", "estimate", "audit", "benchmark", "strategy"]


def test_resends_and_out_of_order_readings_are_deducted_once():
    accounts = MemoryAccounts({1: 100_000})
    late = freeze(1, D1, 105.0, received=dt.datetime.combine(D2, dt.time(3)))
    results = run_days([
        (D0, records(freeze(1, D0, 100.0))),
        # D2's reading arrives first; D1's comes late in the same batch, and again as a resend.
        (D2, records(freeze(1, D2, 110.0), late, late)),
        (D3, records(late, freeze(1, D3, 112.0))),  # D1's once more, after D2 was settled
    ], _snap(1), accounts)
    assert results[1].counts["resends"] == 1
    assert _by_account(results[1])[1]["deduction_fen"] == _fen(10.0)
    assert results[2].counts["stale_readings"] == 0  # the newest of the batch is D3's
    assert _by_account(results[2])[1]["deduction_fen"] == _fen(2.0)
    assert accounts.balance[1] == 100_000 - _fen(10.0) - _fen(2.0)


def test_a_late_reading_alone_is_stale():
    accounts = MemoryAccounts({1: 100_000})
    results = run_days([(D0, records(freeze(1, D1, 100.0))),
                        (D1, records(freeze(1, D0, 90.0)))], _snap(1), accounts)
    assert results[1].counts["stale_readings"] == 1
    assert _by_account(results[1])[1]["deduction_fen"] == 0
    assert results[1].tables["holds"].num_rows == 0


def test_malformed_records_are_rejected_with_their_rule():
    bad_register = freeze(1, D0, -5.0, record_id="bad-1")
    bad_tou = freeze(2, D0, 10.0, record_id="bad-2", tou={"peak": 3.0, "valley": 3.0})
    finer = freeze(1, D0, 1.001, record_id="bad-3")
    zero = payment(1, 0, "bad-4")
    stranger = freeze(99, D0, 1.0, record_id="bad-5")
    odd_event = event(1, "lightning")
    result = run(records(bad_register, bad_tou, finer, zero, stranger, odd_event),
                 _snap(1, 2), MemoryAccounts({1: 0, 2: 0}))
    rules = dict(zip(result.tables["rejects"]["record_id"].to_pylist(),
                     result.tables["rejects"]["rule"].to_pylist(), strict=True))
    assert rules == {"bad-1": "negative_register", "bad-2": "tou_split_mismatch",
                     "bad-3": "register_resolution", "bad-4": "bad_payment",
                     "bad-5": "unknown_account", "E1-lightning": "unknown_event"}
    assert all("account" in d for d in result.tables["rejects"]["detail"].to_pylist())


def test_audit_holds_never_deduct_nor_disconnect():
    # Every account is deep under the disconnect level; each breaks one audit rule.
    snap = snapshot(customers((1, "residential", MONTHLY), (2, "residential", MONTHLY),
                              (3, "residential", MONTHLY), (4, "residential", "cn-xx-none"),
                              (5, "residential", MONTHLY)),
                    thresholds={"residential": Thresholds(0, -1, -2, grace_days=0),
                                "commercial": Thresholds(0, -1, -2),
                                "industrial": Thresholds(0, -1, -2)},
                    strategy=StrategyRules(notice_hours=0))
    accounts = MemoryAccounts(dict.fromkeys(range(1, 6), -1_000_000) | {6: 0})
    opening = records(*(freeze(i, D0, 1000.0) for i in range(1, 6)))
    later = records(freeze(1, D1, 900.0),  # rollback
                    freeze(2, D1, 5000.0),  # implausible
                    freeze(3, D1, 1001.0), event(3, "tamper"),
                    freeze(4, D1, 1001.0),  # no price parameters
                    freeze(5, D3 + dt.timedelta(days=3), 1002.0))  # a 6-day gap
    results = run_days([(D0, opening), (D1, later)], snap, accounts)
    holds = dict(zip(results[1].tables["holds"]["account_id"].to_pylist(),
                     results[1].tables["holds"]["rule"].to_pylist(), strict=True))
    assert holds == {1: "register_rollback", 2: "implausible_consumption", 3: "tamper",
                     4: "missing_price", 5: "reading_gap"}
    # The opening run gave notice (its readings passed); past the notice, the held run
    # sends nothing: no disconnect on audited-out data.
    assert results[0].tables["commands"]["action"].to_pylist() == ["notice"] * 5
    assert results[1].tables["commands"].num_rows == 0
    assert set(results[1].tables["state"]["state"].to_pylist()) == {"disconnect_pending"}
    assert all(accounts.balance[i] == -1_000_000 for i in range(1, 6))
    # The held accounts' settlement did not move: the energy is there once reviewed.
    state = {r["account_id"]: r for r in results[1].tables["state"].to_pylist()}
    assert all(state[i]["register_kwh"] == 1000.0 for i in range(1, 6))


def test_the_whole_walk_to_a_disconnect_and_back():
    thresholds = {"residential": Thresholds(3_000, 1_000, -500, grace_days=1, warn_days=0),
                  "commercial": Thresholds(0, -1, -2), "industrial": Thresholds(0, -1, -2)}
    snap = _snap(1, thresholds=thresholds, strategy=StrategyRules(notice_hours=12))
    accounts = MemoryAccounts({1: 5_000})
    registers = [0, 10, 50, 70, 90, 110, 120, 121, 122]
    days = [DAY + dt.timedelta(days=i) for i in range(len(registers))]
    results = run_days([(day, records(freeze(1, day, float(kwh))))
                        for day, kwh in zip(days, registers, strict=True)], snap, accounts)
    # Balances are 5,000 minus the month's tier-1 charge so far, each rounded half-up:
    # 10 kWh 4.883 -> 488, 50 kWh 24.415 -> 2,442, 70 -> 3,418, ..., 122 -> 5,957.
    walk = [(r.tables["decisions"]["balance_fen"][0].as_py(),
             r.tables["decisions"]["state"][0].as_py(),
             r.tables["decisions"]["action"][0].as_py()) for r in results]
    assert walk == [
        (5_000, "normal", None),
        (4_512, "normal", None),
        (2_558, "warned", "warn"),  # under 3,000
        (1_582, "warned", None),  # warned once
        (605, "reminded", "remind"),  # under 1,000
        (-371, "reminded", None),
        (-860, "reminded", None),  # under -500 today: one day of grace
        (-908, "disconnect_pending", "notice"),
        (-957, "disconnected", "disconnect"),  # 24 h after the notice, at 09:00
    ]
    # A payment the next day reconnects in the same cycle.
    day = days[-1] + dt.timedelta(days=1)
    paid = run(records(payment(1, 10_000, "P-1", day), freeze(1, day, 122.5)), snap,
               accounts, results[-1].tables["state"], day)
    assert paid.tables["commands"]["action"].to_pylist() == ["reconnect"]
    assert _by_account(paid)[1]["state"] == "reconnected"
    sent = [a for r in [*results, paid] for a in r.tables["commands"]["action"].to_pylist()]
    assert sent == ["warn", "remind", "notice", "disconnect", "reconnect"]


def test_a_payment_while_a_disconnect_is_pending_cancels_it():
    thresholds = {"residential": Thresholds(0, -100, -200, grace_days=0),
                  "commercial": Thresholds(0, -1, -2), "industrial": Thresholds(0, -1, -2)}
    snap = _snap(1, thresholds=thresholds, strategy=StrategyRules(notice_hours=12))
    accounts = MemoryAccounts({1: -1_000})
    first = run_days([(D0, records(freeze(1, D0, 0.0)))], snap, accounts)[0]
    assert first.tables["decisions"]["action"][0].as_py() == "notice"
    paid = run(records(payment(1, 5_000, "P-9", D1)), snap, accounts,
               first.tables["state"], D1)
    row = _by_account(paid)[1]
    assert (row["state"], row["action"]) == ("normal", None)
    assert accounts.balance[1] == 4_000
    assert paid.tables["commands"].num_rows == 0


def test_a_pending_disconnect_waits_for_the_morning():
    thresholds = {"residential": Thresholds(0, -100, -200, grace_days=0),
                  "commercial": Thresholds(0, -1, -2), "industrial": Thresholds(0, -1, -2)}
    snap = _snap(1, thresholds=thresholds, strategy=StrategyRules(notice_hours=1))
    accounts = MemoryAccounts({1: -1_000})
    noticed = run(records(freeze(1, D0, 0.0)), snap, accounts, day=D0, hour=20)
    night = run(records(), snap, accounts, noticed.tables["state"], D0, hour=23)
    assert _by_account(night)[1]["action"] is None  # pending, in the state, decided again
    morning = run(records(), snap, accounts, night.tables["state"], D1, hour=7)
    assert _by_account(morning)[1]["action"] == "disconnect"


def test_a_deduction_refused_at_the_floor_stays_owed():
    thresholds = {"residential": Thresholds(3_000, 1_000, -500, grace_days=5),
                  "commercial": Thresholds(0, -1, -2), "industrial": Thresholds(0, -1, -2)}
    accounts = MemoryAccounts({1: 100}, floor_fen=-500)
    snap = _snap(1, thresholds=thresholds)
    results = run_days([(D0, records(freeze(1, D0, 0.0))),
                        (D1, records(freeze(1, D1, 20.0)))], snap, accounts)  # 9.77 CNY
    row = _by_account(results[1])[1]
    assert (row["deduction_fen"], row["balance_fen"], row["level"]) == (0, 100, "grace")
    assert results[1].tables["state"]["register_kwh"][0].as_py() == 0.0  # not settled
    # Paid: the whole interval is deducted now, once.
    paid = run(records(payment(1, 5_000, "P-2", D2), freeze(1, D2, 21.0)), snap, accounts,
               results[1].tables["state"], D2)
    assert _by_account(paid)[1]["deduction_fen"] == _fen(21.0)
    assert accounts.balance[1] == 5_100 - _fen(21.0)


def test_a_rerun_of_a_date_changes_nothing():
    accounts = MemoryAccounts({1: 2_000, 2: 50_000})
    snap = _snap(1, 2)
    first = run_days([(D0, records(freeze(1, D0, 0.0), freeze(2, D0, 0.0)))], snap,
                     accounts)[0]
    feed = records(freeze(1, D1, 5.0), freeze(2, D1, 8.0), payment(2, 1_000, "P-3", D1))
    once = run(feed, snap, accounts, first.tables["state"], D1)
    balances = dict(accounts.balance)
    again = run(feed, snap, accounts, first.tables["state"], D1)
    assert accounts.balance == balances
    for name in ("decisions", "commands", "state", "rejects", "holds"):
        assert once.tables[name].equals(again.tables[name]), name


def test_every_decision_names_the_batchs_price_version():
    result = run(records(freeze(1, D0, 0.0), freeze(2, D0, 0.0)), _snap(1, 2, price_version=7),
                 MemoryAccounts({1: 0, 2: 0}))
    assert set(result.tables["decisions"]["price_version"].to_pylist()) == {7}


def test_a_dirty_feed_deducts_each_kwh_once():
    """Resends, late and missing readings over a week: every account's deductions add up to
    its month's energy and funds lines of the bill for the energy its state settled."""
    import numpy as np

    from datasets.collector import Collector, CollectorRates
    from datasets.generator import generate_section
    from gridfare.feecontrol.estimate import DEDUCTED_LINES
    from gridfare.tariffs import Usage
    from tests.unit.feecontrol.helpers import BOOK

    accounts = generate_section(0, "S00001", 400, 1, "2026-10", 3).accounts
    table = accounts.filter(pc.field("active")).select(
        ["account_id", "customer_kind", "tariff_code"])
    service = MemoryAccounts(dict.fromkeys(table["account_id"].to_pylist(), 10**9))
    collector = Collector(accounts, 3, dt.date(2026, 11, 1),
                          CollectorRates(gap=0.05, late=0.1, duplicate=0.1, malformed=0,
                                         payment=0))
    days = [(dt.date(2026, 11, 1) + dt.timedelta(days=i),) for i in range(7)]
    feeds = [(day, pa.concat_tables(collector.collect(day))) for (day,) in days]
    results = run_days(feeds, snapshot(table), service)
    deducted: dict[int, int] = {}
    for outcome in results:
        for row in outcome.tables["decisions"].select(["account_id", "deduction_fen"]).to_pylist():
            deducted[row["account_id"]] = deducted.get(row["account_id"], 0) + row["deduction_fen"]
    kinds = dict(zip(table["account_id"].to_pylist(), table["tariff_code"].to_pylist(),
                     strict=True))
    checked = 0
    for row in results[-1].tables["state"].to_pylist():
        tariff = BOOK.get(kinds[row["account_id"]])
        if tariff is None:
            continue
        tou = bool(tariff.tou_periods)
        periods = {p: np.array([round(row[f"month_{p}_kwh"] * 100)]) if tou
                   else np.zeros(1, np.int64) for p in ("critical", "peak", "flat", "valley")}
        usage = Usage.of(11, 1, kwh=np.array([round(row["month_kwh"] * 100)]),
                         tou_metered=np.array([tou]), ytd_kwh=np.array([0]), **periods)
        bill = tariff.charge(usage)
        assert deducted.get(row["account_id"], 0) == sum(int(bill[line][0])
                                                         for line in DEDUCTED_LINES)
        assert service.balance[row["account_id"]] == 10**9 - deducted.get(row["account_id"], 0)
        checked += 1
    assert checked > 300
