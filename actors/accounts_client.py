"""The accounts Python client: payments, deductions, refunds and reads on the store's
current primary, with the transaction in ``backends.accounts_sql``.

The client caches the coordinator's answer (epoch, primary address) and one connection per
thread; that is all it keeps between calls. A call that finds the primary gone
(``StoreUnavailable``), the epoch moved on (``StaleEpoch``) or no standby in sync yet
(``NotReplicated``) asks the coordinator again and is retried with the same idempotency key
until ``retry_s`` has passed, so a failover costs a wait, never a lost or doubled
operation; past ``retry_s`` the last of those errors is raised.

    client = AccountsClient.start("/data/store", standbys=1)
    client.open(42)
    client.payment(42, 10_000, key="pay-42-1")
    client.deduction(42, 2_500, key="fee-42-2026-10")
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence

import ray

from actors import NAMESPACE
from actors.state_replica import replica_actor_name
from actors.store_coordinator import StoreCoordinator, coordinator_name
from backends.accounts_sql import AccountsDB
from backends.postgres import ServerAddress, connect
from backends.store_root import StoreRoot
from gridfare.errors import (
    GridfareError,
    IdempotencyConflict,
    InvalidInput,
    NotReplicated,
    StaleEpoch,
    StoreUnavailable,
    UnknownAccount,
    VersionConflict,
)
from gridfare.store.config import StoreConfig
from gridfare.store.operations import (
    Account,
    ColumnAnswers,
    Operation,
    OperationKind,
    OperationResult,
)

__all__ = ["AccountsClient", "answer_of", "connect_accounts", "get_coordinator",
           "remove_store"]

RETRYABLE = (StoreUnavailable, StaleEpoch, NotReplicated)
# raised by a batch for one of its operations (the plan refuses the whole batch and nothing
# is written): the batch is then answered one operation at a time
ONE_OP_FAILS_BATCH = (IdempotencyConflict, InvalidInput, VersionConflict)
MAX_REPLICAS = 5  # a primary and at most four standbys (StoreConfig.standbys)
STATEMENT_TIMEOUT = "-c statement_timeout=30000"
# the event loop's connections run the set statement with its generic plan: under the
# default plan_cache_mode (auto) PostgreSQL 18 planned that prepared statement afresh at
# every execution here (pg_prepared_statements: 0 generic, 315 custom plans for 315
# batches of 5), and the plan is most of a small batch's cost (wall per statement with
# synchronous_commit local, same run: 5 rows 1.63 -> 0.95 ms, 2 rows 2.2 -> 0.8-1.3 ms;
# 64 and 500 rows the same within noise); apply's two statements are unchanged
ASYNC_OPTIONS = f"{STATEMENT_TIMEOUT} -c plan_cache_mode=force_generic_plan"


def get_coordinator(root: str, config: Mapping[str, object] | None = None,
                    runtime_env: dict | None = None):
    """The store's coordinator, created (and the store with it) if it is not running."""
    store = StoreRoot(root)
    options = {"runtime_env": runtime_env} if runtime_env else {}
    return StoreCoordinator.options(
        name=coordinator_name(store), namespace=NAMESPACE, get_if_exists=True,
        lifetime="detached", **options).remote(str(store.path),
                                               dict(config) if config else None)


def connect_accounts(store: str, cluster: str | None = "auto", create: bool = False,
                     retry_s: float = 20.0, **config) -> AccountsClient:
    """Join the cluster (``actors.attach``) and open the store under ``store``; with
    ``create`` the store is started when it is not running (with ``config``), else a store
    that is not running is ``StoreUnavailable``."""
    from actors.attach import attach

    attach(cluster)
    if not create:
        try:
            ray.get_actor(coordinator_name(StoreRoot(store)), namespace=NAMESPACE)
        except ValueError:
            raise StoreUnavailable(
                f"no accounts store runs for {StoreRoot(store).path} on this cluster: start "
                "it with `gridfare accounts start --store DIR`") from None
    return AccountsClient.start(store, retry_s=retry_s, **config)


def remove_store(root: str) -> None:
    """Stop the store's servers and end its actors and placement group (its data stays).
    Works on a store whose coordinator never finished starting, too."""
    from ray.util.placement_group import get_placement_group, remove_placement_group

    store = StoreRoot(root)
    with contextlib.suppress(Exception):
        coordinator = ray.get_actor(coordinator_name(store), namespace=NAMESPACE)
        with contextlib.suppress(Exception):
            ray.get(coordinator.shutdown.remote(), timeout=60)
        ray.kill(coordinator)
    for index in range(MAX_REPLICAS):
        with contextlib.suppress(Exception):
            replica = ray.get_actor(replica_actor_name(store, f"pg{index}"),
                                    namespace=NAMESPACE)
            with contextlib.suppress(Exception):
                ray.get(replica.stop.remote(), timeout=30)
            ray.kill(replica)
    with contextlib.suppress(Exception):
        remove_placement_group(get_placement_group(f"gridfare-store-{store.suffix}"))


class AccountsClient:
    """Operations on the store's primary. Embedded: the coordinator says where it is.
    Production (``from_dsn``): a libpq multi-host DSN with ``target_session_attrs=
    read-write`` reaches whichever node the HA tooling made primary; the epoch is the one
    in its ``gridfare_store_meta`` row."""

    def __init__(self, coordinator=None, retry_s: float = 20.0,
                 commit_timeout_s: float | None = None, *, dsn: str | None = None,
                 config: StoreConfig | None = None) -> None:
        if (coordinator is None) == (dsn is None):
            raise InvalidInput("accounts client: give a coordinator or a DSN, not both")
        self._coordinator = coordinator
        self._dsn = dsn
        self.root = None if coordinator is None else \
            ray.get(coordinator.describe.remote())["root"]
        self.retry_s = retry_s
        if config is None:
            config = StoreConfig.from_mapping(ray.get(coordinator.config.remote())) \
                if coordinator is not None else StoreConfig()
        self._config = config
        self._commit_timeout_s = commit_timeout_s or config.commit_timeout_s
        self._current: tuple[int, str] | None = None
        self._idle_async: list = []  # apply_each_async's connections (one loop's)
        self.async_options = ASYNC_OPTIONS  # those connections' server settings
        self._local = threading.local()
        self._lock = threading.Lock()

    @classmethod
    def start(cls, root: str, retry_s: float = 20.0, runtime_env: dict | None = None,
              **config) -> AccountsClient:
        """Create (or find) the store under ``root`` on the joined Ray cluster."""
        return cls(get_coordinator(root, config or None, runtime_env), retry_s=retry_s)

    @classmethod
    def from_dsn(cls, dsn: str, retry_s: float = 20.0, **config) -> AccountsClient:
        """An existing HA PostgreSQL (e.g. Patroni); no Ray needed, the coordinator off."""
        return cls(None, retry_s, dsn=dsn, config=StoreConfig.from_mapping(config))

    # ---- where the primary is --------------------------------------------------------
    def _refresh(self) -> tuple[int, str]:
        """``(epoch, dsn)`` of the primary, asked afresh."""
        with self._lock:
            if self._coordinator is not None:
                epoch, _, host, port = ray.get(self._coordinator.current.remote(),
                                               timeout=30)
                self._current = (epoch, ServerAddress(host, port).dsn("gridfare-accounts"))
            else:
                from backends.accounts_sql import read_epoch

                with connect(self._dsn, autocommit=True) as conn:
                    self._current = (read_epoch(conn), self._dsn)
            return self._current

    def _db(self) -> AccountsDB:
        epoch, dsn = self._current or self._refresh()
        db = getattr(self._local, "db", None)
        if db is None or db.epoch != epoch or self._local.dsn != dsn:
            self._drop()
            conn = connect(dsn, autocommit=True, options=STATEMENT_TIMEOUT)
            db = AccountsDB(conn, epoch, self._config.replication, self._may_commit_alone,
                            self._commit_timeout_s)
            self._local.db, self._local.dsn = db, dsn
        return db

    def _drop(self) -> None:
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            with contextlib.suppress(Exception):
                db.conn.close()

    def _may_commit_alone(self, epoch: int) -> bool:
        return self._refresh()[0] == epoch

    def _retrying(self, call):
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                return call(self._db())
            except RETRYABLE:
                self._drop()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
                # the coordinator may be restarting: ask again next round
                with contextlib.suppress(Exception):
                    self._refresh()

    # ---- operations ----------------------------------------------------------------------
    def apply(self, op: Operation) -> OperationResult:
        """Apply ``op`` exactly once (retries return its first answer); a refused
        deduction raises ``Overdraft``."""
        return self._retrying(lambda db: db.apply(op)).raise_if_refused()

    def payment(self, account_id: int, amount_fen: int, key: str) -> OperationResult:
        return self.apply(Operation.make(account_id, OperationKind.PAYMENT, amount_fen, key))

    def deduction(self, account_id: int, amount_fen: int, key: str) -> OperationResult:
        return self.apply(Operation.make(account_id, OperationKind.DEDUCTION, amount_fen, key))

    def refund(self, account_id: int, amount_fen: int, key: str,
               refund_of: str) -> OperationResult:
        return self.apply(Operation.make(account_id, OperationKind.REFUND, amount_fen, key,
                                         refund_of))

    def open(self, account_id: int, floor_fen: int | None = None) -> Account:
        floor = self._config.floor_fen if floor_fen is None else floor_fen
        return self._retrying(lambda db: db.open(account_id, floor))

    def get(self, account_id: int) -> Account:
        return self._retrying(lambda db: db.get(account_id))

    def operations(self, account_id: int) -> list[OperationResult]:
        return self._retrying(lambda db: db.operations(account_id))

    def apply_batch(self, ops: Sequence[Operation]) -> list[OperationResult | None]:
        """Apply payments and deductions in one transaction, each exactly once by its key
        (a retried batch answers its first answers); one answer per operation, a refusal at
        the floor an answer, not an error; None for an account that does not exist."""
        return self._retrying(lambda db: db.apply_batch(ops))

    def apply_each(self, ops: Sequence[Operation]) -> list[OperationResult | GridfareError]:
        """Each operation's own answer, as if applied one after another in the order given,
        in as few transactions as possible: one ``apply_batch`` for all of them; if one
        operation fails the batch (a reused key, a balance out of range), nothing was
        written and each is applied on its own (``apply``), so it fails alone. An answer is
        the ``OperationResult``, or the error that operation alone gets (``UnknownAccount``,
        ``Overdraft``, ``IdempotencyConflict``, ...). A lone operation and a refund take
        ``apply`` (two round trips, where a batch transaction takes seven). An error of the
        store itself past ``retry_s`` (``StoreUnavailable``, ...) is raised by a batch for
        all of its operations, and is the answer of a lone one."""
        if len(ops) > 1 and not any(op.kind is OperationKind.REFUND for op in ops):
            try:
                results = self.apply_batch(ops)
            except ONE_OP_FAILS_BATCH:
                pass
            else:
                return [answer_of(op, r) for op, r in zip(ops, results, strict=True)]
        answers: list[OperationResult | GridfareError] = []
        for op in ops:
            try:
                answers.append(self.apply(op))
            except GridfareError as exc:
                answers.append(exc)
        return answers

    async def apply_each_async(self, ops: Sequence[Operation], run_sync
                               ) -> list[OperationResult | GridfareError]:
        """``apply_each`` for a caller on an event loop (one loop per client), first tried
        on a connection of this loop's own (no thread; a connection per call in flight,
        kept between calls): a lone new operation as ``apply``'s two statements
        (``AsyncAccountsDB.try_apply``: cheaper for the primary than the set statement for
        one row, A/B in docs/benchmarks.md), a batch of two or more new operations, one
        per account, as the set statement (``try_apply_batch``: one round trip). What a
        try does not answer, and a store error, goes to ``apply_each`` through
        ``run_sync(fn, ops)`` (the caller's threads), which retries with the same keys, so
        an unconfirmed or failed try costs time, never an answer."""
        import psycopg

        current = self._current
        # (with no primary known yet the synchronous path asks the coordinator first)
        if current is not None and ops:
            db = None
            try:
                db = await self._async_db_for(*current)
                if len(ops) == 1:
                    result = await db.try_apply(ops[0])
                    results = None if result is None else [result]
                else:
                    results = await db.try_apply_batch(ops)
            except (GridfareError, psycopg.Error, OSError):
                # nothing acknowledged: the synchronous path does it again, by the same
                # keys, and answers or raises as it always does
                await _close_async(db)
            else:
                self._idle_async.append(db)
                if results is not None:
                    return [answer_of(op, r) for op, r in zip(ops, results, strict=True)]
        return await run_sync(self.apply_each, ops)

    async def _async_db_for(self, epoch: int, dsn: str):
        import psycopg

        from backends.accounts_sql import AsyncAccountsDB

        while self._idle_async:
            db = self._idle_async.pop()
            if (db.epoch, db.dsn) == (epoch, dsn):
                return db
            await _close_async(db)  # made for an earlier primary or epoch
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True,
                                                         options=self.async_options)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"primary: {str(exc).strip()[:200]}") from exc
        # the 'accept' rule's question goes to the synchronous path: here a write that
        # would commit on the primary alone writes nothing and is sent there
        db = AsyncAccountsDB(conn, epoch, self._config.replication, lambda epoch: True,
                             self._commit_timeout_s)
        db.dsn = dsn
        return db

    def balances(self, account_ids: Sequence[int]) -> dict[int, int]:
        """Each existing account's balance, in one read."""
        return self._retrying(lambda db: db.balances(account_ids))

    def apply_columns(self, account_ids, keys: Sequence[str], signed_fen) -> ColumnAnswers:
        """Payments (``signed_fen`` > 0) and deductions (< 0) as arrays, each account once,
        in one transaction planned by the server; the answers as arrays (``ColumnAnswers``),
        exactly once by key as ``apply_batch``."""
        return self._retrying(lambda db: db.apply_columns(account_ids, keys, signed_fen))

    def balances_columns(self, account_ids) -> tuple:
        """``(account_id, balance_fen)`` int64 arrays of the existing accounts, one read."""
        return self._retrying(lambda db: db.balances_columns(account_ids))

    def open_batch(self, account_ids: Sequence[int], floor_fen: int | None = None) -> int:
        """Open many accounts (idempotent); how many were new."""
        floor = self._config.floor_fen if floor_fen is None else floor_fen
        return self._retrying(lambda db: db.open_batch(account_ids, floor))

    def describe(self) -> dict:
        if self._coordinator is None:
            epoch, dsn = self._refresh()
            return {"dsn": dsn, "record": {"epoch": epoch}, "coordinator": "off"}
        return ray.get(self._coordinator.describe.remote())

    def close(self) -> None:
        self._drop()


async def _close_async(db) -> None:
    if db is not None:
        with contextlib.suppress(Exception):
            await db.conn.close()


def answer_of(op: Operation, result: OperationResult | None) -> OperationResult | GridfareError:
    """One operation's answer from a batch, as ``apply`` gives it: the result, or the error
    that request gets (no such account; a deduction refused at the floor)."""
    if result is None:
        return UnknownAccount(f"account {op.account_id}: no such account")
    try:
        return result.raise_if_refused()
    except GridfareError as exc:
        return exc
