"""What fee control needs from the accounts service: a narrow port, passed in.

The accounts service (PostgreSQL behind stateless processors) holds the balances. Fee
control reads a batch of balances and posts a batch of operations (payments seen in the
feed, deductions it estimated), each with an idempotency key: a retried key is applied once
and answers what it answered the first time, so a rerun or a retry after a lost answer never
doubles money. The real adapter lives with the accounts client; unit tests pass a small
in-memory one.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

import pyarrow as pa

__all__ = ["ANSWERS", "BALANCES", "OPERATIONS", "AccountsPort", "Status"]

OPERATIONS = pa.schema([
    pa.field("idempotency_key", pa.string(), nullable=False),
    pa.field("account_id", pa.int64(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # "payment" or "deduction"
    pa.field("amount_fen", pa.int64(), nullable=False),  # > 0
])
ANSWERS = pa.schema([
    pa.field("idempotency_key", pa.string(), nullable=False),
    pa.field("account_id", pa.int64(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # a Status value
    pa.field("balance_fen", pa.int64(), nullable=False),  # after the operation (or as is)
])
BALANCES = pa.schema([
    pa.field("account_id", pa.int64(), nullable=False),
    pa.field("balance_fen", pa.int64(), nullable=False),
])


class Status(str, Enum):
    """How the accounts service answered one operation."""

    APPLIED = "applied"  # applied now or by an earlier post of the same key
    REFUSED_FLOOR = "refused_floor"  # a deduction that would cross the overdraft floor
    UNKNOWN_ACCOUNT = "unknown_account"


class AccountsPort(Protocol):
    """Balances and operations of prepaid accounts, a batch at a time."""

    def balances(self, account_ids: pa.Array) -> pa.Table:
        """``BALANCES`` rows of the accounts given that exist (others are absent)."""
        ...

    def post(self, operations: pa.Table) -> pa.Table:
        """Apply ``OPERATIONS`` rows exactly once each; one ``ANSWERS`` row per operation."""
        ...
