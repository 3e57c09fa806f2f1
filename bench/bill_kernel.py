"""Section-billing kernel vs one DuckDB query computing the same bills.

Both start from the same generated Parquet data centre (1.5 M accounts by default, cached in
bench-data/): the 1st period of the city ``bench/billing_cluster.py`` bills for 13 months, so
that both benches share one generated city. The kernel is timed two ways: rating only
(tables already in memory) and with each section's Parquet read, as the runner does. The
baseline is a single DuckDB SQL query (default threads) built from the tariff book by
``bench/_duckdb_bills.py``: every tariff,
the 9 audit rules and the 12-month history, exactly the kernel's bills; it runs over the
same tables in memory and over the Parquet files, and its bills are compared with the
kernel's bill by bill, line by line. For reference, the former baseline (the tiered tariff
of one tariff code only, register checks only: much less work) is timed too.
"""

from __future__ import annotations

import argparse
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from bench._city import FIRST_OF_13, LAST_OF_13, TIERED_BILLS_SQL, ensure_city, parquet_sources
from bench._duckdb_bills import bills_sql, compare_bills, register_sections
from bench._duckdb_bills import parquet_sources as same_bills_sources
from gridfare.billing import bill_section
from gridfare.billing.runner import history_periods
from gridfare.tariffs import load_tariff_book


def main(accounts: int = 1_500_000, sections: int = 3_000) -> str:
    centre = ensure_city(accounts, sections, first=FIRST_OF_13, through=LAST_OF_13)
    book = load_tariff_book()
    ids = centre.sections(FIRST_OF_13)

    started = time.perf_counter()
    # The earlier periods' manifest rows read once, as a billing task is sent them.
    reader = centre.reading(centre.section_files(periods=history_periods(FIRST_OF_13)))
    inputs = [(reader.read_accounts(s), reader.read_readings(FIRST_OF_13, s),
               reader.read_history(s, FIRST_OF_13)) for s in ids]
    read_s = time.perf_counter() - started

    started = time.perf_counter()
    results = [bill_section(a, r, book, FIRST_OF_13, history=h, section_id=s)
               for s, (a, r, h) in zip(ids, inputs, strict=True)]
    kernel_s = time.perf_counter() - started
    audited = sum(a.num_rows for a, _, _ in inputs)

    # The baseline twice: over the same tables already in memory, and from the Parquet files.
    con = duckdb.connect()
    memory = register_sections(con, ((s, a, r, h) for s, (a, r, h) in zip(ids, inputs,
                                                                           strict=True)))
    same_sql = bills_sql(book, FIRST_OF_13, memory)
    same_parquet_sql = bills_sql(book, FIRST_OF_13, same_bills_sources(centre, FIRST_OF_13))
    con.sql(same_sql).to_arrow_table()  # warm-up, as the kernel's imports are warm
    started = time.perf_counter()
    baseline = con.sql(same_sql).to_arrow_table()
    same_s = time.perf_counter() - started
    started = time.perf_counter()
    con.sql(same_parquet_sql).to_arrow_table()
    same_parquet_s = time.perf_counter() - started

    # The former baseline: tiered bills of one tariff code, register checks only.
    con.register("readings_mem", pa.concat_tables([r for _, r, _ in inputs]))
    con.register("accounts_mem", pa.concat_tables([a for a, _, _ in inputs]))
    tiered_sql = TIERED_BILLS_SQL.format(readings="readings_mem", accounts="accounts_mem")
    con.sql(tiered_sql).to_arrow_table()
    started = time.perf_counter()
    tiered_only = con.sql(tiered_sql).to_arrow_table()
    tiered_s = time.perf_counter() - started
    started = time.perf_counter()
    con.sql(TIERED_BILLS_SQL.format(**parquet_sources(centre, FIRST_OF_13))).to_arrow_table()
    tiered_parquet_s = time.perf_counter() - started

    bills = pa.concat_tables([x.bills for x in results])
    con.register("kernel_bills", bills)
    con.register("baseline_bills", baseline)
    agreement = compare_bills(con, "kernel_bills", "baseline_bills")
    tiered = bills.filter(pc.equal(bills["tariff_code"], "cn-bj-residential-monthly"))
    ours = dict(zip(tiered["account_id"].to_pylist(), tiered["total_fen"].to_pylist(),
                    strict=True))
    theirs = dict(zip(tiered_only["account_id"].to_pylist(),
                      tiered_only["total_fen"].to_pylist(), strict=True))
    common = ours.keys() & theirs.keys()
    tiered_disagree = sum(ours[k] != theirs[k] for k in common)

    # The kernel and the same-bills query audit and rate the same accounts: one count.
    rows = [
        ("kernel, rating only: every tariff and audit rule, per section", audited, kernel_s),
        ("DuckDB single query, rating only, same bills (every tariff, audit, history)",
         audited, same_s),
        ("kernel with per-section Parquet reads", audited, kernel_s + read_s),
        ("DuckDB single query from the Parquet files, same bills", audited, same_parquet_s),
        ("(former baseline) DuckDB, rating only: one tiered tariff, register checks only",
         tiered_only.num_rows, tiered_s),
        ("(former baseline) DuckDB from the Parquet files: one tiered tariff only",
         tiered_only.num_rows, tiered_parquet_s),
    ]
    rates = [n / seconds for _, n, seconds in rows]
    in_memory_ratio, parquet_ratio = rates[0] / rates[1], rates[2] / rates[3]
    tiered_ratio = rates[0] / rates[4]
    for (name, n, seconds), rate in zip(rows, rates, strict=True):
        print(f"{name:80} {n:>10,} accounts {seconds:7.2f} s {rate:>12,.0f} accounts/s")
    print(f"ratio kernel / DuckDB same bills: {in_memory_ratio:.2f} rating only, "
          f"{parquet_ratio:.2f} from Parquet; target >= 0.70 "
          f"(vs the tiered-only query: {tiered_ratio:.2f})")
    print(f"bills compared with the same-bills baseline: {agreement['compared']:,}; "
          f"differing {agreement['differing']}, kernel only {agreement['kernel_only']}, "
          f"baseline only {agreement['baseline_only']}")
    print(f"tiered accounts compared: {len(common):,}, disagreeing to the fen: "
          f"{tiered_disagree}")

    table = ["## Section-billing kernel (`bench/bill_kernel.py`)", "",
             f"{accounts:,} generated accounts in {len(ids):,} sections, period {FIRST_OF_13}. "
             "Target: kernel >= 0.70x the single DuckDB query computing the same bills "
             "(every tariff, the 9 audit rules, 12-month history; `bench/_duckdb_bills.py`).", "",
             "| path | accounts | seconds | accounts/s |", "|---|---:|---:|---:|"]
    table += [f"| {name} | {n:,} | {seconds:.2f} | {rate:,.0f} |"
              for (name, n, seconds), rate in zip(rows, rates, strict=True)]
    table += ["",
              f"Ratio kernel / DuckDB computing the same bills: **{in_memory_ratio:.2f}** "
              f"rating only, **{parquet_ratio:.2f}** from Parquet "
              f"({in_memory_ratio:.2f} means the kernel takes {1 / in_memory_ratio:.1f}x "
              "the query's time). "
              f"{agreement['compared']:,} bills compared with the baseline line by line: "
              f"{agreement['differing']} differ, {agreement['kernel_only']} are the kernel's "
              f"only, {agreement['baseline_only']} the baseline's only. The former "
              f"tiered-only baseline ({tiered_ratio:.2f}) did a fraction of the work; "
              f"{tiered_disagree} of its {len(common):,} tiered bills differ from the "
              "kernel's."]
    return "\n".join(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1_500_000)
    parser.add_argument("--sections", type=int, default=3_000)
    args = parser.parse_args()
    print(main(args.accounts, args.sections))
