"""End-to-end billing on a local Ray cluster vs one DuckDB query; load-aware vs Ray default.

Part 1 bills a generated city (1.5 M accounts; add --large for 30 M, generated once and
cached) through the ControlServer on a local Ray cluster using both cores, from the request
to the end signal, bills written to Parquet and recorded in the catalog. Next to it, in the
same run, one DuckDB SQL query (2 threads) computes the tiered bills of the tiered accounts
from the same Parquet files and writes them to one Parquet file.

Part 2 is the dispatch policy on a skewed workload: two 1-CPU worker nodes, each pinned to
its own core, one of them loaded by two CPU burners pinned to its core. The same sections
are billed once through the ControlServer (load-aware) and once as plain Ray tasks with
Ray's default placement; the makespans are compared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import duckdb
import psutil

from bench._city import PERIOD, TIERED_BILLS_SQL, ensure_city, parquet_sources

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def end_to_end(accounts: int, sections: int) -> tuple[list[tuple], dict]:
    import ray

    from rayjobs.billing import submit_and_wait

    centre = ensure_city(accounts, sections)
    ray.init(num_cpus=2, include_dashboard=False, namespace="gridfare", log_to_driver=False)
    try:
        # A standing cluster has its workers up: bill a couple of sections first.
        submit_and_wait(centre.uri, PERIOD, sections=centre.sections(PERIOD)[:4],
                        show_progress=False, poll_s=0.05)
        started = time.perf_counter()
        signal = submit_and_wait(centre.uri, PERIOD, show_progress=False, poll_s=0.05)
        gridfare_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    assert signal["status"] == "done", signal

    con = duckdb.connect()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        con.execute(f"COPY ({TIERED_BILLS_SQL.format(**parquet_sources(centre))}) "
                    f"TO '{out}/bills.parquet' (FORMAT parquet)")
        duckdb_s = time.perf_counter() - started
        baseline_rows = con.execute(
            f"SELECT count(*) FROM '{out}/bills.parquet'").fetchall()[0][0]
    billed = signal["billed"] + signal["exceptions"]
    rows = [
        (f"gridfare on local Ray, {accounts:,} accounts (every tariff, audit, history)",
         billed, gridfare_s),
        ("DuckDB single query, tiered tariff only", baseline_rows, duckdb_s),
    ]
    return rows, signal


def _pin(node, core: int) -> None:
    """Pin a fake node's raylet and its children to one core (workers inherit it)."""
    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    for process in [raylet, *raylet.children(recursive=True)]:
        try:
            process.cpu_affinity([core])
        except psutil.Error:
            continue


def policy_vs_default(accounts: int, sections: int) -> list[tuple]:
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from actors.billing_task import bill_section_task
    from rayjobs.billing import submit_and_wait

    centre = ensure_city(accounts, sections, seed=13)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0,
                                                             "include_dashboard": False})
    loaded, idle = cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)
    _pin(loaded, 0)
    _pin(idle, 1)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    for burner in burners:
        psutil.Process(burner.pid).cpu_affinity([0])
    ray.init(address=cluster.address, namespace="gridfare", log_to_driver=False)
    try:
        ids = centre.sections(PERIOD)
        # Warm a worker on each node first, so neither mode pays for starting one.
        for node in (loaded, idle):
            strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
            ray.get([bill_section_task.options(scheduling_strategy=strategy).remote(
                centre.uri, None, PERIOD, s, "warm") for s in ids[:2]])
        started = time.perf_counter()
        ran = ray.get([bill_section_task.remote(centre.uri, None, PERIOD, s, "ray-default")
                       for s in ids])
        default_s = time.perf_counter() - started
        on_loaded = sum(node == loaded.node_id for _, node in ran)
        print(f"Ray default placed {on_loaded} of {len(ids)} sections on the loaded node")
        submit_and_wait(centre.uri, PERIOD, sections=ids[:2], show_progress=False)
        time.sleep(3)
        started = time.perf_counter()
        signal = submit_and_wait(centre.uri, PERIOD, show_progress=False, poll_s=0.05)
        policy_s = time.perf_counter() - started
        assert signal["status"] == "done", signal
        from datasets.catalog import Catalog

        placed = Catalog(centre.catalog_path).sections(signal["run_id"])
        print(f"load-aware dispatch placed {sum(s.node_id == loaded.node_id for s in placed)} "
              f"of {len(ids)} sections on the loaded node")
    finally:
        for burner in burners:
            burner.kill()
        ray.shutdown()
        cluster.shutdown()
    return [("Ray default placement (plain tasks)", len(ids), default_s),
            ("gridfare load-aware dispatch (ControlServer)", len(ids), policy_s)]


def main(large: bool = False) -> str:
    sizes = [(1_500_000, 3_000)] + ([(30_000_000, 60_000)] if large else [])
    text = ["## Billing cluster (`bench/billing_cluster.py`)", "",
            "End-to-end: request to end signal through the ControlServer on a local Ray "
            "cluster (2 CPUs), bills written to Parquet and recorded in the catalog; workers "
            "warmed first, as on a standing cluster. Baseline: one DuckDB query (2 threads) "
            "from the same Parquet, writing its bills to Parquet. Targets: 1.5 M <= 15 s, "
            "30 M <= 120 s, gridfare >= 0.70x the DuckDB throughput.", "",
            "| path | accounts | seconds | accounts/s |", "|---|---:|---:|---:|"]
    ratios = []
    for accounts, sections in sizes:
        rows, _ = end_to_end(accounts, sections)
        for name, n, seconds in rows:
            print(f"{name:80} {n:>11,} {seconds:8.2f} s {n / seconds:>12,.0f}/s")
            text.append(f"| {name} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} |")
        ratio = (rows[0][1] / rows[0][2]) / (rows[1][1] / rows[1][2])
        ratios.append(f"{accounts:,} accounts: **{ratio:.2f}**")
        print(f"throughput ratio gridfare / DuckDB at {accounts:,}: {ratio:.2f}")
    text += ["", "Throughput ratio gridfare / DuckDB: " + ", ".join(ratios) + "."]

    policy = policy_vs_default(200_000, 64)
    text += ["", "Skewed sections (200,000 accounts in 64 lognormal-sized sections), two 1-CPU "
             "worker nodes pinned to one core each, one of them loaded by two CPU burners:", "",
             "| placement | sections | makespan s |", "|---|---:|---:|"]
    for name, n, seconds in policy:
        print(f"{name:60} {n:>5} sections {seconds:7.2f} s")
        text.append(f"| {name} | {n} | {seconds:.2f} |")
    speedup = policy[0][2] / policy[1][2]
    print(f"load-aware makespan vs Ray default: {speedup:.2f}x faster")
    text += ["", f"Load-aware dispatch makespan: **{speedup:.2f}x** faster than Ray's default "
             "placement."]
    return "\n".join(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", action="store_true", help="also 30 M accounts (slow)")
    print(main(parser.parse_args().large))
