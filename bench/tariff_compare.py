"""Tariff comparison: 10,000 hourly profiles x 20 URDB tariffs, next to NREL PySAM.

The work is a year (2018: PySAM's Monday-start calendar, so both bill the same hours) of
each profile billed under each tariff: 200,000 annual bills of 12 months each. gridfare
runs the real path, ``compare_profiles`` (fold the hours, price every tariff, build the
Arrow table), in this process and as ``rayjobs.tariff_compare``'s tasks on a private
local Ray cluster of 2 CPUs (workers warmed first; the time counts putting the load in
the object store, the tasks and gathering the table). PySAM's ``Utilityrate5`` bills a
sample of the same (profile, tariff) pairs, each tariff's model built once and only the
load set per bill; its rate is bills per second of that sample, and every sampled bill is
checked against gridfare's to the cent. Generating the profiles is not timed.
"""

from __future__ import annotations

import copy
import json
import os
import time
from decimal import Decimal
from importlib.resources import files

import numpy as np

from bench._pysam_rates import REFERENCE_LINES, PysamRate, cents
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


def _single(tariffs, ids, load, chunk) -> float:
    started = time.perf_counter()
    for i in range(0, len(ids), chunk):
        compare_profiles(tariffs, ids[i:i + chunk], load[i:i + chunk], YEAR, "bench")
    return time.perf_counter() - started


def _cluster(tariffs, ids, load, chunk) -> tuple[float, int]:
    import ray

    from rayjobs.tariff_compare import compare_on_cluster

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        compare_on_cluster(tariffs, ids[:40], load[:40], YEAR, "warm", chunk=20)
        started = time.perf_counter()
        table, tasks = compare_on_cluster(tariffs, ids, load, YEAR, "bench", chunk=chunk)
        seconds = time.perf_counter() - started
        assert table.num_rows == len(ids) * len(tariffs)
        return seconds, tasks
    finally:
        ray.shutdown()


def _pysam(records, tariffs, ids, load, per_tariff) -> tuple[float, int, int]:
    """(seconds, bills, bills differing from gridfare's by a cent or more on a line)."""
    rates = [PysamRate(record) for record in records]  # setup once, outside the timing
    picks = np.linspace(0, len(ids) - 1, per_tariff).astype(int)
    loads = {k: (load[k] / 1000).tolist() for k in picks}
    started = time.perf_counter()
    figures = [[rate.bill(loads[k]) for k in picks] for rate in rates]
    seconds = time.perf_counter() - started
    usage = hourly_usage(load[picks], YEAR)
    wrong = 0
    for tariff, bills in zip(tariffs, figures, strict=True):
        ours = tariff.charge(usage)
        for row, bill in enumerate(bills):
            for line in REFERENCE_LINES:
                expected = np.array([cents(v) for v in bill[line]])
                bound = 2 if line == "minimum_adjustment" else 0
                if (np.abs(ours[line][row] - expected) > bound).any():
                    wrong += 1
                    break
    return seconds, len(rates) * len(picks), wrong


def main(profiles: int = 10_000, chunk: int = 1_000, pysam_per_tariff: int = 25) -> str:
    load_before = os.getloadavg()[0]
    records = tariff_records()
    tariffs = [translate(record, source="bench") for record in records]
    ids, load = generate_profiles(profiles, YEAR, seed=11)
    bills = profiles * len(tariffs)

    single_s = _single(tariffs, ids, load, chunk)
    cluster_s, tasks = _cluster(tariffs, ids, load, chunk)
    pysam_s, pysam_bills, wrong = _pysam(records, tariffs, ids, load, pysam_per_tariff)
    pysam_rate = pysam_bills / pysam_s
    single_rate, cluster_rate = bills / single_s, bills / cluster_s
    lines = [
        "## Tariff comparison (URDB, hourly annual bills)",
        "",
        f"{profiles:,} synthetic hourly profiles (homes and small businesses, {YEAR}) x "
        f"{len(tariffs)} URDB tariffs (the 5 sample rates at 4 price levels: tiered, TOU, "
        "TOU + tiered demand + flat demand + minimum, hours-use-of-demand) = "
        f"{bills:,} annual bills of 12 monthly bills each. gridfare: `compare_profiles` "
        f"in chunks of {chunk:,} profiles (the job's task). PySAM `Utilityrate5` "
        f"{pysam_bills} of the same bills (each tariff's model built once, outside the "
        "timing). Profile generation is not timed.",
        "",
        "| engine | bills | seconds | bills/s | vs PySAM |",
        "|---|---:|---:|---:|---:|",
        f"| gridfare, one process | {bills:,} | {single_s:.2f} | {single_rate:,.0f} | "
        f"{single_rate / pysam_rate:,.0f}x |",
        f"| gridfare, local Ray cluster (2 CPUs, {tasks} tasks) | {bills:,} | "
        f"{cluster_s:.2f} | {cluster_rate:,.0f} | {cluster_rate / pysam_rate:,.0f}x |",
        f"| PySAM Utilityrate5, one process | {pysam_bills:,} | {pysam_s:.2f} | "
        f"{pysam_rate:,.0f} | 1x |",
        "",
        f"PySAM's sampled bills that differ from gridfare's by more than the rounding bound "
        f"(0 cents a line; 2 for the minimum adjustment): {wrong} of {pysam_bills}. "
        f"Machine load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} "
        "after: the 2 cores are shared, so absolute rates are noisy.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
