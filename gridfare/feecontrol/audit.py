"""Stage 4, fee audit: hold what cannot be trusted; a held record never leads to a disconnect.

An account is held for review, with the first rule it breaks, when: the accounts service
has no balance for it (``no_balance``), its tariff has no price parameters
(``missing_price``), its meter lacks the registers its tariff prices (``input_not_metered``),
a register went backwards (``register_rollback``), the meter reported tampering
(``tamper``), the reading closes a gap longer than the audit allows (``reading_gap``), or
the energy a day is implausible for its customer class (``implausible_consumption``). A
held account is not deducted and its settlement does not move (the energy stays to be
settled once reviewed); the strategy stage may warn or remind it, never disconnect it.

Out: ``accounts`` with ``held`` and the deduction and settlement cleared where held, and
``holds`` (FEE_HOLDS).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from datasets.schemas import FEE_HOLDS
from gridfare.feecontrol.batch import Context, FeeBatch

__all__ = ["RULES", "run"]

NAME = "audit"
RULES: tuple[str, ...] = ("no_balance", "missing_price", "input_not_metered",
                          "register_rollback", "tamper", "reading_gap",
                          "implausible_consumption")


def run(batch: FeeBatch, context: Context) -> FeeBatch:
    accounts = batch.table("accounts")
    c = {name: accounts[name].to_numpy(zero_copy_only=False) for name in accounts.column_names}
    rules = context.snapshot.audit
    n = len(c["account_id"])
    limit = np.zeros(n, np.int64)
    for kind, kwh in rules.max_daily_kwh.items():
        limit[c["customer_kind"] == kind] = kwh * 100
    broken = [
        ~c["has_balance"],
        c["missing_price"],
        c["not_metered"],
        c["rollback"],
        c["tamper"],
        c["valid"] & (c["days"] > rules.max_gap_days),
        c["priced"] & (c["kwh_units"] > limit * np.maximum(c["days"], 1)),
    ]
    rule = np.full(n, -1, np.int64)
    for index, mask in enumerate(broken):
        rule[(rule < 0) & mask] = index
    held = rule >= 0
    c["held"] = held
    c["deduction_fen"] = np.where(held, 0, c["deduction_fen"])
    c["settle"] = c["settle"] & ~held
    rows = np.flatnonzero(held)
    names = np.array(RULES, dtype=object)[rule[rows]].tolist()
    details = [f"{name}: account {account}, {kwh / 100:.2f} kWh over {days} days"
               for name, account, kwh, days in zip(
                   names, c["account_id"][rows].tolist(), c["kwh_units"][rows].tolist(),
                   c["days"][rows].tolist(), strict=True)]
    holds = pa.table({
        "account_id": pa.array(c["account_id"][rows], pa.int64()),
        "rule": pa.array(names, pa.string()),
        "detail": pa.array(details, pa.string()),
        "run_date": pa.array([batch.run_date] * len(rows), pa.date32()),
    }, schema=FEE_HOLDS)
    return batch.with_tables({"held": len(rows)}, accounts=pa.table(c), holds=holds)
