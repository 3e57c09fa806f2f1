"""Stage 5, benchmark comparison: post the deductions, compare balances with the benchmarks.

Each deduction is posted with the key ``ded:<account>:<settled_at>:<measured_at>`` (the
interval it settles), so a retried or rerun batch deducts it once. The balance after it,
and the days of credit left at the fee of the interval, are compared with the account's
class benchmarks (``Thresholds``): under ``warn_fen`` or fewer than ``warn_days`` of credit
is ``warning``, under ``remind_fen`` is ``reminder``, under ``disconnect_fen`` (the
overdraft floor) is ``grace`` until that has lasted ``grace_days`` days and ``disconnect``
after. A deduction the accounts service refuses at its overdraft floor is not applied and
the interval stays unsettled (its energy is deducted later); the account is compared as if
it had been, so it is not left connected on credit it does not have.

Out: ``accounts`` with ``balance_after``, ``projected_fen``, ``level``, ``below_since``.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gridfare.errors import AccountsUnavailable
from gridfare.feecontrol.batch import Context, FeeBatch
from gridfare.feecontrol.ports import OPERATIONS, Status

__all__ = ["Level", "levels", "run"]

NAME = "benchmark"
_EPOCH = dt.date(1970, 1, 1)


class Level(IntEnum):
    """Where a balance stands against its benchmarks (higher is worse)."""

    NORMAL = 0
    WARNING = 1
    REMINDER = 2
    GRACE = 3  # under the disconnect level, within the grace period
    DISCONNECT = 4


LEVEL_NAMES = np.array([level.name.lower() for level in Level], dtype=object)


def run(batch: FeeBatch, context: Context) -> FeeBatch:
    accounts = batch.table("accounts")
    c = {name: accounts[name].to_numpy(zero_copy_only=False) for name in accounts.column_names}
    posted, refused, balance = _post(c, context)
    c["deduction_fen"] = np.where(posted, c["deduction_fen"], 0)
    owed = np.where(refused, batch.table("accounts")["deduction_fen"].to_numpy(), 0)
    c["balance_after"] = balance
    c["projected_fen"] = balance - owed
    c["settle"] = c["settle"] & ~refused
    c["refused"] = refused
    run_day = (batch.run_date - _EPOCH).days
    level, below_since = levels(c, context, run_day, owed)
    c["level"] = level
    c["below_since"] = below_since
    counts = {"deductions_posted": int(posted.sum()), "deductions_refused": int(refused.sum())}
    return batch.with_tables(counts, accounts=pa.table(c))


def levels(c: dict[str, np.ndarray], context: Context, run_day: int, owed: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(Level per account, first day under the disconnect level or -1)."""
    n = len(c["account_id"])
    warn, remind, floor = (np.zeros(n, np.int64) for _ in range(3))
    grace, days_warn = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for kind, thresholds in context.snapshot.thresholds.items():
        rows = c["customer_kind"] == kind
        warn[rows], remind[rows] = thresholds.warn_fen, thresholds.remind_fen
        floor[rows], grace[rows] = thresholds.disconnect_fen, thresholds.grace_days
        days_warn[rows] = thresholds.warn_days
    projected = c["balance_after"] - owed
    fee = c["deduction_fen"] + owed
    days = c["days"]
    # Days of credit left < warn_days, in integers: projected / (fee / days) < warn_days.
    short = (fee > 0) & (days > 0) & (projected * days < days_warn * fee)
    level = np.full(n, Level.NORMAL, np.int64)
    level[(projected < warn) | short] = Level.WARNING
    level[projected < remind] = Level.REMINDER
    below = projected < floor
    since = c["below_since"]
    below_since = np.where(below, np.where(since >= 0, since, run_day), -1)
    over = below & (run_day - below_since >= grace)
    level[below & ~over] = Level.GRACE
    level[over] = Level.DISCONNECT
    return level, below_since


def _post(c: dict[str, np.ndarray], context: Context
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Post the deductions: (posted, refused, balance after) per account."""
    n = len(c["account_id"])
    due = ~c["held"] & (c["deduction_fen"] > 0)
    rows = np.flatnonzero(due)
    posted, refused = np.zeros(n, bool), np.zeros(n, bool)
    balance = c["balance_fen"].astype(np.int64).copy()
    if not len(rows):
        return posted, refused, balance
    ids = c["account_id"][rows]
    keys = [f"ded:{a}:{s}:{m}" for a, s, m in zip(
        ids.tolist(), c["settled_at"][rows].tolist(), c["measured_at"][rows].tolist(),
        strict=True)]
    operations = pa.table({
        "idempotency_key": pa.array(keys, pa.string()), "account_id": pa.array(ids, pa.int64()),
        "kind": pa.array(["deduction"] * len(rows), pa.string()),
        "amount_fen": pa.array(c["deduction_fen"][rows], pa.int64())}, schema=OPERATIONS)
    answers = context.accounts.post(operations)
    if answers["idempotency_key"].to_pylist() != keys:
        raise AccountsUnavailable(f"accounts service: {answers.num_rows} answers to "
                                  f"{len(keys)} deductions, not one each in order")
    status = answers["status"]
    applied = pc.equal(status, Status.APPLIED.value).to_numpy(zero_copy_only=False)
    posted[rows] = applied
    refused[rows] = pc.equal(status, Status.REFUSED_FLOOR.value).to_numpy(
        zero_copy_only=False)
    balance[rows] = np.where(applied | refused[rows], answers["balance_fen"].to_numpy(),
                             balance[rows])
    return posted, refused, balance
