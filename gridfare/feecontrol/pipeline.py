"""The six stages in order, and what a run leaves: decisions, commands, state.

``STAGES`` is the one ordered registry; ``run_stages`` runs them over a batch of collected
records and ``outcome`` turns the final batch into the run's tables (``FEE_DECISIONS``,
``FEE_COMMANDS``, ``FEE_REJECTS``, ``FEE_HOLDS`` and the accounts' new ``FEE_STATE``, the
earlier state of accounts not decided carried over unchanged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from datasets.schemas import FEE_DECISIONS, FEE_STATE
from gridfare.feecontrol import audit, benchmark, estimate, prepare, preprocess, strategy
from gridfare.feecontrol.batch import Context, FeeBatch, to_kwh
from gridfare.feecontrol.benchmark import LEVEL_NAMES

__all__ = ["STAGES", "Outcome", "Stage", "outcome", "run_stages"]


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[FeeBatch, Context], FeeBatch]


STAGES: tuple[Stage, ...] = tuple(
    Stage(module.NAME, module.run)
    for module in (preprocess, prepare, estimate, audit, benchmark, strategy))


@dataclass(frozen=True)
class Outcome:
    """Everything one run writes, by FeeControlStore table name."""

    tables: dict[str, pa.Table]
    counts: dict[str, int]


def run_stages(records: pa.Table, run_date: dt.date, decide_at: dt.datetime,
               context: Context, stages: tuple[Stage, ...] = STAGES) -> FeeBatch:
    """Run ``stages`` in order over ``records`` (COLLECTED)."""
    batch = FeeBatch(run_date=run_date, decide_at=decide_at, tables={"records": records})
    for stage in stages:
        batch = stage.run(batch, context)
    return batch


def outcome(batch: FeeBatch, context: Context) -> Outcome:
    accounts = batch.table("accounts")
    c = {name: accounts[name].to_numpy(zero_copy_only=False) for name in accounts.column_names}
    n = len(c["account_id"])
    run_date = pa.array([batch.run_date] * n, pa.date32())
    decisions = pa.table({
        "account_id": pa.array(c["account_id"], pa.int64()),
        "customer_kind": pa.array(c["customer_kind"].tolist(), pa.string()),
        "kwh": pa.array(to_kwh(np.where(c["settle"], c["kwh_units"], 0))),
        "deduction_fen": pa.array(c["deduction_fen"], pa.int64()),
        "balance_fen": pa.array(c["balance_after"], pa.int64()),
        "level": pa.array(LEVEL_NAMES[c["level"]].tolist(), pa.string()),
        "state": pa.array(c["next_state"].tolist(), pa.string()),
        "action": pa.array([a or None for a in c["action"].tolist()], pa.string()),
        "price_version": pa.array(np.full(n, context.snapshot.price_version, np.int64)),
        "run_date": run_date,
    }, schema=FEE_DECISIONS)
    return Outcome(
        tables={"decisions": decisions, "commands": batch.table("commands"),
                "rejects": batch.table("rejects"), "holds": batch.table("holds"),
                "state": _next_state(c, context.states, batch.run_date)},
        counts=dict(batch.counts))


def _next_state(c: dict[str, np.ndarray], before: pa.Table, run_date: dt.date) -> pa.Table:
    """The decided accounts' new state, and every other account's as it was."""
    settle = c["settle"]
    keep = c["has_state"] | settle  # an account with neither has nothing to remember yet
    rows = np.flatnonzero(keep)

    def pick(new: str, old: str) -> np.ndarray:
        return np.where(settle, c[new], c[old])[rows]

    opening = c["opening"] & settle
    seconds = pick("measured_at", "settled_at").astype("datetime64[s]")
    columns = {
        "account_id": pa.array(c["account_id"][rows], pa.int64()),
        "settled_at": pa.array(seconds, pa.timestamp("s")),
        "register_kwh": pa.array(to_kwh(pick("new_units", "settled_units"))),
    }
    tou = np.where(settle, c["tou_registers"], c["state_tou"])[rows]
    for register in prepare.REGISTERS:
        values = to_kwh(pick(f"new_{register}", f"settled_{register}"))
        columns[f"{register}_kwh"] = pa.array(values, pa.float64(), mask=~tou)
    month = {"month_kwh": ("next_month_units", "month_units"),
             **{f"month_{r}_kwh": (f"next_month_{r}", f"month_{r}") for r in prepare.REGISTERS},
             "year_kwh": ("next_year_units", "year_units")}
    for name, (new, old) in month.items():
        values = np.where(opening, 0, np.where(settle, c[new], c[old]))[rows]
        columns[name] = pa.array(to_kwh(values))
    below = c["below_since"][rows]
    notice = c["notice_at"][rows]
    columns.update({
        "state": pa.array(c["next_state"][rows].tolist(), pa.string()),
        "below_since": pa.array(below.astype(np.int32), pa.int32(), mask=below < 0).cast(
            pa.date32()),
        "notice_at": pa.array(notice.astype("datetime64[s]"), pa.timestamp("s"),
                              mask=notice < 0),
        "run_date": pa.array([run_date] * len(rows), pa.date32()),
    })
    decided = pa.table(columns, schema=FEE_STATE)
    ids = decided["account_id"].to_numpy()
    others = before.filter(pa.array(~np.isin(before["account_id"].to_numpy(), ids)))
    merged = pa.concat_tables([others.cast(FEE_STATE), decided])
    return merged.take(pa.array(np.argsort(merged["account_id"].to_numpy(), kind="stable")))
