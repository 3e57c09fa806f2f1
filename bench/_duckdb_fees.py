"""The DuckDB baseline of fee control: one SQL statement computing the same deductions and
decisions as the six stages, from the same files.

``fees_sql(...)`` reads a collection date's feed, the accounts' state before it, the
customer files and the balances before the run, and gives per decided account
``account_id, deduction_fen, balance_fen, level, state, action`` exactly as
``gridfare.feecontrol.pipeline`` does: resends dropped, malformed records left out, the
newest freeze reading per account, payments added, the month's increase of the energy and
funds lines (tier edges from ``_duckdb_bills``' tariff rows, each line rounded half-up),
the audit's holds, the class thresholds with grace and days of credit, and the strategy's
transition table (``TRANSITIONS``, as a VALUES table). ``tests/unit/test_bench_fee_baseline``
checks it against the pipeline row by row.

Not reproduced: deductions refused at the store's overdraft floor (the benchmark's floor is
far below every balance, and the run asserts none was refused), and readings of more than
one calendar month in one run (the tariff rows are built for the month the run's readings
close; ``fees_sql`` refuses a run that spans two).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from bench._duckdb_bills import (
    _TARIFF_COLUMNS,
    DUCKDB,
    _energy_lines,
    _priced,
    _tariff_values,
    _units,
)
from datasets.schemas import COLLECTED_KINDS, METER_EVENTS
from gridfare.feecontrol.benchmark import Level
from gridfare.feecontrol.config import AuditRules, StrategyRules, Thresholds
from gridfare.feecontrol.strategy import TRANSITIONS, Effective
from gridfare.tariffs import Tariff

__all__ = ["fees_sql"]

_REGISTERS = ("critical", "peak", "flat", "valley")
_EPOCH = dt.datetime(1970, 1, 1)


def _list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def fees_sql(book: Mapping[str, Tariff], run_date: dt.date, decide_at: dt.datetime,
             sources: Mapping[str, str], thresholds: Mapping[str, Thresholds],
             audit: AuditRules, strategy: StrategyRules) -> str:
    """The query; ``sources`` maps feed, state, customers, balances to table expressions."""
    month = (run_date - dt.timedelta(days=1)).month  # the day a run date's freeze closes
    d = DUCKDB
    tariffs = (f"(VALUES {_tariff_values(book, month)}) AS t({', '.join(_TARIFF_COLUMNS)})")
    limits = ", ".join(
        f"('{kind}', {t.warn_fen}, {t.remind_fen}, {t.disconnect_fen}, {t.grace_days}, "
        f"{t.warn_days}, {audit.max_daily_kwh[kind] * 100})"
        for kind, t in thresholds.items())
    transitions = ", ".join(f"('{state.value}', {int(effective)}, '{nxt.value}', "
                            f"'{action.value}')"
                            for state, row in TRANSITIONS.items()
                            for effective, (nxt, action) in row.items())
    run_day = (run_date - dt.date(1970, 1, 1)).days
    now = int((decide_at - _EPOCH).total_seconds())
    may = "TRUE" if strategy.may_disconnect(decide_at) else "FALSE"
    units = {r: _units(f"f.{r}_kwh", d) for r in _REGISTERS}
    tou_sum = " + ".join(f"coalesce({_units(f'{r}_kwh', d)}, 0)" for r in _REGISTERS)
    tou_any = " OR ".join(f"{r}_kwh IS NOT NULL" for r in _REGISTERS)
    negative = " OR ".join(f"coalesce({c}, 0) < 0"
                           for c in ("register_kwh", *(f"{r}_kwh" for r in _REGISTERS)))
    finer = " OR ".join(
        f"abs(coalesce({c}, 0) * 100 - round(coalesce({c}, 0) * 100)) > "
        f"1e-6 * greatest(1.0, abs(coalesce({c}, 0)))"
        for c in ("register_kwh", *(f"{r}_kwh" for r in _REGISTERS)))
    lines = ("tier1_fen", "tier2_fen", "tier3_fen", "critical_fen", "peak_fen", "flat_fen",
             "valley_fen")
    sum_lines = " + ".join(f"a.{line}" for line in lines)
    return f"""
WITH recs AS (
    SELECT *, row_number() OVER () AS rn FROM {sources['feed']}
), firsts AS (
    SELECT * FROM recs QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY rn) = 1
), checked AS (
    SELECT *, CASE
        WHEN kind NOT IN ({_list(COLLECTED_KINDS)}) THEN 1
        WHEN kind IN ('daily_freeze', 'interval') AND register_kwh IS NULL THEN 2
        WHEN kind IN ('daily_freeze', 'interval') AND ({negative}) THEN 3
        WHEN kind IN ('daily_freeze', 'interval') AND ({finer}) THEN 4
        WHEN kind IN ('daily_freeze', 'interval') AND ({tou_any})
             AND ({tou_sum}) <> coalesce({_units('register_kwh', d)}, 0) THEN 5
        WHEN kind = 'payment' AND coalesce(amount_fen, 0) <= 0 THEN 6
        WHEN kind = 'event' AND (event IS NULL OR event NOT IN ({_list(METER_EVENTS)})) THEN 7
        END AS rule
    FROM firsts
), good AS (
    SELECT c.* FROM checked c JOIN {sources['customers']} cu USING (account_id)
    WHERE c.rule IS NULL
), newest AS (
    SELECT * FROM good WHERE kind = 'daily_freeze'
    QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY measured_at DESC, rn) = 1
), paid AS (
    SELECT g.account_id, sum(g.amount_fen) AS paid_fen FROM good g
    JOIN {sources['balances']} b USING (account_id) WHERE g.kind = 'payment' GROUP BY 1
), tamper AS (
    SELECT DISTINCT account_id FROM good WHERE kind = 'event' AND event = 'tamper'
), pending AS (
    SELECT s.account_id FROM {sources['state']} s JOIN {sources['customers']} cu
    USING (account_id) WHERE s.state = 'disconnect_pending'
), payers AS (
    SELECT DISTINCT account_id FROM good WHERE kind = 'payment'
), ids AS (
    SELECT account_id FROM newest UNION SELECT account_id FROM payers
    UNION SELECT account_id FROM tamper UNION SELECT account_id FROM pending
), j AS (
    SELECT i.account_id, cu.customer_kind, cu.tariff_code,
           b.balance_fen IS NOT NULL AS has_balance,
           coalesce(b.balance_fen, 0) + coalesce(p.paid_fen, 0) AS balance,
           s.account_id IS NOT NULL AS has_state, f.account_id IS NOT NULL AS has_reading,
           epoch(s.settled_at)::BIGINT AS settled_s, epoch(f.measured_at)::BIGINT AS measured_s,
           coalesce({_units('f.register_kwh', d)}, 0) - coalesce({_units('s.register_kwh', d)}, 0)
               AS delta,
           {", ".join(f"coalesce({units[r]}, 0) - coalesce({_units(f's.{r}_kwh', d)}, 0) AS d_{r}"
                      for r in _REGISTERS)},
           ({" OR ".join(f"f.{r}_kwh IS NOT NULL" for r in _REGISTERS)}) AS tou_registers,
           coalesce({_units('s.month_kwh', d)}, 0) AS month_units,
           {", ".join(f"coalesce({_units(f's.month_{r}_kwh', d)}, 0) AS m_{r}"
                      for r in _REGISTERS)},
           coalesce({_units('s.year_kwh', d)}, 0) AS year_units,
           coalesce(s.state, 'normal') AS state0,
           (s.below_since - DATE '1970-01-01')::BIGINT AS below0,
           epoch(s.notice_at)::BIGINT AS notice0,
           year(f.measured_at - INTERVAL 1 SECOND) AS y1,
           month(f.measured_at - INTERVAL 1 SECOND) AS mo1,
           year(s.settled_at - INTERVAL 1 SECOND) AS y0,
           month(s.settled_at - INTERVAL 1 SECOND) AS mo0,
           tm.account_id IS NOT NULL AS tamper,
           t.*
    FROM ids i
    JOIN {sources['customers']} cu USING (account_id)
    LEFT JOIN {sources['balances']} b USING (account_id)
    LEFT JOIN paid p USING (account_id)
    LEFT JOIN {sources['state']} s USING (account_id)
    LEFT JOIN newest f USING (account_id)
    LEFT JOIN tamper tm USING (account_id)
    LEFT JOIN {tariffs} ON t.code = cu.tariff_code
), e AS (
    SELECT *,
           has_reading AND has_state AND measured_s > settled_s AS valid,
           code IS NOT NULL AS known
    FROM j
), e2 AS (
    SELECT *,
           valid AND (delta < 0 OR (tou_registers AND
               ({" OR ".join(f"d_{r} < 0" for r in _REGISTERS)}))) AS rollback,
           valid AND known AND (coalesce(needs_tou, FALSE) <> tou_registers) AS not_metered,
           CASE WHEN valid THEN (measured_s - settled_s) // 86400 ELSE 0 END AS days,
           has_state AND y1 = y0 AS same_year,
           has_state AND y1 = y0 AND mo1 = mo0 AS same_month
    FROM e
), e3 AS (
    SELECT *, valid AND NOT rollback AND known AND NOT not_metered AS priced,
           CASE WHEN same_month THEN month_units ELSE 0 END AS base_month,
           CASE WHEN same_month THEN year_units WHEN same_year THEN year_units + month_units
                ELSE 0 END AS base_year,
           {", ".join(f"CASE WHEN same_month THEN m_{r} ELSE 0 END AS b_{r}"
                      for r in _REGISTERS)}
    FROM e2
), usage_before AS (
    SELECT account_id, CASE WHEN annual THEN base_year ELSE 0 END AS tier_start,
           base_month AS kwh,
           {", ".join(f"CASE WHEN needs_tou THEN b_{r} ELSE 0 END AS {r}" for r in _REGISTERS)},
           {", ".join(c for c in _TARIFF_COLUMNS if c != 'code')}
    FROM e3 WHERE priced
), usage_after AS (
    SELECT account_id, CASE WHEN annual THEN base_year ELSE 0 END AS tier_start,
           base_month + delta AS kwh,
           {", ".join(f"CASE WHEN needs_tou THEN b_{r} + d_{r} ELSE 0 END AS {r}"
                      for r in _REGISTERS)},
           {", ".join(c for c in _TARIFF_COLUMNS if c != 'code')}
    FROM e3 WHERE priced
), lines_before AS (
    SELECT account_id, {_energy_lines(d)},
{_priced('kwh', 'funds_rate', d)} AS funds_fen FROM usage_before
), lines_after AS (
    SELECT account_id, {_energy_lines(d)},
{_priced('kwh', 'funds_rate', d)} AS funds_fen FROM usage_after
), fee AS (
    SELECT a.account_id, ({sum_lines} + a.funds_fen)
         - ({" + ".join(f"b.{line}" for line in lines)} + b.funds_fen) AS fee_fen
    FROM lines_after a JOIN lines_before b USING (account_id)
), audited AS (
    SELECT e3.*, coalesce(fee.fee_fen, 0) AS fee_fen, lim.*,
           (NOT has_balance) OR (valid AND NOT known) OR not_metered OR rollback OR tamper
           OR (valid AND days > {audit.max_gap_days})
           OR (priced AND delta > lim.max_units * greatest(days, 1)) AS held
    FROM e3 LEFT JOIN fee USING (account_id)
    JOIN (VALUES {limits}) AS lim(kind, warn_fen, remind_fen, floor_fen, grace_days,
                                  warn_days, max_units) ON lim.kind = e3.customer_kind
), bench AS (
    SELECT *, CASE WHEN held THEN 0 ELSE fee_fen END AS deduction_fen,
           balance - CASE WHEN held THEN 0 ELSE fee_fen END AS balance_after
    FROM audited
), levels AS (
    SELECT *, balance_after < floor_fen AS below,
           CASE WHEN balance_after < floor_fen THEN coalesce(below0, {run_day}) END AS below_since
    FROM bench
), leveled AS (
    SELECT *, CASE
        WHEN below AND {run_day} - below_since >= grace_days THEN {int(Level.DISCONNECT)}
        WHEN below THEN {int(Level.GRACE)}
        WHEN balance_after < remind_fen THEN {int(Level.REMINDER)}
        WHEN balance_after < warn_fen OR (deduction_fen > 0 AND days > 0
             AND balance_after * days < warn_days * deduction_fen) THEN {int(Level.WARNING)}
        ELSE {int(Level.NORMAL)} END AS level
    FROM levels
), effective AS (
    SELECT *, CASE
        WHEN level >= {int(Level.GRACE)} AND held THEN {int(Effective.HELD)}
        WHEN level = {int(Level.DISCONNECT)} AND notice0 IS NOT NULL
             AND notice0 + {strategy.notice_hours * 3600} <= {now} AND {may}
             THEN {int(Effective.READY)}
        ELSE level END AS eff
    FROM leveled
)
SELECT x.account_id, x.deduction_fen, x.balance_after AS balance_fen,
       (['normal', 'warning', 'reminder', 'grace', 'disconnect'])[x.level + 1] AS level,
       tr.next_state AS state, nullif(tr.action, '') AS action
FROM effective x
JOIN (VALUES {transitions}) AS tr(state, eff, next_state, action)
  ON tr.state = x.state0 AND tr.eff = x.eff
ORDER BY x.account_id
"""
