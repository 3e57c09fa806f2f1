from __future__ import annotations

from datetime import date

import pytest

from gridfare.errors import InvalidInput
from gridfare.seats.selectors import TrainSelector, like_to_regex

from .conftest import make_train

D1, D2, D3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)
TRAINS = [
    make_train("G1230", D1, through=True),
    make_train("G1235", D2),
    make_train("D5", D1, through=True),
    make_train("T109", D3, service="express"),
    make_train("K1459", D2, service="ordinary", through=True),
]


def names(text: str) -> list[str]:
    return [t.key for t in TrainSelector.parse(text).select(TRAINS)]


def test_one_train_number():
    assert names("G1235") == ["G1235@2026-10-02"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("G%", {"G1230", "G1235"}),
        ("%5", {"G1235", "D5"}),
        ("%9", {"T109", "K1459"}),
        ("%0", {"G1230"}),
        ("G%5", {"G1235"}),  # % in the middle is supported
        ("g12_5", {"G1235"}),  # _ is one character; matching ignores case
        ("G% D%", {"G1230", "G1235", "D5"}),  # patterns are OR-ed
        ("%", {t.train_no for t in TRAINS}),
    ],
)
def test_patterns(text, expected):
    assert {k.split("@")[0] for k in names(text)} == expected


def test_kinds():
    assert {k.split("@")[0] for k in names("kind=through")} == {"G1230", "D5", "K1459"}
    assert {k.split("@")[0] for k in names("kind=local")} == {"G1235", "T109"}
    assert {k.split("@")[0] for k in names("kind=express,ordinary")} == {"T109", "K1459"}
    assert {k.split("@")[0] for k in names("kind=through,emu")} == {"G1230", "D5"}


def test_date_range_is_inclusive():
    assert [k.split("@")[0] for k in names("dates=2026-10-02..2026-10-03")] == [
        "G1235",
        "K1459",
        "T109",
    ]
    assert len(names("dates=2026-10-01")) == 2


def test_filters_combine_with_and():
    assert names("G% %5 kind=local dates=2026-10-01..2026-10-02") == ["G1235@2026-10-02"]
    assert names("G% kind=express") == []


def test_select_orders_by_date_then_train():
    assert names("%") == [
        "D5@2026-10-01",
        "G1230@2026-10-01",
        "G1235@2026-10-02",
        "K1459@2026-10-02",
        "T109@2026-10-03",
    ]


def test_text_round_trip():
    sel = TrainSelector.parse("d% G% kind=emu,through dates=2026-10-01..2026-10-07")
    assert str(sel) == "D% G% kind=through,emu dates=2026-10-01..2026-10-07"
    assert TrainSelector.parse(str(sel)) == sel


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "at least one filter"),
        ("G-1", "only letters, digits, % and _"),
        ("kind=maglev", "kind 'maglev'"),
        ("dates=2026-10-05..2026-10-01", "ends before it starts"),
        ("dates=tomorrow", "YYYY-MM-DD"),
        ("dates=2026-10-01 dates=2026-10-02", "dates given twice"),
        ("speed=fast", "unknown term"),
    ],
)
def test_bad_selectors_name_the_rule(text, rule):
    with pytest.raises(InvalidInput, match=rule):
        TrainSelector.parse(text)


def test_half_a_date_range_is_refused():
    with pytest.raises(InvalidInput, match="both ends"):
        TrainSelector(trains=("G%",), date_from=D1)


def test_like_to_regex_escapes_nothing_dangerous():
    assert like_to_regex("G%").match("G1234")
    assert not like_to_regex("G%").match("DG1")
