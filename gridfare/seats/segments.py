"""A centre log's segment chain on disk: sealed segments and the current one.

    <centre dir>/wal.log                                      the current segment
    <centre dir>/segments/wal-<first lsn>-<last lsn>.log      sealed segments

A centre's log is a chain of segments numbered by LSN: sealed ones (complete, never written
again) and the current one. A checkpoint seals the current segment (a rename) and snapshots
the centre as of the seal's LSN; a restart reads the snapshot and only the segments after
it. The audit reads them all, so sealed segments are kept (see docs/seats.md). Lines are
the centre log's (``wal.py``), written and read through ``durable.py``'s one codec.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

from gridfare.errors import SeatError, WalCorrupt
from gridfare.seats.durable import fsync_dir
from gridfare.seats.wal import WalRecord, WalWriter, open_wal, read_wal

__all__ = ["SegmentChain"]

_SEGMENT = re.compile(r"^wal-(\d{12})-(\d{12})\.log$")


class SegmentChain:
    """The log files of one centre, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.current = folder / "wal.log"
        self.segments_dir = folder / "segments"

    def sealed(self) -> list[tuple[int, int, Path]]:
        """The sealed segments as ``(first lsn, last lsn, path)``, in order."""
        if not self.segments_dir.exists():
            return []
        found = []
        for path in self.segments_dir.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                found.append((int(match[1]), int(match[2]), path))
        return sorted(found)

    def seal(self, first: int, last: int, durable: bool = True) -> BinaryIO:
        """Make the current log (holding lsn ``first`` .. ``last``, none being written) a
        sealed segment and put an empty current log in its place; returns that new file,
        open for appending. With ``durable=False`` the caller runs ``sync_dirs`` before it
        acknowledges any record of the new file (the centre does it in its fsync thread).

        The new file is made under a temporary name first, so a failure leaves the current
        log where it was, and a crash between the renames leaves no current log (a restart
        starts an empty one after the sealed segments)."""
        sealed = self.segments_dir / f"wal-{first:012d}-{last:012d}.log"
        current = self.current
        fresh = current.with_name(current.name + ".new")
        try:
            self.segments_dir.mkdir(parents=True, exist_ok=True)
            new_file = fresh.open("wb")
        except OSError as exc:
            raise SeatError(f"{fresh}: cannot start a new log segment: {exc}") from exc
        try:
            os.replace(current, sealed)
        except OSError as exc:
            new_file.close()
            fresh.unlink(missing_ok=True)
            raise SeatError(f"{sealed}: cannot seal the log segment: {exc}") from exc
        try:
            os.replace(fresh, current)
        except OSError as exc:
            os.replace(sealed, current)  # as it was: the caller goes on in the old file
            new_file.close()
            raise SeatError(f"{current}: cannot start a new log segment: {exc}") from exc
        if durable:
            self.sync_dirs()
        return new_file

    def sync_dirs(self) -> None:
        """fsync the log's directories: a seal (rename) and a new current log are durable
        only once their directory entries are."""
        for folder in (self.segments_dir, self.folder):
            try:
                fsync_dir(folder)
            except OSError as exc:
                raise SeatError(f"{folder}: cannot sync the log directory: {exc}") from exc

    def read_sealed(self, after_lsn: int = 0) -> tuple[list[WalRecord], int]:
        """The sealed segments' records after ``after_lsn`` (segments that end at or before
        it are not even read) and the last sealed lsn (0: none). The chain is checked: no
        gap between segments, each complete; with ``after_lsn`` 0 it must start at lsn 1."""
        records: list[WalRecord] = []
        expected = 1 if after_lsn == 0 else None
        last_sealed = 0
        for first, last, path in self.sealed():
            if expected is not None and first != expected:
                raise WalCorrupt(f"{path}: starts at lsn {first}, expected {expected}")
            expected, last_sealed = last + 1, last
            if last <= after_lsn:
                continue
            try:
                log = read_wal(path.read_bytes(), name=str(path))
            except OSError as exc:
                raise SeatError(f"{path}: cannot read the log segment: {exc}") from exc
            lsns = [r.lsn for r in log.records]
            if log.torn or lsns != list(range(first, last + 1)):
                raise WalCorrupt(f"{path}: a sealed segment must hold lsn {first}..{last}")
            records += [r for r in log.records if r.lsn > after_lsn]
        return records, last_sealed

    def open(self, after_lsn: int = 0, batch_size: int = 64
             ) -> tuple[WalWriter, list[WalRecord], int]:
        """For the centre itself: a writer appending to the current log (recovered: a torn
        tail cut off), the records after ``after_lsn`` (the sealed segments it needs, then
        the current log) and the first lsn of the current segment."""
        sealed, last_sealed = self.read_sealed(after_lsn)
        writer, log = open_wal(self.current, batch_size=batch_size, next_lsn=last_sealed + 1)
        first = log.records[0].lsn if log.records else writer.last_lsn + 1
        records = sealed + [r for r in log.records if r.lsn > after_lsn]
        if records and after_lsn and records[0].lsn != after_lsn + 1:
            raise WalCorrupt(f"{self.folder}: the log after lsn {after_lsn} starts at "
                             f"{records[0].lsn}: a segment is missing")
        return writer, records, first

    def read_all(self) -> list[WalRecord]:
        """The whole acknowledged log, read only: every sealed segment, then the current."""
        records, last_sealed = self.read_sealed()
        try:
            data = self.current.read_bytes() if self.current.exists() else b""
        except OSError as exc:
            raise SeatError(f"{self.current}: cannot read the log: {exc}") from exc
        current = list(read_wal(data, name=str(self.current)).records)
        if current and current[0].lsn != last_sealed + 1:
            raise WalCorrupt(f"{self.current}: starts at lsn {current[0].lsn}, expected "
                             f"{last_sealed + 1}")
        return records + current
