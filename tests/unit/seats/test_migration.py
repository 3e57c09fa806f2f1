from __future__ import annotations

import json
from datetime import date

import pytest

from gridfare.errors import InvalidInput, MigrationError
from gridfare.seats.migration import Decision, Migration, TrainDateMove, after_restart
from gridfare.seats.selectors import TrainSelector

from .conftest import make_train

TRAINS = [make_train(f"G{i}", date(2026, 10, d)) for i in (1, 2) for d in (1, 2)]
OWNERS = {t.key: "A" for t in TRAINS}
K = [t.key for t in TrainSelector.parse("%").select(TRAINS)]  # by date, then train


def plan(text: str = "G%") -> Migration:
    return Migration.plan("m1", TrainSelector.parse(text), TRAINS, OWNERS, target="B")


def run_one(m: Migration, key: str, version: int = 2) -> None:
    for _ in range(3):  # copying, catching_up, frozen
        m.advance(key)
    m.advance(key, version=version)  # flipped
    m.advance(key)  # done / rolled_back


def test_plan_selects_and_skips_what_is_already_on_target():
    m = Migration.plan(
        "m1", TrainSelector.parse("G1"), TRAINS, OWNERS | {"G1@2026-10-02": "B"}, target="B"
    )
    assert list(m.moves) == [K[0]]
    with pytest.raises(InvalidInput, match="matches no train-date outside B"):
        Migration.plan("m2", TrainSelector.parse("D%"), TRAINS, OWNERS, target="B")


def test_the_protocol_in_order_then_done():
    m = plan()
    order = ["pending", "copying", "catching_up", "frozen", "flipped", "done"]
    key = m.next_move().key
    assert key == K[0]
    steps = [m.moves[key].step]
    for i in range(5):
        steps.append(m.advance(key, version=7 if i == 3 else 0).step)
    assert steps == order and m.moves[key].version == 7
    for key in K[1:]:
        run_one(m, key)
    assert m.state == "done" and m.next_move() is None


def test_one_train_date_at_a_time():
    m = plan()
    m.advance(K[0])
    with pytest.raises(
        MigrationError, match=rf"{K[1]} \(step pending\): cannot start while {K[0]}"
    ):
        m.advance(K[1])
    assert m.next_move().key == K[0]


def test_flip_needs_a_version_and_done_is_final():
    m = plan()
    for _ in range(3):
        m.advance(K[0])
    with pytest.raises(MigrationError, match=r"step frozen.*flip without a directory version"):
        m.advance(K[0])
    m.advance(K[0], version=2)
    m.advance(K[0])
    with pytest.raises(MigrationError, match="step done"):
        m.advance(K[0])


def test_unknown_train_date_is_named():
    with pytest.raises(MigrationError, match="T9@2026-10-01 is not part of it"):
        plan().advance("T9@2026-10-01")


def test_pause_lets_the_current_train_date_finish_but_starts_no_other():
    m = plan()
    m.advance(K[0])
    m.pause()
    assert m.next_move().key == K[0]
    run_rest = [m.advance(K[0]) for _ in range(2)]
    assert run_rest[-1].step == "frozen"
    m.advance(K[0], version=2)
    m.advance(K[0])
    assert m.next_move() is None and m.state == "paused"
    with pytest.raises(MigrationError, match="cannot start while the migration is paused"):
        m.advance(K[1])
    m.resume()
    assert m.state == "running" and m.next_move().key == K[1]


def test_illegal_pause_and_resume():
    m = plan()
    with pytest.raises(MigrationError, match="cannot resume while running"):
        m.resume()
    m.pause()
    with pytest.raises(MigrationError, match="cannot pause while paused"):
        m.pause()


def test_rollback_returns_moved_ones_last_first_and_cancels_the_rest():
    m = plan()
    run_one(m, K[0])
    run_one(m, K[1])
    m.advance(K[2])  # in flight when the rollback comes
    m.rollback()
    assert m.moves[K[3]].step == "rolled_back"  # never started
    assert m.next_move().key == K[2]  # the one in flight finishes first...
    for _ in range(2):
        m.advance(K[2])
    m.advance(K[2], version=2)
    after = m.advance(K[2])
    assert after.step == "pending" and after.returning  # ...and then goes back
    assert (after.origin, after.destination) == ("B", "A")
    returned = []
    while (move := m.next_move()) is not None:
        returned.append(move.key)
        run_one(m, move.key, version=3)
    assert returned == [K[2], K[1], K[0]]
    assert m.state == "rolled_back"
    assert all(mv.step == "rolled_back" for mv in m.moves.values())
    with pytest.raises(MigrationError, match="cannot roll back while rolled_back"):
        m.rollback()


def test_a_failed_step_stops_the_migration_until_resume_or_rollback():
    m = plan()
    m.advance(K[0])
    m.advance(K[0])
    failed = m.fail(K[0], "target centre B died")
    assert failed.step == "failed" and failed.reason == "target centre B died"
    assert m.state == "failed" and m.next_move() is None
    m.resume()
    assert m.moves[K[0]].step == "pending" and m.next_move().key == K[0]
    m.advance(K[0])
    m.fail(K[0], "again")
    m.rollback()
    assert m.state == "rolled_back"


def test_only_steps_before_the_flip_can_fail():
    m = plan()
    with pytest.raises(MigrationError, match=r"step pending.*cannot fail"):
        m.fail(K[0], "x")
    for _ in range(3):
        m.advance(K[0])
    m.advance(K[0], version=2)
    with pytest.raises(MigrationError, match=r"step flipped.*cannot fail"):
        m.fail(K[0], "x")


def test_record_round_trip_through_json():
    m = plan("G% dates=2026-10-01..2026-10-02")
    run_one(m, K[0])
    m.advance(K[1])
    m.pause()
    again = Migration.from_record(json.loads(json.dumps(m.to_record())))
    assert again.to_record() == m.to_record()
    assert again.moves[K[1]] == TrainDateMove(K[1], "A", "B", "copying")
    assert again.revision == m.revision > 0


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda r: r.pop("moves"), "missing or bad field"),
        (lambda r: r.update(state="sleeping"), "unknown state"),
        (lambda r: r["moves"][0].update(step="flying"), "step 'flying'"),
        (lambda r: r["moves"].append(dict(r["moves"][0])), "listed twice"),
        (lambda r: [m.update(step="copying") for m in r["moves"]], "more than one"),
    ],
)
def test_bad_records_are_refused(change, rule):
    record = plan().to_record()
    change(record)
    with pytest.raises(MigrationError, match=rule):
        Migration.from_record(record)


def test_after_restart_per_train_date():
    m = plan()
    run_one(m, K[0])
    for _ in range(3):
        m.advance(K[1])  # frozen at A, flip not recorded
    record = m.to_record()
    restarted = Migration.from_record(record)

    decisions = after_restart(restarted, owner_of=lambda key: "A")
    assert decisions == [
        Decision(K[0], "none", "A", "B"),
        Decision(K[1], "restart", "A", "B"),
        Decision(K[2], "move", "A", "B"),
        Decision(K[3], "move", "A", "B"),
    ]
    # The directory had already flipped it: finish instead of restarting.
    flipped = after_restart(restarted, owner_of=lambda key: "B")
    assert flipped[1].action == "finish"

    restarted.restart(K[1])
    assert restarted.moves[K[1]].step == "pending" and restarted.next_move().key == K[1]


def test_after_restart_while_paused_or_rolling_back():
    m = plan()
    run_one(m, K[0])
    m.pause()
    assert [d.action for d in after_restart(m, lambda k: "A")] == ["none", *["wait"] * 3]
    m.rollback()
    assert [d.action for d in after_restart(m, lambda k: "B")] == [
        "return",
        *["none"] * 3,
    ]
    assert after_restart(m, lambda k: "B")[0] == Decision(K[0], "return", "B", "A")
    m.advance(K[0])
    m.advance(K[0])
    assert after_restart(m, lambda k: "B")[0].action == "restart"
    m.advance(K[0])
    m.advance(K[0], version=4)
    assert after_restart(m, lambda k: "A")[0].action == "finish"


def test_frozen_at_names_the_train_date_in_flight_at_both_ends():
    m = plan()
    assert m.frozen_at("A") == set()
    m.advance(K[0])
    assert m.frozen_at("A") == m.frozen_at("B") == {K[0]}
    assert m.frozen_at("C") == set()
    m.advance(K[0])
    m.advance(K[0])
    m.advance(K[0], version=4)  # flipped: the destination owns it and sells
    assert m.frozen_at("A") == {K[0]} and m.frozen_at("B") == set()
