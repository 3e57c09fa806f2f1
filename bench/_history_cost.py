"""Where a section's time goes in the 1st and the 13th consecutive period (one process).

A generated city continued through 13 periods is billed month after month with the
runner's bundle call (``bill_sections``: what a cluster task runs), so from the 13th month on
every section's history is the legacy file plus 12 bills files. Then, per section, CPU time
(``time.process_time``, medians of repeated passes over every section) of: reading its
history, the whole read + rate + write of its bundle share, in the 1st and the 13th period.
Used to choose the history design (docs/benchmarks.md, issue 18); not part of ``make bench``.

    python -m bench._history_cost [--accounts 60000] [--sections 120]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from datasets.datacentre import DataCentre
from datasets.generator import generate_city, span_periods
from gridfare.billing.runner import bill_sections
from gridfare.tariffs import load_tariff_book

FIRST, LAST = "2025-10", "2026-10"
BUNDLE = 8


def _cpu_per_section(work, sections: list[str], repeats: int) -> float:
    """Median over ``repeats`` passes of the CPU seconds per section of ``work(chunk)``."""
    passes = []
    for _ in range(repeats):
        started = time.process_time()
        for at in range(0, len(sections), BUNDLE):
            work(sections[at:at + BUNDLE])
        passes.append((time.process_time() - started) / len(sections))
    return statistics.median(passes)


def _bill_again(centre, book, period, ids) -> None:
    """Put back the folds billing wrote (the fold timing above wrote other ones)."""
    for at in range(0, len(ids), BUNDLE):
        bill_sections(centre, book, period, ids[at:at + BUNDLE], "h")


def main(accounts: int, sections: int, repeats: int) -> None:
    book = load_tariff_book()
    with tempfile.TemporaryDirectory() as root:
        centre = DataCentre(root, create=True)
        generate_city(centre, accounts=accounts, sections=sections, period=FIRST, seed=11,
                      through=LAST)
        periods = span_periods(FIRST, LAST)
        ids = centre.all_sections()
        for period in periods:
            for at in range(0, len(ids), BUNDLE):
                bill_sections(centre, book, period, ids[at:at + BUNDLE], "h")
        for period in (periods[0], periods[-1]):
            read = _cpu_per_section(
                lambda chunk, period=period: [centre.read_history(s, period, ordered=False)
                                              for s in chunk], ids, repeats)
            whole = _cpu_per_section(
                lambda chunk, period=period: bill_sections(centre, book, period, chunk, "h"),
                ids, repeats)
            rows = sum(centre.read_history(s, period).num_rows for s in ids)
            if hasattr(centre, "write_history_fold"):
                folds = {s: centre.read_history_carry(s, period) for s in ids}
                write = _cpu_per_section(
                    lambda chunk, period=period, folds=folds: [centre.write_history_fold(
                        period, s, folds[s]) for s in chunk], ids, repeats)
                print(f"{period}: writing a fold {write * 1e3:.2f} ms/section")
                _bill_again(centre, book, period, ids)
            print(f"{period}: history read {read * 1e3:.2f} ms/section, whole section "
                  f"{whole * 1e3:.2f} ms/section ({rows / len(ids):,.0f} history rows/section)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=60_000)
    parser.add_argument("--sections", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    main(args.accounts, args.sections, args.repeats)
