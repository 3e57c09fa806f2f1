"""Prepaid fee control: one day of readings for N accounts in batch mode, end to end, next to
one DuckDB query computing the same deductions and decisions from the same files; the
continuous mode's lag at a steady feed rate; the cache hit rate; commands per class.

Everything is the real path: a private local Ray cluster (2 CPUs), the accounts store
(PostgreSQL primary + synchronous standby), an embedded NATS JetStream, the simulated
terminals. Opening the accounts in the store and the opening day (whose readings open each
account's settlement) are set-up, not measured. The measured day is timed from reading its
feed to every command taken by a terminal. The DuckDB query reads that day's feed, the state
before it, the customer files and a Parquet snapshot of the balances before the run (taken
from the store outside the timing), and must agree with the run on every account.

    python -m bench.fee_control --accounts 20000     # the issue's size is the default
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# One machine: loopback only, and no token auth (a local ray.init would write ~/.ray/auth_token,
# which silently turns token auth on for every later `ray start --head` on the host).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ACCOUNTS = 1_500_000
START = dt.date(2026, 11, 1)
ROOT = Path(__file__).resolve().parent.parent / "bench-data"
# The generated inputs (the city's accounts, three days of feed), made once per size outside
# the repository: generating 1.5 M accounts' readings costs minutes, and is not measured.
CACHE = Path(os.environ.get("GRIDFARE_BENCH_CACHE", "/tmp/gridfare-bench-cache"))
DAYS = [START + dt.timedelta(days=i) for i in range(3)]  # opening, measured, continuous
TIMINGS: list[dict[str, float]] = []  # the continuous mode's seconds per notice, by phase


def _inputs(accounts: int) -> Path:
    """``accounts/`` and ``collected/`` (the first two days) of a city of ``accounts``, and
    the third day's feed batches in ``continuous/``; generated once (the marker last)."""
    from datasets.collector import Collector
    from datasets.datacentre import DataCentre
    from datasets.feed import CollectionFeed
    from datasets.generator import generate_city

    root = CACHE / f"fee-{accounts}-seed11"
    if (root / ".complete").exists():
        return root
    started = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    city = DataCentre(str(root / "city"), create=True)
    generate_city(city, accounts=accounts, sections=max(1, accounts // 2500),
                  period="2026-10", seed=11)
    collector = Collector(city.dataset("accounts").to_table(), 1, START)
    feed = CollectionFeed(city)
    for day in DAYS[:2]:
        for batch in collector.collect(day):
            feed.append(day, int(batch["batch"][0].as_py()), batch)
    (root / "continuous").mkdir()
    for batch in collector.collect(DAYS[2]):
        pq.write_table(batch, root / "continuous" /
                       f"batch-{int(batch['batch'][0].as_py()):06d}.parquet")
    (root / ".complete").write_text("ok\n")
    print(f"generated the inputs of {accounts:,} accounts in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return root


def _open_store(client, ids: np.ndarray, balances: np.ndarray, floor_fen: int) -> float:
    """Open the accounts and give each its opening balance, in batches (set-up)."""
    from gridfare.store.operations import Operation

    started = time.perf_counter()
    step = 20_000
    for lo in range(0, len(ids), step):
        part, fen = ids[lo:lo + step].tolist(), balances[lo:lo + step].tolist()
        client.open_batch(part, floor_fen)
        client.apply_batch([Operation.make(a, "payment" if f > 0 else "deduction", abs(f),
                                           f"open-{a}") for a, f in zip(part, fen, strict=True)
                            if f != 0])
    return time.perf_counter() - started


def run(accounts: int = ACCOUNTS, shards: int = 4, feed_rate: float = 1.0,
        continuous: bool = True, feed_batch: int | None = None,
        feed_batches: int | None = None) -> dict:
    from actors.accounts_client import AccountsClient, remove_store
    from actors.attach import attach
    from actors.fee_accounts import AccountsSpec
    from bench._duckdb_fees import fees_sql
    from datasets.collector import opening_balances
    from datasets.datacentre import DataCentre
    from datasets.feed import CollectionFeed, FeeControlStore
    from gridfare.feecontrol.config import (
        AuditRules,
        StrategyRules,
        SystemParams,
        default_thresholds,
    )
    from gridfare.tariffs import load_tariff_book
    from rayjobs import fee_control

    inputs = _inputs(accounts)
    cluster = attach("local", local_options={"num_cpus": 2, "include_dashboard": False})
    ROOT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fee-bench-", dir=ROOT))
    store_root = tempfile.mkdtemp(prefix="gridfare-fee-bench-store-")
    for name in ("accounts", "collected"):
        shutil.copytree(inputs / "city" / name, work / name)
    centre = DataCentre(str(work))
    table = centre.dataset("accounts").to_table()
    active = table.filter(pc.field("active"))
    ids = active["account_id"].to_numpy()
    opening = opening_balances(ids, active["customer_kind"].to_numpy(zero_copy_only=False), 1)
    result: dict = {"accounts": len(ids), "cluster": cluster.describe(), "shards": shards,
                    "feed_rate": feed_rate, "feed_batch": feed_batch}
    setup = client = None
    try:
        client = AccountsClient.start(store_root)
        result["open_s"] = _open_store(client, ids, opening, floor_fen=-10**12)
        setup = fee_control.setup(str(work), AccountsSpec("store", store_root))
        feed = CollectionFeed(centre)
        days = DAYS[:2]
        fee_control.run_batch(setup, days[0], shards=shards)  # opens the settlements
        before = {}
        for lo in range(0, len(ids), 50_000):
            before.update(client.balances(ids[lo:lo + 50_000].tolist()))
        balances = pa.table({"account_id": ids, "balance_fen": [before[a] for a in ids.tolist()]})
        pq.write_table(balances, work / "balances.parquet")
        measured = fee_control.run_batch(setup, days[1], shards=shards)
        result["run"] = measured
        result["e2e_s"] = sum(measured.seconds.values())
        store = FeeControlStore(centre)
        decisions = store.read("decisions", days[1])
        commands = store.read("commands", days[1])
        # The baseline, from the same files.
        sources = {
            "feed": f"read_parquet('{work}/collected/date={days[1]}/*.parquet')",
            "state": f"read_parquet('{work}/feecontrol/state/date={days[0]}/*.parquet')",
            "customers": f"(SELECT account_id, customer_kind, tariff_code FROM "
                         f"read_parquet('{work}/accounts/*/*.parquet') WHERE active)",
            "balances": f"read_parquet('{work}/balances.parquet')",
        }
        system = SystemParams()
        sql = fees_sql(load_tariff_book(), days[1], system.decide_at(days[1]), sources,
                       default_thresholds(), AuditRules(), StrategyRules())
        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.sql(sql).to_arrow_table()  # warm-up
        started = time.perf_counter()
        baseline = con.sql(sql).to_arrow_table()
        result["duckdb_s"] = time.perf_counter() - started
        ours = decisions.select(["account_id", "deduction_fen", "balance_fen", "level", "state",
                                 "action"]).sort_by("account_id")
        result["mismatches"] = sum(
            int(a != b) for name in ours.column_names
            for a, b in zip(ours[name].to_pylist(), baseline[name].to_pylist(), strict=True)
        ) if ours.num_rows == baseline.num_rows else -1
        result["per_class"] = commands.group_by(["customer_kind", "action"]).aggregate(
            [("account_id", "count")]).sort_by([("customer_kind", "ascending"),
                                                ("action", "ascending")]).to_pylist()
        result["lags"], result["continuous_records"] = (
            _continuous_lag(setup, inputs / "continuous", feed, DAYS[2], shards, feed_rate,
                            feed_batch, feed_batches)
            if continuous else ([], 0))
        if continuous:
            result.update(_state_files(store, DAYS[2]))
    finally:
        if setup is not None:
            setup.close()  # the embedded NATS server
        if client is not None:
            client.close()
        remove_store(store_root)
        shutil.rmtree(store_root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return result


def _feed_batches(batches: Path, size: int | None) -> list[pa.Table]:
    """The continuous day's feed as generated (in batch order), or cut into batches of
    ``size`` records in the same order, renumbered from 1."""
    tables = [pq.read_table(path) for path in sorted(batches.glob("batch-*.parquet"))]
    if size is None:
        return tables
    whole = pa.concat_tables(tables)
    out = []
    for number, lo in enumerate(range(0, whole.num_rows, size), start=1):
        part = whole.slice(lo, size)
        column = part.schema.get_field_index("batch")
        out.append(part.set_column(column, part.schema.field(column),
                                   pa.array(np.full(part.num_rows, number, np.int64))))
    return out


def _continuous_lag(setup, batches: Path, feed, day: dt.date, shards: int, rate: float,
                    size: int | None = None, count: int | None = None
                    ) -> tuple[list[float], int]:
    """Append the day's feed batches (generated beforehand) and announce them at ``rate``
    batches a second (on a fixed schedule: a late announcement does not push the next
    back) to the continuous mode; each batch's lag from its notice to its state written,
    and the records announced. ``count``: only the first so many batches."""
    from rayjobs import fee_control

    lags: list[float] = []
    records = 0
    consumer = threading.Thread(target=lambda: lags.extend(
        fee_control.run_continuous(setup, shards=shards, idle_exit_s=10.0,
                                   timings=TIMINGS)))
    tables = _feed_batches(batches, size)[:count]
    consumer.start()
    time.sleep(5.0)  # the job's start (it loads the state once) is not a batch's lag
    started = time.monotonic()
    for i, batch in enumerate(tables):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        records += batch.num_rows
        number = int(batch["batch"][0].as_py())
        feed.append(day, number, batch)
        asyncio.run(fee_control.announce(setup.nats_url, day, number))
    consumer.join()
    return lags, records


def _state_files(store, day: dt.date) -> dict:
    """The continuous day's state files, and what one whole-state read and write (the
    old per-batch cost) takes on the same data, timed once here."""
    files = store.state_files(day)
    started = time.perf_counter()
    whole = store.read("state", day)
    read_s = time.perf_counter() - started
    scratch = day + dt.timedelta(days=30)
    started = time.perf_counter()
    store.write("state", scratch, whole)
    write_s = time.perf_counter() - started
    return {"state_rows": whole.num_rows, "deltas": len(files.deltas), "base": files.base,
            "whole_read_s": read_s, "whole_write_s": write_s}


def _lag_line(result: dict) -> str:
    lags = result["lags"]
    if not result["continuous_records"]:
        return "| continuous mode lag | not run |"
    if not lags:
        return "| continuous mode lag | no batch decided |"
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(np.ceil(0.99 * len(ordered))) - 1)]
    third = max(1, len(lags) // 3)
    per_batch = result["continuous_records"] / len(lags)
    return (f"| continuous mode lag, one feed batch every {1 / result['feed_rate']:.2g} s "
            f"({per_batch:,.0f} records a batch, {per_batch * result['feed_rate']:,.0f} "
            f"records/s) | p50 {statistics.median(lags):.2f} s, p99 {p99:.2f} s, max "
            f"{max(lags):.2f} s over {len(lags)} batches; median of the first third "
            f"{statistics.median(lags[:third]):.2f} s, of the last third "
            f"{statistics.median(lags[-third:]):.2f} s |")


def section(result: dict) -> str:
    run = result["run"]
    counts = run.counts
    hits, misses = counts.get("cache_hits", 0), counts.get("cache_misses", 0)
    balance = counts.get("balance_hits", 0), counts.get("balance_misses", 0)
    shard_s = counts.get("shard_ms", 0) / 1000
    io_s = counts.get("accounts_ms", 0) / 1000
    ratio = result["duckdb_s"] / result["e2e_s"]
    classes = "; ".join(f"{r['customer_kind']} {r['action']} {r['account_id_count']:,}"
                        for r in result["per_class"])
    lines = [
        "## Fee control (bench/fee_control.py)",
        "",
        f"{result['accounts']:,} prepaid accounts, one day of readings ({counts['records']:,} "
        f"feed records), batch mode on a private local Ray cluster (2 CPUs), "
        f"{result['shards']} shards, the accounts store with one synchronous standby, "
        "embedded NATS JetStream. Run under `/work/lead/heavy --exclusive` (both cores of "
        "the shared machine held; other engineers' idle clusters still up).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| batch mode, feed read to every command taken | {result['e2e_s']:.1f} s "
        f"(decide {run.seconds['decide']:.1f}, commit {run.seconds['commit']:.1f}, "
        f"deliver {run.seconds.get('deliver', 0):.1f}) |",
        f"| of which waiting for the accounts store (summed over shards) | {io_s:.1f} s of "
        f"{shard_s:.1f} s of shard time |",
        "| shard time by stage (summed over shards; prepare and benchmark include the "
        "store's reads and posts) | " + ", ".join(
            f"{name[len('stage_ms_'):]} {value / 1000:.1f} s" for name, value in counts.items()
            if name.startswith("stage_ms_")) + " |",
        f"| one DuckDB query, same deductions and decisions | {result['duckdb_s']:.2f} s "
        f"(ratio {ratio:.2f}, {result['mismatches']} accounts differ) |",
        f"| accounts decided, deductions posted | {counts['decided']:,}, "
        f"{counts['deductions_posted']:,} |",
        f"| commands per class | {classes} |",
        f"| cache hit rate (published versions; balances) | "
        f"{hits / max(hits + misses, 1):.0%}; {balance[0] / max(sum(balance), 1):.0%} |",
        _lag_line(result),
        (f"| continuous mode state after the day | {result['state_rows']:,} accounts: "
         f"{result['deltas']} deltas (base {result['base']}); one whole-state read + write "
         f"(the old per-batch cost) {result['whole_read_s']:.2f} + "
         f"{result['whole_write_s']:.2f} s |" if "state_rows" in result else
         "| continuous mode state | not run |"),
        f"| set-up (not measured): opening the accounts in the store | {result['open_s']:.0f} s |",
    ]
    return "\n".join(lines)


def main(accounts: int = ACCOUNTS) -> str:
    return section(run(accounts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--no-continuous", action="store_true",
                        help="skip the continuous-mode lag")
    parser.add_argument("--feed-rate", type=float, default=1.0,
                        help="continuous mode: feed batches announced per second")
    parser.add_argument("--feed-batch", type=int,
                        help="continuous mode: records per feed batch (default: the "
                             "collector's four batches of the day)")
    parser.add_argument("--feed-batches", type=int,
                        help="continuous mode: announce only the first N feed batches")
    args = parser.parse_args()
    result = run(args.accounts, args.shards, args.feed_rate,
                 continuous=not args.no_continuous, feed_batch=args.feed_batch,
                 feed_batches=args.feed_batches)
    if result["lags"]:
        print("lags (s): " + " ".join(f"{lag:.2f}" for lag in result["lags"]), flush=True)
    if TIMINGS:
        phases = {name: statistics.median(t.get(name, 0.0) for t in TIMINGS)
                  for name in TIMINGS[0]}
        print(f"continuous, median seconds per notice by phase over {len(TIMINGS)}: " +
              ", ".join(f"{name} {value:.3f}" for name, value in phases.items()), flush=True)
    print(section(result))
