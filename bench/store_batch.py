"""The accounts store's batch operation: the locked plan (accounts locked in id order, the
plan in Python, ``AccountsDB._apply_batch_once``) next to the set-based one (one statement
planned by the server, ``AccountsDB.apply_columns``), on the same store in the same run, for
the small batches of the HTTP processors (10 operations) and the large ones of fee control;
and the floor: the bare time for this PostgreSQL (primary + synchronous standby,
``remote_apply``) to take the same number of operation rows and balance updates by binary
COPY into a staging table, one UPDATE and one INSERT per transaction, no gridfare code.

Counted: wall time per pass, operations per second, and the CPU seconds each part spent
(this client process, the primary's processes, the standby's), from /proc via psutil.

    python -m bench.store_batch --accounts 200000 --ops 200000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench._cpu import server_cpu_s

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _servers(root: Path) -> dict[str, int]:
    """The postmaster pid of each replica, by the role it has now."""
    out = {}
    for pidfile in root.glob("replicas/*/pgdata/postmaster.pid"):
        pid = int(pidfile.read_text().split()[0])
        role = "standby" if (pidfile.parent / "standby.signal").exists() else "primary"
        out[role] = pid
    return out


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {"client": time.process_time(),
            **{role: server_cpu_s(pid) for role, pid in pids.items()}}


class Pass:
    """One measured pass: wall time and each part's CPU seconds."""

    def __init__(self, name: str, ops: int, pids: dict[str, int]) -> None:
        self.name, self.ops, self.pids = name, ops, pids

    def __enter__(self):
        self.cpu0, self.t0 = _cpu(self.pids), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        cpu = _cpu(self.pids)
        self.cpu = {k: cpu[k] - self.cpu0.get(k, 0.0) for k in cpu}
        return False

    def line(self) -> str:
        per = ", ".join(f"{k} {v:.1f} s ({v / self.ops * 1e6:.0f} µs/op)"
                        for k, v in self.cpu.items())
        return (f"{self.name}: {self.ops:,} ops in {self.wall:.1f} s "
                f"({self.ops / self.wall:,.0f} ops/s); CPU {per}")


def _deductions(ids: np.ndarray, tag: str):
    keys = [f"{tag}:{a}" for a in ids.tolist()]
    return ids, keys, -np.full(len(ids), 7, np.int64)


def _ops(ids, keys, fen):
    from gridfare.store.operations import Operation, OperationKind

    return [Operation(a, OperationKind.DEDUCTION, -f, k)
            for a, k, f in zip(ids.tolist(), keys, fen.tolist(), strict=True)]


def _floor_chunk(conn, ids: np.ndarray, keys: list[str], fen: np.ndarray, epoch: int) -> None:
    """No gridfare code: COPY the batch in binary, one UPDATE, one INSERT, commit."""
    with conn.transaction():
        # the staging table has no statistics: join it to accounts by the key's index
        conn.execute("SET LOCAL enable_hashjoin = off")
        conn.execute("SET LOCAL enable_mergejoin = off")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS floor_stage (key text, account_id "
                     "int8, signed_fen int8) ON COMMIT DELETE ROWS")
        with conn.cursor().copy("COPY floor_stage FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "int8", "int8"])
            for row in zip(keys, ids.tolist(), fen.tolist(), strict=True):
                copy.write_row(row)
        conn.execute("UPDATE accounts a SET balance_fen = a.balance_fen + s.signed_fen, "
                     "version = a.version + 1 FROM floor_stage s "
                     "WHERE a.account_id = s.account_id")
        conn.execute("INSERT INTO account_operations (key, account_id, kind, amount_fen, "
                     "outcome, balance_fen, version, epoch) SELECT s.key, s.account_id, "
                     "'deduction', -s.signed_fen, 'applied', 0, 0, %s FROM floor_stage s",
                     (epoch,))


def run(accounts: int, ops: int, batch: int, threads: int, small: int,
        explain: bool = False) -> list[str]:
    import ray

    from actors.accounts_client import AccountsClient, remove_store
    from actors.attach import attach
    from backends.accounts_sql import AccountsDB
    from backends.postgres import connect

    attach("local", local_options={"num_cpus": 2, "include_dashboard": False})
    root = Path(tempfile.mkdtemp(prefix="gridfare-store-batch-bench-"))
    lines = []
    try:
        client = AccountsClient.start(str(root / "store"))
        pids = _servers(root / "store")
        ids = np.arange(1, accounts + 1, dtype=np.int64)
        started = time.perf_counter()
        for lo in range(0, accounts, 20_000):
            part = ids[lo:lo + 20_000]
            client.open_batch(part.tolist(), -10**12)
        lines.append(f"set-up: {accounts:,} accounts opened in "
                     f"{time.perf_counter() - started:.1f} s")
        epoch, dsn = client._refresh()
        local = threading.local()

        def db() -> AccountsDB:
            if getattr(local, "db", None) is None:
                local.db = AccountsDB(connect(dsn, autocommit=True), epoch)
            return local.db

        rng = np.random.default_rng(5)

        # small batches, interleaved, so both paths see the same machine
        times: dict[str, list[float]] = {"locked": [], "set": []}
        for n in range(small):
            for name in ("locked", "set"):
                part = np.sort(rng.choice(ids, 10, replace=False))
                a, k, f = _deductions(part, f"s{name}{n}")
                t0 = time.perf_counter()
                if name == "locked":
                    db()._apply_batch_once(_ops(a, k, f))
                else:
                    db().apply_columns(a, k, f)
                times[name].append(time.perf_counter() - t0)
        for name, values in times.items():
            values.sort()
            lines.append(f"10-operation batches, {name} plan: p50 "
                         f"{statistics.median(values) * 1000:.2f} ms, p90 "
                         f"{values[int(len(values) * 0.9)] * 1000:.2f} ms over {len(values)}")
        # the same 10-operation batches through apply_batch (which picks the set plan)
        values = []
        for n in range(small):
            part = np.sort(rng.choice(ids, 10, replace=False))
            a, k, f = _deductions(part, f"sa{n}")
            t0 = time.perf_counter()
            client.apply_batch(_ops(a, k, f))
            values.append(time.perf_counter() - t0)
        lines.append(f"10-operation batches, client.apply_batch: p50 "
                     f"{statistics.median(values) * 1000:.2f} ms")

        def chunks(tag: str):
            order = rng.permutation(accounts)[:ops]
            for lo in range(0, len(order), batch):
                yield _deductions(np.sort(ids[order[lo:lo + batch]]), f"{tag}{lo}")

        def measure(name: str, work, nthreads: int) -> None:
            parts = list(chunks(f"{name}/{nthreads}/"))
            with Pass(f"{name} ({batch:,}/transaction, {nthreads} connection(s))", ops,
                      pids) as p:
                if nthreads == 1:
                    for part in parts:
                        work(*part)
                else:
                    with ThreadPoolExecutor(nthreads) as pool:
                        list(pool.map(lambda part: work(*part), parts))
            lines.append(p.line())
            print(lines[-1], flush=True)

        if explain:
            a, k, f = next(chunks("explain"))
            conn = db().conn
            from backends.accounts_sql import SET_BATCH, _Int8Array, _TextArray
            from gridfare.store.operations import MAX_FEN

            with conn.transaction(force_rollback=True):
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, WAL) " + SET_BATCH,
                                    {"ids": _Int8Array(a), "keys": _TextArray(k),
                                     "fen": _Int8Array(f), "max": MAX_FEN, "epoch": epoch}
                                    ).fetchall()
            lines.extend(row[0] for row in plan)
        measure("locked plan", lambda a, k, f: db()._apply_batch_once(_ops(a, k, f)), 1)
        measure("set plan", lambda a, k, f: db().apply_columns(a, k, f), 1)
        measure("set plan", lambda a, k, f: db().apply_columns(a, k, f), threads)
        floor_conn = threading.local()

        def floor(a, k, f):
            if getattr(floor_conn, "conn", None) is None:
                floor_conn.conn = connect(dsn, autocommit=True)
            _floor_chunk(floor_conn.conn, a, k, f, epoch)

        measure("floor: bare COPY + UPDATE + INSERT", floor, 1)
        measure("floor: bare COPY + UPDATE + INSERT", floor, threads)
        client.close()
    finally:
        remove_store(str(root / "store"))
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1_500_000)
    parser.add_argument("--ops", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE one batch")
    args = parser.parse_args()
    for line in run(args.accounts, args.ops, args.batch, args.threads, args.small,
                    args.explain):
        print(line)
