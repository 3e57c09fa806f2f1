"""Operations on a prepaid account: payment, deduction, refund.

An account holds ``balance_fen`` (int64 fen) and a ``version`` bumped by every applied
operation. An operation carries an idempotency key; the first answer given under a key is
stored with the balance change in one transaction, and every retry of that key gets it
back (``replayed=True``). A key that comes back naming a different request is refused
(``IdempotencyConflict``), never applied.

A deduction that would take the balance below the account's floor (``floor_fen``, 0 or
negative for an overdraft allowance) is refused: the refusal is the key's first answer too,
so a retry is refused the same way even if money arrived since. A refund credits back part
or all of an earlier deduction of the same account, at most what is left of it.

``apply_batch`` answers many payments and deductions at once (one transaction in the store):
each keeps its own key, its own first answer and its own floor check, in the order given, so
a batch is the same as its operations applied one after another.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gridfare.errors import IdempotencyConflict, InvalidInput, Overdraft

__all__ = [
    "KEY_MAX",
    "MAX_FEN",
    "Account",
    "AnswerCode",
    "BatchPlan",
    "ColumnAnswers",
    "Operation",
    "OperationKind",
    "OperationResult",
    "Outcome",
    "apply_batch",
    "apply_operation",
    "check_account_ids",
    "check_columns",
    "check_replay",
    "validate_account_id",
    "validate_key",
]

KEY_MAX = 128  # characters in an idempotency key
MAX_FEN = 10**15  # 10 trillion CNY: far above any real balance, far below int64's limit


class OperationKind(str, enum.Enum):
    PAYMENT = "payment"
    DEDUCTION = "deduction"
    REFUND = "refund"


class Outcome(str, enum.Enum):
    APPLIED = "applied"
    REFUSED_OVERDRAFT = "refused_overdraft"


@dataclass(frozen=True)
class Account:
    account_id: int
    balance_fen: int
    floor_fen: int
    version: int


@dataclass(frozen=True)
class Operation:
    """One request on one account; ``refund_of`` names the deduction a refund gives back."""

    account_id: int
    kind: OperationKind
    amount_fen: int
    key: str
    refund_of: str | None = None

    @classmethod
    def make(cls, account_id: object, kind: object, amount_fen: object, key: object,
             refund_of: object = None) -> Operation:
        """Check a request's fields; the error names the key (or account) and the rule."""
        account = validate_account_id(account_id)
        validate_key(account, key)
        try:
            kind = OperationKind(kind)
        except ValueError:
            raise InvalidInput(f"operation {key}: kind {kind!r} is not one of "
                               f"{[k.value for k in OperationKind]}") from None
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
            raise InvalidInput(f"operation {key}: amount_fen {amount_fen!r} must be an integer "
                               "number of fen")
        if not 0 < amount_fen <= MAX_FEN:
            raise InvalidInput(f"operation {key}: amount_fen {amount_fen} must be in "
                               f"1..{MAX_FEN}")
        if kind is OperationKind.REFUND:
            if not isinstance(refund_of, str) or not refund_of or len(refund_of) > KEY_MAX:
                raise InvalidInput(f"operation {key}: a refund names the deduction it gives "
                                   "back (refund_of)")
        elif refund_of is not None:
            raise InvalidInput(f"operation {key}: only a refund names refund_of")
        return cls(account, kind, amount_fen, key, refund_of)

    @property
    def signed_fen(self) -> int:
        return -self.amount_fen if self.kind is OperationKind.DEDUCTION else self.amount_fen


@dataclass(frozen=True)
class OperationResult:
    """The answer under an idempotency key (the same on every retry but ``replayed``)."""

    key: str
    account_id: int
    kind: OperationKind
    amount_fen: int
    outcome: Outcome
    balance_fen: int  # after the operation (unchanged when refused)
    version: int  # the account's version after the operation
    epoch: int  # the store epoch it was written in
    replayed: bool = False
    replicated: bool = True  # False only under the 'accept' rule with no standby in sync

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "account_id": self.account_id, "kind": self.kind.value,
                "amount_fen": self.amount_fen, "outcome": self.outcome.value,
                "balance_fen": self.balance_fen, "version": self.version,
                "epoch": self.epoch, "replayed": self.replayed,
                "replicated": self.replicated}

    def raise_if_refused(self) -> OperationResult:
        if self.outcome is Outcome.REFUSED_OVERDRAFT:
            raise Overdraft(self.account_id, self.key, self.amount_fen, self.balance_fen)
        return self


def validate_key(account_id: int, key: object) -> None:
    """An idempotency key: 1 to ``KEY_MAX`` printable characters; the error names the
    account."""
    if not isinstance(key, str) or not key or len(key) > KEY_MAX or not key.isprintable():
        raise InvalidInput(f"account {account_id}: idempotency key {key!r} must be 1 to "
                           f"{KEY_MAX} printable characters")


def check_account_ids(account_ids: np.ndarray) -> None:
    """``validate_account_id``'s range over an int64 array; the error names the first."""
    bad = np.flatnonzero(account_ids <= 0)
    if len(bad):
        raise InvalidInput(f"account {int(account_ids[bad[0]])}: account_id must be in "
                           "1..2^63-1")


def validate_account_id(account_id: object) -> int:
    if isinstance(account_id, bool) or not isinstance(account_id, int):
        raise InvalidInput(f"account {account_id!r}: account_id must be an integer")
    if not 0 < account_id < 2**63:
        raise InvalidInput(f"account {account_id}: account_id must be in 1..2^63-1")
    return account_id


def check_replay(op: Operation, first: OperationResult) -> OperationResult:
    """The stored first answer for a retried key, or ``IdempotencyConflict`` if the key
    now names another request."""
    if (first.account_id, first.kind, first.amount_fen) != (op.account_id, op.kind,
                                                            op.amount_fen):
        raise IdempotencyConflict(
            f"operation {op.key}: key already names a {first.kind.value} of "
            f"{first.amount_fen} fen on account {first.account_id}")
    return OperationResult(**{**first.__dict__, "replayed": True})


def apply_operation(account: Account, op: Operation, epoch: int,
                    refundable_fen: int | None = None) -> OperationResult:
    """The answer to ``op`` on ``account``: applied (balance and version after) or refused.

    ``refundable_fen`` is what is left of the deduction a refund names (None when that key
    is no deduction of this account)."""
    if op.account_id != account.account_id:
        raise InvalidInput(f"operation {op.key}: names account {op.account_id}, "
                           f"not {account.account_id}")
    if op.kind is OperationKind.REFUND:
        if refundable_fen is None:
            raise InvalidInput(f"operation {op.key}: refund_of {op.refund_of!r} is no "
                               f"applied deduction of account {account.account_id}")
        if op.amount_fen > refundable_fen:
            raise InvalidInput(f"operation {op.key}: refund of {op.amount_fen} fen exceeds "
                               f"the {refundable_fen} fen left of deduction {op.refund_of}")
    balance = account.balance_fen + op.signed_fen
    if op.kind is OperationKind.DEDUCTION and balance < account.floor_fen:
        return OperationResult(op.key, account.account_id, op.kind, op.amount_fen,
                               Outcome.REFUSED_OVERDRAFT, account.balance_fen,
                               account.version, epoch)
    if abs(balance) > MAX_FEN:
        raise InvalidInput(f"operation {op.key}: balance would reach {balance} fen, beyond "
                           f"{MAX_FEN}")
    return OperationResult(op.key, account.account_id, op.kind, op.amount_fen,
                           Outcome.APPLIED, balance, account.version + 1, epoch)


@dataclass(frozen=True)
class BatchPlan:
    """What a batch answers and what it changes.

    ``answers`` has one entry per operation, in order: its answer, or None when its
    account does not exist (nothing is written for it, so a retry after the account is
    opened applies it). ``accounts`` is each account the batch changed, as it is after the
    batch; ``recorded`` is the answers new in this batch, to be stored under their keys."""

    answers: tuple[OperationResult | None, ...]
    accounts: tuple[Account, ...]
    recorded: tuple[OperationResult, ...]


def apply_batch(accounts: Mapping[int, Account], ops: Sequence[Operation], epoch: int,
                first: Mapping[str, OperationResult]) -> BatchPlan:
    """The answers to ``ops`` applied one after another on ``accounts`` (the rows read,
    locked, at the batch's start), with ``first`` the answers already stored under any of
    their keys. A key seen earlier in the same batch answers its first answer too.

    A refund needs what is left of its deduction, read on its own: it goes one at a time
    (``apply_operation``) and is refused here, and so is any other bad operation, naming
    its key: the whole batch then writes nothing."""
    # (balance, version) per account as the batch moves it: the rule of apply_operation,
    # inlined (a batch of 5,000 spent most of its client time in per-operation objects)
    state = {a.account_id: (a.balance_fen, a.version) for a in accounts.values()}
    changed: dict[int, None] = {}  # in the order first changed
    answered: dict[str, OperationResult] = dict(first)
    answers: list[OperationResult | None] = []
    recorded: list[OperationResult] = []
    deduction, refund = OperationKind.DEDUCTION, OperationKind.REFUND
    for op in ops:
        if op.kind is refund:
            raise InvalidInput(f"operation {op.key}: a refund is applied on its own, not in "
                               "a batch (it needs what is left of its deduction)")
        if op.key in answered:
            answers.append(check_replay(op, answered[op.key]))
            continue
        now = state.get(op.account_id)
        if now is None:
            answers.append(None)
            continue
        balance, version = now
        if op.kind is deduction:
            after = balance - op.amount_fen
            if after < accounts[op.account_id].floor_fen:
                result = OperationResult(op.key, op.account_id, op.kind, op.amount_fen,
                                         Outcome.REFUSED_OVERDRAFT, balance, version, epoch)
                answered[op.key] = result
                recorded.append(result)
                answers.append(result)
                continue
        else:
            after = balance + op.amount_fen
        if abs(after) > MAX_FEN:
            raise InvalidInput(f"operation {op.key}: balance would reach {after} fen, beyond "
                               f"{MAX_FEN}")
        result = OperationResult(op.key, op.account_id, op.kind, op.amount_fen,
                                 Outcome.APPLIED, after, version + 1, epoch)
        state[op.account_id] = (after, version + 1)
        changed[op.account_id] = None
        answered[op.key] = result
        recorded.append(result)
        answers.append(result)
    moved = tuple(Account(a, state[a][0], accounts[a].floor_fen, state[a][1]) for a in changed)
    return BatchPlan(tuple(answers), moved, tuple(recorded))


class AnswerCode(enum.IntEnum):
    """One operation's answer in a columnar batch (``ColumnAnswers.code``)."""

    UNKNOWN_ACCOUNT = 0  # nothing written: a retry after the account is opened applies it
    APPLIED = 1
    REFUSED = 2  # refused at the floor
    REPLAYED_APPLIED = 3  # the key's first answer, stored earlier
    REPLAYED_REFUSED = 4


@dataclass(frozen=True)
class ColumnAnswers:
    """The answers to a columnar batch, one entry per operation in order (int64 arrays but
    ``code``, an ``AnswerCode`` per operation); balance and version after the operation."""

    code: np.ndarray
    balance_fen: np.ndarray
    version: np.ndarray
    epoch: np.ndarray
    replicated: bool = True  # False only under the 'accept' rule with no standby in sync

    def results(self, ops: Sequence[Operation]) -> list[OperationResult | None]:
        """The answers as ``apply_batch`` gives them, for the operations they answer."""
        out: list[OperationResult | None] = []
        for op, code, balance, version, epoch in zip(
                ops, self.code.tolist(), self.balance_fen.tolist(), self.version.tolist(),
                self.epoch.tolist(), strict=True):
            if code == AnswerCode.UNKNOWN_ACCOUNT:
                out.append(None)
                continue
            outcome = (Outcome.APPLIED if code in (AnswerCode.APPLIED,
                                                   AnswerCode.REPLAYED_APPLIED)
                       else Outcome.REFUSED_OVERDRAFT)
            out.append(OperationResult(op.key, op.account_id, op.kind, op.amount_fen, outcome,
                                       balance, version, epoch,
                                       replayed=code >= AnswerCode.REPLAYED_APPLIED,
                                       replicated=self.replicated))
        return out


def check_columns(account_ids: np.ndarray, keys: Sequence[str], signed_fen: np.ndarray
                  ) -> None:
    """The rules of ``Operation.make`` over a whole batch of payments (``signed_fen`` > 0)
    and deductions (< 0) at once; the error names the first operation that breaks one."""
    n = len(account_ids)
    if len(keys) != n or len(signed_fen) != n:
        raise InvalidInput(f"batch: {n} account ids, {len(keys)} keys and {len(signed_fen)} "
                           "amounts must be as many")
    check_account_ids(account_ids)
    bad = np.flatnonzero((signed_fen == 0) | (np.abs(signed_fen) > MAX_FEN))
    if len(bad):
        raise InvalidInput(f"operation {keys[bad[0]]}: amount_fen {abs(int(signed_fen[bad[0]]))} "
                           f"must be in 1..{MAX_FEN}")
    for i, key in enumerate(keys):
        validate_key(int(account_ids[i]), key)
