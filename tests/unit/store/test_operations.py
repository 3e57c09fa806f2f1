import pytest

from gridfare.errors import IdempotencyConflict, InvalidInput, Overdraft
from gridfare.store.operations import (
    KEY_MAX,
    MAX_FEN,
    Account,
    Operation,
    OperationKind,
    Outcome,
    apply_operation,
    check_replay,
)


def op(kind="payment", amount=100, key="k1", account=7, refund_of=None):
    return Operation.make(account, kind, amount, key, refund_of)


def test_payment_adds_and_bumps_the_version():
    result = apply_operation(Account(7, 500, 0, 3), op(amount=250), epoch=2)
    assert (result.outcome, result.balance_fen, result.version, result.epoch) == (
        Outcome.APPLIED, 750, 4, 2)


@pytest.mark.parametrize(("balance", "floor", "amount", "outcome", "after"), [
    (500, 0, 500, Outcome.APPLIED, 0),  # down to the floor exactly
    (500, 0, 501, Outcome.REFUSED_OVERDRAFT, 500),  # one fen below it
    (0, 0, 1, Outcome.REFUSED_OVERDRAFT, 0),
    (100, -1_000, 1_100, Outcome.APPLIED, -1_000),  # an overdraft allowance, used up
    (100, -1_000, 1_101, Outcome.REFUSED_OVERDRAFT, 100),
])
def test_deduction_edges_at_the_floor(balance, floor, amount, outcome, after):
    result = apply_operation(Account(7, balance, floor, 1), op("deduction", amount), 1)
    assert (result.outcome, result.balance_fen) == (outcome, after)
    assert result.version == (2 if outcome is Outcome.APPLIED else 1)


def test_a_refused_deduction_raises_overdraft_with_a_clear_message():
    result = apply_operation(Account(7, 10, 0, 1), op("deduction", 11, key="fee-1"), 1)
    with pytest.raises(Overdraft, match="account 7: deduction fee-1 of 11 fen refused"):
        result.raise_if_refused()


def test_refund_gives_back_at_most_what_is_left_of_the_deduction():
    refund = op("refund", 40, key="r1", refund_of="d1")
    result = apply_operation(Account(7, 60, 0, 2), refund, 1, refundable_fen=40)
    assert result.balance_fen == 100
    with pytest.raises(InvalidInput, match="exceeds the 39 fen left of deduction d1"):
        apply_operation(Account(7, 60, 0, 2), refund, 1, refundable_fen=39)
    with pytest.raises(InvalidInput, match="no applied deduction of account 7"):
        apply_operation(Account(7, 60, 0, 2), refund, 1, refundable_fen=None)


@pytest.mark.parametrize(("fields", "rule"), [
    ((7, "payment", 0, "k"), "must be in 1.."),
    ((7, "payment", -5, "k"), "must be in 1.."),
    ((7, "payment", MAX_FEN + 1, "k"), "must be in 1.."),
    ((7, "payment", 1.5, "k"), "integer number of fen"),
    ((7, "payment", True, "k"), "integer number of fen"),
    ((7, "payment", "100", "k"), "integer number of fen"),
    ((7, "gift", 1, "k"), "kind 'gift'"),
    ((7, "payment", 1, ""), "idempotency key"),
    ((7, "payment", 1, "x" * (KEY_MAX + 1)), "idempotency key"),
    ((0, "payment", 1, "k"), "account_id must be in"),
    (("7", "payment", 1, "k"), "account_id must be an integer"),
    ((7, "refund", 1, "k"), "names the deduction it gives back"),
])
def test_bad_requests_name_the_rule(fields, rule):
    with pytest.raises(InvalidInput, match=rule):
        Operation.make(*fields)


def test_only_a_refund_names_refund_of():
    with pytest.raises(InvalidInput, match="only a refund"):
        Operation.make(7, "payment", 1, "k", "d1")


def test_a_retry_returns_the_first_answer_and_a_reused_key_is_refused():
    first = apply_operation(Account(7, 0, 0, 0), op(amount=100), 1)
    again = check_replay(op(amount=100), first)
    assert again.replayed and again.balance_fen == first.balance_fen == 100
    with pytest.raises(IdempotencyConflict, match="k1: key already names a payment of 100"):
        check_replay(op(amount=101), first)
    with pytest.raises(IdempotencyConflict):
        check_replay(op("deduction", 100), first)


def test_signed_amounts():
    assert op("payment", 5).signed_fen == 5
    assert op("deduction", 5).signed_fen == -5
    assert op("refund", 5, refund_of="d").signed_fen == 5
    assert op().kind is OperationKind.PAYMENT
