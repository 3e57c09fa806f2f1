from __future__ import annotations

import asyncio
import os

import pytest

from gridfare.errors import InvalidInput, TrainFrozen, TrainMoved, UnknownTrain, WalCorrupt
from gridfare.seats.answers import Moved, Refunded, Sold
from gridfare.seats.audit import audit
from gridfare.seats.centre import CentreState
from gridfare.seats.directory import Directory
from gridfare.seats.inventory import Sale
from gridfare.seats.migration import Migration
from gridfare.seats.selectors import TrainSelector
from gridfare.seats.service import CentreIO, CentreService
from gridfare.seats.snapshot import read_snapshot, write_snapshot
from gridfare.seats.store import SeatsConfig, SeatsRoot
from gridfare.seats.wal import open_wal

from .conftest import DAY, STATIONS, make_train

B, T, J, N, S = STATIONS


_LOOP = asyncio.new_event_loop()  # one loop for the module: a service's waits live on it


def _run(coro):
    return _LOOP.run_until_complete(coro)


async def _now(fn, *args):
    return fn(*args)


class Shell:
    """A real ``CentreService`` (what the SeatCentre actor runs) on real files, driven
    from plain calls: the tests below read its state and its log."""

    def __init__(self, root: SeatsRoot, centre_id: str) -> None:
        self.root, self.id = root, centre_id
        self.centre = CentreService.open(root, centre_id, CentreIO(run_snapshot=_now),
                                         run_log=_now, fsync=os.fsync,
                                         incarnation=centre_id)
        self.state = self.centre.state

    def create(self, train):
        _run(self.centre.create_many([train.to_dict()]))

    def sell(self, train_no, day, *args):
        (answer,) = _run(self.centre.sell_many([(train_no, day.isoformat(), *args)]))
        return answer

    def refund(self, train_no, day, request_id):
        (answer,) = _run(self.centre.refund_many([(train_no, day.isoformat(), request_id)]))
        return answer

    def records(self):
        return self.root.read_centre(self.id)[0]


@pytest.fixture
def root(tmp_path) -> SeatsRoot:
    root = SeatsRoot(tmp_path / "seats")
    root.init(SeatsConfig(("A", "B"), "A", wal_window_ms=0))
    return root


def test_sell_refund_remaining_report(root):
    shell = Shell(root, "A")
    shell.create(make_train())
    sale = shell.sell("G1", DAY, B, J, "second", 2, "r1")
    assert isinstance(sale, Sold) and sale.seats == (1, 2)
    assert shell.state.remaining("G1", DAY, B, J) == {"business": 2, "second": 2}
    assert isinstance(shell.refund("G1", DAY, "r1"), Refunded)
    report = shell.state.report(cpu=0.4, sales_per_minute=12.0)
    assert (report.centre_id, report.seats_stored, report.seats_unsold) == ("A", 6, 6)
    with pytest.raises(InvalidInput, match="already exists"):
        shell.state.create(make_train())
    with pytest.raises(UnknownTrain, match="centre A does not hold train-date G9@2026-10-01"):
        shell.state.sell("G9", DAY, B, J, "second", 1, "r2")


def test_a_frozen_train_date_refuses_sales_but_answers_remaining():
    state = CentreState("A")
    state.create(make_train())
    state.freeze("G1@2026-10-01")
    with pytest.raises(TrainFrozen, match="frozen for migration"):
        state.sell("G1", DAY, B, J, "second", 1, "r1")
    assert state.remaining("G1", DAY, B, S)["second"] == 4
    state.unfreeze("G1@2026-10-01")
    assert isinstance(state.sell("G1", DAY, B, J, "second", 1, "r1"), Sale)


def test_restart_rebuilds_exactly_the_acknowledged_state(tmp_path):
    wal_path = tmp_path / "A.wal"
    writer, _ = open_wal(wal_path, batch_size=1000)
    state = CentreState("A")
    writer.append(state.create(make_train()))
    writer.append(state.create(make_train("G2")))
    for i in range(4):
        writer.append(state.sell("G1", DAY, B, N, "second", 1, f"r{i}").record)
    writer.append(state.sell("G2", DAY, T, S, "business", 2, "r4").record)
    writer.flush()
    write_snapshot(state.snapshot(lsn=writer.acknowledged_lsn), tmp_path / "A.snap")
    writer.append(state.refund("G1", DAY, "r0").record)
    writer.append(state.sell("G1", DAY, N, S, "second", 2, "r9").record)
    writer.flush()
    acknowledged = state.snapshot(lsn=0).to_bytes()
    # Work that was never acknowledged: buffered, then a crash in the middle of a write.
    writer.append(state.sell("G1", DAY, B, T, "business", 1, "lost").record)
    writer._file.write(b'{"cls":"busi')
    writer._file.flush()

    _, log = open_wal(wal_path)
    assert log.torn and log.last_lsn == 9
    snap = read_snapshot(tmp_path / "A.snap")
    assert snap.lsn == 7
    restored = CentreState.restore("A", snap, log.records)
    assert restored.snapshot(lsn=0).to_bytes() == acknowledged
    assert "lost" not in restored.inventories["G1@2026-10-01"].orders
    # The same from the log alone, and with records the snapshot holds replayed again.
    assert CentreState.restore("A", None, log.records).snapshot(0).to_bytes() == acknowledged
    again = CentreState.restore("A", snap, [*log.records, *log.records])
    assert again.snapshot(0).to_bytes() == acknowledged


def test_replay_of_a_record_for_an_unknown_train_date_is_corrupt(root):
    shell = Shell(root, "A")
    shell.create(make_train())
    shell.sell("G1", DAY, B, J, "second", 1, "r1")
    records = shell.records()
    with pytest.raises(WalCorrupt, match="was never created"):
        CentreState.restore("A", None, records[1:])


def migrate(migration, shells, directory, during_copy=None):
    """The migration protocol driven step by step through the centres' real steps (what
    the migrator and ``take_over`` do, without Ray)."""
    while (move := migration.next_move()) is not None:
        key = move.key
        src, dst = shells[move.origin].centre, shells[move.destination].centre
        incarnation, data, _ = src.export(key)  # copying: the source keeps selling
        _, seq = _run(dst.install(data))
        migration.advance(key)
        if during_copy:
            during_copy(key)
        _, delta = src.records_after(key, seq)
        _, seq = _run(dst.catch_up(delta))
        migration.advance(key)  # catching_up done
        _run(dst.catch_up(_run(src.freeze_delta(key, seq, incarnation))))
        migration.advance(key)  # frozen: final delta applied
        entry = directory.lookup(key)
        flip = directory.move(key, move.destination, expected_version=entry.version)
        migration.advance(key, version=flip.version)
        dst.unfreeze(key)
        _run(src.drop(key, move.destination, flip.version))
        migration.advance(key)


def test_live_migration_moves_state_and_answers_moved(root):
    shells = {"A": Shell(root, "A"), "B": Shell(root, "B")}
    directory = Directory()
    trains = [make_train("G1"), make_train("G2"), make_train("D7")]
    for t in trains:
        shells["A"].create(t)
        directory.place(t.key, "A")
    shells["A"].sell("G1", DAY, B, J, "second", 2, "r1")
    shells["A"].sell("G2", DAY, B, S, "business", 1, "r2")
    shells["A"].sell("D7", DAY, B, S, "business", 1, "r3")
    shells["A"].refund("G1", DAY, "r1")

    def sell_while_copying(key):
        train_no = key.split("@")[0]
        shells["A"].sell(train_no, DAY, J, S, "second", 1, f"late-{train_no}")

    migration = Migration.plan(
        "m1", TrainSelector.parse("G%"), trains, {t.key: "A" for t in trains}, "B"
    )
    migrate(migration, shells, directory, during_copy=sell_while_copying)
    assert migration.state == "done"
    assert directory.keys_of("B") == ["G1@2026-10-01", "G2@2026-10-01"]
    b = shells["B"].state
    assert set(b.inventories["G1@2026-10-01"].orders) == {"r1", "late-G1"}
    assert b.remaining("G2", DAY, J, S) == {"business": 1, "second": 3}
    with pytest.raises(TrainMoved) as err:
        shells["A"].state.sell("G1", DAY, B, J, "second", 1, "x")
    assert (err.value.centre, err.value.version) == ("B", 2)
    assert shells["A"].sell("G1", DAY, B, J, "second", 1, "x") == Moved("G1@2026-10-01", "B", 2)
    assert isinstance(shells["B"].sell("G1", DAY, B, J, "second", 1, "x"), Sold)

    logs = {c: s.records() for c, s in shells.items()}
    held = {c: s.state.inventories for c, s in shells.items()}
    report = audit(logs, held)
    assert report.ok, [str(v) for v in report.violations]
    assert report.open_sales == 5

    # Both centres restart from their logs alone and still agree.
    restored = {c: CentreState.restore(c, None, logs[c]) for c in shells}
    assert audit(logs, {c: r.inventories for c, r in restored.items()}).ok
    with pytest.raises(TrainMoved):
        restored["A"].get("G2@2026-10-01")

    # And the migration rolls back by the same protocol.
    migration.rollback()
    migrate(migration, shells, directory)
    assert migration.state == "rolled_back"
    assert directory.keys_of("A") == ["D7@2026-10-01", "G1@2026-10-01", "G2@2026-10-01"]
    logs = {c: s.records() for c, s in shells.items()}
    assert audit(logs, {c: s.state.inventories for c, s in shells.items()}).ok
