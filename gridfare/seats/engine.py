"""A seat centre's log engine: group commit, segment seals and when a checkpoint is due.

Pure asyncio with the I/O passed in (``LogIO``), so the ``SeatCentre`` actor is the engine
plus Ray, and unit tests run this very code on a real file with the fsync counted.

- **Group commit**: ``append`` numbers and buffers a record; ``durable(lsn)`` returns once
  the log is fsynced up to ``lsn``. The first waiter starts a flush, which waits
  ``window_s`` so that concurrent sales join it, writes the buffer (in the loop's thread)
  and fsyncs it through ``io.run`` (a thread of its own, so the loop keeps taking sales).
- **Seal**: ``seal()`` ends the current segment at the end of the next flush, the one
  moment when the file holds exactly the durable records and no fsync runs; sales logged
  meanwhile stay in the writer's buffer and go to the new file. A seal's directory
  entries are fsynced by the next flush before it acknowledges anything in the new file.
- **Checkpoint due**: after ``snapshot_every`` records, or ``snapshot_interval_s`` after
  the last checkpoint when records came since (``due``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import BinaryIO

from gridfare.errors import SeatError
from gridfare.seats.wal import Change, WalRecord, WalWriter

__all__ = ["CentreLog", "LogIO"]


@dataclass(frozen=True)
class LogIO:
    """What the engine asks of the outside world."""

    run: Callable[..., Awaitable]  # run(fn, *args) off the event loop (a thread)
    fsync: Callable[[int], None]  # fsync a file descriptor
    seal_segment: Callable[[int, int], BinaryIO]  # (first, last) -> the new current file
    sync_dirs: Callable[[], None]  # fsync the log's directories
    on_flush: Callable[[float, int], None] = lambda seconds, records: None  # a metric


class CentreLog:
    def __init__(self, writer: WalWriter, io: LogIO, *, segment_first: int, window_s: float,
                 snapshot_every: int = 0, snapshot_interval_s: float = 0.0,
                 since_checkpoint: int = 0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._wal = writer
        self._io = io
        self.segment_first = segment_first
        self.durable_lsn = writer.last_lsn  # what was read back is on disk
        self._window = window_s
        self._every = snapshot_every
        self._interval = snapshot_interval_s
        self.since_checkpoint = since_checkpoint
        self._clock = clock
        self.last_checkpoint = clock()
        self._dirs_dirty = False  # a sealed segment's directory entries await an fsync
        self._flusher: asyncio.Future | None = None
        self._gathering: asyncio.Future | None = None  # a flush's window, while it waits
        self._seal_waiter: asyncio.Future | None = None

    @property
    def last_lsn(self) -> int:
        """The last appended record's lsn, durable or not."""
        return self._wal.last_lsn

    def append(self, record: WalRecord) -> WalRecord:
        """Number and buffer ``record``; durable only after ``durable(its lsn)``."""
        logged = self._wal.append(record)
        self.since_checkpoint += 1
        return logged

    def append_changes(self, changes: list[Change]) -> int:
        """Number and buffer a batch's sells and refunds; returns the last lsn."""
        self.since_checkpoint += len(changes)
        return self._wal.append_changes(changes)

    def due(self) -> bool:
        """Whether an automatic checkpoint is due now."""
        if self._every and self.since_checkpoint >= self._every:
            return True
        return bool(self._interval and self.since_checkpoint
                    and self._clock() - self.last_checkpoint >= self._interval)

    def checkpointed(self) -> None:
        """A checkpoint was written (or failed: not retried at once, but at the next due)."""
        self.last_checkpoint = self._clock()

    async def durable(self, lsn: int, hurry: bool = False) -> None:
        """Return once the log is fsynced up to ``lsn`` (group commit). ``hurry``: a
        migration's freeze window waits on it, so the flush starts now instead of at the
        end of its gathering window (the sales already gathered go with it)."""
        while self.durable_lsn < lsn:
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.ensure_future(self._flush())
            if hurry and self._gathering is not None and not self._gathering.done():
                self._gathering.set_result(None)
            await asyncio.shield(self._flusher)

    async def seal(self) -> int:
        """End the current segment at the end of the next flush (or now, if nothing is
        being written); returns the last lsn of the sealed segment."""
        idle = self._flusher is None or self._flusher.done()
        if idle and not self._wal.pending and self.durable_lsn >= self._wal.last_lsn:
            return self._seal_at(self._wal.last_lsn)
        if self._seal_waiter is None:
            self._seal_waiter = asyncio.get_running_loop().create_future()
        waiter = self._seal_waiter
        await self.durable(self._wal.last_lsn)  # makes sure a flush runs
        return await waiter

    async def _flush(self) -> None:
        if self._window:  # let concurrent sales join this batch (cut short by a hurry)
            loop = asyncio.get_running_loop()
            self._gathering = gathering = loop.create_future()
            timer = loop.call_later(self._window, _settle, gathering)
            try:
                await gathering
            finally:
                timer.cancel()
                self._gathering = None
        target = self._wal.last_lsn
        batch = target - self.durable_lsn
        started = time.perf_counter()
        try:
            try:
                self._wal.flush(fsync=False)  # write(2) here, in the loop thread
                if self._dirs_dirty:  # a new segment: its directory entry before its records
                    await self._io.run(self._io.sync_dirs)
                    self._dirs_dirty = False
                await self._io.run(self._io.fsync, self._wal.fileno())
            except OSError as exc:
                raise SeatError(f"{self._wal.name}: cannot write the log: {exc}") from exc
            self.durable_lsn = max(self.durable_lsn, target)
            if self._seal_waiter is not None:
                # The file holds exactly the records up to ``target``, all durable, and no
                # fsync is running: the one moment a segment can end without pausing sales.
                waiter, self._seal_waiter = self._seal_waiter, None
                try:
                    waiter.set_result(self._seal_at(target))
                except SeatError as exc:  # the checkpoint fails; these sales are durable
                    waiter.set_exception(exc)
        except BaseException as exc:
            if self._seal_waiter is not None and not self._seal_waiter.done():
                self._seal_waiter.set_exception(exc)
                self._seal_waiter = None
            raise
        self._io.on_flush(time.perf_counter() - started, batch)

    def _seal_at(self, last: int) -> int:
        """Seal the current file (every record in it durable, none being written) as the
        segment ending at ``last``; the writer goes on, with its buffer, in a new file."""
        self.since_checkpoint = 0
        if last < self.segment_first:
            return last  # nothing new since the last seal
        new_file = self._io.seal_segment(self.segment_first, last)
        self._wal.switch_file(new_file).close()
        self.segment_first = last + 1
        self._dirs_dirty = True  # synced by the next flush, before it acknowledges anything
        return last


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
