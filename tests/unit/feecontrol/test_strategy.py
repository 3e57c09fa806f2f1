"""The per-account strategy state machine: every state at every level, and its rules."""

from __future__ import annotations

import datetime as dt

import pytest

from gridfare.feecontrol.benchmark import Level
from gridfare.feecontrol.config import StrategyRules
from gridfare.feecontrol.strategy import TRANSITIONS, Action, Effective, State, step

S, A, L = State, Action, Level
NOON = dt.datetime(2026, 11, 2, 12)
LONG_AGO = NOON - dt.timedelta(days=2)


@pytest.mark.parametrize(("state", "level", "expected"), [
    (S.NORMAL, L.NORMAL, (S.NORMAL, A.NONE)),
    (S.NORMAL, L.WARNING, (S.WARNED, A.WARN)),
    (S.NORMAL, L.REMINDER, (S.REMINDED, A.REMIND)),
    (S.NORMAL, L.GRACE, (S.REMINDED, A.REMIND)),
    (S.NORMAL, L.DISCONNECT, (S.DISCONNECT_PENDING, A.NOTICE)),
    (S.WARNED, L.WARNING, (S.WARNED, A.NONE)),  # warned once, not every cycle
    (S.WARNED, L.REMINDER, (S.REMINDED, A.REMIND)),
    (S.WARNED, L.NORMAL, (S.NORMAL, A.NONE)),
    (S.REMINDED, L.REMINDER, (S.REMINDED, A.NONE)),
    (S.REMINDED, L.WARNING, (S.WARNED, A.NONE)),  # paid a little: no second warning
    (S.REMINDED, L.GRACE, (S.REMINDED, A.NONE)),
    (S.REMINDED, L.DISCONNECT, (S.DISCONNECT_PENDING, A.NOTICE)),
    (S.DISCONNECT_PENDING, L.NORMAL, (S.NORMAL, A.NONE)),  # a payment ends the pending
    (S.DISCONNECT_PENDING, L.REMINDER, (S.REMINDED, A.NONE)),
    (S.DISCONNECTED, L.NORMAL, (S.RECONNECTED, A.RECONNECT)),
    (S.DISCONNECTED, L.REMINDER, (S.RECONNECTED, A.RECONNECT)),
    (S.DISCONNECTED, L.GRACE, (S.DISCONNECTED, A.NONE)),  # still under the level
    (S.DISCONNECTED, L.DISCONNECT, (S.DISCONNECTED, A.NONE)),  # never a second disconnect
    (S.RECONNECTED, L.NORMAL, (S.NORMAL, A.NONE)),
    (S.RECONNECTED, L.WARNING, (S.WARNED, A.WARN)),
])
def test_transitions(state, level, expected):
    assert step(state, level, decide_at=NOON) == expected


def test_the_table_is_complete():
    assert set(TRANSITIONS) == set(State)
    assert all(set(row) == set(Effective) for row in TRANSITIONS.values())


def test_a_pending_disconnect_goes_out_after_its_notice_in_the_day():
    rules = StrategyRules(notice_hours=12)
    assert step(S.DISCONNECT_PENDING, L.DISCONNECT, notice_at=LONG_AGO, decide_at=NOON,
                rules=rules) == (S.DISCONNECTED, A.DISCONNECT)
    # Notice sent 11 h ago: not yet.
    assert step(S.DISCONNECT_PENDING, L.DISCONNECT, notice_at=NOON - dt.timedelta(hours=11),
                decide_at=NOON, rules=rules) == (S.DISCONNECT_PENDING, A.NONE)
    # Exactly at the end of the notice: it goes.
    assert step(S.DISCONNECT_PENDING, L.DISCONNECT, notice_at=NOON - dt.timedelta(hours=12),
                decide_at=NOON, rules=rules)[1] == A.DISCONNECT


@pytest.mark.parametrize(("hour", "minute", "may"), [
    (21, 59, True), (22, 0, False), (23, 30, False), (0, 0, False), (6, 59, False),
    (7, 0, True), (12, 0, True)])
def test_no_disconnect_in_the_night_window(hour, minute, may):
    at = dt.datetime(2026, 11, 2, hour, minute)
    result = step(S.DISCONNECT_PENDING, L.DISCONNECT, notice_at=LONG_AGO, decide_at=at)
    assert result == ((S.DISCONNECTED, A.DISCONNECT) if may else (S.DISCONNECT_PENDING, A.NONE))


def test_no_disconnect_on_a_holiday_but_it_stays_pending():
    rules = StrategyRules(holidays=frozenset({NOON.date()}))
    assert step(S.DISCONNECT_PENDING, L.DISCONNECT, notice_at=LONG_AGO, decide_at=NOON,
                rules=rules) == (S.DISCONNECT_PENDING, A.NONE)
    tomorrow = NOON + dt.timedelta(days=1)
    assert step(S.DISCONNECT_PENDING, L.DISCONNECT, notice_at=LONG_AGO, decide_at=tomorrow,
                rules=rules) == (S.DISCONNECTED, A.DISCONNECT)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("level", [L.GRACE, L.DISCONNECT])
def test_a_held_account_is_never_noticed_nor_disconnected(state, level):
    next_state, action = step(state, level, held=True, notice_at=LONG_AGO, decide_at=NOON)
    assert (next_state, action) == (state, A.NONE)


def test_a_held_account_that_paid_is_still_reconnected():
    assert step(S.DISCONNECTED, L.NORMAL, held=True) == (S.RECONNECTED, A.RECONNECT)


def test_a_window_that_does_not_wrap_midnight():
    rules = StrategyRules(night_start=dt.time(1), night_end=dt.time(5))
    assert not rules.may_disconnect(dt.datetime(2026, 11, 2, 3))
    assert rules.may_disconnect(dt.datetime(2026, 11, 2, 23))
