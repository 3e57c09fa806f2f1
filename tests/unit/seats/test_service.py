"""``CentreService``, the centre's work that the ``SeatCentre`` actor runs, on real files
with its I/O as plain functions (no Ray): batches answered after their fsync, a restart
rebuilding exactly what was acknowledged, the freeze wait, and one take-over between two
centres by ``take_over``'s own sequence."""

from __future__ import annotations

import asyncio
import os

import pytest

from gridfare.errors import InvalidInput, UnknownOrder
from gridfare.seats.answers import Frozen, Moved, Refunded, Refused, Sold, SoldOut
from gridfare.seats.directory import Directory
from gridfare.seats.service import CentreIO, CentreService
from gridfare.seats.store import SeatsConfig, SeatsRoot
from gridfare.seats.takeover import TakeOver, take_over

from .conftest import STATIONS, make_train

B, T, J, N, S = STATIONS
DAY = "2026-10-01"
KEY = "G1@2026-10-01"


async def _now(fn, *args):
    return fn(*args)


def _open(root: SeatsRoot, centre: str, fsyncs: list | None = None) -> CentreService:
    def fsync(fd: int) -> None:
        os.fsync(fd)
        if fsyncs is not None:
            fsyncs.append(fd)

    return CentreService.open(root, centre, CentreIO(run_snapshot=_now), run_log=_now,
                              fsync=fsync, incarnation=f"{centre}-{id(fsyncs)}")


@pytest.fixture
def root(tmp_path) -> SeatsRoot:
    root = SeatsRoot(tmp_path / "seats")
    root.init(SeatsConfig(("A", "B"), "A", freeze_wait_s=0.2, wal_window_ms=0))
    return root


def _run(coro):
    return asyncio.run(coro)


def test_a_batch_is_answered_after_one_fsync_and_a_restart_holds_exactly_it(root):
    fsyncs: list = []

    async def scenario():
        centre = _open(root, "A", fsyncs)
        await centre.create_many([make_train().to_dict(), make_train("G2").to_dict()])
        before = len(fsyncs)
        answers = await centre.sell_many([
            ("G1", DAY, B, J, "second", 2, "r1"),
            ("G2", DAY, T, S, "business", 1, "r2"),
            ("G1", DAY, B, S, "second", 3, "r3"),  # 2 left on B -> J
            ("G1", DAY, B, J, "nope", 1, "r4"),
            ("G9", DAY, B, J, "second", 1, "r5"),
        ])
        assert len(fsyncs) == before + 1
        refunds = await centre.refund_many([("G1", DAY, "r1"), ("G1", DAY, "r1"),
                                            ("G1", DAY, "zz")])
        return centre, answers, refunds

    centre, answers, refunds = _run(scenario())
    assert [type(a) for a in answers] == [Sold, Sold, SoldOut, Refused, Refused]
    assert answers[0].seats == (1, 2) and answers[2].remaining == 2
    assert isinstance(answers[3].error, InvalidInput)
    assert [type(a) for a in refunds] == [Refunded, Refunded, Refused]
    assert refunds[1].repeat and isinstance(refunds[2].error, UnknownOrder)
    assert centre.report()["wal_lsn"] == 5  # 2 creates, 2 sales, 1 refund

    again = _open(root, "A")
    assert again.state.inventories == centre.state.inventories
    assert again.report()["replayed_at_start"] == 5
    assert root.audit().ok


def test_a_sale_on_a_frozen_train_date_waits_for_the_thaw_or_answers_frozen(root):
    async def scenario():
        centre = _open(root, "A")
        await centre.create_many([make_train().to_dict(), make_train("G2").to_dict()])
        centre.export(KEY)
        await centre.freeze_delta(KEY, 0, centre.incarnation)
        waiting = asyncio.ensure_future(centre.sell_many([
            ("G1", DAY, B, J, "second", 1, "r1"), ("G2", DAY, B, J, "second", 1, "r2")]))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        centre.unfreeze(KEY)
        thawed = await waiting
        centre.export(KEY)  # a second move of it (an unfreeze ends the first)
        await centre.freeze_delta(KEY, 0, centre.incarnation)
        timed_out = await centre.sell_many([("G1", DAY, B, J, "second", 1, "r3")])
        waiting = asyncio.ensure_future(centre.sell_many([("G1", DAY, B, J, "second", 1,
                                                           "r4")]))
        await asyncio.sleep(0.05)
        await centre.drop(KEY, "B", 2)
        return thawed, timed_out, await waiting

    thawed, timed_out, dropped = _run(scenario())
    assert [type(a) for a in thawed] == [Sold, Sold]
    assert isinstance(timed_out[0], Frozen) and "still frozen" in timed_out[0].message
    assert dropped == [Moved(KEY, "B", 2)]


def test_a_take_over_moves_every_acknowledged_sale_and_the_origin_answers_moved(root):
    directory = Directory()

    async def scenario():
        a, b = _open(root, "A"), _open(root, "B")
        await a.create_many([make_train().to_dict()])
        directory.place(KEY, "A")
        await a.sell_many([("G1", DAY, B, J, "second", 2, "r1")])
        incarnation, data, _ = a.export(KEY)
        _, installed = await b.install(data)
        await a.sell_many([("G1", DAY, J, S, "second", 1, "r2")])  # during the copy

        async def flip():
            return directory.move(KEY, "B", expected_version=1).version

        async def unfreeze():
            b.unfreeze(KEY)

        async def drop(version):
            return (await a.drop(KEY, "B", version))[1]

        version, frozen_s = await take_over(TakeOver(
            freeze_delta=lambda: a.freeze_delta(KEY, installed, incarnation),
            apply=b.catch_up, flip=flip, unfreeze=unfreeze, drop=drop))
        moved = await a.sell_many([("G1", DAY, B, J, "second", 1, "r3")])
        sold = await b.sell_many([("G1", DAY, B, J, "second", 1, "r3")])
        return b, version, frozen_s, moved, sold

    b, version, frozen_s, moved, sold = _run(scenario())
    assert version == 2 and frozen_s is not None and frozen_s >= 0
    assert moved == [Moved(KEY, "B", 2)]
    assert sold[0].seats == (3,)
    assert set(b.state.inventories[KEY].orders) == {"r1", "r2", "r3"}
    assert root.audit().ok
    restarted = _open(root, "B")
    assert restarted.state.inventories == b.state.inventories


def test_a_checkpoint_then_a_restart_reads_only_the_log_after_it(root):
    async def scenario():
        centre = _open(root, "A")
        await centre.create_many([make_train(classes={"second": 40}).to_dict()])
        await centre.sell_many([("G1", DAY, B, J, "second", 1, f"a{i}") for i in range(5)])
        lsn = await centre.checkpoint()
        await centre.sell_many([("G1", DAY, J, S, "second", 1, f"b{i}") for i in range(3)])
        return centre, lsn

    centre, lsn = _run(scenario())
    assert lsn == 6
    again = _open(root, "A")
    assert again.report()["replayed_at_start"] == 3
    assert again.state.inventories == centre.state.inventories
    assert root.audit().ok
