"""datasets/duckdb_files.py: a file attached for one transaction, then let go."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from datasets.duckdb_files import attached
from gridfare.errors import DataCentreError


def _other_process_reads(path) -> str:
    """What a second process gets opening the file read-only (its count, or the error)."""
    code = ("import duckdb, sys\n"
            "try:\n"
            f"    print(duckdb.connect({str(path)!r}, read_only=True)"
            ".execute('SELECT count(*) FROM t').fetchone()[0])\n"
            "except duckdb.Error as exc:\n"
            "    print('error', exc)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_file_is_the_default_database_and_is_let_go_after(tmp_path):
    path = tmp_path / "c.duckdb"
    with attached(path, lock_timeout_s=0, what="test") as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (1), (2)")
        assert _other_process_reads(path).startswith("error")  # held while attached
    # Detached: written to the file (no WAL left) and its lock released.
    assert not (tmp_path / "c.duckdb.wal").exists()
    assert _other_process_reads(path) == "2"
    with attached(path, read_only=True, lock_timeout_s=0, what="test") as con:
        assert con.execute("SELECT sum(x) FROM t").fetchone() == (3,)


def test_an_unfinished_transaction_is_rolled_back(tmp_path):
    path = tmp_path / "c.duckdb"
    with attached(path, lock_timeout_s=0, what="test") as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError), attached(path, lock_timeout_s=0, what="test") as con:
        con.begin()
        con.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("the caller fails mid-transaction")
    with attached(path, lock_timeout_s=0, what="test") as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_file_held_by_another_process_is_waited_for_then_refused(tmp_path):
    path = tmp_path / "c.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys, time\ncon = duckdb.connect({str(path)!r})\n"
         "print('held', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataCentreError, match=r"^test: .*lock"), \
                attached(path, lock_timeout_s=0.2, what="test"):
            pass
    finally:
        holder.communicate("")
    with attached(path, lock_timeout_s=0, what="test") as con:  # free again
        assert con.execute("SELECT 42").fetchone() == (42,)


def test_not_a_duckdb_file_is_a_datacentre_error(tmp_path):
    path = tmp_path / "c.duckdb"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(DataCentreError, match=r"^test: ") as caught, \
            attached(path, lock_timeout_s=0, what="test"):
        pass
    assert isinstance(caught.value.__cause__, duckdb.Error)  # mapped at the edge


def _child_writes(path: str) -> None:
    with attached(path, lock_timeout_s=0, what="child") as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (7)")


def test_a_forked_child_attaches_with_an_instance_of_its_own(tmp_path):
    import multiprocessing

    with attached(tmp_path / "parent.duckdb", lock_timeout_s=0, what="parent") as con:
        con.execute("CREATE TABLE t (x INTEGER)")  # the parent's instance exists
    child = multiprocessing.get_context("fork").Process(
        target=_child_writes, args=(str(tmp_path / "child.duckdb"),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    with attached(tmp_path / "child.duckdb", read_only=True, lock_timeout_s=0,
                  what="parent") as con:
        assert con.execute("SELECT x FROM t").fetchone() == (7,)
