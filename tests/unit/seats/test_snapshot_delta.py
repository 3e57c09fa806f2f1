"""Incremental checkpoints: a full snapshot plus deltas of the changed train-dates gives the
same state as a full snapshot, a broken chain is refused, and the store keeps the chain."""

from __future__ import annotations

import pytest

from gridfare.errors import SeatError
from gridfare.seats.centre import CentreState
from gridfare.seats.checkpoints import CheckpointChain
from gridfare.seats.snapshot import SnapshotDelta, overlay
from gridfare.seats.store import SeatsConfig, SeatsRoot

from .conftest import DAY, STATIONS, make_train

B, T, J, N, S = STATIONS
KEYS = [f"{n}@{DAY.isoformat()}" for n in ("G1", "G2", "G3", "G4")]


def _delta(state: CentreState, changed: list[str], lsn: int, after: int) -> SnapshotDelta:
    snapshot = CentreState.assemble(state.snapshot_parts(changed), dict(state.moved), lsn)
    return SnapshotDelta(snapshot, tuple(state.inventories), after)


@pytest.fixture
def state() -> CentreState:
    state = CentreState("A")
    for n in ("G1", "G2", "G3"):
        state.create(make_train(n, classes={"second": 20}))
    return state


def test_a_chain_of_deltas_overlays_to_the_full_snapshot(state):
    base = state.snapshot(10)
    state.sell("G1", DAY, B, J, "second", 2, "a")
    state.drop(KEYS[2], "B", 2)  # leaves: not held, in ``moved``
    first = _delta(state, [KEYS[0]], 20, after=10)
    state.create(make_train("G4", classes={"second": 20}))
    state.sell("G4", DAY, J, S, "second", 1, "b")
    state.refund("G1", DAY, "a")
    second = _delta(state, [KEYS[0], KEYS[3]], 30, after=20)

    assert second.lsn == 30
    merged = overlay(base, [SnapshotDelta.from_bytes(first.to_bytes()),
                            SnapshotDelta.from_bytes(second.to_bytes())])
    assert merged.to_bytes() == state.snapshot(30).to_bytes()
    restored = CentreState.restore("A", merged, [])
    assert restored.inventories == state.inventories and restored.moved == state.moved


def test_a_missing_delta_is_refused_not_skipped(state):
    base = state.snapshot(10)
    state.sell("G2", DAY, B, S, "second", 1, "a")
    second = _delta(state, [KEYS[1]], 30, after=20)  # the delta at lsn 20 is lost
    with pytest.raises(SeatError, match="a snapshot delta is missing"):
        overlay(base, [second])
    with pytest.raises(SeatError, match="bad magic"):
        SnapshotDelta.from_bytes(base.to_bytes())


def test_the_store_keeps_the_chain_and_a_full_snapshot_replaces_it(tmp_path, state):
    root = SeatsRoot(tmp_path / "seats")
    root.init(SeatsConfig(("A",), "A"))
    root.centre_dir("A").mkdir(parents=True)
    assert root.read_centre_snapshot("A") is None
    root.write_checkpoint("A", state.snapshot(10))
    state.sell("G3", DAY, B, T, "second", 3, "a")
    root.write_checkpoint("A", _delta(state, [KEYS[2]], 15, after=10))
    assert [lsn for lsn, _ in root.snapshot_deltas("A")] == [15]
    assert root.read_centre_snapshot("A").to_bytes() == state.snapshot(15).to_bytes()

    root.write_checkpoint("A", state.snapshot(18))  # full again: the delta goes
    assert root.snapshot_deltas("A") == []
    assert root.read_centre_snapshot("A").lsn == 18

    state.sell("G1", DAY, B, T, "second", 1, "b")
    root.write_checkpoint("A", _delta(state, [KEYS[0]], 25, after=18))
    root.write_checkpoint("A", _delta(state, [KEYS[0]], 31, after=25))
    next(path for lsn, path in root.snapshot_deltas("A") if lsn == 25).unlink()
    with pytest.raises(SeatError, match="a snapshot delta is missing"):
        root.read_centre_snapshot("A")


class _Inv:
    def __init__(self, seq: int = 0) -> None:
        self.seq = seq


def test_the_chain_copies_what_changed_and_forgets_only_what_is_on_disk():
    chain = CheckpointChain(lsn=0)
    a, b, c = _Inv(), _Inv(), _Inv()
    held = {"a": a, "b": b, "c": c}
    first = chain.start()
    assert first.full and first.changed(held) == ["a", "b", "c"]
    first.capture(["a", "b", "c"], held)
    first.close(held)
    chain.commit(first, lsn=10, rows=300)

    a.seq += 1                      # sold since
    held["b"] = _Inv(b.seq)         # moved away and back: a new inventory, same seq
    del held["c"]                   # dropped
    held["d"] = _Inv()              # created
    second = chain.start()
    assert not second.full and second.after == 10
    assert second.changed(held) == ["a", "b", "d"]
    second.capture(["a", "b", "d"], held)
    second.close(held)
    assert second.held == ("a", "b", "d") and set(second.captured) == {"a", "b", "d"}

    # The write failed (never committed): the next delta copies them again.
    again = chain.start()
    assert again.after == 10 and again.changed(held) == ["a", "b", "d"]
    chain.commit(second, lsn=20, rows=100)
    assert chain.start().changed(held) == [] and chain.lsn == 20


def test_a_full_snapshot_comes_back_once_the_deltas_outgrow_it():
    chain = CheckpointChain(lsn=5)  # restarted from a chain: nothing known of it
    pending = chain.start()
    assert pending.full and pending.after == 5
    chain.commit(pending, lsn=10, rows=100)
    for lsn, rows in ((20, 60), (30, 40)):
        pending = chain.start()
        assert not pending.full
        chain.commit(pending, lsn=lsn, rows=rows)
    assert not chain.start().full  # 100 rows of deltas: not more than the full one
    chain.commit(chain.start(), lsn=40, rows=1)
    assert chain.start().full
