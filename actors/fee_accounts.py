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
from gridfare import errors
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
    """The accounts store through its Python client, one operation per call.

    Each call waits for the primary and its synchronous standby (about 1.6 ms idle), so a
    batch is spread over ``threads`` connections (the client keeps one per thread): an
    account's operations stay in order on one thread, different accounts go in parallel.
    """

    def __init__(self, root: str, threads: int = 8) -> None:
        from actors.accounts_client import AccountsClient

        self._client = AccountsClient.start(root)
        self._threads = threads

    def _map(self, function, items: list) -> list:
        from concurrent.futures import ThreadPoolExecutor

        if len(items) <= 1 or self._threads <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(self._threads) as pool:
            return list(pool.map(function, items))

    def balances(self, account_ids: pa.Array) -> pa.Table:
        def read(account: int) -> int | None:
            try:
                return self._client.get(account).balance_fen
            except errors.UnknownAccount:
                return None
            except GridfareError as exc:
                raise AccountsUnavailable(f"accounts store: reading {account}: {exc}") from exc

        ids = np.asarray(account_ids, dtype=np.int64).tolist()
        found = [(a, fen) for a, fen in zip(ids, self._map(read, ids), strict=True)
                 if fen is not None]
        return pa.table({"account_id": pa.array([a for a, _ in found], pa.int64()),
                         "balance_fen": pa.array([f for _, f in found], pa.int64())},
                        schema=BALANCES)

    def post(self, operations: pa.Table) -> pa.Table:
        ops = operations.to_pylist()
        groups: dict[int, list[int]] = {}
        for index, op in enumerate(ops):
            groups.setdefault(op["account_id"], []).append(index)
        answers: list[dict | None] = [None] * len(ops)

        def apply(indices: list[int]) -> None:
            for index in indices:
                answers[index] = self._apply(ops[index])

        self._map(apply, list(groups.values()))
        return pa.Table.from_pylist(answers, schema=ANSWERS)

    def _apply(self, op: dict) -> dict:
        from gridfare.store.operations import Operation, Outcome

        try:
            result = self._client.apply(Operation.make(
                op["account_id"], op["kind"], op["amount_fen"], op["idempotency_key"]))
        except errors.UnknownAccount:
            return {**_answer(op), "status": Status.UNKNOWN_ACCOUNT.value, "balance_fen": 0}
        except GridfareError as exc:
            raise AccountsUnavailable(
                f"accounts store: {op['kind']} {op['idempotency_key']}: {exc}") from exc
        status = Status.APPLIED if result.outcome is Outcome.APPLIED else Status.REFUSED_FLOOR
        return {**_answer(op), "status": status.value, "balance_fen": result.balance_fen}


def _answer(op: dict) -> dict:
    return {"idempotency_key": op["idempotency_key"], "account_id": op["account_id"]}
