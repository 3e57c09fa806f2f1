"""Section-billing kernel vs one hand-written DuckDB query computing the same tiered bills.

Both start from the same generated Parquet data centre (1.5 M accounts by default, cached in
bench-data/). The kernel is timed two ways: rating only (tables already in memory) and with
each section's Parquet read, as the runner does. The baseline is a single DuckDB SQL query
over all readings that computes the tiered bills of the `cn-bj-residential-monthly` accounts
(its only tariff), with the register checks a bill needs; the kernel does strictly more (every
tariff, every audit rule, history). The two must agree to the fen on the tiered accounts.
"""

from __future__ import annotations

import argparse
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from bench._city import PERIOD, TIERED_BILLS_SQL, ensure_city, parquet_sources
from gridfare.billing import bill_section
from gridfare.tariffs import load_tariff_book


def main(accounts: int = 1_500_000, sections: int = 3_000) -> str:
    centre = ensure_city(accounts, sections)
    book = load_tariff_book()
    ids = centre.sections(PERIOD)

    started = time.perf_counter()
    inputs = [(centre.read_accounts(s), centre.read_readings(PERIOD, s),
               centre.read_history(s, PERIOD)) for s in ids]
    read_s = time.perf_counter() - started

    started = time.perf_counter()
    results = [bill_section(a, r, book, PERIOD, history=h, section_id=s)
               for s, (a, r, h) in zip(ids, inputs, strict=True)]
    kernel_s = time.perf_counter() - started
    rated = sum(x.bills.num_rows + x.exceptions.num_rows for x in results)

    # The baseline twice: over the same tables already in memory, and from the Parquet files.
    con = duckdb.connect()
    con.register("readings_mem", pa.concat_tables([r for _, r, _ in inputs]))
    con.register("accounts_mem", pa.concat_tables([a for a, _, _ in inputs]))
    in_memory_sql = TIERED_BILLS_SQL.format(readings="readings_mem", accounts="accounts_mem")
    parquet_sql = TIERED_BILLS_SQL.format(**parquet_sources(centre))
    con.sql(in_memory_sql).to_arrow_table()  # warm-up, as the kernel's imports are warm
    started = time.perf_counter()
    baseline = con.sql(in_memory_sql).to_arrow_table()
    baseline_s = time.perf_counter() - started
    started = time.perf_counter()
    con.sql(parquet_sql).to_arrow_table()
    baseline_parquet_s = time.perf_counter() - started

    bills = pa.concat_tables([x.bills for x in results])
    tiered = bills.filter(pc.equal(bills["tariff_code"], "cn-bj-residential-monthly"))
    ours = dict(zip(tiered["account_id"].to_pylist(), tiered["total_fen"].to_pylist(),
                    strict=True))
    theirs = dict(zip(baseline["account_id"].to_pylist(), baseline["total_fen"].to_pylist(),
                      strict=True))
    common = ours.keys() & theirs.keys()
    disagree = sum(ours[k] != theirs[k] for k in common)

    rows = [
        ("kernel, rating only: every tariff and audit rule, per section", rated, kernel_s),
        ("DuckDB single query, rating only: tiered tariff only", baseline.num_rows,
         baseline_s),
        ("kernel with per-section Parquet reads", rated, kernel_s + read_s),
        ("DuckDB single query from the Parquet files", baseline.num_rows,
         baseline_parquet_s),
    ]
    rates = [n / seconds for _, n, seconds in rows]
    in_memory_ratio, parquet_ratio = rates[0] / rates[1], rates[2] / rates[3]
    for (name, n, seconds), rate in zip(rows, rates, strict=True):
        print(f"{name:64} {n:>10,} accounts {seconds:7.2f} s {rate:>12,.0f} accounts/s")
    print(f"ratio kernel / DuckDB: {in_memory_ratio:.2f} rating only, {parquet_ratio:.2f} "
          "from Parquet; target >= 0.70")
    print(f"tiered accounts compared: {len(common):,}, disagreeing to the fen: {disagree}")

    table = ["## Section-billing kernel (`bench/bill_kernel.py`)", "",
             f"{accounts:,} generated accounts in {len(ids):,} sections, period {PERIOD}. "
             "Target: kernel >= 0.70x the single DuckDB query.", "",
             "| path | accounts | seconds | accounts/s |", "|---|---:|---:|---:|"]
    table += [f"| {name} | {n:,} | {seconds:.2f} | {rate:,.0f} |"
              for (name, n, seconds), rate in zip(rows, rates, strict=True)]
    table += ["",
              f"Ratio kernel / DuckDB: **{in_memory_ratio:.2f}** rating only, "
              f"**{parquet_ratio:.2f}** from Parquet. {len(common):,} tiered bills compared "
              f"with the baseline; {disagree} disagree to the fen."]
    return "\n".join(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1_500_000)
    parser.add_argument("--sections", type=int, default=3_000)
    args = parser.parse_args()
    print(main(args.accounts, args.sections))
