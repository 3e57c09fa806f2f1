"""The catalog of a remote data centre: one DuckDB file kept as an object in the data centre.

DuckDB cannot reach object stores here (no httpfs), so the canonical catalog is the object
``<root>/catalog.duckdb.zst``, and DuckDB works on local files:

- **Readers** download the object (one GET: the DuckDB file, zstd-compressed) and open
  that snapshot read-only. An object is replaced whole, so a reader sees one committed
  catalog or the next, never half of one.
- **The writer** holds the lease ``<root>/catalog.lease`` (epoch, holder, expiry), works on
  a local copy downloaded when it took the lease, and publishes each committed transaction
  as a temporary object moved over ``catalog.duckdb.zst``. Before publishing it reads the
  lease again: if another writer has taken it (or too little of it is left), the write is
  refused (``CatalogLeaseLost``), its local copy is dropped and nothing is published. The
  next write takes the lease again and starts from the published catalog, so a refused
  write repeated loses nothing and doubles nothing (every catalog write is idempotent).

Object stores give no compare-and-swap through ``pyarrow.fs``, so the lease is taken the
way Fischer's mutual exclusion takes a lock: read it, write a claim with the next epoch if
it is free or expired, wait ``SETTLE_S``, and hold it only if the claim is still there. That
is safe while a claim's read-to-write takes less than ``SETTLE_S / 2`` (a claim slower than
that is not trusted) and while the writers' clocks agree to well within ``PUBLISH_MARGIN_S``.
A writer that lost its lease anyway is caught at its next publish by the lease check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from datasets.datacentre import CATALOG_NAME, REMOTE_CATALOG_NAME
from datasets.duckdb_files import attached
from datasets.uri import redact
from gridfare.errors import CatalogBusy, CatalogLeaseLost, DataCentreError

__all__ = ["LEASE_NAME", "LEASE_TTL_S", "Lease", "RemoteCatalogFile"]

LEASE_NAME = "catalog.lease"
LEASE_TTL_S = 15.0
SETTLE_S = 0.25
RENEW_BELOW_S = LEASE_TTL_S / 2  # a write renews the lease when less than this is left
PUBLISH_MARGIN_S = LEASE_TTL_S / 4  # a publish needs at least this much of the lease left


@dataclass(frozen=True)
class Lease:
    """Who may write the catalog (``holder``), in which ``epoch``, until ``expires_at``
    (Unix seconds; 0 once released). Each taking of the lease raises the epoch."""

    epoch: int
    holder: str
    expires_at: float

    def blocks(self, holder: str, now: float) -> bool:
        """Whether this lease keeps ``holder`` from taking it at ``now``."""
        return self.holder != holder and self.expires_at > now


class RemoteCatalogFile:
    """Connections to a remote data centre's catalog (see the module's docstring).

    ``writer=False`` (every reader) never writes to the data centre. The clock and sleep
    are passed in so that the lease logic is tested without waiting.
    """

    def __init__(self, filesystem: pafs.FileSystem, root: str, shown: str, *, writer: bool,
                 lock_timeout_s: float = 30.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._fs = filesystem
        self._object = f"{root}/{REMOTE_CATALOG_NAME}"
        self._lease_path = f"{root}/{LEASE_NAME}"
        self._root = root
        self.shown = f"{shown}/{REMOTE_CATALOG_NAME}"
        self.writer = writer
        self._timeout_s = lock_timeout_s
        self._clock = clock
        self._sleep = sleep
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease: Lease | None = None  # ours, as we last wrote it
        self._work: Path | None = None  # the local copy, current while we hold the lease
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, write: bool) -> Iterator[tuple[duckdb.DuckDBPyConnection, bool]]:
        """A connection and whether it may write; a writing one is published on exit."""
        with self._lock:
            if write:
                if not self.writer:
                    raise DataCentreError(f"catalog {self.shown}: opened read-only")
                with self._writing() as con:
                    yield con, True
            elif (self._lease is not None and self._work is not None
                  and self._lease.expires_at > self._clock()):
                # Held: the local copy is the published catalog plus nothing unpublished.
                with self._open(self._work) as con:
                    yield con, True
            else:
                with self._snapshot() as (con, empty):
                    yield con, empty

    def release(self) -> None:
        """Give the lease up (if held) so another writer need not wait for it to expire."""
        with self._lock:
            lease, self._lease = self._lease, None
            self._drop_copy()
            if lease is not None and self._read_lease() == lease:
                self._write_lease(Lease(lease.epoch, lease.holder, 0.0))

    @property
    def lease(self) -> Lease | None:
        """The lease this writer holds (None when it holds none)."""
        return self._lease

    @contextlib.contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self._hold_lease()
        assert self._work is not None
        try:
            with self._open(self._work) as con:
                yield con
                # Into the file itself: the object published is the file, never its WAL.
                con.execute("CHECKPOINT")
        except BaseException:
            self._drop_copy()  # it may hold part of a transaction that was not published
            raise
        self._publish()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, bool]]:
        """The published catalog, read-only (and whether it is an empty stand-in)."""
        data = self._get_catalog()
        if data is None:  # never written: an empty catalog, in memory, touches nothing
            con = duckdb.connect(":memory:")
            try:
                yield con, True
            finally:
                con.close()
            return
        with tempfile.TemporaryDirectory(prefix="gridfare-catalog-") as directory:
            path = Path(directory) / CATALOG_NAME
            path.write_bytes(data)
            with self._open(path, read_only=True) as con:
                yield con, False

    @contextlib.contextmanager
    def _open(self, path: Path, *, read_only: bool = False
              ) -> Iterator[duckdb.DuckDBPyConnection]:
        # a private working copy: no other process holds its lock, so no wait; attached,
        # not connected (a connection costs ~13 ms to make: datasets/duckdb_files.py)
        with attached(path, read_only=read_only, lock_timeout_s=0,
                      what=f"catalog {self.shown}") as con:
            try:
                yield con
            except duckdb.Error as exc:
                raise DataCentreError(f"catalog {self.shown}: {exc}") from exc

    # -- the lease ---------------------------------------------------------------------

    def _hold_lease(self) -> None:
        """Hold the lease with enough of it left for a write: renew or take it."""
        now = self._clock()
        lease = self._lease
        if lease is not None and self._work is not None:
            if lease.expires_at - now > RENEW_BELOW_S:
                return
            if lease.expires_at - now > PUBLISH_MARGIN_S and self._read_lease() == lease:
                renewed = Lease(lease.epoch, self.holder, now + LEASE_TTL_S)
                self._write_lease(renewed)
                self._lease = renewed
                return
        self._take_lease()

    def _take_lease(self) -> None:
        self._lease = None
        self._drop_copy()
        deadline = time.monotonic() + self._timeout_s
        while True:
            started = time.monotonic()
            current = self._read_lease()
            now = self._clock()
            if current is not None and current.blocks(self.holder, now):
                if time.monotonic() >= deadline:
                    raise CatalogBusy(
                        f"catalog {self.shown}: another writer ({current.holder}, epoch "
                        f"{current.epoch}) holds it for {current.expires_at - now:.0f} s "
                        f"more; waited {self._timeout_s:.0f} s (one writer at a time: "
                        "a billing run on a remote data centre holds it while it runs)")
                self._sleep(min(0.25, max(0.01, current.expires_at - now)))
                continue
            claim = Lease((current.epoch if current else 0) + 1, self.holder,
                          now + LEASE_TTL_S)
            self._write_lease(claim)
            if time.monotonic() - started > SETTLE_S / 2:
                continue  # too slow to be sure no other claim went in meanwhile: again
            self._sleep(SETTLE_S)
            if self._read_lease() == claim:
                self._lease = claim
                self._download()
                return

    def _publish(self) -> None:
        lease, current = self._lease, self._read_lease()
        assert lease is not None and self._work is not None
        if current != lease or lease.expires_at - self._clock() < PUBLISH_MARGIN_S:
            self._lease = None
            self._drop_copy()
            holder = "it expired" if current == lease or current is None else (
                f"now held by {current.holder}, epoch {current.epoch}")
            raise CatalogLeaseLost(
                f"catalog {self.shown}: this writer's lease (epoch {lease.epoch}) was lost "
                f"({holder}); the write was refused, nothing was published")
        data = _seal(self._work.read_bytes())
        temp = f"{self._root}/.{REMOTE_CATALOG_NAME}.tmp-{uuid.uuid4().hex}"
        try:
            with self._fs.open_output_stream(temp, compression=None) as sink:
                sink.write(data)
            self._fs.move(temp, self._object)
        except (OSError, pa.ArrowException) as exc:
            with contextlib.suppress(OSError, pa.ArrowException):
                self._fs.delete_file(temp)
            self._drop_copy()
            raise self._error("cannot publish", exc) from exc

    def _read_lease(self) -> Lease | None:
        data = self._get(self._lease_path)
        if data is None:
            return None
        try:
            fields = json.loads(data)
            return Lease(int(fields["epoch"]), str(fields["holder"]),
                         float(fields["expires_at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataCentreError(f"catalog {self.shown}: unreadable lease "
                                  f"{LEASE_NAME}: {exc}") from exc

    def _write_lease(self, lease: Lease) -> None:
        try:
            # One PUT: an object is replaced whole, so a lease is never half-written.
            with self._fs.open_output_stream(self._lease_path) as sink:
                sink.write(json.dumps(asdict(lease)).encode())
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot write {LEASE_NAME}", exc) from exc

    # -- the local copy ----------------------------------------------------------------

    def _download(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="gridfare-catalog-"))
        weakref.finalize(self, shutil.rmtree, directory, True)
        work = directory / CATALOG_NAME
        data = self._get_catalog()
        if data is not None:
            work.write_bytes(data)
        self._work = work

    def _drop_copy(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work.parent, ignore_errors=True)
            self._work = None

    def _get_catalog(self) -> bytes | None:
        """The published catalog file, whole. An object store's reader reads a large object
        in several ranged requests, so a read that overlaps a publish can mix two versions
        (seen on S3: a torn zstd frame); the seal's hash finds that and the read is made
        again."""
        for _attempt in range(_READ_ATTEMPTS):
            sealed = self._get(self._object)
            if sealed is None:
                return None
            data = _unseal(sealed)
            if data is not None:
                return data
            self._sleep(0.05)
        raise DataCentreError(f"catalog {self.shown}: every read of it was torn or damaged "
                              f"({_READ_ATTEMPTS} tries)")

    def _get(self, path: str) -> bytes | None:
        try:
            # compression=None: the name's .zst would make pyarrow decompress it itself.
            with self._fs.open_input_stream(path, compression=None) as source:
                return source.read()
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot read {path.rsplit('/', 1)[-1]}", exc) from exc

    def _error(self, what: str, exc: BaseException) -> DataCentreError:
        return DataCentreError(redact(f"catalog {self.shown}: {what}: {exc}"))



_MAGIC = b"GFCAT\x00\x00\x01"
_READ_ATTEMPTS = 20


def _seal(data: bytes) -> bytes:
    """The catalog file as its object: magic, raw length, SHA-256 of the compressed bytes,
    the zstd-compressed file."""
    packed = pa.compress(data, codec="zstd", asbytes=True)
    return (_MAGIC + len(data).to_bytes(8, "big") + hashlib.sha256(packed).digest()
            + packed)


def _unseal(sealed: bytes) -> bytes | None:
    """The catalog file, or None when the object read is not one whole sealed catalog."""
    head = len(_MAGIC) + 8 + 32
    if len(sealed) < head or not sealed.startswith(_MAGIC):
        return None
    size = int.from_bytes(sealed[len(_MAGIC):len(_MAGIC) + 8], "big")
    packed = sealed[head:]
    if hashlib.sha256(packed).digest() != sealed[len(_MAGIC) + 8:head]:
        return None
    return pa.decompress(packed, decompressed_size=size, codec="zstd", asbytes=True)
