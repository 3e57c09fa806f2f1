"""Incremental checkpoints: a full snapshot plus deltas of the changed train-dates gives the
same state as a full snapshot, a broken chain is refused, and the store keeps the chain."""

from __future__ import annotations

import pytest

from gridfare.errors import SeatError
from gridfare.seats.centre import CentreState
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
