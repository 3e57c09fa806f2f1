"""SeatCentre: one seat load centre, a thin async shell over ``gridfare.seats.CentreService``.

The service does the work (state, log, migration steps, checkpoints; see its docstring); this
shell gives it Ray: the thread the log's fsync runs in (so the event loop keeps taking sales
meanwhile) and the one snapshots are written in (behind the fsync thread, a long write would
hold up every sale's group commit), the dashboard metrics, and the other actors a take-over
calls. Every change is answered only once its log batch is fsynced.

Restart policy: ``max_restarts=-1`` and ``max_task_retries=-1``: a call in flight when the
centre dies is re-sent to the restarted centre, which is safe because sales carry their
``request_id`` (a repeat answers the same seats) and the migration steps are idempotent.
``__init__`` rebuilds the acknowledged state from the snapshot and the log; train-dates in
flight in a migration stay frozen (read from the migration records) until the migrator
settles them. Each incarnation has a fresh id, so the migrator notices a restart mid-step.
"""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import psutil
import ray
from ray.util import metrics

from actors import named_detached
from actors.seat_directory import get_seat_directory
from actors.seat_runtime import MetricTally, quiet_gc, seats_suffix
from gridfare.errors import GridfareError, SeatError, TrainFrozen
from gridfare.seats.answers import (
    Answer,
    Frozen,
    Moved,
    Refunded,
    Refused,
    Sold,
    remaining_wire,
)
from gridfare.seats.inventory import Inventory
from gridfare.seats.service import CentreIO, CentreService
from gridfare.seats.store import SeatsRoot
from gridfare.seats.takeover import TakeOver, take_over
from gridfare.seats.train import TrainDate
from gridfare.seats.wal import WalRecord

__all__ = ["SeatCentre", "centre_name", "get_seat_centre"]

def _warm_arrow() -> None:
    """Build and serialise one tiny snapshot now. pyarrow imports pandas the first time it
    builds a table from a dict (0.3-1 s of CPU here): without this, each centre paid that
    at its first migration export or checkpoint, in the middle of the sales it must not
    slow (seen with py-spy during ``bench/seats.py``'s migration)."""
    train = TrainDate("W0", date(2000, 1, 1), ("A", "B"), {"second": 1})
    Inventory(train).to_arrow().to_bytes()


def centre_name(root: str, centre_id: str) -> str:
    """One set of seat actors per data root, named after it so every client finds them."""
    return f"gridfare-seat-centre-{seats_suffix(root)}-{centre_id}"


def get_seat_centre(root: str, centre_id: str) -> ray.actor.ActorHandle:
    """The named centre of ``root``, created (detached) on first use."""
    return named_detached(SeatCentre, centre_name(root, centre_id)).remote(
        str(SeatsRoot(root).path), centre_id
    )


def _metrics(centre_id: str) -> dict:
    tags, keys = {"centre_id": centre_id}, ("centre_id",)
    found = {
        "sales": metrics.Counter("gridfare_seat_sales", "orders sold", tag_keys=keys),
        "refunds": metrics.Counter("gridfare_seat_refunds", "orders refunded", tag_keys=keys),
        "sold_out": metrics.Counter("gridfare_seat_sold_out", "sold-out answers",
                                    tag_keys=keys),
        "flush": metrics.Histogram(
            "gridfare_seat_wal_flush_seconds", "WAL write + fsync of one batch",
            boundaries=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1], tag_keys=keys),
        "batch": metrics.Histogram(
            "gridfare_seat_wal_batch_records", "records per fsync",
            boundaries=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], tag_keys=keys),
    }
    for m in found.values():
        m.set_default_tags(tags)
    return found


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=2000)
class SeatCentre:
    def __init__(self, root: str, centre_id: str) -> None:
        fsync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-fsync")
        snapshot_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        found = _metrics(centre_id)
        tally = MetricTally(lambda name, n: found[name].inc(n))
        process = psutil.Process()
        process.cpu_percent(None)

        def thread(pool):
            return lambda fn, *args: asyncio.get_running_loop().run_in_executor(pool, fn, *args)

        self._centre = CentreService.open(
            SeatsRoot(root), centre_id,
            CentreIO(run_snapshot=thread(snapshot_thread),
                     counted=tally.count,
                     cpu=lambda: process.cpu_percent(None) / 100),
            run_log=thread(fsync_thread), fsync=os.fsync,
            on_flush=lambda s, n: (found["flush"].observe(s), found["batch"].observe(n)),
            incarnation=uuid.uuid4().hex)
        self._peers: dict[str, ray.actor.ActorHandle] = {}  # other centres; "": directory
        _warm_arrow()
        quiet_gc()

    # ---- requests ---------------------------------------------------------------------

    async def ping(self) -> str:
        return self._centre.incarnation

    async def create_many(self, trains: list[dict]) -> list[str]:
        keys = await self._centre.create_many(trains)
        if len(keys) > 1:
            gc.freeze()  # a bulk load: long-lived, see quiet_gc
        return keys

    async def sell(self, train_no: str, day: str, from_station: str, to_station: str,
                   cls: str, count: int, request_id: str) -> Sold | Moved:
        """Sell ``count`` seats (``TrainFrozen`` if frozen past ``freeze_wait_s``)."""
        (answer,) = await self._centre.sell_many(
            [(train_no, day, from_station, to_station, cls, count, request_id)])
        return _raised(answer)

    async def sell_many(self, requests: list[list]) -> list:
        """Sell a batch (rows as lists: ``SellRequest.as_list``): one columnar answer as
        plain values (``SaleAnswers.to_wire``; the caller reads it with ``from_wire`` and
        binds its rows), so Ray sends both ways with msgpack alone."""
        return (await self._centre.sell_many(requests)).to_wire()

    async def refund(self, train_no: str, day: str, request_id: str) -> Refunded | Moved:
        """Refund an order; a repeat answers the same seats with ``repeat`` set."""
        (answer,) = await self._centre.refund_many([(train_no, day, request_id)])
        return _raised(answer)

    async def refund_many(self, requests: list[tuple]) -> list[Answer]:
        return await self._centre.refund_many(requests)

    async def remaining(self, query: list[str]) -> list:
        """Seats left per class for ``[train_no, day, from, to]``, as plain values
        (``remaining_wire``; the client types them)."""
        return remaining_wire(self._centre.remaining(*query))

    async def report(self) -> dict:
        return {**self._centre.report(), "node_id": ray.get_runtime_context().get_node_id()}

    async def trains(self, selector: str | None = None) -> list[dict]:
        return self._centre.trains(selector)

    async def export_all(self) -> bytes:
        return await self._centre.export_all()

    async def checkpoint(self) -> int:
        return await self._centre.checkpoint()

    # ---- migration steps (each answers this incarnation's id first) -------------------

    async def export(self, key: str) -> tuple[str, bytes, int]:
        return self._centre.export(key)

    async def install(self, data: bytes) -> tuple[str, int]:
        return await self._centre.install(data)

    async def records_after(self, key: str, seq: int) -> tuple[str, list[WalRecord]]:
        return self._centre.records_after(key, seq)

    async def catch_up(self, records: list[WalRecord]) -> tuple[str, int]:
        return await self._centre.catch_up(records)

    async def seq_of(self, key: str) -> tuple[str, int]:
        return self._centre.seq_of(key)

    async def freeze_delta(self, key: str, seq: int, incarnation: str) -> list[WalRecord]:
        return await self._centre.freeze_delta(key, seq, incarnation)

    async def unfreeze(self, key: str) -> str:
        return self._centre.unfreeze(key)

    async def drop(self, key: str, new_centre: str, version: int) -> tuple[str, float | None]:
        return await self._centre.drop(key, new_centre, version)

    async def discard(self, key: str, owner: str, version: int) -> str:
        return await self._centre.discard(key, owner, version)

    async def take_over(self, key: str, origin: str, seq: int, expected_version: int,
                        incarnations: tuple[str, str]
                        ) -> tuple[str, int, float | None, dict[str, float]]:
        """The freeze window of one train-date, run by its destination (this centre): the
        sequence of ``gridfare.seats.takeover`` with this centre's calls. ``incarnations``
        are the (origin, destination) incarnations that made the copy: a centre restarted
        since then refuses the step. Returns this incarnation, the directory version
        naming it, the seconds the train-date was frozen at the origin and each step's
        seconds here."""
        centre = self._centre
        centre.check_installed(key, incarnations[1])
        root = str(centre.root.path)
        if origin not in self._peers:  # kept: getting a handle asks the GCS
            self._peers[origin] = get_seat_centre(root, origin)
        if "" not in self._peers:
            self._peers[""] = get_seat_directory(root)
        origin_centre, directory = self._peers[origin], self._peers[""]

        async def drop(version: int) -> float | None:
            _, frozen_s = await _answer(origin_centre.drop.remote(key, centre.id, version))
            return frozen_s

        async def unfreeze() -> None:
            centre.unfreeze(key)

        timings: dict[str, float] = {}
        version, frozen_s = await take_over(TakeOver(
            freeze_delta=lambda: _answer(
                origin_centre.freeze_delta.remote(key, seq, incarnations[0])),
            apply=centre.catch_up,
            flip=lambda: _answer(directory.move.remote(key, centre.id, expected_version)),
            unfreeze=unfreeze,
            drop=drop,
        ), timings)
        return centre.incarnation, version, frozen_s, timings


def _raised(answer: Answer):
    """A single call's answer: an error answer raised as its error, as before batching."""
    if isinstance(answer, Frozen):
        raise TrainFrozen(answer.message)
    if isinstance(answer, Refused):
        raise answer.error
    return answer


async def _answer(ref: ray.ObjectRef):
    """Await another seat actor's answer; its GridfareError is raised as itself."""
    try:
        return await ref
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, GridfareError):
            raise cause from None
        raise SeatError(f"seat actor call failed: {exc}") from exc
