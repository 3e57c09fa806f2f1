"""Building blocks of the fee-control unit tests: snapshots, records, one-call runs."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from datasets.schemas import COLLECTED, FEE_STATE
from gridfare.feecontrol.batch import Context
from gridfare.feecontrol.cache import BalanceCache, Kind, Snapshot
from gridfare.feecontrol.config import (
    AuditRules,
    StrategyRules,
    SystemParams,
    default_thresholds,
)
from gridfare.feecontrol.pipeline import Outcome, outcome, run_stages
from gridfare.tariffs import load_tariff_book

BOOK = load_tariff_book()
DAY = dt.date(2026, 11, 2)


def customers(*rows: tuple[int, str, str]) -> pa.Table:
    ids, kinds, codes = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table({"account_id": pa.array(ids, pa.int64()),
                     "customer_kind": pa.array(kinds, pa.string()),
                     "tariff_code": pa.array(codes, pa.string())})


def snapshot(table: pa.Table, prices=None, *, price_version: int = 1,
             strategy: StrategyRules | None = None, thresholds=None,
             audit: AuditRules | None = None) -> Snapshot:
    return Snapshot(
        versions={kind: (price_version if kind == Kind.PRICES else 1) for kind in Kind},
        customers=table, prices=BOOK if prices is None else prices,
        thresholds=thresholds or default_thresholds(), audit=audit or AuditRules(),
        strategy=strategy or StrategyRules(), system=SystemParams())


def freeze(account: int, day: dt.date, kwh: float, record_id: str | None = None,
           tou: dict[str, float] | None = None, batch: int = 1,
           received: dt.datetime | None = None) -> dict:
    at = dt.datetime.combine(day, dt.time())
    row = {"record_id": record_id or f"F{day:%Y%m%d}-{account}", "account_id": account,
           "kind": "daily_freeze", "measured_at": at,
           "received_at": received or at + dt.timedelta(minutes=5),
           "register_kwh": kwh, "batch": batch}
    for name, value in (tou or {}).items():
        row[f"{name}_kwh"] = value
    return row


def payment(account: int, fen: int, record_id: str, day: dt.date = DAY) -> dict:
    at = dt.datetime.combine(day, dt.time(8))
    return {"record_id": record_id, "account_id": account, "kind": "payment",
            "measured_at": at, "received_at": at, "amount_fen": fen, "batch": 1}


def event(account: int, name: str, day: dt.date = DAY) -> dict:
    at = dt.datetime.combine(day, dt.time(3))
    return {"record_id": f"E{account}-{name}", "account_id": account, "kind": "event",
            "measured_at": at, "received_at": at, "event": name, "batch": 1}


def records(*rows: dict) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=COLLECTED)


def run(rows: pa.Table, snap: Snapshot, accounts, states: pa.Table | None = None,
        day: dt.date = DAY, hour: int = 9) -> Outcome:
    context = Context(snapshot=snap, accounts=BalanceCache(accounts),
                      states=FEE_STATE.empty_table() if states is None else states)
    batch = run_stages(rows, day, dt.datetime.combine(day, dt.time(hour)), context)
    return outcome(batch, context)


def run_days(days: list[tuple[dt.date, pa.Table]], snap: Snapshot, accounts,
             hour: int = 9) -> list[Outcome]:
    """Run several dates in order, each on the state the one before left."""
    states = FEE_STATE.empty_table()
    results = []
    for day, rows in days:
        result = run(rows, snap, accounts, states, day, hour)
        states = result.tables["state"]
        results.append(result)
    return results
