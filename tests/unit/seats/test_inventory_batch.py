"""``Inventory.sell_many`` (one vectorized allocation per class) against ``sell`` one by one
on random streams: the same answers, the same state, logs that replay to it, no seat-leg
sold twice."""

from __future__ import annotations

import random

import pytest

from gridfare.errors import InvalidInput
from gridfare.seats.answers import Refused, Sold, SoldOut
from gridfare.seats.inventory import Inventory, Sale
from gridfare.seats.wal import change_record

from .conftest import STATIONS, make_train


def _one_by_one(inventory: Inventory, rows):
    answers = []
    for row in rows:
        try:
            result = inventory.sell(*row)
        except InvalidInput as exc:
            answers.append(("refused", str(exc)))
            continue
        if isinstance(result, Sale):
            result = Sold(result.key, result.request_id, result.cls, result.from_station,
                          result.to_station, result.seats, result.repeat)
        answers.append(result)
    return answers


def _batched(inventory: Inventory, rows, rng):
    answers, changes, i = [], [], 0
    while i < len(rows):
        n = rng.randint(1, 40)
        got, logged = inventory.sell_many(rows[i:i + n])
        answers += [("refused", str(a.error)) if isinstance(a, Refused) else a for a in got]
        changes += logged
        i += n
    return answers, changes


def _stream(rng, n, ids=200, bad=0.03):
    rows = []
    for _ in range(n):
        a = rng.randrange(len(STATIONS) - 1)
        b = rng.randrange(a + 1, len(STATIONS))
        row = [STATIONS[a], STATIONS[b], rng.choice(["second", "second", "business"]),
               rng.choice([1, 1, 2, 3]), f"r{rng.randrange(ids)}"]
        if rng.random() < bad:  # a bad request: refused alone, the rest sold
            row[rng.randrange(4)] = rng.choice(["Nowhere", "first", 0, 9, True])
        rows.append(tuple(row))
    return rows


@pytest.mark.parametrize("seed", range(12))
def test_a_batch_answers_and_stores_what_sales_one_by_one_would(seed):
    rng = random.Random(seed)
    train = make_train(classes={"business": 3, "second": rng.choice([4, 9, 40])})
    rows = _stream(rng, 300, ids=rng.choice([60, 400]))
    single, batched = Inventory(train), Inventory(train)
    expected = _one_by_one(single, rows)
    answers, changes = _batched(batched, rows, rng)
    assert answers == expected
    assert batched == single
    replayed = Inventory(train)
    assert replayed.replay(change_record(c, lsn) for lsn, c in enumerate(changes, 1)) == \
        single.seq
    assert replayed == single  # apply() checks every seat-leg is sold once


def test_a_sold_out_answer_counts_the_seats_free_at_its_turn():
    inventory = Inventory(make_train(classes={"second": 3}))
    answers, changes = inventory.sell_many([
        (STATIONS[0], STATIONS[4], "second", 2, "a"),  # seats 1, 2 on every leg
        (STATIONS[1], STATIONS[2], "second", 2, "b"),  # one seat left on that leg
        (STATIONS[0], STATIONS[1], "second", 1, "c"),  # seat 3
        (STATIONS[3], STATIONS[4], "second", 1, "d"),  # seat 3 again, a disjoint leg
        (STATIONS[2], STATIONS[4], "second", 1, "e"),  # none left on leg 3
    ])
    assert [a.seats if isinstance(a, Sold) else a.remaining for a in answers] == \
        [(1, 2), 1, (3,), (3,), 0]
    assert isinstance(answers[1], SoldOut) and answers[1].requested == 2
    assert [c[2] for c in changes] == [1, 2, 3]  # seqs in the batch's order
    assert inventory.remaining(STATIONS[0], STATIONS[4]) == {"second": 0}


def test_a_repeat_in_the_batch_answers_the_same_seats_and_logs_nothing_new():
    inventory = Inventory(make_train())
    row = (STATIONS[0], STATIONS[2], "second", 2, "r1")
    answers, changes = inventory.sell_many([row, (STATIONS[0], STATIONS[2], "second", 1, "r2"),
                                            row])
    assert answers[0].seats == answers[2].seats == (1, 2) and answers[2].repeat
    assert len(changes) == 2 and inventory.seq == 2
    again, logged = inventory.sell_many([row])
    assert again[0].seats == (1, 2) and again[0].repeat and logged == []
