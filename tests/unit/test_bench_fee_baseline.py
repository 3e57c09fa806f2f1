"""The fee-control benchmark's DuckDB baseline (bench/_duckdb_fees.py) decides like the
six stages: the same deductions, balances, levels, states and actions, account by account,
over several days of a dirty generated feed (no Ray: the stages run in-process)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench._duckdb_fees import fees_sql
from datasets.collector import Collector, CollectorRates, opening_balances
from datasets.generator import generate_section
from datasets.schemas import FEE_STATE
from gridfare.feecontrol.config import StrategyRules, Thresholds, default_thresholds
from gridfare.feecontrol.ports import BALANCES
from tests.unit.feecontrol.helpers import BOOK, run, snapshot
from tests.unit.feecontrol.memory import MemoryAccounts

START = dt.date(2026, 11, 1)


def test_the_query_decides_like_the_stages():
    accounts = generate_section(0, "S00001", 3_000, 1, "2026-10", 9).accounts
    customers = accounts.filter(pc.field("active")).select(
        ["account_id", "customer_kind", "tariff_code"])
    ids = customers["account_id"].to_numpy()
    balances = opening_balances(ids, customers["customer_kind"].to_numpy(
        zero_copy_only=False), 9)
    service = MemoryAccounts(dict(zip(ids.tolist(), balances.tolist(), strict=True)))
    # Tight thresholds and no grace so that every level and action appears in a few days.
    thresholds = dict(default_thresholds())
    thresholds["residential"] = Thresholds(4_000, 2_000, -300, grace_days=0)
    strategy = StrategyRules(notice_hours=0)
    snap = snapshot(customers, thresholds=thresholds, strategy=strategy)
    collector = Collector(accounts, 9, START, CollectorRates(duplicate=0.05, late=0.05,
                                                             malformed=0.01, tamper=0.01))
    states = FEE_STATE.empty_table()
    actions: set[str] = set()
    con = duckdb.connect()
    for offset in range(4):
        day = START + dt.timedelta(days=offset)
        feed = pa.concat_tables(collector.collect(day))
        before = pa.table({"account_id": list(service.balance),
                           "balance_fen": list(service.balance.values())}, schema=BALANCES)
        outcome = run(feed, snap, service, states, day)
        decided = outcome.tables["decisions"]
        con.register("feed", feed)
        con.register("state", states)
        con.register("customers", customers)
        con.register("balances", before)
        sql = fees_sql(BOOK, day, dt.datetime.combine(day, dt.time(9)),
                       {"feed": "feed", "state": "state", "customers": "customers",
                        "balances": "balances"}, thresholds, snap.audit, strategy)
        baseline = con.sql(sql).to_arrow_table()
        columns = ["account_id", "deduction_fen", "balance_fen", "level", "state", "action"]
        expected = decided.select(columns).sort_by("account_id")
        assert baseline.num_rows == expected.num_rows
        for name in columns:
            got, want = baseline[name].to_pylist(), expected[name].to_pylist()
            bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
            assert not bad, (day, name, [(want[i], got[i]) for i in bad[:5]])
        actions |= set(a for a in expected["action"].to_pylist() if a)
        states = outcome.tables["state"]
    assert int(np.sum(decided["deduction_fen"].to_numpy())) > 0
    assert actions >= {"warn", "remind", "notice", "disconnect"}
