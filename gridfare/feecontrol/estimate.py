"""Stage 3, fee estimation: the fee since the last settlement, on the tariff engine.

The deduction is the increase of the month's energy charges: ``Tariff.charge`` of the
month's energy up to the new reading minus ``Tariff.charge`` of the month's energy up to the
last settlement, line by line (tiers, TOU periods, funds). So tiers fill from where the
account stands in its month (annual tiers from where it stands in its year), TOU energy is
priced per period, each line is rounded half-up as the bill rounds it, and the deductions of
a month add up exactly to those lines of its bill. It is the billing engine itself (one
implementation, the same ``charge`` over a whole group of accounts), not a second one for
prepaid. Monthly items (basic charge, power-factor adjustment, fixed and minimum charges)
are left to the month's bill.

A reading is priced at the month of the day it closes (a freeze at 00:00 of the 1st closes
the last day of the month before). Prices come from the batch's snapshot: one version for
the whole batch (``price_version`` of every decision).

Out: ``accounts`` with ``kwh_units``, ``deduction_fen``, the month and year energy after
settlement, and the flags the audit reads (``rollback``, ``missing_price``,
``not_metered``); ``stale`` marks readings not newer than the last settlement.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gridfare.feecontrol.batch import Context, FeeBatch
from gridfare.feecontrol.prepare import REGISTERS
from gridfare.tariffs import Tariff, Usage

__all__ = ["DEDUCTED_LINES", "estimate", "run"]

NAME = "estimate"
DEDUCTED_LINES: tuple[str, ...] = ("tier1_fen", "tier2_fen", "tier3_fen", "critical_fen",
                                   "peak_fen", "flat_fen", "valley_fen", "funds_fen")


def run(batch: FeeBatch, context: Context) -> FeeBatch:
    accounts = batch.table("accounts")
    columns = {name: accounts[name].to_numpy(zero_copy_only=False)
               for name in accounts.column_names}
    columns.update(estimate(columns, context.snapshot.prices))
    counts = {"estimated": int(columns["priced"].sum()),
              "stale_readings": int(columns["stale"].sum()),
              "opening_readings": int(columns["opening"].sum())}
    return batch.with_tables(counts, accounts=pa.table(columns))


def _month_of(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(year, month 1..12) of the day that ends at ``seconds`` (one second before)."""
    months = (seconds - 1).astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return 1970 + months // 12, months % 12 + 1


def estimate(c: dict[str, np.ndarray], prices: dict[str, Tariff] | object
             ) -> dict[str, np.ndarray]:
    """The estimation columns for the working columns ``c`` (see ``prepare``)."""
    n = len(c["account_id"])
    reading, state = c["has_reading"], c["has_state"]
    newer = c["measured_at"] > c["settled_at"]
    valid = reading & state & newer
    delta = c["new_units"] - c["settled_units"]
    deltas = {r: c[f"new_{r}"] - c[f"settled_{r}"] for r in REGISTERS}
    tou_rollback = np.zeros(n, bool)
    for r in REGISTERS:
        tou_rollback |= deltas[r] < 0
    rollback = valid & ((delta < 0) | (c["tou_registers"] & tou_rollback))
    codes = c["tariff_code"].astype(str) if n else np.empty(0, str)
    # Per distinct tariff code, not per account (a batch holds a handful of codes).
    distinct, code_index = np.unique(codes, return_inverse=True)
    known = np.array([code in prices for code in distinct.tolist()], dtype=bool)[code_index]
    tou_tariff = np.array([code in prices and bool(prices[code].tou_periods)
                           for code in distinct.tolist()], dtype=bool)[code_index]
    not_metered = valid & known & (tou_tariff != c["tou_registers"])
    priced = valid & ~rollback & known & ~not_metered

    year, month = _month_of(np.where(reading, c["measured_at"], 1))
    settled_year, settled_month = _month_of(np.where(state, c["settled_at"], 1))
    same_year = state & (year == settled_year)
    same_month = same_year & (month == settled_month)
    base_month = np.where(same_month, c["month_units"], 0)
    base_tou = {r: np.where(same_month, c[f"month_{r}"], 0) for r in REGISTERS}
    base_year = np.where(same_month, c["year_units"],
                         np.where(same_year, c["year_units"] + c["month_units"], 0))

    deduction = np.zeros(n, np.int64)
    groups = np.flatnonzero(priced)
    keys = sorted({(codes[i], int(month[i])) for i in groups.tolist()})
    for code, group_month in keys:
        rows = groups[(codes[groups] == code) & (month[groups] == group_month)]
        tariff = prices[code]
        tou = bool(tariff.tou_periods)

        def usage(add: bool, rows: np.ndarray = rows, tou: bool = tou,
                  group_month: int = group_month) -> Usage:
            step = 1 if add else 0
            periods = {r: (base_tou[r][rows] + step * deltas[r][rows]) if tou
                       else np.zeros(len(rows), np.int64) for r in REGISTERS}
            return Usage.of(group_month, len(rows),
                            kwh=base_month[rows] + step * delta[rows],
                            tou_metered=np.full(len(rows), tou), ytd_kwh=base_year[rows],
                            **periods)

        before, after = tariff.charge(usage(False)), tariff.charge(usage(True))
        deduction[rows] = sum(after[line] - before[line] for line in DEDUCTED_LINES)

    settle = priced | (reading & ~state)  # an account's first reading opens its settlement
    return {
        "valid": valid,
        "stale": reading & state & ~newer,
        "opening": reading & ~state,
        "rollback": rollback,
        "missing_price": valid & ~known,
        "not_metered": not_metered,
        "priced": priced,
        "settle": settle,
        "kwh_units": np.where(priced, delta, 0),
        "deduction_fen": deduction,
        "days": np.where(valid, (c["measured_at"] - c["settled_at"]) // 86_400, 0),
        "next_month_units": np.where(priced, base_month + delta, 0),
        "next_year_units": np.where(priced, base_year, 0),
        **{f"next_month_{r}": np.where(priced, base_tou[r] + deltas[r], 0) for r in REGISTERS},
    }
