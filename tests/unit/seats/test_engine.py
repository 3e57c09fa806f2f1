"""The centre's log engine (``gridfare.seats.engine.CentreLog``) on a real seats root: the
code the SeatCentre actor runs, with the fsyncs counted."""

from __future__ import annotations

import asyncio
import os

import pytest

from gridfare.seats.centre import CentreState
from gridfare.seats.engine import CentreLog, LogIO
from gridfare.seats.store import SeatsConfig, SeatsRoot

from .conftest import DAY, STATIONS, make_train

B, T, J, N, S = STATIONS


def _engine(root: SeatsRoot, fsyncs: list, *, after: int = 0, **options) -> tuple:
    wal, records, first = root.open_centre_log("A", after, batch_size=1 << 40)

    async def run(fn, *args):
        return fn(*args)

    def fsync(fd: int) -> None:
        fsyncs.append(fd)
        os.fsync(fd)

    io = LogIO(run=run, fsync=fsync,
               seal_segment=lambda a, b: root.seal_segment("A", a, b, durable=False),
               sync_dirs=lambda: root.sync_log_dirs("A"))
    options.setdefault("window_s", 0.001)
    return CentreLog(wal, io, segment_first=first, **options), records


@pytest.fixture
def root(tmp_path) -> SeatsRoot:
    root = SeatsRoot(tmp_path / "seats")
    root.init(SeatsConfig(("A",), "A"))
    root.centre_dir("A").mkdir(parents=True)
    return root


def test_concurrent_sales_share_one_fsync_and_read_back(root):
    fsyncs: list = []
    state = CentreState("A")

    async def scenario():
        log, _ = _engine(root, fsyncs)
        log.append(state.create(make_train(classes={"second": 40})))
        lsns = [log.append(state.sell("G1", DAY, B, J, "second", 1, f"r{i}").record).lsn
                for i in range(20)]
        await asyncio.gather(*(log.durable(lsn) for lsn in lsns))
        return log

    log = asyncio.run(scenario())
    assert len(fsyncs) == 1 and log.durable_lsn == 21
    records, rebuilt = root.read_centre("A")
    assert [r.lsn for r in records] == list(range(1, 22))
    assert rebuilt.inventories == state.inventories


def test_a_seal_lands_between_flushes_and_the_numbering_goes_on(root):
    fsyncs: list = []
    state = CentreState("A")

    async def scenario():
        log, _ = _engine(root, fsyncs)
        log.append(state.create(make_train(classes={"second": 40})))
        for i in range(5):
            log.append(state.sell("G1", DAY, B, J, "second", 1, f"a{i}").record)
        sealing = asyncio.ensure_future(log.seal())  # waits for the flush in progress
        await asyncio.sleep(0)
        late = log.append(state.sell("G1", DAY, J, S, "second", 1, "late").record)
        assert await sealing == 7  # "late" joined the flush; the segment ends after it
        await log.durable(late.lsn)
        tail = log.append(state.sell("G1", DAY, J, S, "second", 1, "tail").record)
        await log.durable(tail.lsn)
        return log

    log = asyncio.run(scenario())
    assert [(f, last) for f, last, _ in root.sealed_segments("A")] == [(1, 7)]
    assert log.segment_first == 8 and log.since_checkpoint == 1
    records, rebuilt = root.read_centre("A")
    assert [r.lsn for r in records] == list(range(1, 9))
    assert rebuilt.inventories == state.inventories
    _, replayed = _engine(root, [], after=7)  # a restart after a checkpoint at the seal
    assert [r.lsn for r in replayed] == [8]


def test_a_checkpoint_is_due_by_count_or_by_age():
    now = [0.0]

    class Writer:  # the engine only counts here: no file is touched
        last_lsn = 0

        def append(self, record):
            return record

    io = LogIO(run=None, fsync=None, seal_segment=None, sync_dirs=None)
    log = CentreLog(Writer(), io, segment_first=1, window_s=0, snapshot_every=3,
                    snapshot_interval_s=60, clock=lambda: now[0])
    assert not log.due()
    for _ in range(3):
        log.append(object())
    assert log.due()
    log.since_checkpoint = 1
    assert not log.due()
    now[0] = 61.0
    assert log.due()
    log.checkpointed()
    assert not log.due()


def test_a_hurried_wait_cuts_the_gathering_window_short_and_takes_the_batch_along(root):
    """A freeze window's wait (``hurry``) starts the flush at once; the sales gathered so
    far share that fsync, and a plain wait still gathers for the whole window."""
    fsyncs: list = []
    state = CentreState("A")

    async def scenario():
        log, _ = _engine(root, fsyncs, window_s=5.0)
        log.append(state.create(make_train(classes={"second": 40})))
        sale = log.append(state.sell("G1", DAY, B, J, "second", 1, "r1").record).lsn
        gathering = asyncio.ensure_future(log.durable(sale))
        await asyncio.sleep(0.01)  # the plain wait is in its 5 s window
        assert not gathering.done()
        started = asyncio.get_running_loop().time()
        await log.durable(sale, hurry=True)
        hurried_s = asyncio.get_running_loop().time() - started
        await gathering
        return hurried_s, log

    hurried_s, log = asyncio.run(scenario())
    assert hurried_s < 1.0 and len(fsyncs) == 1 and log.durable_lsn == 2
