"""Batches of payments and deductions on the real accounts store (PostgreSQL primary and a
synchronous standby): one transaction each, every operation exactly once by its key."""

from __future__ import annotations

import random
import threading

import pytest

from tests.accounts_helpers import running_store

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def accounts(ray_cluster):
    with running_store() as client:
        yield client


def op(kind, amount, key, account):
    from gridfare.store.operations import Operation

    return Operation.make(account, kind, amount, key)


def check_chain(client, account: int, opening_fen: int = 0) -> None:
    """The account's recorded answers, in version order, add up step by step to its
    balance: no operation lost, doubled or applied on a stale balance."""
    from gridfare.store.operations import Outcome

    applied = [r for r in client.operations(account) if r.outcome is Outcome.APPLIED]
    balance = opening_fen
    for version, result in enumerate(sorted(applied, key=lambda r: r.version), start=1):
        balance += -result.amount_fen if result.kind.value == "deduction" else result.amount_fen
        assert (result.version, result.balance_fen) == (version, balance), result.key
    got = client.get(account)
    assert (got.balance_fen, got.version) == (balance, len(applied))


def test_a_retried_batch_answers_its_first_answers(accounts):
    from gridfare.store.operations import Outcome

    assert accounts.open_batch([201, 202]) == 2
    assert accounts.open_batch([201, 202, 203]) == 1  # idempotent
    batch = [op("payment", 1_000, "b1-p201", 201), op("deduction", 300, "b1-d201", 201),
             op("payment", 50, "b1-p202", 202), op("payment", 7, "b1-p999", 999)]
    first = accounts.apply_batch(batch)
    again = accounts.apply_batch(batch)
    assert [(r.outcome, r.balance_fen, r.version) for r in first[:3]] == [
        (Outcome.APPLIED, 1_000, 1), (Outcome.APPLIED, 700, 2), (Outcome.APPLIED, 50, 1)]
    assert first[3] is None and again[3] is None  # account 999 does not exist
    assert [r.replayed for r in again[:3]] == [True] * 3
    assert [{**r.__dict__, "replayed": False} for r in again[:3]] == \
        [r.__dict__ for r in first[:3]]
    assert accounts.balances([201, 202, 203, 999]) == {201: 700, 202: 50, 203: 0}
    check_chain(accounts, 201)
    # a batch overlapping an earlier one: the old keys replay, the new one applies
    mixed = accounts.apply_batch([op("deduction", 300, "b1-d201", 201),
                                  op("deduction", 100, "b2-d201", 201)])
    assert (mixed[0].replayed, mixed[1].replayed, mixed[1].balance_fen) == (True, False, 600)


def test_a_batch_mixing_refusals_and_applications_applies_the_right_ones(accounts):
    from gridfare.errors import IdempotencyConflict
    from gridfare.store.operations import Outcome

    accounts.open_batch([211], floor_fen=-100)
    answers = accounts.apply_batch([
        op("payment", 200, "m-p1", 211),
        op("deduction", 301, "m-d1", 211),  # 200 - 301 = -101 < -100: refused
        op("deduction", 300, "m-d2", 211),  # -100: exactly the floor, applied
        op("deduction", 1, "m-d3", 211),  # refused
        op("payment", 50, "m-p2", 211),
        op("deduction", 1, "m-d4", 211),  # -51: applied
    ])
    assert [(r.outcome, r.balance_fen) for r in answers] == [
        (Outcome.APPLIED, 200), (Outcome.REFUSED_OVERDRAFT, 200), (Outcome.APPLIED, -100),
        (Outcome.REFUSED_OVERDRAFT, -100), (Outcome.APPLIED, -50), (Outcome.APPLIED, -51)]
    # a refusal is the key's first answer: retried after a payment it is still refused
    accounts.apply_batch([op("payment", 10_000, "m-p3", 211)])
    assert accounts.apply_batch([op("deduction", 301, "m-d1", 211)])[0].outcome is \
        Outcome.REFUSED_OVERDRAFT
    check_chain(accounts, 211)
    # a key reused for another request refuses the whole batch, which writes nothing
    before = accounts.get(211)
    with pytest.raises(IdempotencyConflict, match="operation m-p1"):
        accounts.apply_batch([op("payment", 5, "m-new", 211), op("payment", 999, "m-p1", 211)])
    assert accounts.get(211) == before
    assert "m-new" not in [r.key for r in accounts.operations(211)]


def test_concurrent_batches_and_single_operations_on_the_same_accounts_stay_exact(accounts):
    from gridfare.store.operations import Outcome

    ids = list(range(301, 311))
    accounts.open_batch(ids, floor_fen=-2_000)
    answers: list = []
    errors: list[str] = []

    def writer(worker: int) -> None:
        rng = random.Random(worker)
        for n in range(15):
            batch = [op(rng.choice(["payment", "deduction"]), rng.randint(1, 500),
                        f"c{worker}-{n}-{i}", rng.choice(ids)) for i in range(40)]
            try:
                # some batches twice: the retry must answer the same
                got = accounts.apply_batch(batch)
                if n % 5 == 0:
                    assert [r.outcome for r in accounts.apply_batch(batch)] == \
                        [r.outcome for r in got]
                answers.extend(got)
            except Exception as exc:
                errors.append(f"{worker}/{n}: {type(exc).__name__}: {exc}")

    def single(worker: int) -> None:  # the one-operation path on the same rows meanwhile
        for n in range(40):
            try:
                answers.append(accounts.payment(ids[n % len(ids)], 3, key=f"s{worker}-{n}"))
            except Exception as exc:
                errors.append(f"single {n}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=single, args=(9,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert errors == []
    assert len(answers) == 4 * 15 * 40 + 40
    refused = sum(r.outcome is Outcome.REFUSED_OVERDRAFT for r in answers)
    assert 0 < refused < len(answers)  # the floor was reached, and not only
    for account in ids:
        check_chain(accounts, account)
        recorded = {r.key for r in accounts.operations(account)}
        assert recorded == {r.key for r in answers if r.account_id == account}
