from __future__ import annotations

from datetime import date

import pytest

from gridfare.errors import InvalidInput
from gridfare.seats.train import MAX_LEGS, TrainDate, parse_key, train_key

from .conftest import DAY, make_train


def test_key_round_trip():
    assert train_key("G1234", DAY) == "G1234@2026-10-01"
    assert parse_key("G1234@2026-10-01") == ("G1234", DAY)
    assert make_train().key == "G1@2026-10-01"


@pytest.mark.parametrize("key", ["G1234", "G1234@", "g1@2026-10-01", "G1@2026-13-01", ""])
def test_bad_keys_are_refused(key):
    with pytest.raises(InvalidInput, match="TRAIN@YYYY-MM-DD"):
        parse_key(key)


def test_classes_are_stored_in_class_order():
    t = make_train(classes={"second": 5, "business": 1, "first": 2})
    assert t.classes == (("business", 1), ("first", 2), ("second", 5))
    assert t.seats == 8
    assert t.seats_of("first") == 2
    assert t.legs == 4


def test_dict_round_trip():
    t = make_train(through=True, service="express")
    assert TrainDate.from_dict(t.to_dict()) == t
    assert t.scope == "through"


def test_63_legs_fit_and_64_do_not():
    stations = tuple(f"S{i}" for i in range(MAX_LEGS + 1))
    assert make_train(stations=stations).legs == 63
    with pytest.raises(InvalidInput, match="at most 63"):
        make_train(stations=(*stations, "extra"))


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"train_no": "g1"}, "train_no"),
        ({"stations": ("A",)}, "at least 2 stations"),
        ({"stations": ("A", "B", "A")}, "appears twice"),
        ({"classes": {"deluxe": 3}}, "unknown seat class"),
        ({"classes": {"second": 0}}, "1..10000 seats"),
        ({"classes": {}}, "at least one seat class"),
        ({"service": "maglev"}, "service"),
        ({"day": "2026-10-01"}, "datetime.date"),
    ],
)
def test_bad_train_dates_name_the_rule(kwargs, rule):
    with pytest.raises(InvalidInput, match=rule):
        make_train(**kwargs)


def test_unknown_class_names_the_train():
    with pytest.raises(InvalidInput, match="G1@2026-10-01: class 'sleeper'"):
        make_train().seats_of("sleeper")


def test_dates_differ_keys_differ():
    assert make_train(day=date(2026, 10, 2)).key != make_train().key
