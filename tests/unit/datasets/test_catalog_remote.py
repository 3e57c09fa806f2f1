"""The remote catalog's lease and publication, on a local filesystem standing in for the
bucket (the same code runs on S3 in tests/faults/test_remote_datacentre.py). The clock is
passed in, so that leases expire without waiting."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from datasets.catalog import Catalog
from datasets.catalog_remote import LEASE_NAME, LEASE_TTL_S, RemoteCatalogFile
from gridfare.errors import CatalogBusy, CatalogLeaseLost, DataCentreError

T0 = datetime(2026, 11, 1, 8, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        time.sleep(0.001)  # time moves only when a test moves it


def _catalog(root: Path, clock: Clock, *, writer: bool = True, timeout: float = 0.3
             ) -> Catalog:
    return Catalog(RemoteCatalogFile(pafs.LocalFileSystem(), str(root), str(root),
                                     writer=writer, lock_timeout_s=timeout, clock=clock,
                                     sleep=clock.sleep))


def _lease(root: Path) -> dict:
    return json.loads((root / LEASE_NAME).read_text())


def test_readers_create_nothing_and_see_no_runs(tmp_path):
    reader = _catalog(tmp_path, Clock(), writer=False)
    assert reader.runs() == []
    assert reader.exceptions("2026-10").num_rows == 0
    with pytest.raises(DataCentreError, match="not in the catalog"):
        reader.run("R1")
    with pytest.raises(DataCentreError, match="read-only"):
        reader.start_run("R1", "2026-10", ["S1"], T0)
    assert list(tmp_path.iterdir()) == []


def test_one_writer_at_a_time_and_each_taking_raises_the_epoch(tmp_path):
    clock = Clock()
    a, b = _catalog(tmp_path, clock), _catalog(tmp_path, clock)
    a.start_run("R1", "2026-10", ["S1"], T0)
    assert _lease(tmp_path)["epoch"] == 1
    with pytest.raises(CatalogBusy, match=r"another writer .* epoch 1"):
        b.start_run("R2", "2026-10", ["S1"], T0)
    a.release()
    b.start_run("R2", "2026-10", ["S1"], T0)
    assert _lease(tmp_path)["epoch"] == 2
    reader = _catalog(tmp_path, clock, writer=False)
    assert [r.run_id for r in reader.runs()] == ["R1", "R2"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_write_renews_the_lease_it_holds(tmp_path):
    clock = Clock()
    a = _catalog(tmp_path, clock)
    a.start_run("R1", "2026-10", ["S1", "S2"], T0)
    first = _lease(tmp_path)
    clock.now += LEASE_TTL_S * 0.6
    a.record_sections("R1", [{"section_id": "S1", "status": "done", "billed": 3}])
    renewed = _lease(tmp_path)
    assert renewed["epoch"] == first["epoch"]
    assert renewed["expires_at"] > first["expires_at"]


def test_a_writer_whose_lease_was_taken_is_refused_and_loses_nothing(tmp_path):
    clock = Clock()
    a, b = _catalog(tmp_path, clock), _catalog(tmp_path, clock)
    a.start_run("R1", "2026-10", ["S1", "S2"], T0)
    # A stalls past its lease inside a transaction; B takes the catalog meanwhile.
    with (pytest.raises(CatalogLeaseLost, match=r"epoch 1.*held by .*epoch 2.*refused"),
          a._file.connect(True) as (con, _)):
        con.execute("UPDATE section_runs SET status = 'done', billed = 7 "
                    "WHERE section_id = 'S1'")
        clock.now += LEASE_TTL_S + 1
        b.start_run("R2", "2026-10", ["S1"], T0)
    reader = _catalog(tmp_path, clock, writer=False)
    assert [s.status for s in reader.sections("R1")] == ["pending", "pending"]
    # Written again once B is done: recorded once, on top of B's run, nothing doubled.
    b.release()
    a.record_sections("R1", [{"section_id": "S1", "status": "done", "billed": 7}])
    assert [(s.status, s.billed) for s in reader.sections("R1")] == [("done", 7),
                                                                    ("pending", None)]
    assert [r.run_id for r in reader.runs()] == ["R1", "R2"]
    assert _lease(tmp_path)["epoch"] == 3


def test_a_failed_transaction_publishes_nothing(tmp_path):
    clock = Clock()
    a = _catalog(tmp_path, clock)
    a.start_run("R1", "2026-10", ["S1"], T0)
    published = (tmp_path / "catalog.duckdb.zst").read_bytes()
    with pytest.raises(DataCentreError, match="not part of the run"):
        a.record_sections("R1", [{"section_id": "S9", "status": "done"}])
    assert (tmp_path / "catalog.duckdb.zst").read_bytes() == published
    a.record_sections("R1", [{"section_id": "S1", "status": "done"}])
    assert _catalog(tmp_path, clock, writer=False).run("R1").sections_done == 1


def test_a_torn_read_is_found_and_never_opened(tmp_path):
    """A read overlapping a publish can mix two versions (ranged reads of one object): the
    seal's hash refuses such bytes, and a catalog that stays damaged is one clear error."""
    from datasets.catalog_remote import _seal, _unseal

    old, new = _seal(b"a" * 100_000), _seal(b"b" * 100_000 + b"c" * 5)
    assert _unseal(old) == b"a" * 100_000
    assert _unseal(old[: len(old) // 2] + new[len(old) // 2:]) is None
    assert _unseal(b"not a catalog") is None
    clock = Clock()
    a = _catalog(tmp_path, clock)
    a.start_run("R1", "2026-10", ["S1"], T0)
    (tmp_path / "catalog.duckdb.zst").write_bytes(new[:40] + b"x" + new[41:])
    with pytest.raises(DataCentreError, match="torn or damaged"):
        _catalog(tmp_path, clock, writer=False).runs()
