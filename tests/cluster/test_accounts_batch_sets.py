"""The set-based batch (``AccountsDB.apply_columns``, and ``apply_batch`` when each account
and key appears once) on the real store: the same answers as the locked plan, every
operation exactly once by its key, refusals at the floor, replays and conflicts."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.accounts_helpers import running_store
from tests.cluster.test_accounts_batch import check_chain, op

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def accounts(ray_cluster):
    with running_store() as client:
        yield client


def test_one_operation_per_account_answers_as_the_locked_plan(accounts):
    from gridfare.store.operations import Outcome

    accounts.open_batch([401, 402, 403], floor_fen=-100)
    accounts.apply_batch([op("payment", 500, "s-open-401", 401)])
    batch = [op("deduction", 550, "s-d401", 401),  # 500 - 550 = -50 >= -100: applied
             op("deduction", 101, "s-d402", 402),  # 0 - 101 < -100: refused
             op("payment", 30, "s-p403", 403),
             op("payment", 9, "s-p999", 999)]  # no such account
    first = accounts.apply_batch(batch)
    assert [(r.outcome, r.balance_fen, r.version, r.replayed) for r in first[:3]] == [
        (Outcome.APPLIED, -50, 2, False), (Outcome.REFUSED_OVERDRAFT, 0, 0, False),
        (Outcome.APPLIED, 30, 1, False)]
    assert first[3] is None
    # retried after money arrived: the refusal is still the key's answer, all replayed
    accounts.apply_batch([op("payment", 1_000, "s-p402", 402)])
    again = accounts.apply_batch(batch)
    assert [r.replayed for r in again[:3]] == [True] * 3 and again[3] is None
    assert [{**r.__dict__, "replayed": False} for r in again[:3]] == \
        [r.__dict__ for r in first[:3]]
    # a batch mixing an old key and new ones: the old replays, the new apply
    mixed = accounts.apply_batch([op("deduction", 550, "s-d401", 401),
                                  op("deduction", 100, "s-d402b", 402)])
    assert (mixed[0].replayed, mixed[1].replayed, mixed[1].balance_fen) == (True, False, 900)
    assert accounts.balances([401, 402, 403]) == {401: -50, 402: 900, 403: 30}
    for account in (401, 402, 403):
        check_chain(accounts, account)


def test_a_reused_key_refuses_the_whole_set_batch(accounts):
    from gridfare.errors import IdempotencyConflict, InvalidInput

    accounts.open_batch([411, 412])
    accounts.apply_batch([op("payment", 100, "s-k411", 411)])
    before = accounts.balances([411, 412])
    with pytest.raises(IdempotencyConflict, match="operation s-k411"):
        accounts.apply_batch([op("payment", 5, "s-new412", 412),
                              op("payment", 999, "s-k411", 411)])
    with pytest.raises(IdempotencyConflict, match="operation s-k411"):  # another account
        accounts.apply_batch([op("payment", 100, "s-k411", 412)])
    assert accounts.balances([411, 412]) == before
    assert [r.key for r in accounts.operations(412)] == []
    # the columnar form checks its input by name
    with pytest.raises(InvalidInput, match="each account once"):
        accounts.apply_columns(np.array([411, 411]), ["a", "b"], np.array([1, 2]))
    with pytest.raises(InvalidInput, match="operation s-zero: amount_fen 0"):
        accounts.apply_columns(np.array([411]), ["s-zero"], np.array([0]))


def test_columnar_answers_and_balances_read_as_arrays(accounts):
    from gridfare.store.operations import AnswerCode

    ids = np.arange(5_001, 5_001 + 3_000, dtype=np.int64)
    accounts.open_batch(ids.tolist(), floor_fen=-1_000)
    fen = np.where(ids % 3 == 0, -1_500, 200).astype(np.int64)  # every third refused
    keys = [f"col-{a}" for a in ids.tolist()]
    answers = accounts.apply_columns(ids, keys, fen)
    refused = ids % 3 == 0
    assert (answers.code == np.where(refused, AnswerCode.REFUSED, AnswerCode.APPLIED)).all()
    assert (answers.balance_fen == np.where(refused, 0, 200)).all()
    found, balance = accounts.balances_columns(np.r_[ids, 99_999_999])
    order = np.argsort(found)
    assert (found[order] == ids).all() and (balance[order] == answers.balance_fen).all()
    again = accounts.apply_columns(ids, keys, fen)
    assert (again.code == np.where(refused, AnswerCode.REPLAYED_REFUSED,
                                   AnswerCode.REPLAYED_APPLIED)).all()
    assert (again.balance_fen == answers.balance_fen).all()


def test_concurrent_set_batches_on_the_same_accounts_stay_exact(accounts):
    """Writers whose batches overlap on accounts: the version check makes the loser start
    again, so no operation is lost, doubled or applied on a stale balance."""
    ids = list(range(601, 621))
    accounts.open_batch(ids, floor_fen=-3_000)
    answers: list = []
    errors: list[str] = []

    def writer(worker: int) -> None:
        rng = np.random.default_rng(worker)
        for n in range(20):
            chosen = sorted(rng.choice(ids, 8, replace=False).tolist())
            batch = [op(str(rng.choice(["payment", "deduction"])), int(rng.integers(1, 500)),
                        f"sc{worker}-{n}-{a}", a) for a in chosen]
            try:
                got = accounts.apply_batch(batch)
                if n % 4 == 0:  # a retry answers the same
                    assert [r.balance_fen for r in accounts.apply_batch(batch)] == \
                        [r.balance_fen for r in got]
                answers.extend(got)
            except Exception as exc:
                errors.append(f"{worker}/{n}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert errors == []
    assert len(answers) == 4 * 20 * 8
    for account in ids:
        check_chain(accounts, account)
        assert {r.key for r in accounts.operations(account)} == \
            {r.key for r in answers if r.account_id == account}


def test_the_async_first_try_answers_new_operations_and_leaves_the_rest(accounts):
    """``AccountsClient.apply_each_async``: new operations on distinct accounts are answered
    by ``AsyncAccountsDB.try_apply_batch`` on the loop's own connection, and a lone new
    one by ``try_apply`` (``apply``'s two statements), as the synchronous path answers
    them; what a try cannot answer (a replay, an account twice, a reused key, an unknown
    account alone) writes nothing there and is answered by ``apply_each`` as before."""
    import asyncio

    from gridfare.errors import IdempotencyConflict, Overdraft, UnknownAccount

    accounts.open_batch([431, 432, 433])
    accounts.get(431)  # the client now knows the primary (the async path needs it)
    synchronous: list = []

    async def run_sync(fn, ops):
        synchronous.append([o.key for o in ops])
        return fn(ops)

    async def each(ops):
        return await accounts.apply_each_async(ops, run_sync)

    async def scenario():
        new = await each([op("payment", 70, "a-431", 431), op("deduction", 5, "a-432", 432),
                          op("payment", 1, "a-404", 404)])
        assert synchronous == []  # answered on the loop's connection
        assert (new[0].balance_fen, new[0].version, new[0].replayed) == (70, 1, False)
        assert isinstance(new[1], Overdraft) and isinstance(new[2], UnknownAccount)
        lone = await each([op("payment", 3, "a-433", 433)])
        assert (lone[0].balance_fen, lone[0].version, synchronous) == (3, 1, [])
        refused = await each([op("deduction", 9, "a-432b", 432)])
        assert isinstance(refused[0], Overdraft) and synchronous == []
        # alone, a replay and an unknown account are the synchronous path's
        again = await each([op("payment", 3, "a-433", 433)])
        assert (again[0].replayed, again[0].balance_fen) == (True, 3)
        nobody = await each([op("payment", 1, "a-405", 405)])
        assert isinstance(nobody[0], UnknownAccount)
        assert synchronous == [["a-433"], ["a-405"]]
        # a replay beside a new one: the try writes nothing, the synchronous path answers
        mixed = await each([op("payment", 70, "a-431", 431), op("payment", 9, "a-433b", 433)])
        assert synchronous[2:] == [["a-431", "a-433b"]]
        assert (mixed[0].replayed, mixed[0].balance_fen) == (True, 70)
        assert (mixed[1].replayed, mixed[1].balance_fen) == (False, 12)
        twice = await each([op("payment", 1, "a-t1", 431), op("payment", 2, "a-t2", 431)])
        assert [a.balance_fen for a in twice] == [71, 73]
        reused = await each([op("payment", 4, "a-433", 432), op("payment", 4, "a-r", 433)])
        assert isinstance(reused[0], IdempotencyConflict) and reused[1].balance_fen == 16
        assert len(synchronous) == 5

    asyncio.run(scenario())
    assert accounts.balances([431, 432, 433]) == {431: 73, 432: 0, 433: 16}
    for account in (431, 432, 433):
        check_chain(accounts, account)


def test_the_async_lone_try_is_fenced_by_the_epoch(accounts):
    """A lone try written for an earlier epoch is refused (``StaleEpoch``) and writes
    nothing, as ``apply``: the read checks the epoch, and the write checks it again."""
    import asyncio

    import psycopg

    from backends.accounts_sql import AsyncAccountsDB
    from gridfare.errors import StaleEpoch

    accounts.open_batch([441])
    accounts.get(441)
    epoch, dsn = accounts._current

    async def stale():
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            db = AsyncAccountsDB(conn, epoch - 1)
            with pytest.raises(StaleEpoch, match=f"epoch {epoch - 1}"):
                await db.try_apply(op("payment", 5, "a-stale-441", 441))
            fresh = AsyncAccountsDB(conn, epoch)
            done = await fresh.try_apply(op("payment", 6, "a-fresh-441", 441))
            assert (done.balance_fen, done.epoch) == (6, epoch)
        finally:
            await conn.close()

    asyncio.run(stale())
    assert [r.key for r in accounts.operations(441)] == ["a-fresh-441"]
