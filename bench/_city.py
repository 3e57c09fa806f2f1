"""Generated cities for the benchmarks, cached in bench-data/ (generated once per size)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from datasets.datacentre import DataCentre
from datasets.generator import generate_city

PERIOD = "2026-10"
# A city billed month after month: its 1st period and its 13th (12 earlier bills files).
FIRST_OF_13, LAST_OF_13 = "2025-10", "2026-10"
# GRIDFARE_BENCH_DATA moves the cache out of the tree (a 30 M city is ~4 GB).
ROOT = Path(os.environ.get("GRIDFARE_BENCH_DATA")
            or Path(__file__).resolve().parent.parent / "bench-data")


def ensure_city(accounts: int, sections: int, seed: int = 11, *, first: str = PERIOD,
                through: str | None = None) -> DataCentre:
    """Generate the city once (``first`` through ``through``, month by month); later runs
    reuse it (the marker is written last)."""
    span = "" if through is None else f"-{first}..{through}"
    root = ROOT / f"city-{accounts}-{sections}-{seed}{span}"
    marker = root / ".complete"
    if not marker.exists():
        started = time.perf_counter()
        # replace: a city without its marker was interrupted; generate refuses to mix.
        generate_city(DataCentre(str(root), create=True), accounts=accounts,
                      sections=sections, period=first, seed=seed, replace=True,
                      through=through)
        marker.write_text("ok\n")
        print(f"generated {accounts:,} accounts ({first}..{through or first}) in "
              f"{time.perf_counter() - started:.1f} s")
    return DataCentre(str(root))


# The former baseline, kept for reference next to the real one (bench/_duckdb_bills.py, which
# computes the same bills as gridfare): one hand-written DuckDB query that computes only the
# tiered bills of `cn-bj-residential-monthly` (its only tariff) with register checks, no
# other audit rule and no history. {readings} and {accounts} are table expressions.
TIERED_BILLS_SQL = """
WITH r AS (
    SELECT account_id,
           sum((round(cur_register * 100)::BIGINT - round(prev_register * 100)::BIGINT)
               * multiplier) AS units,
           bool_or(cur_register < prev_register OR prev_register < 0) AS bad
    FROM {readings}
    GROUP BY account_id
), t AS (
    SELECT r.account_id, r.units,
           least(r.units, 24000) AS u1,
           greatest(least(r.units, 40000) - 24000, 0) AS u2,
           greatest(r.units - 40000, 0) AS u3
    FROM r JOIN {accounts} a USING (account_id)
    WHERE a.tariff_code = 'cn-bj-residential-monthly' AND NOT r.bad AND r.units > 0
)
SELECT account_id,
       (u1 * 48830000 + 50000000) // 100000000
     + (u2 * 53830000 + 50000000) // 100000000
     + (u3 * 78830000 + 50000000) // 100000000 AS total_fen
FROM t
"""


def parquet_sources(centre: DataCentre, period: str = PERIOD) -> dict[str, str]:
    """The Parquet table expressions of TIERED_BILLS_SQL."""
    return {
        "readings": f"read_parquet('{centre.uri}/readings/period={period}/*/*.parquet')",
        "accounts": f"read_parquet('{centre.uri}/accounts/*/*.parquet')",
    }
