"""The in-memory account state of the continuous mode (no Ray)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from datasets.fee_state import StateTable
from datasets.schemas import FEE_STATE

DAY = dt.date(2026, 11, 3)


def _rows(*rows: tuple[int, str, float | None, dt.date | None]) -> pa.Table:
    at = dt.datetime(2026, 11, 3)
    return pa.Table.from_pylist([
        {"account_id": a, "settled_at": at, "register_kwh": kwh or 0.0, "peak_kwh": kwh,
         "month_kwh": 1.5, "month_critical_kwh": 0.0, "month_peak_kwh": 0.0,
         "month_flat_kwh": 0.0, "month_valley_kwh": 0.0, "year_kwh": 2.25, "state": state,
         "below_since": below, "notice_at": at if below else None, "run_date": DAY}
        for a, state, kwh, below in rows], schema=FEE_STATE)


def test_a_table_comes_back_as_it_went_in_sorted_by_account():
    table = _rows((5, "warned", 1.25, None), (2, "normal", None, DAY),
                  (9, "disconnect_pending", 3.5, DAY))
    state = StateTable(table)
    assert len(state) == 3
    assert state.to_table().equals(table.sort_by("account_id"))
    assert StateTable().to_table().equals(FEE_STATE.empty_table())


def test_rows_of_the_accounts_asked_for_that_have_a_state():
    table = _rows((5, "warned", 1.25, None), (2, "normal", None, DAY), (9, "normal", 2.0, None))
    state = StateTable(table)
    got = state.rows([9, 4, 2, 9])
    assert got.equals(table.sort_by("account_id").take([0, 2]))
    assert state.rows([]).num_rows == 0


def test_a_delta_replaces_whole_rows_and_adds_new_accounts():
    state = StateTable(_rows((1, "normal", 1.0, None), (3, "warned", None, DAY)))
    state.apply(_rows((3, "normal", 4.0, None), (2, "disconnect_pending", None, DAY)))
    expected = _rows((1, "normal", 1.0, None), (2, "disconnect_pending", None, DAY),
                     (3, "normal", 4.0, None))
    assert state.to_table().equals(expected)  # nulls both ways: peak_kwh, below_since
    assert state.ids_in_state("disconnect_pending").tolist() == [2]
    assert state.ids_in_state("disconnected").tolist() == []
    state.apply(_rows((2, "disconnected", 1.0, None), (2, "reconnected", 2.0, None)))
    assert state.rows([2])["state"].to_pylist() == ["reconnected"]  # the last row wins
    assert state.ids_in_state("disconnect_pending").tolist() == []


def test_a_table_with_an_account_twice_keeps_its_last_row():
    state = StateTable(_rows((4, "warned", 1.0, None), (4, "reminded", 2.0, None)))
    assert state.to_table()["state"].to_pylist() == ["reminded"]
