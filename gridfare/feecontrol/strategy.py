"""Stage 6, strategy execution: each account's state machine and the commands it sends.

    normal -> warned -> reminded -> disconnect_pending -> disconnected -> reconnected -> normal

One table, ``TRANSITIONS``, maps (state, effective level) to (next state, action); every
rule is in how the effective level is made from the benchmark level:

- a held account (the audit's) under the disconnect level is ``held``: it keeps its state
  and gets no command, so audited-out data never leads to a notice or a disconnect;
- a disconnect goes out only from ``disconnect_pending``, after its notice has stood
  ``notice_hours`` and outside the night window and holidays (``ready``); until then the
  account stays pending and is decided again next cycle;
- a payment that lifts the balance above the disconnect level ends a pending disconnect,
  and reconnects a disconnected account in the same cycle.

Commands carry the key ``<action>:<account>:<decided at>`` (also the message's
``Nats-Msg-Id``): a rerun of the same batch makes the same keys, so a terminal never gets a
command twice, and the machine itself never sends a second disconnect to a disconnected
account.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum, IntEnum

import numpy as np
import pyarrow as pa

from datasets.schemas import FEE_COMMANDS
from gridfare.feecontrol.batch import Context, FeeBatch
from gridfare.feecontrol.benchmark import Level
from gridfare.feecontrol.config import StrategyRules

__all__ = ["TRANSITIONS", "Action", "Effective", "State", "decide", "run", "step"]

NAME = "strategy"


class State(str, Enum):
    NORMAL = "normal"
    WARNED = "warned"
    REMINDED = "reminded"
    DISCONNECT_PENDING = "disconnect_pending"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"


class Action(str, Enum):
    NONE = ""
    WARN = "warn"  # low-balance warning
    REMIND = "remind"  # payment reminder
    NOTICE = "notice"  # disconnect notice: the disconnect follows after notice_hours
    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"


class Effective(IntEnum):
    """The benchmark level with the rules applied."""

    NORMAL = 0
    WARNING = 1
    REMINDER = 2
    GRACE = 3
    DISCONNECT = 4  # under the level past grace; not (yet) allowed to disconnect now
    READY = 5  # ... and a pending disconnect may go out now
    HELD = 6  # under the level, but the audit held the account


S, A, E = State, Action, Effective
_ABOVE = {E.NORMAL: S.NORMAL, E.WARNING: S.WARNED, E.REMINDER: S.REMINDED}


def _row(state: State) -> dict[Effective, tuple[State, Action]]:
    """Transitions of a connected state that is not pending."""
    rank = {S.NORMAL: 0, S.RECONNECTED: 0, S.WARNED: 1, S.REMINDED: 2}[state]
    row: dict[Effective, tuple[State, Action]] = {}
    for level, target in _ABOVE.items():
        # Going down sends the level's command; going up or staying sends nothing.
        if level == E.NORMAL:
            row[level] = (S.NORMAL, A.NONE)
        elif int(level) > rank:
            row[level] = (target, A.WARN if level == E.WARNING else A.REMIND)
        elif int(level) == rank:
            row[level] = (state, A.NONE)
        else:
            row[level] = (target, A.NONE)
    row[E.GRACE] = (S.REMINDED, A.REMIND) if rank < 2 else (S.REMINDED, A.NONE)
    row[E.DISCONNECT] = row[E.READY] = (S.DISCONNECT_PENDING, A.NOTICE)
    row[E.HELD] = (state, A.NONE)
    return row


TRANSITIONS: dict[State, dict[Effective, tuple[State, Action]]] = {
    S.NORMAL: _row(S.NORMAL),
    S.WARNED: _row(S.WARNED),
    S.REMINDED: _row(S.REMINDED),
    S.RECONNECTED: _row(S.RECONNECTED),
    S.DISCONNECT_PENDING: {
        E.NORMAL: (S.NORMAL, A.NONE),
        E.WARNING: (S.WARNED, A.NONE),
        E.REMINDER: (S.REMINDED, A.NONE),
        E.GRACE: (S.REMINDED, A.NONE),
        E.DISCONNECT: (S.DISCONNECT_PENDING, A.NONE),
        E.READY: (S.DISCONNECTED, A.DISCONNECT),
        E.HELD: (S.DISCONNECT_PENDING, A.NONE),
    },
    S.DISCONNECTED: {
        E.NORMAL: (S.RECONNECTED, A.RECONNECT),
        E.WARNING: (S.RECONNECTED, A.RECONNECT),
        E.REMINDER: (S.RECONNECTED, A.RECONNECT),
        E.GRACE: (S.DISCONNECTED, A.NONE),
        E.DISCONNECT: (S.DISCONNECTED, A.NONE),
        E.READY: (S.DISCONNECTED, A.NONE),
        E.HELD: (S.DISCONNECTED, A.NONE),
    },
}
_STATES = list(State)
_ACTIONS = list(Action)
_NEXT = np.array([[_STATES.index(TRANSITIONS[s][e][0]) for e in Effective] for s in _STATES])
_ACT = np.array([[_ACTIONS.index(TRANSITIONS[s][e][1]) for e in Effective] for s in _STATES])
STATE_NAMES = np.array([s.value for s in _STATES], dtype=object)
ACTION_NAMES = np.array([a.value for a in _ACTIONS], dtype=object)


def decide(state: np.ndarray, level: np.ndarray, held: np.ndarray, notice_at: np.ndarray,
           decide_at: dt.datetime, rules: StrategyRules) -> tuple[np.ndarray, np.ndarray]:
    """(next state index, action index) per account.

    ``state``: indices into ``State``; ``level``: ``Level`` values; ``notice_at``: epoch
    seconds of the pending notice (-1: none); ``decide_at``: the instant of the decision.
    """
    effective = np.asarray(level, dtype=np.int64).copy()
    now = int((decide_at - dt.datetime(1970, 1, 1)).total_seconds())
    notice_due = (notice_at >= 0) & (notice_at + rules.notice_hours * 3600 <= now)
    may = rules.may_disconnect(decide_at)
    under = effective >= Level.GRACE
    effective[(effective == Level.DISCONNECT) & notice_due & may] = Effective.READY
    effective[under & held] = Effective.HELD
    return _NEXT[state, effective], _ACT[state, effective]


def step(state: State, level: Level, *, held: bool = False,
         notice_at: dt.datetime | None = None,
         decide_at: dt.datetime = dt.datetime(2026, 11, 2, 12),
         rules: StrategyRules = StrategyRules()) -> tuple[State, Action]:  # noqa: B008
    """One account's transition: ``decide`` on one row (for tests and the CLI)."""
    notice = -1 if notice_at is None else int((notice_at - dt.datetime(1970, 1, 1))
                                              .total_seconds())
    nxt, act = decide(np.array([_STATES.index(state)]), np.array([int(level)]),
                      np.array([held]), np.array([notice]), decide_at, rules)
    return _STATES[int(nxt[0])], _ACTIONS[int(act[0])]


def run(batch: FeeBatch, context: Context) -> FeeBatch:
    accounts = batch.table("accounts")
    c = {name: accounts[name].to_numpy(zero_copy_only=False) for name in accounts.column_names}
    index = {s.value: i for i, s in enumerate(_STATES)}
    distinct, inverse = np.unique(c["state"].astype(str), return_inverse=True)
    state = np.array([index[s] for s in distinct.tolist()], dtype=np.int64)[inverse]
    nxt, act = decide(state, c["level"], c["held"], c["notice_at"], batch.decide_at,
                      context.snapshot.strategy)
    now = int((batch.decide_at - dt.datetime(1970, 1, 1)).total_seconds())
    noticed = act == _ACTIONS.index(Action.NOTICE)
    pending = nxt == _STATES.index(State.DISCONNECT_PENDING)
    c["notice_at"] = np.where(noticed, now, np.where(pending, c["notice_at"], -1))
    c["next_state"] = STATE_NAMES[nxt]
    c["action"] = ACTION_NAMES[act]
    rows = np.flatnonzero(act != 0)
    stamp = batch.decide_at.strftime("%Y%m%dT%H%M%S")
    actions = c["action"][rows].tolist()
    ids = c["account_id"][rows].tolist()
    commands = pa.table({
        "idempotency_key": pa.array([f"{a}:{i}:{stamp}" for a, i in zip(actions, ids,
                                                                          strict=True)]),
        "account_id": pa.array(ids, pa.int64()),
        "action": pa.array(actions, pa.string()),
        "customer_kind": pa.array(c["customer_kind"][rows].tolist(), pa.string()),
        "balance_fen": pa.array(c["balance_after"][rows], pa.int64()),
        "run_date": pa.array([batch.run_date] * len(rows), pa.date32()),
    }, schema=FEE_COMMANDS)
    counts = {f"command_{a.value}": int((act == i).sum())
              for i, a in enumerate(_ACTIONS) if i}
    return batch.with_tables(counts, accounts=pa.table(c), commands=commands)
