"""Fee control's adapters to the accounts service (``gridfare.feecontrol.ports.AccountsPort``).

``AccountsSpec`` names the service so that every shard task opens its own client:

- ``store``: the accounts store (``actors.accounts_client.AccountsClient``, PostgreSQL
  primary + synchronous standby), by its root directory;
- ``actor``: a named Ray actor with the port's two methods (``balances``, ``post``), for an
  accounts service that runs as actors.

Lower-layer errors become ``AccountsUnavailable``; an operation refused at the overdraft
floor is an answer (``refused_floor``), not an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import ray

from actors import NAMESPACE
from gridfare.errors import AccountsUnavailable, ConfigError, GridfareError
from gridfare.feecontrol.ports import ANSWERS, BALANCES, AccountsPort, Status

__all__ = ["AccountsSpec", "StoreAccounts", "open_accounts"]


@dataclass(frozen=True)
class AccountsSpec:
    kind: str  # "store" or "actor"
    target: str  # the store's root directory, or the actor's name

    def __post_init__(self) -> None:
        if self.kind not in ("store", "actor"):
            raise ConfigError(f"accounts: kind {self.kind!r} is not 'store' or 'actor'")

    @classmethod
    def parse(cls, text: str) -> AccountsSpec:
        """``store:/data/store`` or ``actor:NAME``."""
        kind, sep, target = text.partition(":")
        if not sep or not target:
            raise ConfigError(f"--accounts {text!r}: expected store:ROOT or actor:NAME")
        return cls(kind, target)


def open_accounts(spec: AccountsSpec) -> AccountsPort:
    if spec.kind == "actor":
        return _ActorAccounts(spec.target)
    return StoreAccounts(spec.target)


class _ActorAccounts:
    def __init__(self, name: str) -> None:
        try:
            self._actor = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError as exc:
            raise AccountsUnavailable(f"accounts actor {name!r} not found") from exc

    def balances(self, account_ids: pa.Array) -> pa.Table:
        return ray.get(self._actor.balances.remote(account_ids))

    def post(self, operations: pa.Table) -> pa.Table:
        return ray.get(self._actor.post.remote(operations))


class StoreAccounts:
    """The accounts store through its Python client, one operation at a time."""

    def __init__(self, root: str) -> None:
        from actors.accounts_client import AccountsClient

        self._client = AccountsClient.start(root)

    def balances(self, account_ids: pa.Array) -> pa.Table:
        from gridfare.errors import UnknownAccount

        ids, fen = [], []
        for account in np.asarray(account_ids, dtype=np.int64).tolist():
            try:
                fen.append(self._client.get(account).balance_fen)
                ids.append(account)
            except UnknownAccount:
                continue
            except GridfareError as exc:
                raise AccountsUnavailable(f"accounts store: reading {account}: {exc}") from exc
        return pa.table({"account_id": pa.array(ids, pa.int64()),
                         "balance_fen": pa.array(fen, pa.int64())}, schema=BALANCES)

    def post(self, operations: pa.Table) -> pa.Table:
        from gridfare.store.operations import Operation, Outcome

        from gridfare.errors import UnknownAccount

        rows = []
        for op in operations.to_pylist():
            try:
                result = self._client.apply(Operation.make(
                    op["account_id"], op["kind"], op["amount_fen"], op["idempotency_key"]))
            except UnknownAccount:
                rows.append({**_answer(op), "status": Status.UNKNOWN_ACCOUNT.value,
                             "balance_fen": 0})
                continue
            except GridfareError as exc:
                raise AccountsUnavailable(
                    f"accounts store: {op['kind']} {op['idempotency_key']}: {exc}") from exc
            status = (Status.APPLIED if result.outcome is Outcome.APPLIED
                      else Status.REFUSED_FLOOR)
            rows.append({**_answer(op), "status": status.value,
                         "balance_fen": result.balance_fen})
        return pa.Table.from_pylist(rows, schema=ANSWERS)


def _answer(op: dict) -> dict:
    return {"idempotency_key": op["idempotency_key"], "account_id": op["account_id"]}
