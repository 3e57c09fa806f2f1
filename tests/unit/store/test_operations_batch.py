"""``apply_batch``: many payments and deductions answered as if applied one after another."""

import pytest

from gridfare.errors import IdempotencyConflict, InvalidInput
from gridfare.store.operations import (
    Account,
    Operation,
    Outcome,
    apply_batch,
    apply_operation,
)


def op(kind, amount, key, account=7):
    return Operation.make(account, kind, amount, key)


def test_a_batch_equals_its_operations_one_after_another():
    accounts = {7: Account(7, 100, -50, 3), 8: Account(8, 0, 0, 0)}
    ops = [op("deduction", 120, "d1"), op("payment", 30, "p1", 8), op("deduction", 40, "d2"),
           op("deduction", 1, "d3", 8), op("payment", 5, "p2")]
    plan = apply_batch(accounts, ops, epoch=2, first={})
    state = dict(accounts)
    for given, answer in zip(ops, plan.answers, strict=True):
        one = apply_operation(state[given.account_id], given, 2)
        assert answer == one
        if one.outcome is Outcome.APPLIED:
            state[given.account_id] = Account(given.account_id, one.balance_fen,
                                              state[given.account_id].floor_fen, one.version)
    # d1 down to -20 (floor -50), d2 refused (-60 < -50), p2 back to -15
    assert [a.outcome for a in plan.answers] == [
        Outcome.APPLIED, Outcome.APPLIED, Outcome.REFUSED_OVERDRAFT, Outcome.APPLIED,
        Outcome.APPLIED]
    assert [a.balance_fen for a in plan.answers] == [-20, 30, -20, 29, -15]
    assert sorted(plan.accounts, key=lambda a: a.account_id) == [
        Account(7, -15, -50, 5), Account(8, 29, 0, 2)]
    assert [r.key for r in plan.recorded] == ["d1", "p1", "d2", "d3", "p2"]


def test_stored_and_repeated_keys_answer_their_first_answer_and_change_nothing():
    first = apply_operation(Account(7, 100, 0, 1), op("deduction", 60, "d1"), 1)
    plan = apply_batch({7: Account(7, 40, 0, 2)},
                       [op("deduction", 60, "d1"), op("payment", 10, "p1"),
                        op("payment", 10, "p1")], epoch=1, first={"d1": first})
    assert plan.answers[0] == first.__class__(**{**first.__dict__, "replayed": True})
    assert plan.answers[2].replayed and plan.answers[2].balance_fen == 50
    assert [r.key for r in plan.recorded] == ["p1"]
    assert plan.accounts == (Account(7, 50, 0, 3),)


def test_a_refusal_is_a_first_answer_too():
    plan = apply_batch({7: Account(7, 10, 0, 1)},
                       [op("deduction", 11, "d1"), op("payment", 100, "p1"),
                        op("deduction", 11, "d1")], epoch=1, first={})
    assert [a.outcome for a in plan.answers] == [
        Outcome.REFUSED_OVERDRAFT, Outcome.APPLIED, Outcome.REFUSED_OVERDRAFT]
    assert plan.answers[2].replayed and plan.answers[2].balance_fen == 10


def test_an_unknown_account_is_answered_none_and_nothing_is_recorded_for_it():
    plan = apply_batch({}, [op("payment", 1, "p1", account=99)], epoch=1, first={})
    assert plan.answers == (None,) and plan.recorded == () and plan.accounts == ()


def test_a_reused_key_or_a_refund_refuses_the_whole_batch_by_name():
    with pytest.raises(IdempotencyConflict, match="operation k: key already names"):
        apply_batch({7: Account(7, 0, 0, 0)},
                    [op("payment", 1, "k"), op("payment", 2, "k")], epoch=1, first={})
    refund = Operation.make(7, "refund", 1, "r1", "d1")
    with pytest.raises(InvalidInput, match="operation r1: a refund is applied on its own"):
        apply_batch({7: Account(7, 0, 0, 0)}, [refund], epoch=1, first={})
