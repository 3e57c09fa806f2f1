"""The accounts schema and its transactions on the primary (psycopg, synchronous).

One operation is one transaction: check the store epoch and the replication rule, return
the first answer if the idempotency key is known, read the account, compute
(``gridfare.store.operations``), write the balance back under a version check, record the
answer under the key, commit. A version conflict (another transaction changed the account
after we read it) rolls back and starts again: concurrent requests on one account are
serialized by the version check, not by a lock held between requests. A batch
(``apply_batch``) does the same for many payments and deductions in one transaction, its
accounts locked in id order for that transaction only.

A single operation (``apply``) costs two round trips to the primary: one statement reads
the epoch, the standbys in sync, the key's first answer and the account; one statement,
its own transaction, writes the balance under the version *and epoch* check and records
the answer (a CTE: nothing is recorded unless the balance moved). Measured on 2 cores with
pgbench (-M prepared, 32 clients, remote_apply): the seven-round-trip form (BEGIN, three
reads, update, insert, COMMIT) ran 3,154 tps, this form 5,900; the standbys-in-sync count
reads ``pg_stat_get_wal_senders()`` rather than the ``pg_stat_replication`` view, which
also scans every backend slot.

The commit waits for a standby to apply it (``synchronous_commit = remote_apply``). That wait
is not bounded by ``statement_timeout`` (PostgreSQL disables it before the commit runs), so
a commit not confirmed within ``commit_timeout_s`` is cancelled from here; PostgreSQL then
keeps the commit locally and says so only in a WARNING: that answer is ``NotReplicated``,
never an acknowledgement. A retry of the key then returns the first answer only after a commit of
its own has been confirmed by a standby (WAL is applied in order, so the first one is in).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain

import numpy as np

from gridfare.errors import (
    GridfareError,
    InvalidInput,
    NotReplicated,
    StaleEpoch,
    StoreError,
    StoreUnavailable,
    UnknownAccount,
    VersionConflict,
)
from gridfare.store.operations import (
    MAX_FEN,
    Account,
    AnswerCode,
    BatchPlan,
    ColumnAnswers,
    Operation,
    OperationKind,
    OperationResult,
    Outcome,
    apply_batch,
    apply_operation,
    check_account_ids,
    check_columns,
    check_replay,
    validate_account_id,
)
from gridfare.store.replication import CommitMode, ReplicationRule, commit_mode

__all__ = ["SCHEMA", "AccountsDB", "AsyncAccountsDB", "read_epoch", "set_epoch"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS gridfare_store_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch bigint NOT NULL
);
INSERT INTO gridfare_store_meta (epoch) VALUES (1) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS accounts (
    account_id bigint PRIMARY KEY CHECK (account_id > 0),
    balance_fen bigint NOT NULL,
    floor_fen bigint NOT NULL CHECK (floor_fen <= 0),
    version bigint NOT NULL,
    CHECK (balance_fen >= floor_fen)
);
-- room in each page for a row's next version: an update of the balance is then a HOT
-- update (no new index entry, less WAL for the standby to apply, less to vacuum)
ALTER TABLE accounts SET (fillfactor = 75);
CREATE TABLE IF NOT EXISTS account_operations (
    key text PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts,
    kind text NOT NULL CHECK (kind IN ('payment', 'deduction', 'refund')),
    amount_fen bigint NOT NULL CHECK (amount_fen > 0),
    outcome text NOT NULL,
    balance_fen bigint NOT NULL,
    version bigint NOT NULL,
    epoch bigint NOT NULL,
    refund_of text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS account_operations_account ON account_operations (account_id);
CREATE INDEX IF NOT EXISTS account_operations_refund_of ON account_operations (refund_of)
    WHERE refund_of IS NOT NULL;
"""

STANDBYS_IN_SYNC = """(SELECT count(*) FROM pg_stat_get_wal_senders() w
      WHERE w.state = 'streaming' AND w.sync_state IN ('sync', 'quorum'))"""
IN_SYNC = f"""SELECT m.epoch, pg_is_in_recovery(), {STANDBYS_IN_SYNC}
    FROM gridfare_store_meta m"""
# apply's first round trip: the checks, the key's first answer and the account, one snapshot
READ_FOR_WRITE = f"""SELECT m.epoch, pg_is_in_recovery(), {STANDBYS_IN_SYNC},
    f.account_id, f.kind, f.amount_fen, f.outcome, f.balance_fen, f.version, f.epoch,
    a.balance_fen, a.floor_fen, a.version
    FROM gridfare_store_meta m
    LEFT JOIN account_operations f ON f.key = %s
    LEFT JOIN accounts a ON a.account_id = %s"""
# apply's second: the balance moves only from the version read and under the epoch written
# for, and the answer is recorded only if it moved (0 rows: conflict or a new epoch)
WRITE = """WITH moved AS (UPDATE accounts SET balance_fen = %s, version = %s
      WHERE account_id = %s AND version = %s
        AND (SELECT epoch FROM gridfare_store_meta) = %s RETURNING account_id)
    INSERT INTO account_operations (key, account_id, kind, amount_fen, outcome, balance_fen,
        version, epoch, refund_of) SELECT %s, account_id, %s, %s, %s, %s, %s, %s, %s
    FROM moved"""
VERSION_RETRIES = 64
LOCK_ACCOUNTS = """SELECT account_id, balance_fen, floor_fen, version FROM accounts
    WHERE account_id = ANY(%s::bigint[]) ORDER BY account_id FOR UPDATE"""
FIRST_ANSWERS = """SELECT key, account_id, kind, amount_fen, outcome, balance_fen, version, epoch
    FROM account_operations WHERE key = ANY(%s::text[])"""
UPDATE_ACCOUNTS = """UPDATE accounts a SET balance_fen = v.balance_fen, version = v.version
    FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS v(account_id, balance_fen, version)
    WHERE a.account_id = v.account_id"""
COPY_ANSWERS = """COPY account_operations (key, account_id, kind, amount_fen, outcome,
    balance_fen, version, epoch) FROM STDIN"""
# A batch whose accounts each appear once, planned and written by the server in one
# statement from three arrays (binary parameters): ``q`` the plan of each operation on its
# account as read; ``rec`` its answer stored under its key unless the key is stored
# already (the insert's own unique check is the look-up: a retried batch of fee control is
# rare, a new one the rule) or the balance would leave MAX_FEN; ``moved`` the balances of
# the operations just recorded, written under the version read. ``g`` is the write's
# checks (the epoch, a standby, the replication rule: ``%(sync)s`` standbys in sync at
# least), read in the statement's own snapshot: when one fails nothing is written and the
# client raises from them. So the batch is one statement, its own transaction in autocommit
# (one round trip where BEGIN, the checks, the batch and COMMIT took four). A concurrent
# writer's commit since our read leaves its row unmoved: the moved and applied counts then
# differ and ``1 / 0`` aborts the whole statement (nothing recorded), and the client starts
# again. With ``%(strict)s`` an operation left unrecorded (its key stored before: a
# replay or a reused key; or its balance beyond MAX_FEN), or a key of an unknown account
# stored before, aborts it too (``integer out of range``): the client then runs it again in
# a transaction of its own, answers the replays and rolls back on a refusal that fails the
# whole batch, as before. The last select gives the checks, how
# many answers were recorded, and each operation's answer in order (``_SET_*`` codes,
# balance, version). The foreign key's per-row check of ``rec`` cost a quarter
# of the statement (EXPLAIN ANALYZE, 5,000 rows: 26 of 102 ms); it stays, it is the rule.
SET_BATCH = f"""WITH g AS MATERIALIZED (SELECT m.epoch, pg_is_in_recovery() AS recovery,
            {STANDBYS_IN_SYNC} AS in_sync FROM gridfare_store_meta m),
    b AS MATERIALIZED (
        SELECT * FROM unnest(%(ids)s::int8[], %(keys)s::text[], %(fen)s::int8[])
            WITH ORDINALITY AS u(account_id, key, signed_fen, seq)),
    q AS MATERIALIZED (SELECT b.seq, b.key, b.account_id, b.signed_fen, a.version AS read,
            s.applied, CASE WHEN s.applied THEN a.balance_fen + b.signed_fen
                            ELSE a.balance_fen END AS balance_fen,
            a.version + s.applied::int AS version
        FROM g, b JOIN accounts a ON a.account_id = b.account_id,
            LATERAL (SELECT b.signed_fen > 0 OR a.balance_fen + b.signed_fen >= a.floor_fen
                     AS applied) s
        WHERE NOT g.recovery AND g.epoch = %(epoch)s AND g.in_sync >= %(sync)s),
    rec AS (INSERT INTO account_operations (key, account_id, kind, amount_fen, outcome,
            balance_fen, version, epoch)
        SELECT q.key, q.account_id,
            CASE WHEN q.signed_fen > 0 THEN 'payment' ELSE 'deduction' END,
            abs(q.signed_fen), CASE WHEN q.applied THEN 'applied' ELSE 'refused_overdraft' END,
            q.balance_fen, q.version, %(epoch)s
        FROM q WHERE abs(q.balance_fen) <= %(max)s
        ON CONFLICT (key) DO NOTHING RETURNING key),
    moved AS (UPDATE accounts a SET balance_fen = q.balance_fen, version = q.version
        FROM q JOIN rec ON rec.key = q.key
        WHERE a.account_id = q.account_id AND a.version = q.read AND q.applied RETURNING 1)
    SELECT g.epoch, g.recovery, g.in_sync, (SELECT count(*) FROM rec),
        1 / ((SELECT count(*) FROM moved) =
             (SELECT count(*) FROM q JOIN rec ON rec.key = q.key WHERE q.applied))::int,
        (2147483647 + (%(strict)s AND ((SELECT count(*) FROM rec) <> (SELECT count(*) FROM q)
            OR EXISTS (SELECT 1 FROM b WHERE NOT EXISTS (SELECT 1 FROM q WHERE q.seq = b.seq)
                AND EXISTS (SELECT 1 FROM account_operations o WHERE o.key = b.key)))
            )::int)::int4,
        array_agg(CASE WHEN q.seq IS NULL THEN 0 WHEN r.key IS NULL THEN 3
                       WHEN q.applied THEN 1 ELSE 2 END ORDER BY b.seq)::int2[],
        array_agg(coalesce(q.balance_fen, 0) ORDER BY b.seq),
        array_agg(coalesce(q.version, 0) ORDER BY b.seq)
    FROM g, b LEFT JOIN q ON q.seq = b.seq LEFT JOIN rec r ON r.key = q.key
    GROUP BY g.epoch, g.recovery, g.in_sync"""
# the one-statement try (its own transaction: a standby must be in sync, anything else than
# new operations aborts it) and the form run in a transaction of the client's
FIRST_TRY = {"sync": 1, "strict": True}
IN_TRANSACTION = {"sync": 0, "strict": False}
# the statement's codes: no such account, applied, refused, not recorded now (the key was
# stored before: a replay, or a balance beyond MAX_FEN)
_SET_UNKNOWN, _SET_APPLIED, _SET_REFUSED, _SET_UNRECORDED = 0, 1, 2, 3
BALANCES = """SELECT coalesce(array_agg(account_id), '{}'), coalesce(array_agg(balance_fen), '{}')
    FROM accounts WHERE account_id = ANY(%s::int8[])"""


def read_epoch(conn) -> int:
    with conn.transaction():
        return int(conn.execute("SELECT epoch FROM gridfare_store_meta").fetchone()[0])


def set_epoch(conn, epoch: int) -> int:
    """Raise the store's epoch to at least ``epoch`` (idempotent); committed locally: the
    coordinator's own record is the durable source, this row is what writes check."""
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = local")
        row = conn.execute("UPDATE gridfare_store_meta SET epoch = GREATEST(epoch, %s) "
                           "RETURNING epoch", (epoch,)).fetchone()
    return int(row[0])


class AccountsDB:
    """Account transactions on one connection to the primary, under one epoch."""

    def __init__(self, conn, epoch: int, rule: ReplicationRule = ReplicationRule.REFUSE,
                 may_commit_alone=None, commit_timeout_s: float = 5.0) -> None:
        self.conn = conn
        self.epoch = epoch
        self.commit_timeout_s = commit_timeout_s
        self.rule = ReplicationRule(rule)
        # under 'accept', asked before a write commits on the primary alone: True only while
        # the coordinator still names this epoch's primary (an old one must not)
        self._may_commit_alone = may_commit_alone or (lambda epoch: False)
        self._warnings: list[str] = []
        self._timer = 0  # the watchdog's token for the commit in flight
        conn.add_notice_handler(self._notice)
        _register_arrays(conn)

    def _notice(self, diag) -> None:
        if diag.severity_nonlocalized == "WARNING":
            self._warnings.append(diag.message_primary or "")

    @classmethod
    def create_schema(cls, conn) -> None:
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = local")
            conn.execute(SCHEMA)

    # ---- one transaction ------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[CommitMode]:
        conn = self.conn
        with _primary_errors():
            try:
                with conn.transaction():
                    epoch, in_recovery, in_sync = conn.execute(IN_SYNC).fetchone()
                    mode = self._commit_mode(epoch, in_recovery, in_sync)
                    if mode is CommitMode.LOCAL:
                        conn.execute("SET LOCAL synchronous_commit = local")
                    self._warnings.clear()
                    yield mode
                    # the commit runs as this block closes; cancel it if no standby confirms
                    self._arm()
            finally:
                self._disarm()
        self._check_confirmed()

    def _commit_mode(self, epoch: int, in_recovery: bool, in_sync: int) -> CommitMode:
        """What a write may do on this server now, or the refusal (checked before writing)."""
        if in_recovery:
            raise StoreUnavailable("the server is a standby, not the primary")
        if epoch != self.epoch:
            raise StaleEpoch(f"write based on epoch {self.epoch}, the store is at "
                             f"epoch {epoch}")
        mode = commit_mode(int(in_sync), self.rule)
        if mode is CommitMode.REFUSE:
            raise NotReplicated("not replicated: no synchronous standby is in sync; "
                                "nothing was written (rule 'refuse', RPO 0)")
        if mode is CommitMode.LOCAL and not self._may_commit_alone(self.epoch):
            raise NotReplicated(f"not replicated: no standby in sync and epoch "
                                f"{self.epoch} is no longer the coordinator's")
        return mode

    def _arm(self) -> None:
        self._timer = _WATCHDOG.arm(self.conn, self.commit_timeout_s)

    def _disarm(self) -> None:
        _WATCHDOG.disarm(self._timer)
        self._timer = 0

    def _check_confirmed(self) -> None:
        """After a commit: a cut-short sync wait is only a warning (the commit stays local,
        unconfirmed), so it is ``NotReplicated``, never an answer."""
        if self._warnings:
            raise NotReplicated("not replicated: the commit was not confirmed by a "
                                f"standby ({self._warnings[0]}); retry with the same key")

    # ---- operations -------------------------------------------------------------------
    def apply(self, op: Operation) -> OperationResult:
        """Apply ``op`` exactly once, or return the first answer given under its key."""
        import psycopg

        for attempt in range(VERSION_RETRIES):
            try:
                return self._apply_once(op)
            except _Conflict:
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
            except psycopg.errors.UniqueViolation:  # a concurrent retry of the same key won
                continue
        raise VersionConflict(f"operation {op.key}: account {op.account_id} changed under "
                              f"{VERSION_RETRIES} attempts in a row; retry later")

    def _apply_once(self, op: Operation) -> OperationResult:
        conn = self.conn
        with _primary_errors():
            row = conn.execute(READ_FOR_WRITE, (op.key, op.account_id)).fetchone()
        mode = self._commit_mode(*row[:3])
        if row[3] is not None:
            # a commit of our own, confirmed by a standby, puts the first one in too
            with self._transaction():
                conn.execute("SELECT pg_current_xact_id()")
            return check_replay(op, _result(op.key, row[3:10]))
        if row[12] is None:
            raise UnknownAccount(f"account {op.account_id}: no such account")
        account = Account(op.account_id, *row[10:13])
        refundable = None
        if op.kind is OperationKind.REFUND:
            with _primary_errors():
                refundable = self._refundable(op)
        result = apply_operation(account, op, self.epoch, refundable)
        values = (result.balance_fen, result.version, op.account_id, account.version,
                  self.epoch, op.key, op.kind.value, op.amount_fen, result.outcome.value,
                  result.balance_fen, result.version, self.epoch, op.refund_of)
        if mode is CommitMode.LOCAL:  # rare: the 'accept' rule with no standby in sync
            with self._transaction() as mode:  # checked again, beside SET LOCAL
                written = conn.execute(WRITE, values).rowcount
        else:  # one statement, its own transaction: the commit waits for a standby here
            with _primary_errors():
                self._warnings.clear()
                self._arm()
                try:
                    written = conn.execute(WRITE, values).rowcount
                finally:
                    self._disarm()
            self._check_confirmed()
        if written != 1:  # the version moved since our read, or the epoch did (read again)
            raise _Conflict()
        if mode is CommitMode.LOCAL:
            return OperationResult(**{**result.__dict__, "replicated": False})
        return result

    def _read(self, account_id: int) -> Account:
        row = self.conn.execute("SELECT balance_fen, floor_fen, version FROM accounts "
                                "WHERE account_id = %s", (account_id,)).fetchone()
        if row is None:
            raise UnknownAccount(f"account {account_id}: no such account")
        return Account(account_id, row[0], row[1], row[2])

    def _refundable(self, op: Operation) -> int | None:
        row = self.conn.execute(
            "SELECT d.amount_fen - coalesce((SELECT sum(r.amount_fen) FROM account_operations r"
            " WHERE r.refund_of = d.key AND r.outcome = 'applied'), 0)"
            " FROM account_operations d WHERE d.key = %s AND d.account_id = %s"
            " AND d.kind = 'deduction' AND d.outcome = 'applied'",
            (op.refund_of, op.account_id)).fetchone()
        return None if row is None else int(row[0])

    def open(self, account_id: object, floor_fen: object = 0) -> Account:
        """Open an account at balance 0 (idempotent: an open account is returned as is)."""
        account_id = validate_account_id(account_id)
        if isinstance(floor_fen, bool) or not isinstance(floor_fen, int) or floor_fen > 0:
            raise InvalidInput(f"account {account_id}: floor_fen {floor_fen!r} must be an "
                               "integer <= 0")
        with self._transaction():
            self.conn.execute("INSERT INTO accounts VALUES (%s, 0, %s, 0) "
                              "ON CONFLICT DO NOTHING", (account_id, floor_fen))
            return self._read(account_id)

    def get(self, account_id: object) -> Account:
        account_id = validate_account_id(account_id)
        try:
            with self.conn.transaction():
                return self._read(account_id)
        except GridfareError:
            raise
        except Exception as exc:
            raise _store_error(exc) from exc

    def operations(self, account_id: object) -> list[OperationResult]:
        """Every answer recorded on the account, oldest first."""
        account_id = validate_account_id(account_id)
        # the primary lost (after a failover, say) is StoreUnavailable, which the client
        # retries on the new one, as every other call's
        with _primary_errors(), self.conn.transaction():
            rows = self.conn.execute(
                "SELECT key, account_id, kind, amount_fen, outcome, balance_fen, version, epoch "
                "FROM account_operations WHERE account_id = %s ORDER BY version, created_at",
                (account_id,)).fetchall()
        return [_result(row[0], row[1:]) for row in rows]

    # ---- batches: many operations in one transaction ---------------------------------------
    def apply_batch(self, ops: Sequence[Operation]) -> list[OperationResult | None]:
        """Apply payments and deductions in one transaction, each exactly once by its key,
        in order (``gridfare.store.operations.apply_batch``); one answer per operation, None
        for an account that does not exist. The batch's accounts are locked in id order, so
        concurrent batches on the same accounts queue, never deadlock, and a one-operation
        ``apply`` on one of them sees its version move and starts again."""
        import psycopg

        if not ops:
            return []
        if _one_per_account(ops):  # the server plans it (SET_BATCH); checked by make
            return self._columns(
                np.fromiter((op.account_id for op in ops), np.int64, len(ops)),
                [op.key for op in ops],
                np.fromiter((op.signed_fen for op in ops), np.int64, len(ops))).results(ops)
        for attempt in range(VERSION_RETRIES):
            try:
                return self._apply_batch_once(ops)
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                # a concurrent writer of one of the keys won: its answer is read next time
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise VersionConflict(f"batch of {len(ops)} operations from {ops[0].key}: a "
                              f"concurrent writer won {VERSION_RETRIES} times in a row")

    def _apply_batch_once(self, ops: Sequence[Operation]) -> list[OperationResult | None]:
        conn = self.conn
        ids = sorted({op.account_id for op in ops})
        with self._transaction() as mode:
            rows = conn.execute(LOCK_ACCOUNTS, (ids,)).fetchall()
            accounts = {row[0]: Account(*row) for row in rows}
            first = {row[0]: _result(row[0], row[1:]) for row in conn.execute(
                FIRST_ANSWERS, ([op.key for op in ops],)).fetchall()}
            plan = apply_batch(accounts, ops, self.epoch, first)
            if plan.recorded:
                self._write(plan)
            else:  # all replays: a commit of our own, confirmed by a standby, puts them in
                conn.execute("SELECT pg_current_xact_id()")
        if mode is CommitMode.LOCAL:
            return [None if r is None else OperationResult(**{**r.__dict__, "replicated": False})
                    for r in plan.answers]
        return list(plan.answers)

    def _write(self, plan: BatchPlan) -> None:
        conn = self.conn
        if plan.accounts:
            conn.execute(UPDATE_ACCOUNTS, (
                [a.account_id for a in plan.accounts], [a.balance_fen for a in plan.accounts],
                [a.version for a in plan.accounts]))
        with conn.cursor().copy(COPY_ANSWERS) as copy:
            for r in plan.recorded:
                copy.write_row((r.key, r.account_id, r.kind.value, r.amount_fen,
                                r.outcome.value, r.balance_fen, r.version, r.epoch))

    def apply_columns(self, account_ids: np.ndarray, keys: Sequence[str],
                      signed_fen: np.ndarray) -> ColumnAnswers:
        """Payments (``signed_fen`` > 0) and deductions (< 0) on accounts that each appear
        once, in one transaction and one statement planned by the server (``SET_BATCH``),
        each exactly once by its key, as ``apply_batch`` answers them; the arrays go as
        binary parameters, the answers come back as arrays."""

        account_ids = np.ascontiguousarray(account_ids, np.int64)
        signed_fen = np.ascontiguousarray(signed_fen, np.int64)
        check_columns(account_ids, keys, signed_fen)
        if len(np.unique(account_ids)) != len(account_ids):
            raise InvalidInput(f"batch from {keys[0]}: apply_columns takes each account "
                               "once (apply_batch takes several operations of an account)")
        if not len(account_ids):
            empty = np.empty(0, np.int64)
            return ColumnAnswers(empty.astype(np.int16), empty, empty, empty)
        return self._columns(account_ids, keys, signed_fen)

    def _columns(self, account_ids: np.ndarray, keys: Sequence[str],
                 signed_fen: np.ndarray) -> ColumnAnswers:
        """``apply_columns`` on checked input: a non-empty batch, each account once."""
        import psycopg

        params = self._set_params(account_ids, keys, signed_fen)
        for attempt in range(VERSION_RETRIES):
            try:
                return self._apply_columns_once(params, keys)
            except (_Conflict, psycopg.errors.UniqueViolation):
                # a concurrent writer moved one of the accounts, or stored one of the keys,
                # since our read: read again (its answer is a replay next time)
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise VersionConflict(f"batch of {len(keys)} operations from {keys[0]}: a "
                              f"concurrent writer won {VERSION_RETRIES} times in a row")

    def _set_params(self, account_ids: np.ndarray, keys: Sequence[str],
                    signed_fen: np.ndarray) -> dict:
        """``SET_BATCH``'s parameters for its one-statement try (``FIRST_TRY``)."""
        return {"ids": _Int8Array(account_ids), "keys": _TextArray(keys),
                "fen": _Int8Array(signed_fen), "max": MAX_FEN, "epoch": self.epoch,
                **FIRST_TRY}

    def _first_try(self, params: dict, keys: Sequence[str], row) -> ColumnAnswers | None:
        """The answers of the one-statement try (it committed), or None when it wrote
        nothing because no standby is in sync and the rule lets the primary commit alone
        (the transaction form then runs); a refusal of the checks is raised."""
        self._check_confirmed()
        if self._commit_mode(*row[:3]) is CommitMode.LOCAL:
            return None
        # every operation recorded now, or on an unknown account (strict: no replay)
        return ColumnAnswers(*self._set_answers(params, keys, row, look_up=False))

    def _apply_columns_once(self, params: dict, keys: Sequence[str]) -> ColumnAnswers:
        """One try of the set statement: alone, its own transaction (the commit waits for a
        standby, under the watchdog); under the 'accept' rule with no standby in sync, in
        a transaction beside ``SET LOCAL synchronous_commit = local``."""
        import psycopg

        conn = self.conn
        try:
            try:
                with _primary_errors():
                    self._warnings.clear()
                    self._arm()
                    try:
                        row = conn.execute(SET_BATCH, params, binary=True).fetchone()
                    finally:
                        self._disarm()
                answers = self._first_try(params, keys, row)
            except psycopg.errors.NumericValueOutOfRange:  # a replay, a reused key or a
                answers = None  # balance beyond MAX_FEN: nothing was written
            if answers is not None:
                return answers
            with self._transaction() as mode:  # the checks again (beside SET LOCAL)
                row = conn.execute(SET_BATCH, {**params, **IN_TRANSACTION},
                                   binary=True).fetchone()
                answers = self._set_answers(params, keys, row)
                if not row[3]:  # all replays: a commit of our own puts them in
                    conn.execute("SELECT pg_current_xact_id()")
        except psycopg.errors.DivisionByZero:  # the statement's conflict check: nothing
            raise _Conflict() from None          # was written
        return ColumnAnswers(*answers, replicated=mode is not CommitMode.LOCAL)

    def _set_answers(self, params: dict, keys: Sequence[str], row, look_up: bool = True
                     ) -> tuple:
        code = np.array(row[6], np.int16)
        balance, version = np.array(row[7], np.int64), np.array(row[8], np.int64)
        epoch = np.full(len(code), self.epoch, np.int64)
        look = np.flatnonzero((code == _SET_UNRECORDED) | (code == _SET_UNKNOWN))
        if look_up and len(look):
            self._first_answers(params, keys, look, code, balance, version, epoch)
        return code, balance, version, epoch

    def _first_answers(self, params: dict, keys: Sequence[str], look: np.ndarray,
                       code: np.ndarray, balance: np.ndarray, version: np.ndarray,
                       epoch: np.ndarray) -> None:
        """The answers the set statement did not record: a key stored before answers its
        first answer (or ``IdempotencyConflict`` if it named another request), as
        ``apply_batch`` checks the key before the account; else an unknown account stays
        unknown and a balance beyond MAX_FEN is refused (the batch writes nothing)."""
        wanted = [keys[i] for i in look.tolist()]
        first = {row[0]: _result(row[0], row[1:]) for row in self.conn.execute(
            FIRST_ANSWERS, (wanted,)).fetchall()}
        for i in look.tolist():
            stored = first.get(keys[i])
            signed = int(params["fen"].values[i])
            if stored is not None:
                kind = OperationKind.PAYMENT if signed > 0 else OperationKind.DEDUCTION
                check_replay(Operation(int(params["ids"].values[i]), kind, abs(signed),
                                       keys[i]), stored)
                code[i] = (AnswerCode.REPLAYED_APPLIED if stored.outcome is Outcome.APPLIED
                           else AnswerCode.REPLAYED_REFUSED)
                balance[i], version[i], epoch[i] = (stored.balance_fen, stored.version,
                                                    stored.epoch)
            elif code[i] == _SET_UNRECORDED:
                raise InvalidInput(f"operation {keys[i]}: balance would reach "
                                   f"{int(balance[i])} fen, beyond {MAX_FEN}")

    def balances_columns(self, account_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(account_id, balance_fen)`` arrays of the accounts given that exist, one read
        (the ids as a binary array parameter, the answer as two arrays)."""
        ids = np.ascontiguousarray(account_ids, np.int64)
        check_account_ids(ids)
        try:
            with self.conn.transaction():
                found, fen = self.conn.execute(BALANCES, (_Int8Array(ids),),
                                               binary=True).fetchone()
        except GridfareError:
            raise
        except Exception as exc:
            raise _store_error(exc) from exc
        return np.array(found, np.int64), np.array(fen, np.int64)

    def balances(self, account_ids: Sequence[int]) -> dict[int, int]:
        """The balance of each account given that exists, in one read."""
        ids = [validate_account_id(a) for a in account_ids]
        try:
            with self.conn.transaction():
                rows = self.conn.execute("SELECT account_id, balance_fen FROM accounts "
                                         "WHERE account_id = ANY(%s)", (ids,)).fetchall()
        except GridfareError:
            raise
        except Exception as exc:
            raise _store_error(exc) from exc
        return dict(rows)

    def open_batch(self, account_ids: Sequence[int], floor_fen: int = 0) -> int:
        """Open many accounts at balance 0 in one transaction (idempotent: open ones are
        left as they are); how many were new."""
        ids = [validate_account_id(a) for a in account_ids]
        if isinstance(floor_fen, bool) or not isinstance(floor_fen, int) or floor_fen > 0:
            raise InvalidInput(f"accounts {ids[:1]}...: floor_fen {floor_fen!r} must be an "
                               "integer <= 0")
        with self._transaction():
            return self.conn.execute(
                "INSERT INTO accounts SELECT id, 0, %s, 0 FROM unnest(%s::bigint[]) AS id "
                "ON CONFLICT DO NOTHING", (floor_fen, ids)).rowcount


class AsyncAccountsDB(AccountsDB):
    """``AccountsDB`` on an asyncio connection (``psycopg.AsyncConnection``), for a caller
    on an event loop: it runs only the first tries, with no thread hand-off: ``try_apply``
    (``apply``'s two statements for one new operation) and ``try_apply_batch`` (the set
    batch's one statement), with the same parameters, checks and answers as the
    synchronous forms; what a try does not answer, the caller sends to ``AccountsDB``.
    Only these two may be called on it."""

    async def try_apply(self, op: Operation) -> OperationResult | None:
        """``apply``'s answer to one new payment or deduction, in its two round trips
        (``READ_FOR_WRITE``; ``WRITE``, its own transaction, under the version and epoch
        check): applied, or refused at the floor. None with nothing written when the try
        cannot answer alone: a refund, a replay (its answer needs a confirmed commit of
        its own), an unknown account, a version conflict, or no standby in sync under the
        'accept' rule; the refusals of the checks (``StaleEpoch``, ``NotReplicated``, a
        standby) are raised. A commit not confirmed within ``commit_timeout_s`` is
        cancelled and raised as ``NotReplicated``; psycopg's errors are raised as they come
        (nothing is acknowledged), so the caller's synchronous retry by the same key is
        exact."""
        if op.kind is OperationKind.REFUND:
            return None
        conn = self.conn
        row = await (await conn.execute(READ_FOR_WRITE, (op.key, op.account_id))).fetchone()
        if self._commit_mode(*row[:3]) is CommitMode.LOCAL or row[3] is not None or \
                row[12] is None:
            return None
        account = Account(op.account_id, *row[10:13])
        result = apply_operation(account, op, self.epoch)
        self._warnings.clear()
        try:
            async with asyncio.timeout(self.commit_timeout_s):
                written = (await conn.execute(WRITE, (
                    result.balance_fen, result.version, op.account_id, account.version,
                    self.epoch, op.key, op.kind.value, op.amount_fen, result.outcome.value,
                    result.balance_fen, result.version, self.epoch, None))).rowcount
        except TimeoutError:
            raise NotReplicated(f"operation {op.key}: not confirmed by a standby within "
                                f"{self.commit_timeout_s} s; retry with the same key"
                                ) from None
        self._check_confirmed()
        return result if written == 1 else None  # 0: the version or the epoch moved

    async def try_apply_batch(self, ops: Sequence[Operation]
                              ) -> list[OperationResult | None] | None:
        """``apply_batch``'s answers when the one statement answers the batch: each
        account and key once, no refund, every operation new, a standby in sync; else
        None with nothing written. A commit not confirmed within ``commit_timeout_s`` is
        cancelled (psycopg cancels it on the server) and raised as ``NotReplicated``;
        psycopg's errors are raised as they come (nothing is acknowledged)."""
        import psycopg

        if not ops or not _one_per_account(ops):
            return None
        keys = [op.key for op in ops]
        params = self._set_params(
            np.fromiter((op.account_id for op in ops), np.int64, len(ops)), keys,
            np.fromiter((op.signed_fen for op in ops), np.int64, len(ops)))
        self._warnings.clear()
        try:
            async with asyncio.timeout(self.commit_timeout_s):
                cursor = await self.conn.execute(SET_BATCH, params, binary=True)
                row = await cursor.fetchone()
        except TimeoutError:
            raise NotReplicated(f"batch from {keys[0]}: not confirmed by a standby within "
                                f"{self.commit_timeout_s} s; retry with the same keys"
                                ) from None
        except (psycopg.errors.NumericValueOutOfRange, psycopg.errors.DivisionByZero):
            return None  # a replay, a reused key, a balance beyond MAX_FEN or a conflict
        answers = self._first_try(params, keys, row)
        return None if answers is None else answers.results(ops)


def _one_per_account(ops: Sequence[Operation]) -> bool:
    """Whether each account and each key appears once, and no refund: then the batch is
    one operation per account, which the server plans set-wise; otherwise the accounts
    are locked and the plan is ``apply_batch``'s, in order."""
    if any(op.kind is OperationKind.REFUND for op in ops):
        return False
    return len({op.account_id for op in ops}) == len(ops) == len({op.key for op in ops})


class _Int8Array:
    """An int64 array sent as one binary ``int8[]`` parameter (no Python int per value)."""

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values


class _TextArray:
    """Strings sent as one binary ``text[]`` parameter."""

    __slots__ = ("values",)

    def __init__(self, values: Sequence[str]) -> None:
        self.values = values


_ELEMENT = np.dtype([("length", ">i4"), ("value", ">i8")])


def _int8_array(values: np.ndarray) -> bytes:
    # PostgreSQL's binary array: ndim, has-null flag, element type, then per dimension its
    # length and lower bound; then each element's length and big-endian value
    items = np.empty(len(values), _ELEMENT)
    items["length"] = 8
    items["value"] = values
    return struct.pack(">iiiii", 1, 0, 20, len(values), 1) + items.tobytes()


_LENGTH = struct.Struct(">i").pack
# up to this many strings a join of Python bytes is faster than numpy's set-up (5 keys:
# 11 us against 85 us; 5,000: 6.2 ms against 2.6 ms)
SMALL_TEXT_ARRAY = 256


def _text_array(values: Sequence[str]) -> bytes:
    data = [v.encode() for v in values]
    head = struct.pack(">iiiii", 1, 0, 25, len(data), 1)
    if len(data) <= SMALL_TEXT_ARRAY:
        return head + b"".join(chain.from_iterable((_LENGTH(len(d)), d) for d in data))
    lengths = np.fromiter((len(d) for d in data), np.int64, len(data))
    out = np.empty(4 * len(data) + int(lengths.sum()), np.uint8)
    # each element's 4-byte length sits before its bytes: mark those places, fill the rest
    starts = np.arange(len(data)) * 4 + np.r_[0, np.cumsum(lengths)[:-1]]
    prefix = (starts[:, None] + np.arange(4)).ravel()
    out[prefix] = lengths.astype(">i4").view(np.uint8)
    rest = np.ones(len(out), bool)
    rest[prefix] = False
    out[rest] = np.frombuffer(b"".join(data), np.uint8)
    return head + out.tobytes()


def _register_arrays(conn) -> None:
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class Int8ArrayDumper(Dumper):
        format = Format.BINARY
        oid = 1016  # int8[]

        def dump(self, obj):
            return _int8_array(obj.values)

    class TextArrayDumper(Dumper):
        format = Format.BINARY
        oid = 1009  # text[]

        def dump(self, obj):
            return _text_array(obj.values)

    conn.adapters.register_dumper(_Int8Array, Int8ArrayDumper)
    conn.adapters.register_dumper(_TextArray, TextArrayDumper)


@contextmanager
def _primary_errors() -> Iterator[None]:
    """psycopg's errors on the primary as the store's (retryable) errors."""
    import psycopg

    try:
        yield
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise StoreUnavailable("the server is a standby, not the primary") from exc
    except psycopg.errors.QueryCanceled as exc:
        raise StoreUnavailable(f"a statement timed out on the primary: {exc}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"lost the primary mid-transaction: "
                               f"{str(exc).strip().splitlines()[0] if str(exc) else exc}"
                               ) from exc


def _cancel(conn) -> None:
    with contextlib.suppress(Exception):
        (getattr(conn, "cancel_safe", None) or conn.cancel)()


class _Watchdog:
    """One thread per process cancels commits past their deadline (a thread per commit,
    as threading.Timer makes, cost more than the commit's own round trip)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, object]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def arm(self, conn, timeout_s: float) -> int:
        with self._lock:
            self._next += 1
            self._armed[self._next] = (time.monotonic() + timeout_s, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="commit-watchdog",
                                                daemon=True)
                self._thread.start()
            return self._next

    def disarm(self, token: int) -> None:
        with self._lock:
            self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                late = [t for t, (deadline, _) in self._armed.items() if deadline <= now]
                conns = [self._armed.pop(t)[1] for t in late]
            for conn in conns:
                _cancel(conn)


_WATCHDOG = _Watchdog()


class _Conflict(Exception):
    """The account's version moved between our read and our write."""


def _result(key: str, row) -> OperationResult:
    account_id, kind, amount, outcome, balance, version, epoch = row
    return OperationResult(key, account_id, OperationKind(kind), amount, Outcome(outcome),
                           balance, version, epoch)


def _store_error(exc: Exception) -> StoreError:
    text = str(exc).strip().splitlines()
    return StoreUnavailable(f"primary: {text[0] if text else type(exc).__name__}")
