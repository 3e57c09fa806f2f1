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


@pytest.mark.parametrize("seed", range(6))
def test_the_per_leg_bitsets_stay_the_per_seat_masks_under_sales_refunds_and_replay(seed):
    """``allocate`` reads the per-leg bitsets; snapshots and the audit read the per-seat
    masks: after batches, one-by-one sales and refunds in any mix, they say the same."""
    from gridfare.seats.allocate import leg_bits

    rng = random.Random(seed)
    train = make_train(classes={"business": 3, "second": 40})
    inventory = Inventory(train)
    sold: list[str] = []
    for step, rows in enumerate(_stream(rng, 30, ids=10_000, bad=0) for _ in range(20)):
        rows = [(*r[:4], f"s{step}-{j}") for j, r in enumerate(rows)]
        if step % 3 == 1:  # one by one: ``sell`` -> ``apply`` keeps the bitsets too
            for row in rows:
                inventory.sell(*row)
        else:
            inventory.sell_many(rows)
        sold += [r[4] for r in rows if r[4] in inventory.orders]
        for rid in rng.sample(sold, k=min(len(sold), 5)):
            inventory.refund(rid)
        for cls, _ in train.classes:
            if cls in inventory._bits:
                n_legs = len(train.stations) - 1
                assert inventory._bits[cls] == leg_bits(inventory.masks(cls), n_legs)
    assert inventory._bits  # the batches built them


def test_a_class_sold_to_its_last_seat_answers_sold_out_with_what_remains():
    train = make_train(classes={"second": 3})
    inventory = Inventory(train)
    a, z = STATIONS[0], STATIONS[-1]
    answers, _ = inventory.sell_many([(a, z, "second", 2, "r1"), (a, z, "second", 2, "r2"),
                                      (a, z, "second", 1, "r3"), (a, z, "second", 1, "r4")])
    assert [getattr(x, "seats", None) for x in answers] == [(1, 2), None, (3,), None]
    assert [x.remaining for x in answers if isinstance(x, SoldOut)] == [1, 0]
