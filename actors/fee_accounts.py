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
import pyarrow.compute as pc
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

        def read(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            try:
                return self._client.balances_columns(part)
            except GridfareError as exc:
                raise AccountsUnavailable(f"accounts store: reading {len(part)} balances "
                                          f"from account {part[0]}: {exc}") from exc

        parts = self._map(read, [ids[c] for c in self._chunks(ids)])
        found = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        fen = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        order = np.argsort(found, kind="stable")
        return pa.table({"account_id": pa.array(found[order], pa.int64()),
                         "balance_fen": pa.array(fen[order], pa.int64())}, schema=BALANCES)

    def post(self, operations: pa.Table) -> pa.Table:
        """Each transaction whose accounts appear once goes as arrays, planned by the
        server (``AccountsClient.apply_columns``); one with an account twice (two payments
        of a day) as operations, in order (``apply_batch``)."""
        from gridfare.store.operations import AnswerCode, Operation, Outcome

        keys = operations["idempotency_key"].to_pylist()
        ids = np.asarray(operations["account_id"].to_numpy(), np.int64)
        amount = np.asarray(operations["amount_fen"].to_numpy(), np.int64)
        kind = operations["kind"]
        deduction = pc.equal(kind, "deduction").to_numpy(zero_copy_only=False)
        known = deduction | pc.equal(kind, "payment").to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~known | (amount <= 0))
        if len(bad):
            i = int(bad[0])
            raise AccountsUnavailable(
                f"accounts store: operation {keys[i]}: kind {kind[i].as_py()!r} and "
                f"amount_fen {int(amount[i])} must be a payment or deduction of > 0 fen")
        signed = np.where(deduction, -amount, amount)
        code = np.zeros(len(ids), np.int16)
        balance = np.zeros(len(ids), np.int64)

        def apply(rows: np.ndarray) -> None:
            part = ids[rows]
            try:
                if len(np.unique(part)) == len(part):
                    answers = self._client.apply_columns(part, [keys[i] for i in rows.tolist()],
                                                         signed[rows])
                    code[rows], balance[rows] = answers.code, answers.balance_fen
                    return
                results = self._client.apply_batch([
                    Operation.make(int(ids[i]), "deduction" if deduction[i] else "payment",
                                   int(amount[i]), keys[i]) for i in rows.tolist()])
            except GridfareError as exc:
                raise AccountsUnavailable(
                    f"accounts store: batch of {len(rows)} operations from "
                    f"{keys[int(rows[0])]}: {exc}") from exc
            for i, result in zip(rows.tolist(), results, strict=True):
                if result is not None:
                    code[i] = (AnswerCode.APPLIED if result.outcome is Outcome.APPLIED
                               else AnswerCode.REFUSED)
                    balance[i] = result.balance_fen

        self._map(apply, self._chunks(ids))
        status = np.array([Status.UNKNOWN_ACCOUNT.value, Status.APPLIED.value,
                           Status.REFUSED_FLOOR.value, Status.APPLIED.value,
                           Status.REFUSED_FLOOR.value], object)[code]
        return pa.table({"idempotency_key": operations["idempotency_key"],
                         "account_id": pa.array(ids, pa.int64()),
                         "status": pa.array(status, pa.string()),
                         "balance_fen": pa.array(balance, pa.int64())}, schema=ANSWERS)
