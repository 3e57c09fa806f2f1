"""Tariff comparison on a Ray cluster: ``ray job submit -- python -m rayjobs.tariff_compare``.

Profiles x tariffs: the profiles are cut into chunks, each chunk one Ray task that bills
its profiles under every tariff (``gridfare.tariffs.compare.compare_profiles``); the driver,
the one writer, gathers the rows in profile order and replaces the comparison's table in
the data centre atomically (``tariff_comparisons/comparison=ID/part-0.parquet``), so a
rerun gives the same file and never a half-written one. Read it back with
``gridfare.connect(DIR).tariff_comparison(ID)``.

    python -m rayjobs.tariff_compare --datacentre DIR --comparison C1 --year 2026 \\
        --generate 10000 --urdb datasets/samples/urdb/sample-export.json --cn cn-bj-commercial-tou
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import ray

from gridfare.errors import GridfareError, InvalidInput
from gridfare.tariffs.compare import compare_profiles

__all__ = ["ComparisonResult", "compare_on_cluster", "load_tariffs", "main", "run_comparison"]

CHUNK = 1_000  # profiles a task: ~0.2 s of billing under 20 tariffs, 70 MB of load


@dataclass(frozen=True)
class ComparisonResult:
    comparison_id: str
    profiles: int
    tariffs: int
    rows: int
    tasks: int
    seconds: float
    bytes_written: int


@ray.remote(max_retries=3)
def _compare_chunk(tariffs, ids, load, year, comparison_id) -> pa.Table:
    # Pure and deterministic: a retried task gives the same rows.
    return compare_profiles(tariffs, ids, load, year, comparison_id)


def compare_on_cluster(tariffs: Sequence, ids: Sequence[str], load: np.ndarray, year: int,
                       comparison_id: str, chunk: int = CHUNK) -> tuple[pa.Table, int]:
    """Every chunk as a task on the connected cluster; the rows in profile order."""
    if chunk < 1:
        raise InvalidInput(f"tariff_compare: chunk {chunk} must be at least 1")
    shared = ray.put(list(tariffs))
    refs = [_compare_chunk.remote(shared, list(ids[i:i + chunk]), load[i:i + chunk], year,
                                  comparison_id)
            for i in range(0, len(ids), chunk)]
    try:
        tables = ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, GridfareError):
            raise exc.cause from None
        raise
    return pa.concat_tables(tables), len(refs)


def run_comparison(datacentre: str, comparison_id: str, tariffs: Sequence, ids: Sequence[str],
                   load: np.ndarray, year: int, chunk: int = CHUNK) -> ComparisonResult:
    """Bill ``load`` under ``tariffs`` on the cluster and store the comparison table."""
    from datasets.datacentre import DataCentre

    centre = DataCentre(datacentre)
    centre.path("tariff_comparisons", comparison=comparison_id)  # a bad id fails first
    started = time.perf_counter()
    table, tasks = compare_on_cluster(tariffs, ids, load, year, comparison_id, chunk)
    written = centre.write_comparison(comparison_id, table)
    return ComparisonResult(comparison_id, len(ids), len(tariffs), table.num_rows, tasks,
                            time.perf_counter() - started, written)


def load_tariffs(urdb: Sequence[str], cn: Sequence[str], tariffs_dir: str | None) -> list:
    """URDB exports (``FILE`` or ``FILE:LABEL``) and CN codes, in the order given."""
    from gridfare.tariffs import load_tariff_book
    from gridfare.tariffs.urdb import load_urdb

    chosen: list = []
    for spec in urdb:
        path, _, label = spec.partition(":")
        chosen += load_urdb(path, label=label or None)
    if cn:
        book = load_tariff_book(tariffs_dir)
        chosen += [book[code] for code in cn]
    if not chosen:
        raise InvalidInput("tariff_compare: give at least one --urdb export or --cn code")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rayjobs.tariff_compare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--datacentre", required=True, help="directory or pyarrow.fs URI")
    parser.add_argument("--comparison", required=True, help="the comparison's id")
    parser.add_argument("--year", required=True, type=int)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--profiles", help="a profiles Parquet file (docs/urdb.md)")
    source.add_argument("--generate", type=int, metavar="N", help="N synthetic profiles")
    parser.add_argument("--seed", type=int, default=7, help="with --generate")
    parser.add_argument("--urdb", action="append", default=[], metavar="FILE[:LABEL]")
    parser.add_argument("--cn", action="append", default=[], metavar="CODE")
    parser.add_argument("--tariffs", help="directory of CN tariff files (default: samples)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="profiles per task")
    parser.add_argument("--address", help="Ray cluster: HOST:PORT, 'auto', or 'local' for a "
                        "private one (default: the cluster of `ray job submit`)")
    args = parser.parse_args(argv)
    try:
        from datasets.profiles import generate_profiles, read_profiles
        from gridfare.tariffs.hourly import profiles_wh

        tariffs = load_tariffs(args.urdb, args.cn, args.tariffs)
        if args.profiles:
            ids, rows = read_profiles(args.profiles)
            load = profiles_wh(ids, rows, args.year, args.profiles)
        else:
            ids, load = generate_profiles(args.generate, args.year, args.seed)
        from actors.attach import attach

        print(attach(args.address).describe(), flush=True)
        result = run_comparison(args.datacentre, args.comparison, tariffs, ids, load,
                                args.year, args.chunk)
    except GridfareError as exc:
        print(f"gridfare: error: {exc}", file=sys.stderr)
        return 2
    print(f"comparison {result.comparison_id}: {result.profiles:,} profiles x "
          f"{result.tariffs} tariffs = {result.rows:,} annual bills in {result.tasks} tasks, "
          f"{result.seconds:.1f} s ({result.rows / result.seconds:,.0f} bills/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
