"""Log segments under a seats root (``SeatsRoot.seal_segment`` / ``read_sealed`` /
``open_centre_log`` / ``read_centre``) and the fuzzy checkpoint they pair with."""

from __future__ import annotations

import pytest

from gridfare.errors import ConfigError, WalCorrupt
from gridfare.seats.centre import CentreState
from gridfare.seats.snapshot import write_snapshot
from gridfare.seats.store import SeatsConfig, SeatsRoot

from .conftest import DAY, STATIONS, make_train

B, T, J, N, S = STATIONS


@pytest.fixture
def root(tmp_path) -> SeatsRoot:
    root = SeatsRoot(tmp_path / "seats")
    root.init(SeatsConfig(("A",), "A"))
    root.centre_dir("A").mkdir(parents=True)
    return root


class Centre:
    """The SeatCentre's log handling, without Ray: append, flush, seal."""

    def __init__(self, root: SeatsRoot, after: int = 0) -> None:
        self.root = root
        self.wal, self.replayed, self.first = root.open_centre_log("A", after)
        self.state = CentreState("A")

    def log(self, record) -> None:
        self.wal.append(record)
        self.wal.flush()

    def seal(self) -> int:
        last = self.wal.last_lsn
        self.wal.switch_file(self.root.seal_segment("A", self.first, last)).close()
        self.first = last + 1
        return last


def _fill(centre: Centre, n: int, prefix: str) -> None:
    for i in range(n):
        first, last = (B, J) if i % 2 else (J, S)
        centre.log(centre.state.sell("G1", DAY, first, last, "second", 1, f"{prefix}{i}").record)


def test_segments_chain_and_a_restart_reads_only_the_tail(root):
    centre = Centre(root)
    centre.log(centre.state.create(make_train(classes={"second": 40})))
    _fill(centre, 5, "a")
    assert centre.seal() == 6
    _fill(centre, 4, "b")
    lsn = centre.seal()
    write_snapshot(centre.state.snapshot(lsn), root.snapshot_path("A"))
    _fill(centre, 3, "c")
    centre.wal.close()

    assert [(f, last) for f, last, _ in root.sealed_segments("A")] == [(1, 6), (7, 10)]
    records, state = root.read_centre("A")  # the audit's view: everything from lsn 1
    assert [r.lsn for r in records] == list(range(1, 14))
    assert state.inventories == centre.state.inventories
    assert root.audit().ok

    again = Centre(root, after=lsn)  # a restart after the snapshot
    assert [r.lsn for r in again.replayed] == [11, 12, 13] and again.first == 11
    again.wal.append(centre.state.sell("G1", DAY, B, T, "second", 1, "d0").record)
    assert again.wal.last_lsn == 14  # numbering goes on after the sealed segments


def test_an_empty_current_log_after_a_seal_continues_the_numbering(root):
    centre = Centre(root)
    centre.log(centre.state.create(make_train()))
    centre.seal()
    centre.wal.close()
    again = Centre(root, after=0)
    assert again.first == 2 and again.wal.last_lsn == 1


def test_a_missing_or_short_segment_is_refused(root):
    centre = Centre(root)
    centre.log(centre.state.create(make_train(classes={"second": 40})))
    _fill(centre, 3, "a")
    centre.seal()
    _fill(centre, 3, "b")
    centre.seal()
    centre.wal.close()
    (_, _, first), _ = root.sealed_segments("A")
    data = first.read_bytes()
    first.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])  # lose lsn 4
    with pytest.raises(WalCorrupt, match="sealed segment"):
        root.read_centre("A")
    first.unlink()
    with pytest.raises(WalCorrupt, match="expected 1"):
        root.read_centre("A")
    with pytest.raises(WalCorrupt, match="segment is missing"):
        root.open_centre_log("A", after_lsn=2)


def test_a_fuzzy_snapshot_restores_exactly():
    """Train-dates caught at different moments after the snapshot's lsn, then the log after
    it replayed: the same state as the live one."""
    live = CentreState("A")
    log = []

    def do(record):
        log.append(record.__class__(**{**record.__dict__, "lsn": len(log) + 1}))

    for n in ("G1", "G2", "G3"):
        do(live.create(make_train(n, classes={"second": 20})))
    for i in range(4):
        do(live.sell("G1", DAY, B, J, "second", 1, f"x{i}").record)
    lsn = len(log)
    g1, g2, g3 = (f"{n}@{DAY.isoformat()}" for n in ("G1", "G2", "G3"))
    parts = live.snapshot_parts([g1])
    for i in range(3):  # sales between the chunks, on caught and not yet caught train-dates
        do(live.sell("G1", DAY, J, S, "second", 1, f"y{i}").record)
        do(live.sell("G2", DAY, B, S, "second", 1, f"z{i}").record)
    parts += live.snapshot_parts([g2, g3])
    do(live.drop(g3, "B", 2))
    snapshot = CentreState.assemble(parts, dict(live.moved), lsn)
    assert snapshot.keys() == [g1, g2, g3]
    restored = CentreState.restore("A", snapshot, log)
    assert restored.inventories == live.inventories and restored.moved == live.moved


def test_checkpoint_and_migration_settings_are_checked_and_round_trip():
    with pytest.raises(ConfigError, match="snapshot_every"):
        SeatsConfig(("A",), "A", snapshot_every=-1)
    with pytest.raises(ConfigError, match="snapshot_interval_s"):
        SeatsConfig(("A",), "A", snapshot_interval_s=-1.0)
    for duty in (0, 1.5, True):
        with pytest.raises(ConfigError, match="migration_duty"):
            SeatsConfig(("A",), "A", migration_duty=duty)
    config = SeatsConfig(
        ("A",), "A", snapshot_every=5, snapshot_interval_s=30.0, migration_duty=0.25
    )
    assert SeatsConfig.from_dict(config.to_dict()) == config
    old = {"centres": ["A"], "main": "A"}  # a root written before these settings existed
    assert SeatsConfig.from_dict(old).snapshot_every == 250_000
