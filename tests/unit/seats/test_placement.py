from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridfare.errors import InvalidInput
from gridfare.seats.placement import (
    CentreReport,
    PlannedMove,
    choose_centre_for_new_train,
    loads,
    moves_to_target,
    plan_placement,
    shares,
    target_shares,
)


def pct(x: Fraction) -> Decimal:
    return (Decimal(x.numerator) / Decimal(x.denominator) * 100).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def test_three_centres_give_21_67_and_39_17_percent():
    main, load = shares(3)
    assert main == Fraction(13, 60) and load == Fraction(47, 120)
    assert (pct(main), pct(load)) == (Decimal("21.67"), Decimal("39.17"))
    assert main + 2 * load == 1


def test_one_centre_holds_everything():
    assert shares(1) == (Fraction(1), Fraction(0))


def test_two_centres():
    main, load = shares(2)
    assert main == Fraction(13, 40) and load == Fraction(27, 40)


@pytest.mark.parametrize("r", ["0.65", Decimal("0.65"), 0.65, Fraction(13, 20)])
def test_r_is_read_exactly(r):
    assert shares(3, r)[0] == Fraction(13, 60)


@pytest.mark.parametrize(
    ("n", "r", "rule"),
    [
        (0, "0.65", "n_centres must be an integer >= 1"),
        (2.0, "0.65", "n_centres must be an integer >= 1"),
        (3, "0", r"r must be in \(0, n_centres\]"),
        (3, "3.5", r"r must be in \(0, n_centres\]"),
        (3, "abc", "not a number"),
        (3, True, "expected a number"),
    ],
)
def test_bad_inputs_name_the_rule(n, r, rule):
    with pytest.raises(InvalidInput, match=rule):
        shares(n, r)


def test_plan_follows_shares():
    trains = {f"G{i}": 1084 for i in range(30)} | {f"D{i}": 598 for i in range(20)}
    plan = plan_placement(trains, ["A", "B", "C"], main="A")
    held = loads(plan, trains)
    total = sum(trains.values())
    targets = target_shares(["A", "B", "C"], "A")
    for c in "ABC":
        assert abs(held[c] - targets[c] * total) <= max(trains.values())
    assert held["A"] < held["B"]


def test_plan_is_deterministic_and_breaks_ties_by_list_order():
    trains = {"G2": 100, "G1": 100}
    assert plan_placement(trains, ["B", "C"], main="B", r=1) == {"G1": "B", "G2": "C"}


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.from_regex(r"G[1-9][0-9]{0,3}", fullmatch=True), st.integers(1, 2000),
                    min_size=1, max_size=40),
    st.integers(1, 6),
)  # fmt: skip
def test_every_centre_ends_within_one_train_of_its_target(trains, n):
    centres = [f"C{i}" for i in range(n)]
    plan = plan_placement(trains, centres, main="C0")
    held = dict.fromkeys(centres, 0) | loads(plan, trains)
    total = sum(trains.values())
    targets = target_shares(centres, "C0")
    for c in centres:
        assert abs(held[c] - targets[c] * total) <= max(trains.values())


def test_plan_refuses_a_main_outside_the_bureau_and_bad_seats():
    with pytest.raises(InvalidInput, match="main centre 'X'"):
        plan_placement({"G1": 10}, ["A"], main="X")
    with pytest.raises(InvalidInput, match="listed twice"):
        plan_placement({"G1": 10}, ["A", "A"], main="A")
    with pytest.raises(InvalidInput, match="train G1 seats must be >= 1"):
        plan_placement({"G1": 0}, ["A"], main="A")


def test_moves_to_target_from_a_lopsided_start():
    trains = {f"G{i}": 100 for i in range(12)}
    current = dict.fromkeys(trains, "A")
    targets = target_shares(["A", "B", "C"], "A")
    moves = moves_to_target(current, trains, targets)
    after = dict(current) | {m.train: m.target for m in moves}
    held = loads(after, trains)
    for c in "ABC":
        assert abs(held[c] - targets[c] * 1200) <= 100
    assert all(isinstance(m, PlannedMove) and m.source == "A" for m in moves)
    # Targets 260/470/470 seats: 2/5/5 trains (distance 60+30+30) beats 3/5/4 (40+30+70).
    assert len(moves) == 10 and held == {"A": 200, "B": 500, "C": 500}


def test_moves_to_target_is_empty_when_balanced():
    trains = {"G1": 100, "G2": 100}
    targets = {"A": Fraction(1, 2), "B": Fraction(1, 2)}
    assert moves_to_target({"G1": "A", "G2": "B"}, trains, targets) == []


def test_moves_to_target_checks_its_inputs():
    with pytest.raises(InvalidInput, match="add up to"):
        moves_to_target({}, {}, {"A": Fraction(1, 2)})
    with pytest.raises(InvalidInput, match="no target"):
        moves_to_target({"G1": "Z"}, {"G1": 5}, {"A": Fraction(1)})


def report(cid, cpu, seats, spm=0.0):
    return CentreReport(cid, seats, seats, spm, cpu)


def test_new_train_goes_to_the_idle_centre_with_fewest_seats():
    reports = [
        report("A", 0.30, 9000),
        report("B", 0.35, 4000),  # within 10 points of the idlest: counts as idle
        report("C", 0.55, 1000),  # busy, though it holds the fewest seats
    ]
    assert choose_centre_for_new_train(reports) == "B"


def test_new_train_ties_are_deterministic():
    assert choose_centre_for_new_train([report("B", 0.2, 10), report("A", 0.2, 10)]) == "A"
    reports = [report("A", 0.2, 10, spm=50), report("B", 0.2, 10, spm=5)]
    assert choose_centre_for_new_train(reports) == "B"


def test_new_train_needs_reports_with_sane_cpu():
    with pytest.raises(InvalidInput, match="no centre reports"):
        choose_centre_for_new_train([])
    with pytest.raises(InvalidInput, match=r"cpu 1\.5"):
        choose_centre_for_new_train([report("A", 1.5, 0)])
