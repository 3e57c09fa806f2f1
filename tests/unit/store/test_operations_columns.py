"""The columnar batch's pure parts: its input rules (``check_columns``) and its answers
turned back into ``OperationResult``s (``ColumnAnswers.results``)."""

import numpy as np
import pytest

from gridfare.errors import InvalidInput
from gridfare.store.operations import (
    MAX_FEN,
    AnswerCode,
    ColumnAnswers,
    Operation,
    Outcome,
    check_columns,
)


def test_check_columns_names_the_first_operation_that_breaks_a_rule():
    ids, keys = np.array([1, 2, 3]), ["a", "b", "c"]
    check_columns(ids, keys, np.array([5, -5, MAX_FEN]))  # the edges that pass
    with pytest.raises(InvalidInput, match="operation b: amount_fen 0 must be"):
        check_columns(ids, keys, np.array([5, 0, 0]))
    with pytest.raises(InvalidInput, match=f"operation c: amount_fen {MAX_FEN + 1}"):
        check_columns(ids, keys, np.array([5, 5, -(MAX_FEN + 1)]))
    with pytest.raises(InvalidInput, match="account 0: account_id"):
        check_columns(np.array([1, 0, 3]), keys, np.array([1, 1, 1]))
    with pytest.raises(InvalidInput, match="account 2: idempotency key ''"):
        check_columns(ids, ["a", "", "c"], np.array([1, 1, 1]))
    with pytest.raises(InvalidInput, match="account 3: idempotency key"):
        check_columns(ids, ["a", "b", "x" * 129], np.array([1, 1, 1]))
    with pytest.raises(InvalidInput, match="must be as many"):
        check_columns(ids, keys[:2], np.array([1, 1, 1]))


def test_column_answers_read_back_as_results():
    ops = [Operation.make(1, "deduction", 5, "a"), Operation.make(2, "payment", 7, "b"),
           Operation.make(3, "deduction", 9, "c"), Operation.make(4, "deduction", 1, "d"),
           Operation.make(5, "payment", 1, "e")]
    answers = ColumnAnswers(
        np.array([AnswerCode.APPLIED, AnswerCode.REPLAYED_APPLIED, AnswerCode.REFUSED,
                  AnswerCode.REPLAYED_REFUSED, AnswerCode.UNKNOWN_ACCOUNT], np.int16),
        np.array([-5, 7, 0, 3, 0]), np.array([1, 4, 0, 2, 0]), np.array([2, 1, 2, 2, 2]))
    got = answers.results(ops)
    assert got[4] is None
    assert [(r.outcome, r.balance_fen, r.version, r.epoch, r.replayed) for r in got[:4]] == [
        (Outcome.APPLIED, -5, 1, 2, False), (Outcome.APPLIED, 7, 4, 1, True),
        (Outcome.REFUSED_OVERDRAFT, 0, 0, 2, False), (Outcome.REFUSED_OVERDRAFT, 3, 2, 2, True)]
    assert all(r.replicated for r in got[:4])
