"""A small in-memory accounts service for pure unit tests only (habit 10).

It keeps the port's promises: an operation is applied once per idempotency key and a retry
answers the first answer; a deduction that would take the balance under ``floor_fen`` is
refused and not applied.
"""

from __future__ import annotations

import pyarrow as pa

from gridfare.feecontrol.ports import ANSWERS, BALANCES


class MemoryAccounts:
    def __init__(self, balances: dict[int, int], floor_fen: int = -10**12) -> None:
        self.balance = dict(balances)
        self.floor_fen = floor_fen
        self.answers: dict[str, tuple[int, str, int]] = {}
        self.reads = 0
        self.posts = 0

    def balances(self, account_ids: pa.Array) -> pa.Table:
        self.reads += 1
        ids = [a for a in account_ids.to_pylist() if a in self.balance]
        return pa.table({"account_id": ids, "balance_fen": [self.balance[a] for a in ids]},
                        schema=BALANCES)

    def post(self, operations: pa.Table) -> pa.Table:
        self.posts += 1
        rows = []
        for op in operations.to_pylist():
            key = op["idempotency_key"]
            if key not in self.answers:
                self.answers[key] = self._apply(op)
            account, status, balance = self.answers[key]
            rows.append({"idempotency_key": key, "account_id": account, "status": status,
                         "balance_fen": balance})
        return pa.Table.from_pylist(rows, schema=ANSWERS)

    def _apply(self, op: dict) -> tuple[int, str, int]:
        account = op["account_id"]
        if account not in self.balance:
            return account, "unknown_account", 0
        sign = 1 if op["kind"] == "payment" else -1
        after = self.balance[account] + sign * op["amount_fen"]
        if sign < 0 and after < self.floor_fen:
            return account, "refused_floor", self.balance[account]
        self.balance[account] = after
        return account, "applied", after
