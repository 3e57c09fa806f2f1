"""``make bench``: run every benchmark and write the table in docs/benchmarks.md."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import os
import platform
from pathlib import Path

import psutil

BENCHMARKS = ("bench.bill_kernel", "bench.billing_cluster", "bench.dispatch_policy",
              "bench.seats", "bench.remote_catalog", "bench.tariff_compare",
              "bench.loadshare", "bench.fee_control", "bench.accounts", "bench.seats_http")
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="module names, e.g. bench.bill_kernel")
    parser.add_argument("--large", action="store_true",
                        help="also the 30 M account billing run (generated once, ~4 GB)")
    args = parser.parse_args()
    sections = []
    for name in args.only or BENCHMARKS:
        # Each benchmark starts on a quiet disk: the 30 M billing run leaves about a GB of
        # bills to write back, and the seat bench that followed it had its fsyncs (four
        # per migrated train-date) queued behind that (freeze p99 50.6 ms in that run,
        # 30-36 ms alone).
        os.sync()
        module = importlib.import_module(name)
        takes_large = "large" in inspect.signature(module.main).parameters
        sections.append(module.main(large=args.large) if takes_large else module.main())
    if args.only and DOC.exists():
        # A partial run replaces its own sections and keeps the others' latest figures.
        fresh = {section.splitlines()[0]: section for section in sections}
        kept = [part.strip() for part in DOC.read_text().split("\n## ")[1:]]
        kept = ["## " + part for part in kept]
        sections = [fresh.pop(part.splitlines()[0], part) for part in kept] + list(fresh.values())
    machine = (f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
               f"Python {platform.python_version()}, {platform.machine()}")
    text = ["# Benchmarks", "",
            f"Written by `make bench` on {dt.date.today()} ({machine}). Each figure comes from "
            "a script in `bench/` that runs the real path and its baseline in the same run.", ""]
    for section in sections:
        text += [section, ""]
    DOC.write_text("\n".join(text))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
