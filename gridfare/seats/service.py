"""A seat centre's work, with its I/O passed in: what the ``SeatCentre`` actor runs.

``CentreService`` holds the centre's state (``CentreState``), its log engine
(``CentreLog``: group commit, seals, when a checkpoint is due), the train-dates frozen for a
migration and the records kept for a migration's catch-up. Each request is one call into the
state, its records appended to the log, and an answer once they are fsynced. The actor adds
Ray: the threads the fsync and the snapshots run in, the metrics, the other actors. Unit
tests run this very code on real files with the I/O as plain functions.

- **Sales and refunds** come in batches (``sell_many``, ``refund_many``): one call into the
  state for the whole batch, one fsync. A request on a train-date frozen for the last step
  of its migration waits (at most ``freeze_wait_s``) until it is unfrozen here (it then
  proceeds) or dropped (it answers ``Moved`` and the client retries at the new owner). Only
  that train-date waits; the rest of the batch only waits for its fsync.
- **Migration steps** (``export`` .. ``discard``) answer this incarnation's id first, so the
  migrator notices a restart mid-step. ``freeze_delta`` waits only for the moving
  train-date's own records, not the other train-dates' batch being committed meanwhile.
- **Checkpoints** seal the log and copy the changed train-dates a few at a time between
  sales (a fuzzy snapshot, exact on restore), then write it in the snapshot thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gridfare.errors import InvalidInput, SeatError, TrainMoved
from gridfare.seats.answers import (
    Answer,
    Frozen,
    Moved,
    Refunded,
    Remaining,
    SaleAnswers,
    SaleKind,
    Sold,
    SoldOut,
)
from gridfare.seats.centre import CentreState, SaleBatch, parse_day
from gridfare.seats.checkpoints import CheckpointChain
from gridfare.seats.engine import CentreLog, LogIO
from gridfare.seats.selectors import TrainSelector
from gridfare.seats.snapshot import Snapshot, SnapshotDelta
from gridfare.seats.store import SeatsRoot
from gridfare.seats.train import TrainDate, train_key
from gridfare.seats.wal import WalRecord, change_record

__all__ = ["CentreIO", "CentreService"]

_SNAPSHOT_CHUNK = 32  # train-dates copied per turn of the event loop during a checkpoint


@dataclass(frozen=True)
class CentreIO:
    """What the service asks of its shell, besides the log's own I/O (``LogIO``)."""

    run_snapshot: Callable[..., Awaitable]  # run(fn, *args) in the snapshot thread
    counted: Callable[[str, int], None] = lambda name, n: None  # a metric: sales, refunds..
    cpu: Callable[[], float] = lambda: 0.0  # the centre process's CPU share since last asked
    clock: Callable[[], float] = time.monotonic


_NO_AUTO_FLUSH = 1 << 40  # the WalWriter never flushes by itself: the group commit does


class CentreService:
    @classmethod
    def open(cls, root: SeatsRoot, centre_id: str, io: CentreIO, *,
             run_log: Callable[..., Awaitable], fsync: Callable[[int], None],
             on_flush: Callable[[float, int], None] = lambda seconds, records: None,
             incarnation: str) -> CentreService:
        """A centre rebuilt from its files: the checkpoint, the log after it (only that:
        the sealed segments before it are kept for the audit, never for a restart), and the
        train-dates a stored migration holds frozen here. ``run_log`` runs the log's fsync
        off the event loop."""
        config = root.config()
        if centre_id not in config.centres:
            raise InvalidInput(f"centre {centre_id!r} is not one of {config.centres}")
        root.centre_dir(centre_id).mkdir(parents=True, exist_ok=True)
        snapshot = root.read_centre_snapshot(centre_id)
        chain = CheckpointChain(snapshot.lsn if snapshot is not None else 0)
        wal, records, segment_first = root.open_centre_log(centre_id, chain.lsn,
                                                           batch_size=_NO_AUTO_FLUSH)
        state = CentreState.restore(centre_id, snapshot, records, root.frozen_at(centre_id))
        log = CentreLog(wal, LogIO(
            run=run_log, fsync=fsync,
            seal_segment=lambda first, last: root.seal_segment(centre_id, first, last,
                                                               durable=False),
            sync_dirs=lambda: root.sync_log_dirs(centre_id), on_flush=on_flush),
            segment_first=segment_first, window_s=config.wal_window_ms / 1000,
            snapshot_every=config.snapshot_every,
            snapshot_interval_s=config.snapshot_interval_s, since_checkpoint=len(records))
        return cls(root, state, log, chain, io, incarnation=incarnation,
                   freeze_wait_s=config.freeze_wait_s, replayed=len(records))

    def __init__(self, root: SeatsRoot, state: CentreState, log: CentreLog,
                 chain: CheckpointChain, io: CentreIO, *, incarnation: str,
                 freeze_wait_s: float, replayed: int = 0) -> None:
        self.root, self.state, self.log, self.chain = root, state, log, chain
        self.id = state.centre_id
        self.incarnation = incarnation
        self.replayed = replayed
        self._io = io
        self._freeze_wait = freeze_wait_s
        self._checkpointing: asyncio.Future | None = None
        self._checkpoint_lock = asyncio.Lock()
        # Catch-up source: the sell/refund records of each train-date being exported for a
        # migration, from its export on (the destination has everything up to the export).
        # Only those: keeping every record of every train-date would grow without bound.
        self._recent: dict[str, list[WalRecord]] = {}
        self._thaw = {key: asyncio.Event() for key in state.frozen}
        # Origin side of a freeze window: when each train-date froze here for its move.
        self._frozen_since: dict[str, float] = {}
        self._sales_window: deque[tuple[int, int]] = deque()  # (second, sales)

    # ---- the log ----------------------------------------------------------------------

    def _log(self, record: WalRecord | None) -> int:
        if record is None:
            return 0
        logged = self.log.append(record)
        if logged.op in ("sell", "refund") and logged.key in self._recent:
            self._recent[logged.key].append(logged)
        self._maybe_checkpoint()
        return logged.lsn

    def _log_batch(self, batch: SaleBatch, kind: str) -> int:
        """Log a batch's sales or refunds; the lsn its answers wait for (0: none)."""
        changes = batch.changes
        if changes:
            last = self.log.append_changes(changes)
            if self._recent:
                first = last - len(changes) + 1
                for j, change in enumerate(changes):
                    if change[1] in self._recent:
                        self._recent[change[1]].append(change_record(change, first + j))
            self._io.counted(kind, len(changes))
            if kind == "sales":
                self._count_sales(len(changes))
            self._maybe_checkpoint()
        answers = batch.answers
        if isinstance(answers, SaleAnswers):  # read from its kind bytes, not answer by answer
            sold_out = answers.kinds.count(SaleKind.SOLD_OUT)
            repeat = SaleKind.REPEAT in answers.kinds
        else:
            sold_out = sum(isinstance(a, SoldOut) for a in answers)
            repeat = any(isinstance(a, (Sold, Refunded)) and a.repeat for a in answers)
        if sold_out:
            self._io.counted("sold_out", sold_out)
        if changes or repeat:
            return self.log.last_lsn  # a repeat: durable once the first was
        return 0

    def _maybe_checkpoint(self) -> None:
        if self.log.due() and (self._checkpointing is None or self._checkpointing.done()):
            self._checkpointing = asyncio.ensure_future(self._auto_checkpoint())

    async def _auto_checkpoint(self) -> None:
        try:
            await self.checkpoint()
        except Exception as exc:  # logged, and retried at the next trigger
            self.log.checkpointed()  # not at once again: at the next one
            print(f"centre {self.id}: automatic checkpoint failed: {exc!r}", flush=True)

    # ---- requests ---------------------------------------------------------------------

    async def create_many(self, trains: list[dict]) -> list[str]:
        """Create train-dates (dicts of ``TrainDate.to_dict``); one that exists with the same
        definition is skipped (a retried create), a different one is refused."""
        lsn, keys = 0, []
        for data in trains:
            train = TrainDate.from_dict(data)
            known = self.state.inventories.get(train.key)
            if known is not None:
                if known.train != train:
                    raise InvalidInput(f"centre {self.id}: train-date {train.key} exists "
                                       "with a different definition")
            else:
                lsn = max(lsn, self._log(self.state.create(train)))
            keys.append(train.key)
        await self.log.durable(lsn)
        return keys

    async def sell_many(self, requests: list[tuple]) -> SaleAnswers:
        """Sell a batch (tuples of ``sell``'s arguments): one call into the state, one
        fsync, one columnar answer. A refused request answers ``Refused(error)``
        (``Frozen`` past the wait)."""
        return await self._batch(self.state.sell_many, requests, "sales")

    async def refund_many(self, requests: list[tuple]) -> list[Answer]:
        """Refund a batch (tuples of ``refund``'s arguments), as ``sell_many`` sells."""
        return await self._batch(self.state.refund_many, requests, "refunds")

    async def _batch(self, apply: Callable[[list[tuple]], SaleBatch], requests: list[tuple],
                     kind: str) -> list[Answer]:
        batch = apply(requests)
        lsn = self._log_batch(batch, kind)
        if batch.frozen:
            waited = await asyncio.gather(*(
                self._when_thawed(apply, key, [requests[i] for i in indices], kind)
                for key, indices in batch.frozen.items()))
            for indices, (answers, at) in zip(batch.frozen.values(), waited, strict=True):
                for i, answer in zip(indices, answers, strict=True):
                    batch.answers[i] = answer
                lsn = max(lsn, at)
        await self.log.durable(lsn)
        return batch.answers

    async def _when_thawed(self, apply, key: str, requests: list[tuple], kind: str
                           ) -> tuple[list[Answer], int]:
        """``apply`` requests on a frozen train-date once it thaws here or leaves (at most
        ``freeze_wait_s``; then each answers ``Frozen``)."""
        deadline = self._io.clock() + self._freeze_wait
        while True:
            batch = apply(requests)  # again first: it may have thawed since it was tried
            if not batch.frozen:
                return batch.answers, self._log_batch(batch, kind)
            event = self._thaw.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), max(0.0, deadline - self._io.clock()))
            except asyncio.TimeoutError:
                message = (f"centre {self.id}: train-date {key} still frozen for migration "
                           f"after {self._freeze_wait:g} s; retry")
                return [Frozen(key, message)] * len(requests), 0

    def remaining(self, train_no: str, day: str, from_station: str, to_station: str
                  ) -> Remaining | Moved:
        try:
            classes = self.state.remaining(train_no, parse_day(day), from_station, to_station)
        except TrainMoved as exc:
            return Moved(exc.key, exc.centre, exc.version)
        return Remaining(train_key(train_no, parse_day(day)), from_station, to_station, classes)

    def report(self) -> dict:
        report = self.state.report(cpu=min(1.0, self._io.cpu()),
                                   sales_per_minute=self._sales_per_minute())
        return {
            "centre_id": report.centre_id,
            "seats_stored": report.seats_stored,
            "seats_unsold": report.seats_unsold,
            "sales_per_minute": report.sales_per_minute,
            "cpu": report.cpu,
            "train_dates": len(self.state.inventories),
            "frozen": sorted(self.state.frozen),
            "wal_lsn": self.log.durable_lsn,
            "snapshot_lsn": self.chain.lsn,
            "segment_first_lsn": self.log.segment_first,
            "replayed_at_start": self.replayed,
        }

    def trains(self, selector: str | None = None) -> list[dict]:
        """The train-dates held here, or those ``selector`` picks (a migration's plan):
        matched here rather than shipping every train-date to the migrator, which parsed
        tens of thousands of them at the start of each migration."""
        picked = TrainSelector.parse(selector) if selector is not None else None
        return [inv.train.to_dict() for _, inv in sorted(self.state.inventories.items())
                if picked is None or picked.matches(inv.train)]

    async def export_all(self) -> bytes:
        """Everything held, as snapshot bytes, once every answered change is durable."""
        await self.log.durable(self.log.last_lsn)
        return self.state.snapshot(lsn=self.log.durable_lsn).to_bytes()

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
            lsn = await self.log.seal()
            inventories = self.state.inventories
            pending = self.chain.start()
            changed = pending.changed(inventories)
            parts: list[Snapshot] = []
            for i in range(0, len(changed), _SNAPSHOT_CHUNK):
                chunk = [k for k in changed[i : i + _SNAPSHOT_CHUNK] if k in inventories]
                parts += self.state.snapshot_parts(chunk)
                pending.capture(chunk, inventories)
                await asyncio.sleep(0)  # let the sales waiting meanwhile in
            pending.close(inventories)
            moved = dict(self.state.moved)
            await self.log.durable(self.log.last_lsn)
            rows = await self._io.run_snapshot(
                write_checkpoint, parts, moved, lsn,
                None if pending.full else (pending.held, pending.after), self.root, self.id)
            self.chain.commit(pending, lsn, rows)
            self.log.checkpointed()
            return lsn

    # ---- migration steps (each answers this incarnation's id first) -------------------

    def export(self, key: str) -> tuple[str, bytes, int]:
        inventory = self.state.get(key)
        self._recent[key] = []  # from here on, its changes are kept for the catch-up
        return self.incarnation, self.state.export(key).to_bytes(), inventory.seq

    async def install(self, data: bytes) -> tuple[str, int]:
        snapshot = Snapshot.from_bytes(data, name="migration copy")
        lsn = 0
        for record in self.state.install(snapshot):
            self._thaw.setdefault(record.key, asyncio.Event())
            lsn = self._log(record)
        await self.log.durable(lsn)
        (key,) = snapshot.keys()
        return self.incarnation, self.state.get(key).seq

    def records_after(self, key: str, seq: int) -> tuple[str, list[WalRecord]]:
        return self.incarnation, self._delta(key, seq)

    def _delta(self, key: str, seq: int) -> list[WalRecord]:
        self.state.get(key)
        if key not in self._recent:
            # Not exported by this incarnation: the migrator's incarnation check fails the
            # step anyway; refuse rather than answer an empty (wrong) delta.
            raise SeatError(f"centre {self.id}: {key} was not exported by this incarnation "
                            "(restarted since the copy?); copy it again")
        return [r for r in self._recent[key] if r.seq > seq]

    async def catch_up(self, records: list[WalRecord]) -> tuple[str, int]:
        lsn = 0
        for record in records:
            if self.state.get(record.key).apply(record):
                lsn = self._log(record)
        await self.log.durable(lsn, hurry=True)  # the last one runs in a freeze window
        keys = {r.key for r in records}
        seq = self.state.get(keys.pop()).seq if len(keys) == 1 else 0
        return self.incarnation, seq

    def check_installed(self, key: str, incarnation: str) -> None:
        """A take-over runs only on the incarnation that installed the copy."""
        if incarnation != self.incarnation:
            raise SeatError(f"centre {self.id} restarted since it installed {key}; redo it")

    def seq_of(self, key: str) -> tuple[str, int]:
        return self.incarnation, self.state.get(key).seq

    async def freeze_delta(self, key: str, seq: int, incarnation: str) -> list[WalRecord]:
        """Freeze one train-date and answer its records after ``seq`` (the final delta)
        once they are durable here: the first step of a take-over. Only this train-date's
        own records are waited for, not the other train-dates' batch being group-committed
        meanwhile (the freeze used to wait for that whole batch: an fsync in the window)."""
        if incarnation != self.incarnation:
            raise SeatError(f"centre {self.id} restarted since it exported {key}; redo it")
        self.state.freeze(key)
        self._frozen_since.setdefault(key, self._io.clock())
        self._thaw.setdefault(key, asyncio.Event())
        delta = self._delta(key, seq)
        if delta:
            await self.log.durable(max(r.lsn for r in delta), hurry=True)
        return delta

    def unfreeze(self, key: str) -> str:
        if key in self.state.inventories:
            self.state.unfreeze(key)
        self._frozen_since.pop(key, None)  # a migration undone here
        self._recent.pop(key, None)  # a migration undone here, or finished at the target
        self._wake(key)
        return self.incarnation

    async def drop(self, key: str, new_centre: str, version: int) -> tuple[str, float | None]:
        """The train-date now lives on ``new_centre`` (idempotent: a repeat returns once the
        drop is durable). Answers this incarnation and the seconds the train-date was
        frozen here for its move, from the freeze to the drop's release of the sales
        waiting here (None from a repeat, or if this incarnation did not freeze it)."""
        frozen_s = None
        if key in self.state.inventories:
            lsn = self._log(self.state.drop(key, new_centre, version))
            since = self._frozen_since.pop(key, None)
            if since is not None:
                frozen_s = self._io.clock() - since
        else:
            # Dropped already, maybe by a call still waiting for its fsync: wait for it too.
            lsn = self.log.last_lsn
        self._recent.pop(key, None)
        # Waiting sales answer "moved" and go to the new owner at once, before this fsync:
        # "moved" acknowledges nothing here, the flip is durable in the directory already,
        # and a restart before the drop is durable finds the train-date frozen here (the
        # stored migration names it: ``Migration.frozen_at``) until it is dropped again.
        self._wake(key)
        await self.log.durable(lsn)
        return self.incarnation, frozen_s

    async def discard(self, key: str, owner: str, version: int) -> str:
        """Throw away a migration copy being undone (``owner`` still owns it)."""
        record = self.state.discard(key, owner, version)
        await self.log.durable(self._log(record))
        self._recent.pop(key, None)
        self._wake(key)
        return self.incarnation

    # ---- helpers ----------------------------------------------------------------------

    def _wake(self, key: str) -> None:
        event = self._thaw.pop(key, None)
        if event is not None:
            event.set()

    def _count_sales(self, n: int) -> None:
        second = int(self._io.clock())
        if self._sales_window and self._sales_window[-1][0] == second:
            self._sales_window[-1] = (second, self._sales_window[-1][1] + n)
        else:
            self._sales_window.append((second, n))

    def _sales_per_minute(self) -> float:
        horizon = int(self._io.clock()) - 60
        while self._sales_window and self._sales_window[0][0] <= horizon:
            self._sales_window.popleft()
        return float(sum(n for _, n in self._sales_window))


def write_checkpoint(
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
