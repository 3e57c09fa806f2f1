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
    """The accounts store through its Python client, a batch of operations per transaction.

    Each transaction waits for the primary and its synchronous standby, so a post is cut
    into transactions of at most ``batch_size`` operations (an account's operations all in
    one, in order) spread over ``threads`` connections (the client keeps one per thread):
    different accounts go in parallel, one account's never race each other.
    """

    def __init__(self, root: str, threads: int = 2, batch_size: int = 5_000) -> None:
        from actors.accounts_client import AccountsClient

        self._client = AccountsClient.start(root)
        self._threads = threads
        self._batch_size = batch_size

    def _map(self, function, items: list) -> list:
        from concurrent.futures import ThreadPoolExecutor

        if len(items) <= 1 or self._threads <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(self._threads) as pool:
            return list(pool.map(function, items))

    def _chunks(self, ids: np.ndarray) -> list[np.ndarray]:
        """Row numbers in transactions of about ``batch_size``, an account never split."""
        order = np.argsort(ids, kind="stable")
        if len(order) <= self._batch_size:
            return [order] if len(order) else []
        sorted_ids = ids[order]
        cuts = np.arange(self._batch_size, len(order), self._batch_size)
        # move each cut back to where its account's rows start
        cuts = np.searchsorted(sorted_ids, sorted_ids[cuts], side="left")
        cuts = np.unique(cuts[cuts > 0])
        return [part for part in np.split(order, cuts) if len(part)]

    def balances(self, account_ids: pa.Array) -> pa.Table:
        ids = np.unique(np.asarray(account_ids, dtype=np.int64))

        def read(part: np.ndarray) -> dict[int, int]:
            try:
                return self._client.balances(part.tolist())
            except GridfareError as exc:
                raise AccountsUnavailable(f"accounts store: reading {len(part)} balances "
                                          f"from account {part[0]}: {exc}") from exc

        found: dict[int, int] = {}
        for part in self._map(read, [ids[c] for c in self._chunks(ids)]):
            found.update(part)
        keys = np.array(sorted(found), np.int64)
        return pa.table({"account_id": pa.array(keys, pa.int64()),
                         "balance_fen": pa.array([found[a] for a in keys.tolist()],
                                                 pa.int64())}, schema=BALANCES)

    def post(self, operations: pa.Table) -> pa.Table:
        from gridfare.store.operations import Operation, Outcome

        columns = {name: operations[name].to_pylist() for name in
                   ("idempotency_key", "account_id", "kind", "amount_fen")}
        ids = np.asarray(columns["account_id"], np.int64)
        status = [""] * len(ids)
        balance = [0] * len(ids)

        def apply(rows: np.ndarray) -> None:
            rows = rows.tolist()
            try:
                ops = [Operation.make(columns["account_id"][i], columns["kind"][i],
                                      columns["amount_fen"][i], columns["idempotency_key"][i])
                       for i in rows]
                results = self._client.apply_batch(ops)
            except GridfareError as exc:
                raise AccountsUnavailable(
                    f"accounts store: batch of {len(rows)} operations from "
                    f"{columns['idempotency_key'][rows[0]]}: {exc}") from exc
            for i, result in zip(rows, results, strict=True):
                if result is None:
                    status[i] = Status.UNKNOWN_ACCOUNT.value
                else:
                    status[i] = (Status.APPLIED if result.outcome is Outcome.APPLIED
                                 else Status.REFUSED_FLOOR).value
                    balance[i] = result.balance_fen

        self._map(apply, self._chunks(ids))
        return pa.table({"idempotency_key": pa.array(columns["idempotency_key"], pa.string()),
                         "account_id": pa.array(ids, pa.int64()),
                         "status": pa.array(status, pa.string()),
                         "balance_fen": pa.array(balance, pa.int64())}, schema=ANSWERS)
