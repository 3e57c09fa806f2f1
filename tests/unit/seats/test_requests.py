"""The seats requests a client may send: validated whole, field by field, before anything
reaches a centre; a refusal names the field and the rule."""

from __future__ import annotations

from datetime import date

import pytest

from gridfare.errors import InvalidInput, InvalidName
from gridfare.seats.inventory import Inventory
from gridfare.seats.requests import (
    MigrateRequest,
    RefundRequest,
    RemainingQuery,
    SellRequest,
    TrainDateRef,
)
from gridfare.seats.train import TrainDate
from tests.unit.seats.conftest import make_train

ORDER = {"train_no": "G1", "date": "2026-10-01", "from": "Beijing", "to": "Jinan",
         "class": "second", "count": 2, "request_id": "r-1"}


def test_a_good_order_becomes_the_centre_call():
    request = SellRequest.from_json(ORDER)
    assert request.key == "G1@2026-10-01"
    assert request.as_tuple() == ("G1", "2026-10-01", "Beijing", "Jinan", "second", 2, "r-1")
    assert SellRequest("G1", date(2026, 10, 1), "Beijing", "Jinan", "second", 2, "r-1") == request


@pytest.mark.parametrize("field, value, words", [
    ("count", "2", "'count' must be an integer"),
    ("count", True, "'count' must be an integer"),
    ("count", 2.0, "'count' must be an integer"),
    ("count", 0, "count 0"),
    ("count", 6, "count 6"),
    ("count", 10**30, "count"),
    ("train_no", "g1", "train_no"),
    ("train_no", "G1\n", "train_no"),
    ("train_no", ["G1"], "'train_no' must be a str"),
    ("date", "2026-13-01", "YYYY-MM-DD"),
    ("date", "20261001", "YYYY-MM-DD"),
    ("date", "2026-10-01T00:00", "YYYY-MM-DD"),
    ("from", "\ud800", "surrogate"),
    ("to", "", "to"),
    ("class", "royal", "royal"),
    ("request_id", "\ud800", "surrogate"),
    ("request_id", "x" * 129, "request_id"),
    ("request_id", 7, "'request_id' must be a str"),
    ("request_id", None, "'request_id' must be a str"),
])
def test_each_bad_field_is_named(field, value, words):
    with pytest.raises(InvalidInput, match=None) as caught:
        SellRequest.from_json({**ORDER, field: value})
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_and_unknown_fields_are_refused():
    with pytest.raises(InvalidInput, match="'request_id' is required"):
        SellRequest.from_json({k: v for k, v in ORDER.items() if k != "request_id"})
    with pytest.raises(InvalidInput, match="unknown field 'seat'"):
        SellRequest.from_json({**ORDER, "seat": 3})
    with pytest.raises(InvalidInput, match="object"):
        SellRequest.from_json(["G1"])


def test_refund_remaining_and_train_refs():
    assert RefundRequest.from_json({"train_no": "G1", "date": "2026-10-01",
                                    "request_id": "r"}).as_tuple() == ("G1", "2026-10-01", "r")
    with pytest.raises(InvalidInput, match="surrogate"):
        RefundRequest("G1", "2026-10-01", "\udc80")
    query = RemainingQuery.from_query({"train_no": "G1", "date": "2026-10-01", "from": "A",
                                       "to": "B"})
    assert query.key == "G1@2026-10-01"
    assert query.as_list() == ["G1", "2026-10-01", "A", "B"]
    assert RemainingQuery("G1", date(2026, 10, 1), "A", "B").as_list()[1] == "2026-10-01"
    with pytest.raises(InvalidInput, match="'to' is required"):
        RemainingQuery.from_query({"train_no": "G1", "date": "2026-10-01", "from": "A"})
    with pytest.raises(InvalidInput, match="unknown field"):
        RemainingQuery.from_query({"train_no": "G1", "date": "2026-10-01", "from": "A",
                                   "to": "B", "x": "1"})
    assert TrainDateRef("G1", "2026-10-01").key == "G1@2026-10-01"
    with pytest.raises(InvalidInput):
        TrainDateRef("..", "2026-10-01")


def test_a_migration_request_checks_id_target_and_selector_first():
    request = MigrateRequest.from_json({"selector": "G%", "target": "B", "id": "m-1"})
    assert (request.selector, request.target, request.id, request.auto) == ("G%", "B", "m-1", True)
    for body, error, words in [
        ({"selector": "G1", "target": "A", "id": "../../escape"}, InvalidName, "migration id"),
        ({"selector": "G1", "target": "A", "id": "a/b"}, InvalidName, "migration id"),
        ({"selector": "G1", "target": "../A"}, InvalidName, "target centre"),
        ({"selector": "G1", "target": "A", "auto": "yes"}, InvalidInput, "'auto' must be a bool"),
        ({"selector": "dates=2026-10-05..2026-10-01", "target": "A"}, InvalidInput,
         "ends before"),
        ({"selector": "G/1", "target": "A"}, InvalidInput, "train pattern"),
        ({"selector": "G1 \ud800", "target": "A"}, InvalidInput, "surrogate"),
        ({"selector": "G%" * 300, "target": "A"}, InvalidInput, "selector"),
        ({"target": "A"}, InvalidInput, "'selector' is required"),
    ]:
        with pytest.raises(error) as caught:
            MigrateRequest.from_json(body)
        assert words in str(caught.value), body


@pytest.mark.parametrize("body, words", [
    ({"stations": "ABC"}, "'stations' must be a list"),
    ({"classes": ["second"]}, "'classes' must be an object"),
    ({"train_no": 1}, "'train_no' must be a string"),
    ({"date": 20261001}, "'date' must be a string"),
    ({"stations": ["Beijing", "\ud800"]}, "surrogate"),
    ({"stations": ["Beijing", "Ji\x00nan"]}, "control"),
    ({"stations": ["Beijing", 7]}, "station"),
    ({"extra": 1}, "unknown field 'extra'"),
])
def test_a_train_definition_of_the_wrong_shape_is_refused(body, words):
    good = {"train_no": "K5", "date": "2026-10-03", "stations": ["Beijing", "Jinan"],
            "classes": {"second": 10}}
    assert TrainDate.from_dict(good).stations == ("Beijing", "Jinan")
    with pytest.raises(InvalidInput) as caught:
        TrainDate.from_dict({**good, **body})
    assert words in str(caught.value)


def test_the_inventory_refuses_a_request_id_it_could_not_log_or_answer():
    inventory = Inventory(make_train())
    for bad in ("\ud800", "a\x00", ""):
        with pytest.raises(InvalidInput, match="request_id"):
            inventory.sell("Beijing", "Jinan", "second", 1, bad)
    assert inventory.seq == 0  # nothing was applied


def test_bulk_rows_are_checked_by_the_sell_request_rules():
    import random

    from gridfare.errors import GridfareError
    from gridfare.seats.requests import SellRequest, check_sell_rows

    rng = random.Random(7)
    good = ("G1", "2026-10-01", "Beijing", "Jinan", "second", 2, "r1")
    bad = {0: ["g1", "", 7, None], 1: ["2026-13-01", "01/10/2026", 20261001],
           2: ["", "a\nb", 3, ["x"]], 3: ["\ud800", None], 4: ["third", ["second"]],
           5: [0, 6, True, 2.0, "2"], 6: ["", "x" * 200, None]}
    for _ in range(300):
        row = list(good)
        if rng.random() < 0.5:
            field = rng.choice(list(bad))
            row[field] = rng.choice(bad[field])
        row[6] = row[6] if row[6] != "r1" else f"r{rng.randrange(99)}"
        try:
            expected = SellRequest(*row)
        except GridfareError as exc:
            with pytest.raises(type(exc)) as caught:
                check_sell_rows([tuple(row)])
            assert str(caught.value) == str(exc)
        else:
            assert check_sell_rows([tuple(row)]) == [(expected.key, expected.as_list())]
