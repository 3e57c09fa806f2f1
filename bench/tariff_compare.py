"""Tariff comparison: 10,000 hourly profiles x 20 URDB tariffs, next to NREL PySAM.

The work is a year (2018: PySAM's Monday-start calendar, so both bill the same hours) of
each profile billed under each tariff: 200,000 annual bills of 12 months each. gridfare
runs the real path, ``compare_profiles`` (fold the hours, price every tariff, build the
Arrow table), in this process and as ``rayjobs.tariff_compare``'s tasks on a private
local Ray cluster of 2 CPUs (workers warmed first; the time counts putting the load in
the object store, the tasks and gathering the table). PySAM's ``Utilityrate5`` bills a
sample of the same (profile, tariff) pairs, timed chunk by chunk right after gridfare's
(the machine is shared: both then see the same load), each tariff's model built once and
only the load set per bill; its rate is bills per second of that sample, and every sampled
bill is checked against gridfare's to the cent. Generating the profiles is not timed.
"""

from __future__ import annotations

import copy
import json
import os
import time
from decimal import Decimal
from importlib.resources import files

import numpy as np

from bench._pysam_rates import REFERENCE_LINES, PysamRate, agrees
from datasets.profiles import generate_profiles
from gridfare.tariffs.compare import compare_profiles
from gridfare.tariffs.hourly import hourly_usage
from gridfare.tariffs.urdb import translate

YEAR = 2018
SAMPLE = files("datasets") / "samples" / "urdb" / "sample-export.json"
SCALES = ("1.00", "1.04", "1.08", "1.12")


def tariff_records() -> list[dict]:
    """20 records: the 5 samples x 4 price levels; $/day charges restated per month (PySAM
    takes monthly ones only), so that both engines bill exactly the same tariffs."""
    records = []
    for base in json.loads(SAMPLE.read_text(), parse_float=Decimal)["items"]:
        for scale in SCALES:
            record = copy.deepcopy(base)
            record["label"] = f"{base['label']}-x{scale}"
            for field in ("energyratestructure", "demandratestructure", "flatdemandstructure"):
                for tiers in record.get(field) or []:
                    for tier in tiers:
                        tier["rate"] = (Decimal(str(tier["rate"])) * Decimal(scale)).quantize(
                            Decimal("0.00001"))
            for amount, units in (("fixedchargefirstmeter", "fixedchargeunits"),
                                  ("mincharge", "minchargeunits")):
                if record.get(units) == "$/day":
                    record[amount] = (Decimal(str(record[amount])) * 30).quantize(
                        Decimal("0.01"))
                    record[units] = "$/month"
            records.append(record)
    return records


def _single_and_pysam(records, tariffs, ids, load, chunk, pysam_per_chunk):
    """gridfare on each chunk, then PySAM on a few of that chunk's profiles under every
    tariff: interleaved, so that both see the same share of a shared machine."""
    rates = [PysamRate(record) for record in records]  # setup once, outside the timing
    compare_profiles(tariffs, ids[:10], load[:10], YEAR, "warm")  # lazy imports, BLAS
    rates[0].bill((load[0] / 1000).tolist())
    ours_s = pysam_s = ours_cpu = pysam_cpu = 0.0
    sampled: list[tuple[int, int, dict]] = []  # (profile, tariff, PySAM's figures)
    for i in range(0, len(ids), chunk):
        started, cpu = time.perf_counter(), time.process_time()
        compare_profiles(tariffs, ids[i:i + chunk], load[i:i + chunk], YEAR, "bench")
        ours_s += time.perf_counter() - started
        ours_cpu += time.process_time() - cpu
        picks = np.linspace(i, min(i + chunk, len(ids)) - 1, pysam_per_chunk).astype(int)
        loads = {k: (load[k] / 1000).tolist() for k in picks}  # PySAM's input, untimed
        started, cpu = time.perf_counter(), time.process_time()
        figures = [(k, j, rate.bill(loads[k])) for j, rate in enumerate(rates) for k in picks]
        pysam_s += time.perf_counter() - started
        pysam_cpu += time.process_time() - cpu
        sampled += figures
    return (ours_s, ours_cpu), (pysam_s, pysam_cpu), sampled


def _disagreements(tariffs, load, sampled) -> int:
    """Sampled bills with a line gridfare and PySAM disagree on (docs/urdb.md)."""
    wrong = 0
    for k, j, bill in sampled:
        ours = tariffs[j].charge(hourly_usage(load[k:k + 1], YEAR))
        if not all(agrees(ours[line][0][m], bill[line][m],
                          2 if line == "minimum_adjustment" else 0)
                   for line in REFERENCE_LINES for m in range(12)):
            wrong += 1
    return wrong


def _cluster(tariffs, ids, load, chunk) -> tuple[float, int]:
    import ray

    from actors.attach import attach
    from rayjobs.tariff_compare import compare_on_cluster

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    attach("local", local_options={"num_cpus": 2, "include_dashboard": False})
    try:
        compare_on_cluster(tariffs, ids[:40], load[:40], YEAR, "warm", chunk=20)
        started = time.perf_counter()
        table, tasks = compare_on_cluster(tariffs, ids, load, YEAR, "bench", chunk=chunk)
        seconds = time.perf_counter() - started
        assert table.num_rows == len(ids) * len(tariffs)
        return seconds, tasks
    finally:
        ray.shutdown()


def main(profiles: int = 10_000, chunk: int = 1_000, pysam_per_chunk: int = 3) -> str:
    load_before = os.getloadavg()[0]
    records = tariff_records()
    tariffs = [translate(record, source="bench") for record in records]
    ids, load = generate_profiles(profiles, YEAR, seed=11)
    bills = profiles * len(tariffs)

    (single_s, single_cpu), (pysam_s, pysam_cpu), sampled = _single_and_pysam(
        records, tariffs, ids, load, chunk, pysam_per_chunk)
    cluster_s, tasks = _cluster(tariffs, ids, load, chunk)
    pysam_bills, wrong = len(sampled), _disagreements(tariffs, load, sampled)
    pysam_rate = pysam_bills / pysam_s
    single_rate, cluster_rate = bills / single_s, bills / cluster_s
    cpu_ratio = (bills / single_cpu) / (pysam_bills / pysam_cpu)
    lines = [
        "## Tariff comparison (URDB, hourly annual bills)",
        "",
        f"{profiles:,} synthetic hourly profiles (homes and small businesses, {YEAR}) x "
        f"{len(tariffs)} URDB tariffs (the 5 sample rates at 4 price levels: tiered, TOU, "
        "TOU + tiered demand + flat demand + minimum, hours-use-of-demand) = "
        f"{bills:,} annual bills of 12 monthly bills each. gridfare: `compare_profiles` "
        f"in chunks of {chunk:,} profiles (the job's task). PySAM `Utilityrate5` "
        f"{pysam_bills} of the same bills ({pysam_per_chunk} profiles of each chunk under "
        "every tariff, timed right after gridfare's chunk so that both see the same share "
        "of the shared machine; each tariff's model built once, outside the timing). "
        "Profile generation is not timed.",
        "",
        "| engine | bills | seconds (wall) | CPU seconds | bills/s (wall) | vs PySAM |",
        "|---|---:|---:|---:|---:|---:|",
        f"| gridfare, one process | {bills:,} | {single_s:.2f} | {single_cpu:.2f} | "
        f"{single_rate:,.0f} | {single_rate / pysam_rate:,.0f}x |",
        f"| gridfare, local Ray cluster (2 CPUs, {tasks} tasks) | {bills:,} | "
        f"{cluster_s:.2f} | | {cluster_rate:,.0f} | {cluster_rate / pysam_rate:,.0f}x |",
        f"| PySAM Utilityrate5, one process | {pysam_bills:,} | {pysam_s:.2f} | "
        f"{pysam_cpu:.2f} | {pysam_rate:,.0f} | 1x |",
        "",
        f"Per CPU second (this process's CPU time, less sensitive to the machine's other "
        f"load than wall time): gridfare {bills / single_cpu:,.0f} bills, PySAM "
        f"{pysam_bills / pysam_cpu:,.0f}: {cpu_ratio:,.0f}x.",
        "",
        f"Sampled bills where PySAM and gridfare disagree on a line (beyond a float half "
        f"cent; 2 cents for the minimum adjustment, see docs/urdb.md): {wrong} of "
        f"{pysam_bills}. "
        f"Machine load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} "
        "after: the 2 cores are shared, so absolute rates are noisy.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
