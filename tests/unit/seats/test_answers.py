"""Columnar answers (``SaleAnswers``, ``BulkAnswers``): typed on access from the rows they
answer, the same after a pickle round trip (what Ray sends), counted without typing."""

from __future__ import annotations

import pickle

import pytest

from gridfare.errors import SeatError, UnknownTrain
from gridfare.seats.answers import (
    BulkAnswers,
    Moved,
    Refused,
    Remaining,
    SaleAnswers,
    SaleKind,
    Sold,
    SoldOut,
    remaining_from_wire,
    remaining_wire,
)

ROWS = [("G1", "2026-10-01", "A", "C", "second", 2, "r1"),
        ("G1", "2026-10-01", "A", "B", "second", 1, "r2"),
        ("D7", "2026-10-02", "B", "C", "business", 1, "r3"),
        ("G1", "2026-10-01", "A", "C", "second", 2, "r1")]


def _answers() -> SaleAnswers:
    answers = SaleAnswers(len(ROWS), ROWS)
    answers.sold(0, (1, 2))
    answers.sold_out(1, 0)
    answers[2] = Moved("D7@2026-10-02", "C2", 4)
    answers.sold(3, (1, 2), repeat=True)
    return answers


EXPECTED = [Sold("G1@2026-10-01", "r1", "second", "A", "C", (1, 2), False),
            SoldOut("G1@2026-10-01", "second", "A", "B", 1, 0),
            Moved("D7@2026-10-02", "C2", 4),
            Sold("G1@2026-10-01", "r1", "second", "A", "C", (1, 2), True)]


def test_answers_are_typed_from_their_rows_and_the_same_after_a_pickle():
    answers = _answers()
    assert list(answers) == EXPECTED and answers == EXPECTED
    wire = pickle.loads(pickle.dumps(answers))
    assert wire.others == {2: EXPECTED[2]}
    with pytest.raises(SeatError, match="bind"):
        wire[0]
    assert wire.bind(ROWS) == EXPECTED
    assert wire.sold_count == 2
    assert wire.tally() == {SaleKind.SOLD: 1, SaleKind.REPEAT: 1, SaleKind.SOLD_OUT: 1,
                            SaleKind.OTHER: 1}
    with pytest.raises(SeatError, match="3 requests"):
        pickle.loads(pickle.dumps(answers)).bind(ROWS[:3])


def _plain(value) -> bool:
    """Only what Ray's msgpack layer sends itself: no tuple, no object (bytes, lists,
    dicts, str, int, None)."""
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return value is None or isinstance(value, (bytes, str, int))


def test_a_batch_of_answers_crosses_as_plain_values():
    answers = SaleAnswers(3, ROWS[:3])
    answers.sold(0, (1, 2))
    answers.sold_out(1, 0)
    answers.sold(2, (5,), repeat=True)
    wire = answers.to_wire()
    assert _plain(wire) and wire[1] == [[1, 2], 0, [5]] and wire[2] == {}
    again = SaleAnswers.from_wire(_msgpack_round_trip(wire)).bind(ROWS[:3])
    assert again == list(answers)
    assert again[0].seats == (1, 2) and type(again[0].seats) is tuple  # typed as before
    assert again.sold_count == 2


def test_a_batch_with_a_moved_answer_keeps_it_whole():
    wire = _answers().to_wire()
    assert _plain(wire[:2]) and wire[2] == {2: EXPECTED[2]}  # only the rare one is an object
    assert SaleAnswers.from_wire(wire).bind(ROWS) == EXPECTED


@pytest.mark.parametrize("wire", [None, [], [b"\x01", [], {}], [b"\x01", [1]],
                                  ["x", [1], {}], [b"\x01", (1,), {}]])
def test_anything_else_on_the_sale_wire_is_a_seat_error(wire):
    with pytest.raises(SeatError, match="not a batch of sale answers"):
        SaleAnswers.from_wire(wire)


def test_a_typed_answer_put_in_a_slot_reads_back_the_same():
    answers = SaleAnswers(len(ROWS), ROWS)
    for i, answer in enumerate(EXPECTED):
        answers[i] = answer
    assert answers == EXPECTED and answers[-1] == EXPECTED[-1] and answers[1:3] == EXPECTED[1:3]


def test_bulk_answers_follow_the_last_part_that_answered_each_request():
    bulk = BulkAnswers(5)
    first = _answers()
    bulk.put([4, 0, 2, 1], first)  # request 2 was answered "moved" ...
    again = SaleAnswers(1, [ROWS[2]])
    again.sold(0, (7,))
    bulk.put([2], again)  # ... and sold where it went
    refused = Refused(UnknownTrain("no centre holds train-date X1@2026-10-01"))
    bulk.set(3, refused)
    assert list(bulk) == [EXPECTED[1], EXPECTED[3],
                          Sold("D7@2026-10-02", "r3", "business", "B", "C", (7,), False),
                          refused, EXPECTED[0]]
    assert bulk.sold_count == 3  # r1, its repeat, r3; the "moved" answer is no sale


# ---- a query's answer on the wire (``remaining_wire``) --------------------------------


def _msgpack_round_trip(value):
    """What Ray does to plain values: msgpack."""
    msgpack = pytest.importorskip("msgpack")
    return msgpack.unpackb(msgpack.packb(value), raw=False, strict_map_key=False)


@pytest.mark.parametrize("answer", [
    Remaining("G1@2026-10-01", "A", "C", {"business": 0, "second": 17}),
    Remaining("G1@2026-10-01", "A", "C", {}),
    Moved("G1@2026-10-01", "C2", 9),
])
def test_a_query_answer_crosses_as_plain_values(answer):
    wire = remaining_wire(answer)
    assert type(wire) is list  # Ray sends a tuple through pickle, a list with msgpack
    assert _msgpack_round_trip(wire) == wire
    again = remaining_from_wire(answer.key, "A", "C", _msgpack_round_trip(wire))
    assert again == answer and type(again) is type(answer)
    assert remaining_from_wire(answer.key, "A", "C", wire) == answer


def test_the_names_of_a_remaining_answer_are_the_query_s():
    wire = remaining_wire(Remaining("G1@2026-10-01", "A", "C", {"second": 3}))
    assert wire == ["ok", {"second": 3}]
    assert remaining_from_wire("G1@2026-10-01", "A", "C", wire).to_dict() == {
        "status": "ok", "key": "G1@2026-10-01", "from": "A", "to": "C",
        "classes": {"second": 3}}


@pytest.mark.parametrize("wire", [(), ("ok",), ("ok", {}, 1), ("moved", "C2"), ("sold", 1),
                                  [None, 1]])
def test_anything_else_on_the_wire_is_a_seat_error(wire):
    with pytest.raises(SeatError, match="not a query's answer"):
        remaining_from_wire("G1@2026-10-01", "A", "C", wire)


def test_only_a_query_answer_goes_on_the_query_wire():
    with pytest.raises(SeatError, match="not a query's answer"):
        remaining_wire(SoldOut("G1@2026-10-01", "second", "A", "B", 1, 0))
