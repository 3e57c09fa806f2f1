from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridfare.errors import InvalidInput, UnknownOrder, WalCorrupt
from gridfare.seats.inventory import (
    MAX_PER_ORDER,
    Inventory,
    Refund,
    Sale,
    SoldOut,
    segment_mask,
)
from gridfare.seats.wal import WalRecord

from .conftest import STATIONS, make_train

B, T, J, N, S = STATIONS


def test_segment_mask():
    assert segment_mask(0, 1) == 0b1
    assert segment_mask(1, 3) == 0b110
    assert segment_mask(0, 4) == 0b1111


def test_disjoint_segments_share_a_seat(inventory):
    first = inventory.sell(B, J, "second", 1, "r1")
    second = inventory.sell(J, S, "second", 1, "r2")
    assert first.seats == second.seats == (1,)
    assert inventory.masks("second")[0] == 0b1111


def test_overlapping_segments_do_not_share(inventory):
    assert inventory.sell(B, J, "second", 1, "r1").seats == (1,)
    assert inventory.sell(T, N, "second", 1, "r2").seats == (2,)


def test_lowest_numbered_free_seats_all_or_nothing(inventory):
    inventory.sell(B, T, "second", 1, "r1")  # seat 1, leg 0
    sale = inventory.sell(B, S, "second", 3, "r2")
    assert sale.seats == (2, 3, 4)
    assert sale.legs == 0b1111
    # Only seat 1 is free from Tianjin on; asking for 2 sells nothing.
    out = inventory.sell(T, S, "second", 2, "r3")
    assert out == SoldOut("G1@2026-10-01", "second", T, S, requested=2, remaining=1)
    assert inventory.remaining(T, S)["second"] == 1
    assert "r3" not in inventory.orders


def test_sold_out_is_an_answer_and_not_remembered(inventory):
    inventory.sell(B, S, "business", 2, "r1")
    out = inventory.sell(J, N, "business", 1, "r2")
    assert isinstance(out, SoldOut) and out.remaining == 0
    inventory.refund("r1")
    assert isinstance(inventory.sell(J, N, "business", 1, "r2"), Sale)  # retry succeeds


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        ((B, S, "second", 0, "r"), "count must be 1..5"),
        ((B, S, "second", MAX_PER_ORDER + 1, "r"), "count must be 1..5"),
        ((B, S, "second", True, "r"), "count must be an integer"),
        ((J, B, "second", 1, "r"), "from must come before to"),
        ((J, J, "second", 1, "r"), "from must come before to"),
        (("Wuhan", S, "second", 1, "r"), "station 'Wuhan' is not on this train"),
        ((B, S, "sleeper", 1, "r"), "class 'sleeper' is not on this train"),
        ((B, S, "second", 1, ""), "request_id"),
        ((B, S, "second", 1, 7), "request_id"),
    ],
)
def test_bad_requests_name_the_train_and_rule(inventory, args, rule):
    with pytest.raises(InvalidInput, match=rule) as err:
        inventory.sell(*args)
    assert "G1@2026-10-01" in str(err.value)


def test_same_request_id_returns_same_seats_without_a_new_record(inventory):
    first = inventory.sell(B, J, "second", 2, "r1")
    again = inventory.sell(B, J, "second", 2, "r1")
    assert again.seats == first.seats and again.repeat and not first.repeat
    assert inventory.seq == 1
    assert inventory.remaining(B, J)["second"] == 2


def test_same_request_id_with_other_parameters_is_refused(inventory):
    inventory.sell(B, J, "second", 2, "r1")
    with pytest.raises(InvalidInput, match="needs a new request_id"):
        inventory.sell(B, N, "second", 2, "r1")


def test_refund_frees_exactly_its_legs(inventory):
    inventory.sell(B, T, "second", 4, "a")
    inventory.sell(J, S, "second", 4, "b")
    refund = inventory.refund("a")
    assert isinstance(refund, Refund) and refund.record.op == "refund"
    assert inventory.remaining(B, T)["second"] == 4
    assert inventory.remaining(J, S)["second"] == 0
    assert inventory.masks("second").tolist() == [0b1100] * 4


def test_refund_is_idempotent_and_spends_the_request_id(inventory):
    inventory.sell(B, S, "second", 1, "r1")
    assert inventory.refund("r1").record is not None
    again = inventory.refund("r1")
    assert again.record is None and again.seats == (1,)
    assert inventory.seq == 2
    with pytest.raises(InvalidInput, match="was refunded"):
        inventory.sell(B, S, "second", 1, "r1")


def test_refund_of_unknown_order_is_a_clear_error(inventory):
    with pytest.raises(UnknownOrder, match="no order with request_id 'nope'"):
        inventory.refund("nope")


def test_remaining_is_exact_per_class(inventory):
    inventory.sell(B, J, "second", 3, "r1")
    inventory.sell(J, S, "business", 1, "r2")
    assert inventory.remaining(B, T) == {"business": 2, "second": 1}
    assert inventory.remaining(J, N) == {"business": 1, "second": 4}
    assert inventory.remaining(T, N) == {"business": 1, "second": 1}
    assert inventory.unsold() == 2


def test_masks_view_is_read_only(inventory):
    with pytest.raises(ValueError):
        inventory.masks("second")[0] = 1


def test_apply_is_idempotent_and_refuses_gaps_and_double_booking(inventory):
    sale = inventory.sell(B, J, "second", 1, "r1")
    assert inventory.apply(sale.record) is False  # already in
    gap = WalRecord(
        op="sell", key=inventory.key, seq=3, request_id="x", cls="second", seats=(2,),
        legs=0b1, from_station=B, to_station=T,
    )  # fmt: skip
    with pytest.raises(WalCorrupt, match="expected seq 2"):
        inventory.apply(gap)
    clash = WalRecord(
        op="sell", key=inventory.key, seq=2, request_id="x", cls="second", seats=(1,),
        legs=0b10, from_station=T, to_station=J,
    )  # fmt: skip
    with pytest.raises(WalCorrupt, match=r"seats \[1\] already sold"):
        inventory.apply(clash)
    wrong_legs = WalRecord(
        op="sell", key=inventory.key, seq=2, request_id="x", cls="second", seats=(2,),
        legs=0b1, from_station=T, to_station=J,
    )  # fmt: skip
    with pytest.raises(WalCorrupt, match="do not match the trip"):
        inventory.apply(wrong_legs)
    assert inventory.seq == 1


def test_snapshot_round_trip_is_byte_stable(inventory):
    inventory.sell(B, J, "second", 2, "r1")
    inventory.sell(T, S, "business", 1, "r2")
    inventory.refund("r1")
    snap = inventory.to_arrow()
    back = Inventory.from_arrow(snap)
    assert back == inventory
    assert back.to_arrow().to_bytes() == snap.to_bytes()
    assert back.orders["r1"].refunded
    assert snap.seats.column("legs").type.bit_width == 64


def _model_check(inventory: Inventory) -> None:
    """No leg of a seat is held by two open orders; masks are the OR of open orders."""
    expected = {cls: np.zeros(n, dtype=np.uint64) for cls, n in inventory.train.classes}
    for order in inventory.orders.values():
        if order.refunded:
            continue
        for seat in order.seats:
            held = int(expected[order.cls][seat - 1])
            assert held & order.legs == 0, f"double booking of {order.cls} seat {seat}"
            expected[order.cls][seat - 1] = held | order.legs
    for cls, masks in expected.items():
        assert np.array_equal(masks, inventory.masks(cls))


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("sell"),
            st.integers(0, 3),
            st.integers(1, 4),
            st.sampled_from(["business", "second"]),
            st.integers(1, 3),
            st.integers(0, 30),
        ),
        st.tuples(st.just("refund"), st.integers(0, 30)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_random_sells_and_refunds_never_double_book_and_replay_identically(steps):
    train = make_train(classes={"business": 2, "second": 5})
    inventory = Inventory(train)
    log: list[WalRecord] = []
    for step in steps:
        if step[0] == "sell":
            _, a, b, cls, count, rid = step
            if a >= b:
                continue
            try:
                result = inventory.sell(STATIONS[a], STATIONS[b], cls, count, f"r{rid}")
            except InvalidInput:
                continue  # a reused request_id with other parameters, or a refunded one
            if isinstance(result, Sale) and result.record is not None:
                log.append(result.record)
            if isinstance(result, SoldOut):
                free = inventory.remaining(STATIONS[a], STATIONS[b])[cls]
                assert result.remaining == free < count
        else:
            try:
                refund = inventory.refund(f"r{step[1]}")
            except UnknownOrder:
                continue
            if refund.record is not None:
                log.append(refund.record)
        _model_check(inventory)
    fresh = Inventory(train)
    assert fresh.replay(log) == len(log)
    assert fresh == inventory
    assert fresh.to_arrow().to_bytes() == inventory.to_arrow().to_bytes()
    assert fresh.replay(log) == 0  # replaying again changes nothing


def test_ten_thousand_tickets_are_vectorized():
    """Sanity, not a benchmark: 10,000 one-ticket sales on one train-date (no timing)."""
    stations = tuple(f"S{i}" for i in range(11))
    inventory = Inventory(make_train(stations=stations, classes={"second": 1000}))
    sold = 0
    for i in range(10_000):
        a = i % 10
        result = inventory.sell(stations[a], stations[a + 1], "second", 1, f"r{i}")
        sold += isinstance(result, Sale)
    assert sold == 10_000
    assert inventory.remaining(stations[0], stations[10]) == {"second": 0}
