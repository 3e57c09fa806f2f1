"""SeatCentre: one seat load centre, a thin async shell over ``gridfare.seats.CentreState``.

Every change (create, sell, refund, install, catch-up, drop) is applied to the state, appended
to the centre's write-ahead log and answered only once its log batch is fsynced (group
commit: the sales arriving within ``wal_window_ms`` share one fsync, run in a thread so the
event loop keeps taking sales meanwhile). ``sell_many`` sells a batch in one call and one
fsync (the benchmark's actor path uses it).

A sale on a train-date frozen for the last step of its migration waits (at most
``freeze_wait_s``) until it is unfrozen here (it then proceeds) or dropped (it answers
``moved`` and the client retries at the new owner). Only that train-date waits.

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
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import psutil
import ray
from ray.util import metrics

from actors import named_detached
from actors.seat_directory import get_seat_directory
from actors.seat_runtime import quiet_gc, seats_suffix
from gridfare.errors import GridfareError, InvalidInput, SeatError, TrainFrozen, TrainMoved
from gridfare.seats.answers import (
    Answer,
    Frozen,
    Moved,
    Refunded,
    Refused,
    Remaining,
    Sold,
    SoldOut,
)
from gridfare.seats.centre import CentreState, SaleBatch, parse_day
from gridfare.seats.checkpoints import CheckpointChain
from gridfare.seats.engine import CentreLog, LogIO
from gridfare.seats.inventory import Inventory, Sale
from gridfare.seats.selectors import TrainSelector
from gridfare.seats.snapshot import Snapshot, SnapshotDelta
from gridfare.seats.store import SeatsRoot
from gridfare.seats.takeover import TakeOver, take_over
from gridfare.seats.train import TrainDate, parse_key, train_key
from gridfare.seats.wal import WalRecord, change_record

_NO_AUTO_FLUSH = 1 << 40  # the WalWriter never flushes by itself: the group commit does
_SNAPSHOT_CHUNK = 32  # train-dates copied per turn of the event loop during a checkpoint


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


def sold(sale: Sale) -> Sold:
    return Sold(sale.key, sale.request_id, sale.cls, sale.from_station, sale.to_station,
                sale.seats, sale.repeat)


def moved(exc: TrainMoved) -> Moved:
    return Moved(exc.key, exc.centre, exc.version)


class _Metrics:
    def __init__(self, centre_id: str) -> None:
        tags = {"centre_id": centre_id}
        self.sales = metrics.Counter("gridfare_seat_sales", "orders sold", tag_keys=("centre_id",))
        self.refunds = metrics.Counter(
            "gridfare_seat_refunds", "orders refunded", tag_keys=("centre_id",)
        )
        self.sold_out = metrics.Counter(
            "gridfare_seat_sold_out", "sold-out answers", tag_keys=("centre_id",)
        )
        self.flush = metrics.Histogram(
            "gridfare_seat_wal_flush_seconds",
            "WAL write + fsync of one batch",
            boundaries=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
            tag_keys=("centre_id",),
        )
        self.batch = metrics.Histogram(
            "gridfare_seat_wal_batch_records",
            "records per fsync",
            boundaries=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
            tag_keys=("centre_id",),
        )
        for m in (self.sales, self.refunds, self.sold_out, self.flush, self.batch):
            m.set_default_tags(tags)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=2000)
class SeatCentre:
    def __init__(self, root: str, centre_id: str) -> None:
        self._root = SeatsRoot(root)
        self._id = centre_id
        config = self._root.config()
        if centre_id not in config.centres:
            raise InvalidInput(f"centre {centre_id!r} is not one of {config.centres}")
        self._freeze_wait = config.freeze_wait_s
        self._root.centre_dir(centre_id).mkdir(parents=True, exist_ok=True)
        snapshot = self._root.read_centre_snapshot(centre_id)
        self._chain = CheckpointChain(snapshot.lsn if snapshot is not None else 0)
        # Only the log after the snapshot is read: the sealed segments before it are kept
        # for the audit, never for a restart.
        wal, records, segment_first = self._root.open_centre_log(
            centre_id, self._chain.lsn, batch_size=_NO_AUTO_FLUSH
        )
        frozen = self._root.frozen_at(centre_id)
        self._state = CentreState.restore(centre_id, snapshot, records, frozen)
        self._replayed = len(records)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-fsync")
        self._metrics = _Metrics(centre_id)
        self._log_engine = CentreLog(
            wal, self._log_io(), segment_first=segment_first,
            window_s=config.wal_window_ms / 1000, snapshot_every=config.snapshot_every,
            snapshot_interval_s=config.snapshot_interval_s, since_checkpoint=len(records))
        self._checkpointing: asyncio.Future | None = None
        self._checkpoint_lock = asyncio.Lock()
        # Catch-up source: the sell/refund records of each train-date being exported for a
        # migration, from its export on (the destination has everything up to the export).
        # Only those: keeping every record of every train-date would grow without bound.
        self._recent: dict[str, list[WalRecord]] = {}
        self._thaw = {key: asyncio.Event() for key in self._state.frozen}
        # Origin side of a freeze window: when each train-date froze here for its move.
        self._frozen_since: dict[str, float] = {}
        # Snapshots are written by their own thread: behind the fsync thread, a long write
        # would hold up every sale's group commit.
        self._snapshot_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        self._incarnation = uuid.uuid4().hex
        self._peers: dict[str, ray.actor.ActorHandle] = {}  # other centres; "": directory
        self._sales_window: deque[tuple[int, int]] = deque()  # (second, sales)
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        _warm_arrow()
        quiet_gc()

    # ---- durability -------------------------------------------------------------------

    def _log_io(self) -> LogIO:
        def run(fn, *args):
            return asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

        def flushed(seconds: float, records: int) -> None:
            self._metrics.flush.observe(seconds)
            self._metrics.batch.observe(records)

        return LogIO(
            run=run, fsync=os.fsync,
            seal_segment=lambda first, last: self._root.seal_segment(
                self._id, first, last, durable=False),
            sync_dirs=lambda: self._root.sync_log_dirs(self._id), on_flush=flushed)

    def _log(self, record: WalRecord | None) -> int:
        if record is None:
            return 0
        logged = self._log_engine.append(record)
        if logged.op in ("sell", "refund") and logged.key in self._recent:
            self._recent[logged.key].append(logged)
        self._maybe_checkpoint()
        return logged.lsn

    def _log_sales(self, batch: SaleBatch) -> int:
        """Log a batch's sales; the lsn its answers wait for (0: none)."""
        changes = batch.changes
        if changes:
            last = self._log_engine.append_changes(changes)
            if self._recent:
                first = last - len(changes) + 1
                for j, change in enumerate(changes):
                    if change[1] in self._recent:
                        self._recent[change[1]].append(change_record(change, first + j))
            self._metrics.sales.inc(len(changes))
            self._count_sale(len(changes))
            self._maybe_checkpoint()
        sold_out = sum(isinstance(a, SoldOut) for a in batch.answers)
        if sold_out:
            self._metrics.sold_out.inc(sold_out)
        if changes or any(isinstance(a, Sold) and a.repeat for a in batch.answers):
            return self._log_engine.last_lsn  # a repeat: durable once the first was
        return 0

    def _maybe_checkpoint(self) -> None:
        if self._log_engine.due() and (self._checkpointing is None
                                       or self._checkpointing.done()):
            self._checkpointing = asyncio.ensure_future(self._auto_checkpoint())

    async def _auto_checkpoint(self) -> None:
        try:
            await self.checkpoint()
        except Exception as exc:  # logged, and retried at the next trigger
            self._log_engine.checkpointed()  # not at once again: at the next one
            print(f"centre {self._id}: automatic checkpoint failed: {exc!r}", flush=True)

    async def _durable(self, lsn: int) -> None:
        await self._log_engine.durable(lsn)

    # ---- requests ---------------------------------------------------------------------

    async def ping(self) -> str:
        return self._incarnation

    async def create_many(self, trains: list[dict]) -> list[str]:
        """Create train-dates (dicts of ``TrainDate.to_dict``); one that exists with the same
        definition is skipped (a retried create), a different one is refused."""
        lsn, keys = 0, []
        for data in trains:
            train = TrainDate.from_dict(data)
            known = self._state.inventories.get(train.key)
            if known is not None:
                if known.train != train:
                    raise InvalidInput(
                        f"centre {self._id}: train-date {train.key} exists "
                        "with a different definition"
                    )
            else:
                lsn = max(lsn, self._log(self._state.create(train)))
            keys.append(train.key)
        await self._durable(lsn)
        if len(keys) > 1:
            gc.freeze()  # a bulk load: long-lived, see quiet_gc
        return keys

    async def sell(
        self,
        train_no: str,
        day: str,
        from_station: str,
        to_station: str,
        cls: str,
        count: int,
        request_id: str,
    ) -> Sold | SoldOut | Moved:
        """Sell ``count`` seats (``TrainFrozen`` if frozen past ``freeze_wait_s``)."""
        request = (train_no, day, from_station, to_station, cls, count, request_id)
        (answer,) = await self.sell_many([request])
        if isinstance(answer, Frozen):
            raise TrainFrozen(answer.message)
        if isinstance(answer, Refused):
            raise answer.error
        return answer

    async def sell_many(self, requests: list[tuple]) -> list[Answer]:
        """Sell a batch (tuples of ``sell``'s arguments) with one core call and one fsync.
        A request that is refused answers ``Refused(error)`` (``Frozen`` past the wait)
        alone. The requests on a frozen train-date wait (bounded) without holding up the
        others of the batch, whose answers only wait for the one fsync."""
        batch = self._state.sell_many(requests)
        lsn = self._log_sales(batch)
        if batch.frozen:
            waited = await asyncio.gather(*(
                self._sell_thawed(key, [requests[i] for i in indices])
                for key, indices in batch.frozen.items()))
            for indices, (answers, at) in zip(batch.frozen.values(), waited, strict=True):
                for i, answer in zip(indices, answers, strict=True):
                    batch.answers[i] = answer
                lsn = max(lsn, at)
        await self._durable(lsn)
        return batch.answers

    async def _sell_thawed(self, key: str, requests: list[tuple]) -> tuple[list[Answer], int]:
        """Sell requests on a frozen train-date once it thaws here or leaves (at most
        ``freeze_wait_s``; then each answers ``Frozen``)."""
        deadline = time.monotonic() + self._freeze_wait
        while True:
            event = self._thaw.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                message = (f"centre {self._id}: train-date {key} still frozen for migration "
                           f"after {self._freeze_wait:g} s; retry")
                return [Frozen(key, message)] * len(requests), 0
            batch = self._state.sell_many(requests)
            if not batch.frozen:
                return batch.answers, self._log_sales(batch)

    async def refund(self, train_no: str, day: str, request_id: str) -> Refunded | Moved:
        """Refund an order; a repeat answers the same seats with ``repeat`` set."""
        answer, lsn = await self._when_thawed(self._refund_now, (train_no, day, request_id))
        await self._durable(lsn)
        return answer

    async def refund_many(self, requests: list[tuple]) -> list[Answer]:
        """Refund a batch (tuples of ``refund``'s arguments) with one fsync, as
        ``sell_many`` sells."""
        return await self._many(self._refund_now, requests)

    async def _many(self, now, requests: list[tuple]) -> list[Answer]:
        """``now`` (``_refund_now``) over a batch, one fsync for all."""
        answers: list[Answer | None] = [None] * len(requests)
        waiting, lsn = [], 0
        for i, request in enumerate(requests):
            try:
                answers[i], at = now(*request)
            except TrainFrozen:
                waiting.append(i)
                continue
            except (SeatError, InvalidInput) as exc:
                answers[i], at = Refused(exc), 0
            lsn = max(lsn, at)

        async def wait_and_do(i: int) -> int:
            try:
                answers[i], at = await self._when_thawed(now, requests[i])
            except TrainFrozen as exc:
                key = train_key(requests[i][0], parse_day(requests[i][1]))
                answers[i], at = Frozen(key, str(exc)), 0
            except (SeatError, InvalidInput) as exc:
                answers[i], at = Refused(exc), 0
            return at

        if waiting:
            lsn = max(lsn, *await asyncio.gather(*(wait_and_do(i) for i in waiting)))
        await self._durable(lsn)
        return answers

    async def _when_thawed(self, now, request: tuple) -> tuple[dict, int]:
        """``now(*request)``, waiting (at most ``freeze_wait_s``) while the train-date is
        frozen; ``request`` starts with the train number and the day."""
        deadline = None
        while True:
            try:
                return now(*request)
            except TrainFrozen:
                key = train_key(request[0], parse_day(request[1]))
                now_s = time.monotonic()
                deadline = deadline or now_s + self._freeze_wait
                event = self._thaw.setdefault(key, asyncio.Event())
                try:
                    await asyncio.wait_for(event.wait(), max(0.0, deadline - now_s))
                except asyncio.TimeoutError:
                    raise TrainFrozen(
                        f"centre {self._id}: train-date {key} still frozen for migration "
                        f"after {self._freeze_wait:g} s; retry"
                    ) from None

    def _refund_now(self, train_no: str, day: str, request_id: str
                    ) -> tuple[Refunded | Moved, int]:
        """Refund at once: the answer and the log position it waits for."""
        try:
            result = self._state.refund(train_no, parse_day(day), request_id)
        except TrainMoved as exc:
            return moved(exc), 0
        if result.record is None:
            lsn = self._log_engine.last_lsn  # a repeat: durable once the first was
        else:
            lsn = self._log(result.record)
            self._metrics.refunds.inc()
        return Refunded(result.key, result.request_id, result.cls, result.seats,
                        result.record is None), lsn

    async def remaining(self, train_no: str, day: str, from_station: str, to_station: str
                        ) -> Remaining | Moved:
        try:
            classes = self._state.remaining(train_no, parse_day(day), from_station, to_station)
        except TrainMoved as exc:
            return moved(exc)
        return Remaining(train_key(train_no, parse_day(day)), from_station, to_station, classes)

    async def report(self) -> dict:
        cpu = min(1.0, self._process.cpu_percent(None) / 100)
        report = self._state.report(cpu=cpu, sales_per_minute=self._sales_per_minute())
        return {
            "centre_id": report.centre_id,
            "seats_stored": report.seats_stored,
            "seats_unsold": report.seats_unsold,
            "sales_per_minute": report.sales_per_minute,
            "cpu": report.cpu,
            "train_dates": len(self._state.inventories),
            "frozen": sorted(self._state.frozen),
            "wal_lsn": self._log_engine.durable_lsn,
            "snapshot_lsn": self._chain.lsn,
            "segment_first_lsn": self._log_engine.segment_first,
            "replayed_at_start": self._replayed,
            "node_id": ray.get_runtime_context().get_node_id(),
        }

    async def trains(self, selector: str | None = None) -> list[dict]:
        """The train-dates held here, or those ``selector`` picks (a migration's plan):
        matched here rather than shipping every train-date to the migrator, which parsed
        tens of thousands of them at the start of each migration."""
        picked = TrainSelector.parse(selector) if selector is not None else None
        return [
            inv.train.to_dict()
            for _, inv in sorted(self._state.inventories.items())
            if picked is None or picked.matches(inv.train)
        ]

    async def export_all(self) -> bytes:
        """Everything held, as snapshot bytes, once every answered change is durable."""
        await self._durable(self._log_engine.last_lsn)
        return self._state.snapshot(lsn=self._log_engine.durable_lsn).to_bytes()

    async def checkpoint(self) -> int:
        """Seal the current log segment and checkpoint the centre as of its end; returns that
        lsn. A restart then reads the checkpoint and only the segments after it. Sealed
        segments are kept: the audit replays every train-date from its create.

        Only the train-dates changed since the previous checkpoint are copied, as a delta
        on the chain; the first checkpoint since start, and one after deltas outgrew it,
        is a full snapshot (``gridfare.seats.checkpoints``). Sales go on meanwhile: the
        train-dates are copied a few at a time between them (a fuzzy snapshot, exact on
        restore, see ``CentreState.snapshot_parts``; a train-date left out has had no
        record since it was copied, so its later records all come after this lsn), and the
        checkpoint is assembled and written by a thread of its own. It becomes visible
        only once every record it holds is durable, so it never holds an unacknowledged
        sale.
        """
        async with self._checkpoint_lock:
            lsn = await self._log_engine.seal()
            inventories = self._state.inventories
            pending = self._chain.start()
            changed = pending.changed(inventories)
            parts: list[Snapshot] = []
            for i in range(0, len(changed), _SNAPSHOT_CHUNK):
                chunk = [k for k in changed[i : i + _SNAPSHOT_CHUNK] if k in inventories]
                parts += self._state.snapshot_parts(chunk)
                pending.capture(chunk, inventories)
                await asyncio.sleep(0)  # let the sales waiting meanwhile in
            pending.close(inventories)
            moved = dict(self._state.moved)
            await self._durable(self._log_engine.last_lsn)
            rows = await asyncio.get_running_loop().run_in_executor(
                self._snapshot_io, _write_checkpoint, parts, moved, lsn,
                None if pending.full else (pending.held, pending.after), self._root, self._id,
            )
            self._chain.commit(pending, lsn, rows)
            self._log_engine.checkpointed()
            return lsn

    # ---- migration steps (each answers this incarnation's id first) -------------------

    async def export(self, key: str) -> tuple[str, bytes, int]:
        inventory = self._state.get(key)
        self._recent[key] = []  # from here on, its changes are kept for the catch-up
        return self._incarnation, self._state.export(key).to_bytes(), inventory.seq

    async def install(self, data: bytes) -> tuple[str, int]:
        snapshot = Snapshot.from_bytes(data, name="migration copy")
        lsn = 0
        for record in self._state.install(snapshot):
            self._thaw.setdefault(record.key, asyncio.Event())
            lsn = self._log(record)
        await self._durable(lsn)
        (key,) = snapshot.keys()
        return self._incarnation, self._state.get(key).seq

    async def records_after(self, key: str, seq: int) -> tuple[str, list[WalRecord]]:
        return self._incarnation, self._delta(key, seq)

    def _delta(self, key: str, seq: int) -> list[WalRecord]:
        self._state.get(key)
        if key not in self._recent:
            # Not exported by this incarnation: the migrator's incarnation check fails the
            # step anyway; refuse rather than answer an empty (wrong) delta.
            raise SeatError(
                f"centre {self._id}: {key} was not exported by this incarnation "
                "(restarted since the copy?); copy it again"
            )
        return [r for r in self._recent[key] if r.seq > seq]

    async def catch_up(self, records: list[WalRecord]) -> tuple[str, int]:
        lsn = 0
        for record in records:
            if self._state.get(record.key).apply(record):
                lsn = self._log(record)
        await self._durable(lsn)
        keys = {r.key for r in records}
        seq = self._state.get(keys.pop()).seq if len(keys) == 1 else 0
        return self._incarnation, seq

    async def take_over(
        self,
        key: str,
        origin: str,
        seq: int,
        expected_version: int,
        incarnations: tuple[str, str],
    ) -> tuple[str, int, float | None]:
        """The freeze window of one train-date, run by its destination (this centre): the
        sequence of ``gridfare.seats.takeover`` with this centre's calls. ``incarnations``
        are the (origin, destination) incarnations that made the copy: a centre restarted
        since then refuses the step. Returns this incarnation, the directory version
        naming it and the seconds the train-date was frozen at the origin."""
        if incarnations[1] != self._incarnation:
            raise SeatError(f"centre {self._id} restarted since it installed {key}; redo it")
        if origin not in self._peers:  # kept: getting a handle asks the GCS
            self._peers[origin] = get_seat_centre(str(self._root.path), origin)
        if "" not in self._peers:
            self._peers[""] = get_seat_directory(str(self._root.path))
        origin_centre, directory = self._peers[origin], self._peers[""]

        async def drop(version: int) -> float | None:
            _, frozen_s = await _answer(origin_centre.drop.remote(key, self._id, version))
            return frozen_s

        version, frozen_s = await take_over(TakeOver(
            freeze_delta=lambda: _answer(
                origin_centre.freeze_delta.remote(key, seq, incarnations[0])),
            apply=self.catch_up,
            flip=lambda: _answer(directory.move.remote(key, self._id, expected_version)),
            unfreeze=lambda: self.unfreeze(key),
            drop=drop,
        ))
        return self._incarnation, version, frozen_s

    async def seq_of(self, key: str) -> tuple[str, int]:
        return self._incarnation, self._state.get(key).seq

    async def freeze_delta(self, key: str, seq: int, incarnation: str) -> list[WalRecord]:
        """Freeze one train-date and answer its records after ``seq`` (the final delta)
        once they are durable here: the first step of ``take_over``. Only this train-date's
        own records are waited for, not the other train-dates' batch being group-committed
        meanwhile (the freeze used to wait for that whole batch: an fsync in the window)."""
        if incarnation != self._incarnation:
            raise SeatError(f"centre {self._id} restarted since it exported {key}; redo it")
        self._state.freeze(key)
        self._frozen_since.setdefault(key, time.monotonic())
        self._thaw.setdefault(key, asyncio.Event())
        delta = self._delta(key, seq)
        if delta:
            await self._durable(max(r.lsn for r in delta))
        return delta

    async def unfreeze(self, key: str) -> str:
        if key in self._state.inventories:
            self._state.unfreeze(key)
        self._frozen_since.pop(key, None)  # a migration undone here
        self._recent.pop(key, None)  # a migration undone here, or finished at the target
        self._wake(key)
        return self._incarnation

    async def drop(self, key: str, new_centre: str, version: int) -> tuple[str, float | None]:
        """The train-date now lives on ``new_centre`` (idempotent: a repeat returns once the
        drop is durable). Answers this incarnation and the seconds the train-date was
        frozen here for its move, from the freeze to the drop's release of the sales
        waiting here (None from a repeat, or if this incarnation did not freeze it)."""
        frozen_s = None
        if key in self._state.inventories:
            lsn = self._log(self._state.drop(key, new_centre, version))
            since = self._frozen_since.pop(key, None)
            if since is not None:
                frozen_s = time.monotonic() - since
        else:
            # Dropped already, maybe by a call still waiting for its fsync: wait for it too.
            lsn = self._log_engine.last_lsn
        self._recent.pop(key, None)
        # Waiting sales answer "moved" and go to the new owner at once, before this fsync:
        # "moved" acknowledges nothing here, the flip is durable in the directory already,
        # and a restart before the drop is durable finds the train-date frozen here (the
        # stored migration names it: ``Migration.frozen_at``) until it is dropped again.
        self._wake(key)
        await self._durable(lsn)
        return self._incarnation, frozen_s

    async def discard(self, key: str, owner: str, version: int) -> str:
        """Throw away a migration copy being undone (``owner`` still owns it)."""
        record = self._state.discard(key, owner, version)
        await self._durable(self._log(record))
        self._recent.pop(key, None)
        self._wake(key)
        return self._incarnation

    # ---- helpers ----------------------------------------------------------------------

    def _wake(self, key: str) -> None:
        event = self._thaw.pop(key, None)
        if event is not None:
            event.set()

    def _count_sale(self, n: int) -> None:
        second = int(time.monotonic())
        if self._sales_window and self._sales_window[-1][0] == second:
            self._sales_window[-1] = (second, self._sales_window[-1][1] + n)
        else:
            self._sales_window.append((second, n))

    def _sales_per_minute(self) -> float:
        horizon = int(time.monotonic()) - 60
        while self._sales_window and self._sales_window[0][0] <= horizon:
            self._sales_window.popleft()
        return float(sum(n for _, n in self._sales_window))


async def _answer(ref: ray.ObjectRef):
    """Await another seat actor's answer; its GridfareError is raised as itself."""
    try:
        return await ref
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, GridfareError):
            raise cause from None
        raise SeatError(f"seat actor call failed: {exc}") from exc


def _write_checkpoint(
    parts: list[Snapshot], moved: dict, lsn: int, delta: tuple[tuple[str, ...], int] | None,
    root: SeatsRoot, centre_id: str,
) -> int:
    """Write a full snapshot (``delta`` None) or a delta (``(held, after)``); returns the
    seat rows written."""
    snapshot = CentreState.assemble(parts, moved, lsn)
    if delta is None:
        root.write_checkpoint(centre_id, snapshot)
    else:
        root.write_checkpoint(centre_id, SnapshotDelta(snapshot, *delta))
    return snapshot.seats.num_rows


__all__ = ["SeatCentre", "centre_name", "get_seat_centre", "parse_day", "parse_key"]
