"""The DuckDB baseline that computes the same bills as gridfare: one SQL statement.

``bills_sql(book, period, sources)`` builds a single DuckDB query (CTEs, no macros, no UDFs)
that audits and rates every account of every section for ``period`` exactly as
``gridfare.billing.bill_section`` does:

* readings: registers and TOU / demand / reactive advances quantised to 0.01 units with
  round-half-even (as ``np.rint``), times the multiplier, summed over an account's meter
  points within its section; a reading in a section that does not hold its account is not
  counted (the kernel reports it as ``reading_without_account``);
* history: the 12 periods before ``period`` (legacy ``usage_history``, with the ``bills`` of
  those periods taking precedence, as ``DataCentre.read_history``), giving the energy billed
  earlier in the calendar year (annual tiers) and the monthly mean (the spike rule);
* the 9 audit rules of ``gridfare.billing.audit`` with the thresholds of ``AuditRules``; an
  account that breaks any of them is not billed (``exceptions_sql`` lists the rules broken);
* every tariff component: monthly and annual-cumulative tiers, time-of-use with critical
  peak in its months, basic charge by capacity or by demand with a floor, power-factor
  adjustment (the table comes from ``gridfare.tariffs.power_factor.adjustment_bp``, 0.00
  included; -1: not metered; an account without a standard takes the tariff's default),
  funds, fixed and minimum charges, in the kernel's stage order.

The tariff book becomes two VALUES tables in the query (one row of parameters per tariff,
one row per power-factor table entry), so the SQL is built from ``load_tariff_book()``, not
hand-copied. Money is exact integer arithmetic in the units of ``gridfare.money`` (0.01 kWh
times 1e-8 CNY), each line rounded half away from zero to the fen, so the bills agree with
the kernel to the fen (``tests/unit/test_bench_baseline.py`` checks it line by line).

The same text runs on Spark SQL (``dialect=SPARK``: ``bround`` for ``round_even``, ``div``
for ``//``; everything else is common SQL), over temp views of the same Parquet files
(``spark_sources``); PySpark is the optional ``spark`` extra.

Not reproduced: the human-readable ``detail`` text of exceptions (``exceptions_sql`` gives
account, section and rule), and the kernel's refusals of impossible input, where it raises
``InvalidInput`` for the whole section: a duplicate account in a section (the query bills
both rows), a power-factor standard other than 0.80 / 0.85 / 0.90 (the query adjusts by 0)
and an int64 overflow (DuckDB, and Spark in ANSI mode, raise too; Spark 3.5 without ANSI
would wrap); nor the audit's rules against impossible input (``IMPOSSIBLE_INPUT``:
quantities beyond the book's int64 bounds, a meter point read twice or below 1). The
generated data holds none of these.

The power factor is computed in float64 with the same operations as the kernel
(``kWh / sqrt(kWh² + kvarh²)``, then ``floor(x * 100 + 0.5 + 1e-9)``), which IEEE arithmetic
makes identical in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from datasets.datacentre import DataCentre
from datasets.schemas import CHARGE_LINES
from gridfare.billing.audit import IMPOSSIBLE_INPUT, RULES, AuditRules
from gridfare.money import ENERGY_SCALE, RAW_PER_FEN
from gridfare.period import Period
from gridfare.tariffs import Tariff
from gridfare.tariffs.basic import Basic
from gridfare.tariffs.fixed import Fixed, Minimum
from gridfare.tariffs.funds import Funds
from gridfare.tariffs.power_factor import (
    ADJUSTED_LINES,
    STANDARDS,
    PowerFactor,
    adjustment_bp,
)
from gridfare.tariffs.tiered import TIER_LINES, Tiered
from gridfare.tariffs.tou import TimeOfUse

__all__ = ["Sources", "bills_sql", "compare_bills", "exceptions_sql", "parquet_sources",
           "register_sections"]



@dataclass(frozen=True)
class Dialect:
    """What differs between DuckDB's SQL and Spark SQL in the query."""

    name: str
    round_even: str  # round half to even, as np.rint

    def idiv(self, a: str, b: str) -> str:
        """Integer division truncating toward zero."""
        return f"(({a}) // ({b}))" if self.name == "duckdb" else f"(({a}) div ({b}))"


DUCKDB = Dialect("duckdb", "round_even")
SPARK = Dialect("spark", "bround")


@dataclass(frozen=True)
class Sources:
    """Table expressions the query reads.

    ``readings``: the READINGS columns plus ``section`` (the section whose file holds the
    row). ``accounts``: the ACCOUNTS columns. ``history``: ``account_id, period, kwh,
    section`` of earlier months (rows outside the 12-month window are ignored).
    """

    readings: str
    accounts: str
    history: str


def bills_files(centre: DataCentre, periods: Iterable[str]) -> list[str]:
    """The bills files of ``periods`` as the catalog's manifest names them (absolute
    paths), for an engine that reads whole files: refused if a file holds a row group no
    manifest row names (a section billed again since, in another bundle), which such an
    engine would count twice."""
    import pyarrow.parquet as pq

    periods = list(periods)
    files = centre.section_files(periods=periods)
    parts: dict[str, set[int]] = {}
    for period in periods:
        for _, file, part in files.of_period("bills", period):
            parts.setdefault(file, set()).add(part)
    for file, named in parts.items():
        groups = pq.read_metadata(f"{centre.root}/{file}").num_row_groups
        if len(named - {-1}) != groups:
            raise RuntimeError(f"{file}: {groups} row groups, {len(named - {-1})} named by "
                               "the manifest; bill its period again whole first")
    return [f"{centre.root}/{file}" for file in sorted(parts)]


def parquet_sources(centre: DataCentre, period: str, months: int = 12) -> Sources:
    """The data centre's Parquet files as table expressions (hive paths give ``section``;
    bills files, found through the manifest, their ``section_id``)."""
    root = centre.uri
    window = [str(p) for p in Period.parse(period).previous(months)]
    legacy = (f"SELECT account_id, period, kwh, section FROM read_parquet("
              f"'{root}/usage_history/*/*.parquet', hive_partitioning = true)")
    billed_files = bills_files(centre, window)
    history = f"({legacy})"
    if billed_files:
        files = ", ".join(f"'{file}'" for file in billed_files)
        billed = (f"SELECT account_id, period, kwh, section_id AS section FROM "
                  f"read_parquet([{files}])")
        # A bill of an earlier period takes precedence over a legacy row, as read_history.
        history = (f"(SELECT * FROM ({legacy}) ANTI JOIN ({billed}) b "
                   f"USING (section, account_id, period) UNION ALL {billed})")
    return Sources(
        readings=(f"read_parquet('{root}/readings/period={period}/*/*.parquet', "
                  "hive_partitioning = true)"),
        accounts=f"read_parquet('{root}/accounts/*/*.parquet')",
        history=history,
    )


def register_sections(con, inputs: Iterable[tuple[str, pa.Table, pa.Table, pa.Table]],
                      prefix: str = "mem") -> Sources:
    """Register ``(section, accounts, readings, history)`` tables already in memory (as the
    kernel benchmark holds them) on ``con``, each file's section as a ``section`` column."""
    accounts, readings, history = [], [], []
    for section, a, r, h in inputs:
        accounts.append(a)
        readings.append(_with_section(r, section))
        history.append(_with_section(h, section))
    names = {"accounts": accounts, "readings": readings, "history": history}
    for name, tables in names.items():
        con.register(f"{prefix}_{name}", pa.concat_tables(tables))
    return Sources(**{name: f"{prefix}_{name}" for name in names})


def _with_section(table: pa.Table, section: str) -> pa.Table:
    column = pa.array([section], pa.string()).take(np.zeros(table.num_rows, np.int64))
    return table.append_column("section", column)


def compare_bills(con, kernel: str, baseline: str) -> dict[str, int]:
    """Bill-by-bill, line-by-line comparison of two bill relations registered on ``con``
    (keyed by section and account; ``run_id`` ignored): counts of bills compared, present on
    one side only, and differing in any column."""
    columns = ["tariff_code", "kwh", "power_factor", *CHARGE_LINES, "total_fen"]
    differ = " OR ".join(f"k.{c} IS DISTINCT FROM b.{c}" for c in columns)
    row = con.sql(f"""
        SELECT count(k.account_id) FILTER (WHERE b.account_id IS NOT NULL),
               count(k.account_id) FILTER (WHERE b.account_id IS NULL),
               count(b.account_id) FILTER (WHERE k.account_id IS NULL),
               count(*) FILTER (WHERE k.account_id IS NOT NULL AND b.account_id IS NOT NULL
                                AND ({differ}))
        FROM {kernel} k FULL JOIN {baseline} b
          ON k.section_id = b.section_id AND k.account_id = b.account_id""").fetchall()[0]
    return dict(zip(("compared", "kernel_only", "baseline_only", "differing"), row,
                    strict=True))


def bills_sql(book: Mapping[str, Tariff], period: str, sources: Sources,
              rules: AuditRules = AuditRules(),  # noqa: B008 - frozen
              dialect: Dialect = DUCKDB) -> str:
    """One query: the BILLS columns (without ``run_id``) of every billable account."""
    lines = ",\n       ".join(f"CAST({line} AS BIGINT) AS {line}" for line in CHARGE_LINES)
    total = " + ".join(CHARGE_LINES)
    before_minimum = " + ".join(line for line in CHARGE_LINES if line != "minimum_topup_fen")
    adjusted = " + ".join(ADJUSTED_LINES)
    return f"""{_audited(book, period, sources, rules, dialect)},
energy AS (
    SELECT *, CASE WHEN annual THEN ytd ELSE 0 END AS tier_start
    FROM audited WHERE billable
),
priced AS (
    SELECT e.*,
{_energy_lines(dialect)},
{_basic_line(dialect)},
{_priced("kwh", "funds_rate", dialect)} AS funds_fen,
           coalesce(fixed_amount, 0) AS fixed_fen,
           coalesce(pf.bp, 0) AS pf_bp
    FROM energy e
    LEFT JOIN pf_rate pf ON pf.standard = e.pf_standard AND pf.pf = e.power_factor
),
adjusted AS (
    SELECT *,
           CASE WHEN pf_on THEN {_half_up(f"({adjusted}) * pf_bp", 10_000, dialect)}
                ELSE 0 END AS pf_adjust_fen
    FROM priced
),
topped AS (
    SELECT *,
           CASE WHEN minimum_amount IS NULL THEN 0
                ELSE greatest(minimum_amount - ({before_minimum}), 0)
           END AS minimum_topup_fen
    FROM adjusted
)
SELECT account_id, '{period}' AS period, section AS section_id, tariff_code,
       kwh / {ENERGY_SCALE} AS kwh,
       CASE WHEN power_factor < 0 THEN NULL ELSE power_factor / 100 END AS power_factor,
       {lines},
       CAST({total} AS BIGINT) AS total_fen
FROM topped"""


def exceptions_sql(book: Mapping[str, Tariff], period: str, sources: Sources,
                   rules: AuditRules = AuditRules()) -> str:  # noqa: B008 - frozen
    """One query: ``account_id, section_id, rule`` of every audit exception (no detail)."""
    flags = {
        "negative_register": "negative",
        "register_rollback": "rollback",
        "tou_split_mismatch": "split_mismatch OR period_mismatch",
        "missing_reading": "missing_reading",
        "unknown_tariff": "unknown_tariff",
        "zero_consumption": "zero_consumption",
        "consumption_spike": "consumption_spike",
        "input_not_metered": "input_not_metered",
    }
    assert set(flags) | {"reading_without_account"} | IMPOSSIBLE_INPUT == set(RULES)
    selects = [f"SELECT account_id, section AS section_id, '{rule}' AS rule FROM audited "
               f"WHERE {flag}" for rule, flag in flags.items()]
    selects.append(
        "SELECT DISTINCT r.account_id, r.section AS section_id, "
        "'reading_without_account' AS rule FROM reading r "
        f"ANTI JOIN (SELECT section_id AS section, account_id FROM {sources.accounts}) a "
        "USING (section, account_id)"
    )
    return f"{_audited(book, period, sources, rules, DUCKDB)}\n" + "\nUNION ALL\n".join(selects)


# --- the audited accounts: readings and history folded, every rule as a flag -------------

_TOU = ("critical", "peak", "flat", "valley")


def _units(column: str, dialect: Dialect, scale: int = ENERGY_SCALE) -> str:
    """kWh (0.01 resolution) as int64 0.01 units, half to even like np.rint."""
    return f"CAST({dialect.round_even}({column} * {scale}, 0) AS BIGINT)"


def _half_up(raw: str, divisor: int, dialect: Dialect) -> str:
    """``raw / divisor`` rounded half away from zero, in integers (the integer division of
    both dialects truncates toward zero)."""
    magnitude = dialect.idiv(f"abs({raw}) + {divisor // 2}", str(divisor))
    return f"(CASE WHEN {raw} < 0 THEN -{magnitude} ELSE {magnitude} END)"


def _priced(quantity: str, price: str, dialect: Dialect) -> str:
    """A quantity in 0.01 units times a price in 1e-8 CNY, to the fen; 0 if no price."""
    return f"           coalesce({_half_up(f'({quantity}) * {price}', RAW_PER_FEN, dialect)}, 0)"


def _energy_lines(dialect: Dialect) -> str:
    parts = []
    for k, line in enumerate(TIER_LINES, start=1):
        # An open top tier has a NULL upper edge: least() skips NULLs, so it is unbounded.
        in_tier = (f"greatest(least(tier_start + kwh, t{k}_hi), t{k}_lo) "
                   f"- greatest(least(tier_start, t{k}_hi), t{k}_lo)")
        parts.append(f"{_priced(in_tier, f't{k}_price', dialect)} AS {line}")
    # Outside the critical months (critical_price NULL) critical energy is billed at peak.
    at_peak = "peak + CASE WHEN critical_price IS NULL THEN critical ELSE 0 END"
    parts += [f"{_priced('critical', 'critical_price', dialect)} AS critical_fen",
              f"{_priced(at_peak, 'peak_price', dialect)} AS peak_fen",
              f"{_priced('flat', 'flat_price', dialect)} AS flat_fen",
              f"{_priced('valley', 'valley_price', dialect)} AS valley_fen"]
    return ",\n".join(parts)


def _basic_line(dialect: Dialect) -> str:
    floor = _half_up("capacity * min_demand_bp", 10_000, dialect)
    billed = f"CASE WHEN basic_on_capacity THEN capacity ELSE greatest(max_demand, {floor}) END"
    return f"{_priced(billed, 'basic_price', dialect)} AS basic_fen"


def _audited(book: Mapping[str, Tariff], period: str, sources: Sources,
             rules: AuditRules, dialect: Dialect) -> str:
    billing = Period.parse(period)
    window = billing.previous(rules.history_months)
    prior = ", ".join(f"('{p}', {str(p.year == billing.year).upper()})" for p in window)
    tou_sums = ",\n           ".join(f"CAST(sum({c} * mult) AS BIGINT) AS {c}" for c in _TOU)
    tou_units = ",\n           ".join(
        f"coalesce({_units(f'{c}_kwh', dialect)}, 0) AS {c}" for c in _TOU)
    spike_floor = rules.spike_floor_kwh * ENERGY_SCALE
    p, q = "CAST(kwh AS DOUBLE)", "CAST(reactive AS DOUBLE)"
    ratio = f"{p} / sqrt({p} * {p} + {q} * {q})"
    return f"""WITH
tariff AS (SELECT * FROM (VALUES
    {_tariff_values(book, billing.month)}
) AS v({", ".join(_TARIFF_COLUMNS)})),
pf_rate AS (SELECT * FROM (VALUES
    {_pf_values()}
) AS v(standard, pf, bp)),
prior AS (SELECT * FROM (VALUES {prior}) AS v(period, this_year)),
reading AS (
    SELECT section, account_id,
           {_units("prev_register", dialect)} AS prev,
           {_units("cur_register", dialect)} AS cur,
           CAST(multiplier AS BIGINT) AS mult,
           {tou_units},
           peak_kwh IS NOT NULL AND valley_kwh IS NOT NULL AS row_tou,
           max_demand_kw IS NOT NULL AS demand_valid,
           coalesce({_units("max_demand_kw", dialect)}, 0) AS demand,
           reactive_kvarh IS NOT NULL AS reactive_valid,
           coalesce({_units("reactive_kvarh", dialect)}, 0) AS reactive
    FROM {sources.readings}
    WHERE period = '{period}'
),
checked AS (
    SELECT *, (prev < 0 OR cur < 0 OR {" OR ".join(f"{c} < 0" for c in _TOU)}) AS negative
    FROM reading
),
metered AS (
    SELECT section, account_id, count(*) AS n_rows,
           CAST(sum((cur - prev) * mult) AS BIGINT) AS kwh,
           {tou_sums},
           bool_and(row_tou) AS tou_metered,
           greatest(max(demand * mult), 0) AS max_demand,
           bool_or(demand_valid) AS demand_metered,
           CAST(sum(reactive * mult) AS BIGINT) AS reactive,
           bool_or(reactive_valid) AS reactive_metered,
           bool_or(negative) AS negative,
           bool_or(NOT negative AND cur < prev) AS rollback,
           bool_or(NOT negative AND cur >= prev AND row_tou
                   AND {" + ".join(_TOU)} <> cur - prev) AS split_mismatch
    FROM checked
    GROUP BY section, account_id
),
history AS (
    SELECT section, account_id, CAST(sum(u) AS BIGINT) AS total, count(*) AS months,
           CAST(sum(CASE WHEN this_year THEN u ELSE 0 END) AS BIGINT) AS ytd
    FROM (SELECT h.section, h.account_id, {_units("h.kwh", dialect)} AS u, p.this_year
          FROM {sources.history} h JOIN prior p ON p.period = h.period)
    GROUP BY section, account_id
),
account AS (
    SELECT a.section_id AS section, a.account_id, a.tariff_code, a.active, a.opened_on,
           coalesce({_units("a.capacity_kva", dialect)}, 0) AS capacity,
           coalesce({_units("a.pf_standard", dialect, 100)}, t.pf_default, 0) AS pf_standard,
           coalesce(m.n_rows, 0) > 0 AS has_reading,
           coalesce(m.kwh, 0) AS kwh,
           {", ".join(f"coalesce(m.{c}, 0) AS {c}" for c in _TOU)},
           coalesce(m.tou_metered, FALSE) AS tou_metered,
           coalesce(m.max_demand, 0) AS max_demand,
           coalesce(m.demand_metered, FALSE) AS demand_metered,
           coalesce(m.reactive, 0) AS reactive,
           coalesce(m.reactive_metered, FALSE) AS reactive_metered,
           coalesce(m.negative, FALSE) AS negative,
           coalesce(m.rollback, FALSE) AS rollback,
           coalesce(m.split_mismatch, FALSE) AS split_mismatch,
           coalesce(h.ytd, 0) AS ytd,
           CASE WHEN h.months IS NULL THEN 0
                WHEN h.total >= 0 THEN {dialect.idiv("h.total", "h.months")}
                ELSE -{dialect.idiv("h.months - 1 - h.total", "h.months")} END AS avg_kwh,
           t.code IS NOT NULL AS known,
           {", ".join(f"t.{c}" for c in _TARIFF_COLUMNS[1:])}
    FROM {sources.accounts} a
    LEFT JOIN metered m ON m.section = a.section_id AND m.account_id = a.account_id
    LEFT JOIN history h ON h.section = a.section_id AND h.account_id = a.account_id
    LEFT JOIN tariff t ON t.code = a.tariff_code
),
flagged AS (
    SELECT *,
           negative OR rollback OR split_mismatch AS row_finding,
           CASE WHEN reactive_metered AND kwh > 0
                THEN CAST(floor(({ratio}) * 100 + CAST(0.5 AS DOUBLE) + CAST(1e-9 AS DOUBLE))
                          AS BIGINT)
                ELSE -1 END AS power_factor
    FROM account
),
ruled AS (
    SELECT *,
           active AND opened_on < DATE '{billing.shift(1)}-01' AND NOT has_reading
               AS missing_reading,
           has_reading AND NOT known AS unknown_tariff,
           has_reading AND NOT row_finding AND active AND kwh = 0 AS zero_consumption,
           has_reading AND NOT row_finding AND avg_kwh > 0
               AND kwh > greatest(avg_kwh * {rules.spike_factor}, {spike_floor})
               AS consumption_spike,
           has_reading AND known AND ((needs_tou AND NOT tou_metered)
               OR (needs_demand AND NOT demand_metered)
               OR (needs_capacity AND capacity <= 0)) AS input_not_metered,
           has_reading AND known AND ((lacks_peak AND peak <> 0)
               OR (lacks_flat AND flat <> 0) OR (lacks_valley AND valley <> 0))
               AS period_mismatch
    FROM flagged
),
audited AS (
    SELECT *,
           has_reading AND known AND NOT (row_finding OR missing_reading OR unknown_tariff
               OR zero_consumption OR consumption_spike OR input_not_metered
               OR period_mismatch) AS billable
    FROM ruled
)"""


# --- the tariff book as a VALUES table ------------------------------------------------

_TARIFF_COLUMNS = (
    "code", "annual",
    "t1_lo", "t1_hi", "t1_price", "t2_lo", "t2_hi", "t2_price", "t3_lo", "t3_hi", "t3_price",
    "critical_price", "peak_price", "flat_price", "valley_price",
    "lacks_peak", "lacks_flat", "lacks_valley",
    "basic_on_capacity", "basic_price", "min_demand_bp",
    "pf_on", "pf_default", "funds_rate", "fixed_amount", "minimum_amount",
    "needs_tou", "needs_demand", "needs_capacity",
)


def _tariff_row(tariff: Tariff, month: int) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(_TARIFF_COLUMNS)
    row.update(code=tariff.code, annual=False, min_demand_bp=0, pf_on=False,
               basic_on_capacity=False)
    for component in tariff.components:
        if isinstance(component, Tiered):
            row["annual"] = component.basis == "annual"
            bounds = (0, *component.edges, None)
            for k, price in enumerate(component.prices, start=1):
                row[f"t{k}_lo"], row[f"t{k}_hi"] = bounds[k - 1], bounds[k]
                row[f"t{k}_price"] = price
        elif isinstance(component, TimeOfUse):
            row.update(peak_price=component.peak, flat_price=component.flat,
                       valley_price=component.valley)
            if component.critical is not None and month in component.critical_months:
                row["critical_price"] = component.critical
        elif isinstance(component, Basic):
            row.update(basic_on_capacity=component.basis == "capacity",
                       basic_price=component.price,
                       min_demand_bp=component.min_demand_ratio_bp)
        elif isinstance(component, PowerFactor):
            row["pf_on"] = True
            row["pf_default"] = component.standard_default
        elif isinstance(component, Funds):
            row["funds_rate"] = component.rate
        elif isinstance(component, Fixed):
            row["fixed_amount"] = component.amount_fen
        elif isinstance(component, Minimum):
            row["minimum_amount"] = component.amount_fen
        else:
            raise NotImplementedError(f"{tariff.code}: no SQL for component {component.kind!r}")
    periods = tariff.tou_periods
    for name in ("peak", "flat", "valley"):
        row[f"lacks_{name}"] = bool(periods) and name not in periods
    row.update(needs_tou="tou" in tariff.requires,
               needs_demand="max_demand" in tariff.requires,
               needs_capacity="capacity" in tariff.requires)
    return row


def _literal(value: object) -> str:
    if value is None:
        return "CAST(NULL AS BIGINT)"
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int):
        return f"CAST({value} AS BIGINT)"
    return "'" + str(value).replace("'", "''") + "'"


def _tariff_values(book: Mapping[str, Tariff], month: int) -> str:
    rows = [_tariff_row(book[code], month) for code in sorted(book)]
    return ",\n    ".join(
        "(" + ", ".join(_literal(row[c]) for c in _TARIFF_COLUMNS) + ")" for row in rows
    )


def _pf_values() -> str:
    return ", ".join(f"(CAST({s} AS BIGINT), CAST({pf} AS BIGINT), "
                     f"CAST({adjustment_bp(pf, s)} AS BIGINT))"
                     for s in STANDARDS for pf in range(101))


# --- the same query on PySpark (optional extra: pip install -e '.[spark]') ----------------


def spark_installed() -> bool:
    """Whether PySpark can be imported (the ``spark`` extra)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def spark_session(cores: int = 2):
    """A local Spark session on ``cores`` cores, set up as a user would for one machine."""
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(f"local[{cores}]").appName("gridfare-baseline")
             .config("spark.ui.enabled", "false")
             # Loopback only (it otherwise binds the machine's external interface).
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(4 * cores))
             .config("spark.driver.memory", "6g")
             # Hive path values stay strings (a section id is not a number).
             .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_sources(spark, centre: DataCentre, period: str, months: int = 12,
                  sections: list[str] | None = None) -> Sources:
    """The data centre's Parquet files as Spark temp views (``sections``: only those)."""
    from pyspark.sql import functions as F

    root = centre.uri
    readings = (spark.read.option("basePath", f"{root}/readings/period={period}")
                .parquet(f"{root}/readings/period={period}"))
    accounts = spark.read.parquet(f"{root}/accounts")
    history = spark.read.parquet(f"{root}/usage_history").select(
        "account_id", "period", "kwh", "section")
    window = [str(p) for p in Period.parse(period).previous(months)]
    billed_files = bills_files(centre, window)
    if billed_files:
        billed = (spark.read.parquet(*billed_files)
                  .select("account_id", "period", "kwh", F.col("section_id").alias("section")))
        keys = ["section", "account_id", "period"]
        history = history.join(billed, keys, "left_anti").unionByName(billed)
    if sections is not None:
        readings = readings.where(F.col("section").isin(sections))
        accounts = accounts.where(F.col("section_id").isin(sections))
        history = history.where(F.col("section").isin(sections))
    suffix = "" if sections is None else "_some"
    for name, frame in (("readings", readings), ("accounts", accounts), ("history", history)):
        frame.createOrReplaceTempView(f"gf_{name}{suffix}")
    return Sources(readings=f"gf_readings{suffix}", accounts=f"gf_accounts{suffix}",
                   history=f"gf_history{suffix}")
