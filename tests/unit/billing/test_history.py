"""History fold: the period window, the year-to-date and sections folded side by side."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from datasets.schemas import HISTORY_FOLD, history_months
from gridfare.billing.history import locate, summarize_history
from gridfare.period import NOT_A_MONTH, Period, index_of, month_indices

PERIOD = Period.parse("2026-03")


@pytest.mark.parametrize("labels", [
    ["2025-03", "2025-04", "2025-12", "2026-01", "2026-02", "2026-03", "2024-12"],
    ["2026-02", "2026-2", "2026-13", "2026-00"],  # malformed: read label by label
    ["2026-02", "20x6-01", "2026_01"],
    ["2026-02", None],
    # More distinct labels than a small dictionary (read label by label): the byte pass.
    [f"{2020 + k // 12}-{k % 12 + 1:02d}" for k in range(70)] + ["2026-13", "2026-02"],
])
def test_labels_are_read_as_the_months_they_name(labels):
    column = pa.chunked_array([pa.array(labels[:2], pa.string()),
                               pa.array(labels[2:], pa.string())])
    expected = [index_of(Period.parse(label)) if label and re.fullmatch(
        r"\d{4}-(0[1-9]|1[0-2])", label) else NOT_A_MONTH for label in labels]
    assert month_indices(column).tolist() == expected
    # The same labels as a legacy file's dictionary (each distinct label parsed once): the
    # same months, a chunk with nulls included.
    encoded = pa.chunked_array([chunk.dictionary_encode() for chunk in column.chunks])
    assert month_indices(encoded).tolist() == expected


def test_rows_whose_label_is_not_a_month_are_left_out_of_the_history():
    history = pa.table({"account_id": pa.array([1, 1, 2, 2], pa.int64()),
                        "period": ["2026-02", "2026-2", None, "2026-01"],
                        "kwh": [10.0, 99.0, 99.0, 5.0]})
    rows = history_months(history)
    assert rows.schema == HISTORY_FOLD
    assert rows.to_pylist() == [{"account_id": 1, "month": 2026 * 12 + 1, "kwh": 10.0},
                                {"account_id": 2, "month": 2026 * 12, "kwh": 5.0}]
    assert history_months(rows) is rows  # billing's own rows pass as they are
    profile = summarize_history(history, np.array([1, 2]), PERIOD, 12)
    assert profile.avg_kwh.tolist() == [1000, 500]


def test_fold_keeps_the_window_and_the_year():
    history = pa.table({"account_id": pa.array([1, 1, 1, 2], pa.int64()),
                        "period": ["2025-02", "2025-12", "2026-02", "2026-01"],
                        "kwh": [1000.0, 10.0, 20.0, 5.0]})
    profile = summarize_history(history, np.array([1, 2]), PERIOD, 12)
    assert profile.ytd_kwh.tolist() == [2000, 500]  # 0.01 kWh; 2025-02 is out of the window
    assert profile.avg_kwh.tolist() == [1500, 500]


def test_segments_only_match_their_own_accounts():
    # Two sections side by side, both with an account 7; rows say which section they are.
    account_ids = np.array([3, 7, 7, 9])
    offsets = np.array([0, 2, 4])
    pos, found = locate(account_ids, offsets, np.array([7, 9, 7, 3, 9]),
                        np.array([0, 0, 1, 1, 1]))
    assert found.tolist() == [True, False, True, False, True]
    assert pos[found].tolist() == [1, 2, 3]


@pytest.mark.parametrize("labels, expected", [
    (["2026-01", "2025-12", "0001-01"], [2026 * 12, 2025 * 12 + 11, 12]),
    (["2026-1"], None),  # another length
    (["2026-13"], None),  # no such month
    (["2026-00"], None),
    (["2026/01"], None),  # not the separator
    (["20a6-01"], None),  # not a digit
    (["2026-01", None], None),  # a null
    ([], None),
])
def test_month_index_reads_labels_or_declines(labels, expected):
    from gridfare.period import Period, index_of, month_index

    index = month_index(pa.array(labels, pa.string()))
    if expected is None:
        assert index is None
    else:
        assert index.tolist() == expected
        assert [index_of(Period.parse(label)) for label in labels] == expected


def test_month_index_of_a_sliced_chunked_column():
    from gridfare.period import month_index

    column = pa.chunked_array([pa.array(["2026-10", "2026-11", "2026-12"]).slice(1),
                               pa.array(["2027-01"])])
    assert month_index(column).tolist() == [2026 * 12 + 10, 2026 * 12 + 11, 2027 * 12]
