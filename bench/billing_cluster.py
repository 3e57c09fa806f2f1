"""End-to-end billing on a local Ray cluster vs one DuckDB query computing the same bills.

A generated city of 1.5 M accounts lives for 13 months (2025-10..2026-10, generated once and
cached): it is billed month after month through the ControlServer on a local Ray cluster
using both cores, from the request to the end signal, bills (and each section's history
fold) written to Parquet and recorded in the catalog. Its 1st period (history: the legacy
file) and its 13th (history: 12 earlier bills files) are timed. Next to each, in the same
run, one DuckDB SQL query (default threads: 2 here) built by ``bench/_duckdb_bills.py``
computes the same bills from the same Parquet files (every tariff, the 9 audit rules, the
12-month history from the legacy file and the earlier bills) and writes them to one Parquet
file; the two sets of bills are compared line by line. The former baseline, the tiered
bills of one tariff code only, is timed for the 1st period. With the ``spark`` extra
installed (``make bench`` installs it), PySpark ``local[2]`` runs the same query in Spark SQL
(JVM started and warmed on a few sections first, untimed) and its bills are compared too.
``--large`` adds a 30 M account city in its first period only, without the Spark row (at 30 M
Spark would take about 20 minutes of both cores); ``--large-only`` runs that city alone.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bench._city import (
    FIRST_OF_13,
    LAST_OF_13,
    PERIOD,
    TIERED_BILLS_SQL,
    ensure_city,
    parquet_sources,
)
from bench._cpu import process_tree_cpu, tree_cpu_by_kind
from bench._duckdb_bills import (
    SPARK,
    bills_files,
    bills_sql,
    compare_bills,
    spark_installed,
    spark_session,
    spark_sources,
)
from bench._duckdb_bills import parquet_sources as same_bills_sources
from datasets.datacentre import BUNDLED
from datasets.generator import span_periods
from gridfare.billing.runner import history_periods
from gridfare.period import Period
from gridfare.tariffs import load_tariff_book

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@dataclass(frozen=True)
class Measured:
    """One billed period of a city: its rows of the table and the bills' agreement."""

    period: str
    name: str  # "1st period", "13th period"
    rows: list[tuple[str, int, float]]  # (path, accounts audited and rated, seconds)
    agreement: dict
    spark_agreement: dict | None
    cpu: str  # where the gridfare run's CPU went, by process kind


def end_to_end(accounts: int, sections: int, *, first: str, through: str | None,
               measured: dict[str, str], spark: bool = True) -> list[Measured]:
    """Bill every period of the city from ``first`` through ``through`` in order on one
    local Ray cluster (each period's bills are the next ones' history), timing the periods
    in ``measured`` ({period: name}); then, for each of those, the same bills by one
    DuckDB query and by PySpark from the same files."""
    import ray

    from actors.attach import attach
    from rayjobs.billing import submit_and_wait

    centre = ensure_city(accounts, sections, first=first, through=through)
    periods = span_periods(first, through or first)
    timed: dict[str, tuple[float, dict, dict[str, float]]] = {}
    # "local": a private cluster, never a running one (the demo's would be joined), started
    # the project's way (actors.attach: its worker niceness)
    attach("local", local_options={"num_cpus": 2, "include_dashboard": False})
    try:
        # A standing cluster has its workers up: bill some sections first, enough for
        # several bundles so that both worker processes start (with 4 sections, one
        # bundle, the second worker started inside the timed run: 0.9 s of one core).
        # Twice: in the first, one worker took every bundle while Ray started the second
        # process, which then spent 0.37 s of the timed 1st period alone on its imports
        # (timeline of the stop-28 run; the 13th period's bundles started together).
        for _ in range(2):
            submit_and_wait(centre.uri, first, sections=centre.sections(first)[:128],
                            show_progress=False, poll_s=0.05)
        for period in periods:
            if period in measured:
                _clear_outputs(centre, period)
                _warm_page_cache(centre, period)
            elif _folded(centre, period):
                # Billed by an earlier run of this bench (a month between the timed ones:
                # its bills and folds are what the 13th reads): not billed again.
                print(f"{period}: bills and history folds already there")
                continue
            cpu_before = process_tree_cpu()
            requested = _utc_now()  # the catalog's clock (the ControlServer's, this host's)
            started = time.perf_counter()
            signal = submit_and_wait(centre.uri, period, show_progress=False, poll_s=0.05)
            seconds = time.perf_counter() - started
            cpu = tree_cpu_by_kind(cpu_before, process_tree_cpu())
            assert signal["status"] == "done", signal
            if period in measured:
                timed[period] = (seconds, signal, cpu, requested)
            else:
                print(f"billed {period} (history for the later periods) in {seconds:.1f} s")
    finally:
        ray.shutdown()

    results = []
    for period, name in measured.items():
        gridfare_s, signal, cpu, requested = timed[period]
        cpu_note = _cpu_note(centre, signal["run_id"], gridfare_s, cpu, requested)
        print(cpu_note, flush=True)
        _warm_page_cache(centre, period)
        con = duckdb.connect()
        same_sql = bills_sql(load_tariff_book(), period, same_bills_sources(centre, period))
        billed = signal["billed"] + signal["exceptions"]
        rows = [(f"gridfare on local Ray, {accounts:,} accounts, {name} (every tariff, "
                 "audit, history)", billed, gridfare_s)]
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            con.execute(f"COPY ({same_sql}) TO '{out}/same.parquet' (FORMAT parquet)")
            # The same accounts audited and rated: the same count, so the ratio is of times.
            rows.append((f"DuckDB single query, same bills, {name}", billed,
                         time.perf_counter() - started))
            if period == first:
                started = time.perf_counter()
                con.execute(f"COPY ({TIERED_BILLS_SQL.format(**parquet_sources(centre, period))})"
                            f" TO '{out}/bills.parquet' (FORMAT parquet)")
                tiered_s = time.perf_counter() - started
                tiered_rows = con.execute(
                    f"SELECT count(*) FROM '{out}/bills.parquet'").fetchall()[0][0]
                rows.append((f"(former baseline) DuckDB single query, one tiered tariff only, "
                             f"{name}", tiered_rows, tiered_s))
            # The bills gridfare wrote, as the catalog's manifest names them.
            written = "read_parquet([{}])".format(
                ", ".join(f"'{file}'" for file in bills_files(centre, [period])))
            agreement = compare_bills(con, written, f"'{out}/same.parquet'")
            # PySpark for the 1st period only: over 3,000 sections' small files it takes
            # minutes a period, and the 13th adds 12 bills datasets to its reads.
            spark_s = spark_same_bills(centre, f"{out}/spark", period) \
                if spark and period == first else None
            spark_agreement = None
            if spark_s is not None:
                rows.append((f"PySpark local[2], the same query in Spark SQL, {name}", billed,
                             spark_s))
                spark_agreement = compare_bills(
                    con, written, f"read_parquet('{out}/spark/*.parquet')")
        for row in rows:  # as they come: a long run's figures are not lost to a timeout
            print(f"{row[0]:90} {row[1]:>11,} {row[2]:8.2f} s", flush=True)
        results.append(Measured(period, name, rows, agreement, spark_agreement, cpu_note))
    return results


def _utc_now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(tzinfo=None)


def _cpu_note(centre, run_id: str, seconds: float, cpu: dict[str, float],
              requested=None) -> str:
    """Where a run's CPU went: seconds by kind of process of the bench's cluster (and the
    driver), against the cores' 2 x wall time; the sections' own billing time (read, rate,
    write, as the tasks measured it) inside the billing workers' CPU; and the run's
    timeline on the ControlServer's clock (recorded start, first bundle started, first and
    last section back, recorded end), with, given the request's time (``requested``, the
    same host's UTC clock), how long before the recorded start the request was made."""
    from datasets.duckdb_files import connect_waiting

    con = connect_waiting(centre.catalog_path, read_only=True, lock_timeout_s=60.0,
                          what="bench catalog")
    try:
        own, first, last, start, end = con.execute(
            "SELECT sum(s.seconds), min(s.finished_at), max(s.finished_at), r.started_at, "
            "r.finished_at FROM section_runs s JOIN runs r USING (run_id) "
            "WHERE run_id = ? GROUP BY r.started_at, r.finished_at", [run_id]).fetchone()
        # A bundle's sections end together: its end and its time in the task.
        bundles = con.execute(
            "SELECT finished_at, sum(seconds) FROM section_runs WHERE run_id = ? "
            "GROUP BY finished_at", [run_id]).fetchall()
    finally:
        con.close()
    ends = [((at - start).total_seconds(), spent) for at, spent in bundles]
    idle = _idle_core_seconds(ends, cores=2)
    kinds = ", ".join(f"{kind} {spent:.2f}" for kind, spent in cpu.items())
    before = ("" if requested is None else
              f"the request {(start - requested).total_seconds():.3f} s before the recorded "
              "start; ")
    return (f"CPU seconds during the {seconds:.2f} s run (2 cores: {2 * seconds:.2f}): "
            f"{kinds}; total {sum(cpu.values()):.2f}; the sections' own time in the tasks "
            f"(wall, summed) {own:.2f}; {before}from the recorded start, first bundle "
            f"started at {min(end - spent for end, spent in ends):.3f} s, first section back at "
            f"{(first - start).total_seconds():.2f} s, last at "
            f"{(last - start).total_seconds():.2f} s, run recorded done at "
            f"{(end - start).total_seconds():.2f} s; {len(bundles)} bundles, cores without "
            f"one from the recorded start to the last back {idle:.2f} core-s")


def _idle_core_seconds(bundles: list[tuple[float, float]], cores: int) -> float:
    """Core-seconds in which fewer than ``cores`` bundles ran, from 0 to the last end:
    each bundle ran from (end - its time) to its end (ends as the ControlServer received
    them: a late receipt moves a bundle later, never shortens it)."""
    events = sorted([(end - spent, 1) for end, spent in bundles] +
                    [(end, -1) for end, _ in bundles])
    idle, running, at = 0.0, 0, 0.0
    for when, step in events:
        idle += max(0, cores - running) * max(0.0, when - at)
        running, at = running + step, max(at, when)
    return idle


def _folded(centre, period: str) -> bool:
    """Whether every section of ``period`` has its bills and its history fold (manifest
    rows naming them)."""
    files = centre.section_files(periods=[period])
    return all(files.get(dataset, period, section) is not None
               for section in centre.sections(period) for dataset in BUNDLED)


def _clear_outputs(centre, period: str) -> None:
    """Forget ``period``'s bills and history folds (untimed): their manifest rows and their
    files, so that a timed period is a first billing of it, as every month's is, also on a
    city cached by an earlier run (billed again, a run would also move every section's
    rows and sweep the files they leave)."""
    import shutil

    from datasets.duckdb_files import connect_waiting

    con = connect_waiting(centre.catalog_path, lock_timeout_s=60.0, what="bench catalog")
    try:
        con.execute("DELETE FROM section_files WHERE period = ?", [period])
    finally:
        con.close()
    for dataset in BUNDLED:
        shutil.rmtree(Path(centre.root) / dataset / f"period={period}", ignore_errors=True)


def write_path_ab(centre, period: str, bundles: int = 2, bundle: int = 48,
                  rounds: int = 6) -> tuple[float, float]:
    """The write path alone, one process: the same sections' bills and history folds
    written as the section layout wrote them (two files a section) and as bundles (two
    files a bundle of ``bundle``), alternately into fresh directories, best of
    ``rounds``. Returns ms a section (old, new)."""
    import shutil

    from datasets.datacentre import DataCentre
    from gridfare.billing.audit import AuditRules
    from gridfare.billing.history import fold_history
    from gridfare.billing.kernel import bill_section
    from gridfare.billing.runner import _read_history

    book = load_tariff_book()
    reader = centre.reading(centre.section_files(periods=history_periods(period)))
    items = []
    for section in centre.sections(period)[:bundles * bundle]:
        carried, history = _read_history(reader, section, period, AuditRules())
        result = bill_section(reader.read_accounts(section),
                              reader.read_readings(period, section), book, period,
                              history=history, run_id="ab", section_id=section)
        items.append((section, result.bills,
                      fold_history(carried, result.bills, Period.parse(period))))
    scratch = Path(centre.root).parent / f".write-ab-{os.getpid()}"
    best = {"old": float("inf"), "new": float("inf")}
    try:
        for round_ in range(rounds):
            for way in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
                shutil.rmtree(scratch, ignore_errors=True)
                target = DataCentre(str(scratch), create=True)
                started = time.perf_counter()
                if way == "old":
                    for section, bills, fold in items:
                        target._write("bills", bills, period=period, section=section)
                        target._write("history", fold, period=period, section=section)
                else:
                    for start in range(0, len(items), bundle):
                        target.write_bundle(period, f"ab-{start}", items[start:start + bundle])
                best[way] = min(best[way], time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return best["old"] * 1e3 / len(items), best["new"] * 1e3 / len(items)


def _warm_page_cache(centre, period: str) -> None:
    """Read every input file of ``period`` once, untimed, so that both engines read from
    memory: the engine timed first would otherwise pay the disk for the other (the 30 M
    city is 5 GB; cold, gridfare's run took 23 s longer). The history of a later period is
    in its earlier bills (both engines) and the previous period's folds (gridfare)."""
    root = Path(centre.root)
    previous = str(Period.parse(period).shift(-1))
    for folder in (root / "accounts", root / "usage_history", root / "readings" /
                   f"period={period}", root / "history" / f"period={previous}",
                   *(root / "bills" / f"period={p}" for p in
                     map(str, Period.parse(period).previous(12)))):
        for path in sorted(folder.rglob("part-0.*")):
            path.read_bytes()


def spark_same_bills(centre, out: str, period: str) -> float | None:
    """Seconds for PySpark local[2] to compute the same bills from the Parquet files and
    write them to ``out``; None (with a note) when the ``spark`` extra is not installed."""
    if not spark_installed():
        print("PySpark not installed: no Spark baseline (pip install -e '.[spark]')")
        return None
    book = load_tariff_book()
    spark = spark_session(cores=2)
    try:
        # A standing Spark session has its JVM warm: run the query on a few sections first.
        some = spark_sources(spark, centre, period, sections=centre.sections(period)[:4])
        spark.sql(bills_sql(book, period, some, dialect=SPARK)).write.mode(
            "overwrite").parquet(f"{out}-warm-up")
        started = time.perf_counter()
        sources = spark_sources(spark, centre, period)
        spark.sql(bills_sql(book, period, sources, dialect=SPARK)).write.parquet(out)
        return time.perf_counter() - started
    finally:
        spark.stop()


def main(large: bool = False, accounts: int = 1_500_000, sections: int = 3_000, *,
         large_only: bool = False, spark: bool = True) -> str:
    runs = [] if large_only else [(accounts, sections, FIRST_OF_13, LAST_OF_13,
                                   {FIRST_OF_13: "1st period", LAST_OF_13: "13th period"},
                                   spark)]
    if large or large_only:
        # Thirteen periods of 30 M accounts are not generated here (~10 min and ~4 GB a
        # period): the 30 M city is billed in its first period only, without Spark.
        runs.append((30_000_000, 60_000, PERIOD, None, {PERIOD: "1st period"}, False))
    text = ["## Billing cluster (`bench/billing_cluster.py`)", "",
            "End-to-end: request to end signal through the ControlServer on a local Ray "
            "cluster (2 CPUs), bills written to Parquet (with each section's history fold) "
            "and recorded in the catalog; workers warmed first, as on a standing cluster, "
            "and the input files read once beforehand so that every engine reads them from "
            "the page cache. The 1.5 M city is billed month after month: its 1st period "
            f"({FIRST_OF_13}: legacy history only) and its 13th ({LAST_OF_13}: 12 earlier "
            "bills files) are timed, the 11 between are billed untimed. Baseline: one DuckDB "
            "query (2 threads) computing the same bills (every tariff, audit rules, history "
            "from the legacy file and the earlier bills; `bench/_duckdb_bills.py`) from the "
            "same Parquet, writing them to Parquet; the former tiered-only query for "
            "reference; PySpark `local[2]` running the same query (1st period). Targets: the "
            "13th period "
            "within 10 % of the 1st, gridfare >= 1.0x the DuckDB throughput, 30 M <= 60 s, "
            ">= 5x PySpark.", "",
            "| path | accounts | seconds | accounts/s |", "|---|---:|---:|---:|"]
    ratios, notes = [], []
    if not large_only:
        # The write path alone, A/B in one process on the same sections (untimed above).
        city = ensure_city(accounts, sections, first=FIRST_OF_13, through=LAST_OF_13)
        old_ms, new_ms = write_path_ab(city, FIRST_OF_13)
        note = (f"write path alone, one process, the same {2 * 48} sections' bills and history "
                f"folds of {FIRST_OF_13} (best of 6, alternating): a file each a section "
                f"{old_ms:.2f} ms a section, one file each a bundle of 48 {new_ms:.2f} ms "
                f"(new / old {new_ms / old_ms:.2f})")
        print(note, flush=True)
        notes.append(note)
    for accounts, sections, first, through, measured, spark in runs:
        results = end_to_end(accounts, sections, first=first, through=through,
                             measured=measured, spark=spark)
        for result in results:
            for name, n, seconds in result.rows:
                print(f"{name:90} {n:>11,} {seconds:8.2f} s {n / seconds:>12,.0f}/s")
                text.append(f"| {name} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} |")
            rates = {name: n / seconds for name, n, seconds in result.rows}
            gridfare, duckdb_rate = list(rates.values())[:2]
            ratios.append(f"{accounts:,} accounts, {result.name}: **{gridfare / duckdb_rate:.2f}**")
            agreement = result.agreement
            note = (f"{accounts:,}, {result.name}: {agreement['compared']:,} bills compared "
                    f"line by line, {agreement['differing']} differ, "
                    f"{agreement['kernel_only']} gridfare's only, "
                    f"{agreement['baseline_only']} the query's only")
            spark = [rate for name, rate in rates.items() if name.startswith("PySpark")]
            if spark and result.spark_agreement is not None:
                sa = result.spark_agreement
                note += (f"; gridfare / PySpark local[2] {gridfare / spark[0]:.2f}, "
                         f"{sa['differing']} of {sa['compared']:,} Spark bills differ "
                         f"({sa['kernel_only'] + sa['baseline_only']} on one side only)")
            elif spark and result.period == first:
                note += "; PySpark not installed, no Spark row (`pip install -e '.[spark]'`)"
            notes.append(note)
            notes.append(f"{accounts:,}, {result.name}: {result.cpu}")
            print(note)
        if len(results) == 2:
            first_s, last_s = (result.rows[0][2] for result in results)
            ratio = f"13th / 1st period time at {accounts:,}: **{last_s / first_s:.2f}**"
            ratios.append(ratio)
            print(ratio)
    text += ["", "Throughput ratio gridfare / DuckDB computing the same bills: "
             + "; ".join(ratios) + ".", "", *(f"- {note}." for note in notes)]
    return "\n".join(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", action="store_true", help="also 30 M accounts (slow)")
    parser.add_argument("--large-only", action="store_true",
                        help="only the 30 M city's first period (no 13-month city)")
    parser.add_argument("--accounts", type=int, default=1_500_000,
                        help="the 13-month city's size (a smaller one for a quick check)")
    parser.add_argument("--sections", type=int, default=3_000)
    parser.add_argument("--no-spark", action="store_true",
                        help="without the PySpark row (repeated runs of the other rows)")
    args = parser.parse_args()
    print(main(args.large, args.accounts, args.sections, large_only=args.large_only,
               spark=not args.no_spark))
