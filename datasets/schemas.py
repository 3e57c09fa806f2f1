"""Arrow schemas of every dataset in the data centre (documented in docs/data-format.md).

Energy columns are kWh (float64, 0.01 kWh resolution); money columns are int64 fen and end
in ``_fen``. Partition keys (``period``, ``section``) live in the hive path, not the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pyarrow as pa

from gridfare.errors import InvalidInput
from gridfare.period import NOT_A_MONTH, month_indices

# A section id is a path component (``section=<id>``) and a query value: 1-64 letters,
# digits, ``_``, ``-`` or ``.``, never a dot first (no hidden names) and never ``..``.
SECTION_ID = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def check_section_id(section: object) -> str:
    """``section`` if it is a valid section id, else InvalidInput naming it and the rule."""
    if not isinstance(section, str) or not SECTION_ID.fullmatch(section):
        raise InvalidInput(f"section {section!r} is not a valid section id: 1-64 letters, "
                           "digits, '_', '-' or '.' (not first, no '..')")
    return section

# Canonical charge lines, in bill order. Every tariff component writes into these; a bill's
# total_fen is the sum of all of them.
CHARGE_LINES: tuple[str, ...] = (
    "tier1_fen",
    "tier2_fen",
    "tier3_fen",
    "critical_fen",
    "peak_fen",
    "flat_fen",
    "valley_fen",
    "basic_fen",
    "pf_adjust_fen",
    "funds_fen",
    "fixed_fen",
    "minimum_topup_fen",
)

CUSTOMER_KINDS: tuple[str, ...] = ("residential", "commercial", "industrial")

ACCOUNTS = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("section_id", pa.string(), nullable=False),
        pa.field("customer_kind", pa.string(), nullable=False),
        pa.field("tariff_code", pa.string(), nullable=False),
        pa.field("capacity_kva", pa.float64()),  # contracted capacity, two-part tariffs
        pa.field("pf_standard", pa.float64()),  # 0.90/0.85/0.80; null: the tariff default; 0: none
        pa.field("active", pa.bool_(), nullable=False),
        pa.field("opened_on", pa.date32(), nullable=False),
    ]
)

# The generator's own state of a generated city, one row per account (the ACCOUNTS columns
# first): what ``gridfare generate --continue`` needs to bill the city's next period from
# the same accounts and meters. Not read by billing; a utility's own data centre has none.
GENERATOR_STATE = pa.schema(
    [
        *ACCOUNTS,
        pa.field("period", pa.string(), nullable=False),  # the last period generated
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("code", pa.int8(), nullable=False),  # index into TARIFF_MIX (before dirt)
        pa.field("level_kwh", pa.float64(), nullable=False),  # typical month, after mult.
        pa.field("load_factor", pa.float64(), nullable=False),
        pa.field("multiplier", pa.int32(), nullable=False),
        pa.field("meter_point_id", pa.int64(), nullable=False),  # the meter in place now
        pa.field("register", pa.int64(), nullable=False),  # its last read value, 0.01 units
    ]
)

# Months a history fold (``history/period=P/section=S``: billed kWh as of the close of P,
# written with P's bills) holds: P and the 11 before it, the next period's 12-month window.
FOLD_MONTHS = 12
# A fold's rows are USAGE_HISTORY's with the billed month as its index, ``year * 12 +
# month - 1`` (``gridfare.period.index_of``), not a ``YYYY-MM`` label: billing compares
# months, and reading labels back into months took three passes over a section's ~6,000
# labels in each period. Billing's history rows have this schema in memory too (what
# ``DataCentre.read_history_carry`` gives and ``fold_history`` makes). ``month``, not
# ``period``: ``period`` in the path is the partition's (the period the fold closes).
HISTORY_FOLD = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("month", pa.int32(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
    ]
)


def history_months(history: pa.Table) -> pa.Table:
    """``history`` as billing's history rows (``HISTORY_FOLD``: the month as its index):
    as is when it has them already (a fold, ``read_history_carry``), else read from the
    ``period`` labels of ``USAGE_HISTORY`` rows. A row whose label is not a ``YYYY-MM``
    month is left out: no month's window holds it."""
    if "month" in history.column_names:
        return history
    months = month_indices(history["period"])
    rows = pa.table([history["account_id"], pa.array(months), history["kwh"]],
                    schema=HISTORY_FOLD)
    if months.size and months.min() == NOT_A_MONTH:
        rows = rows.filter(pa.array(months != NOT_A_MONTH))
    return rows


def months_within(rows: pa.Table, first: int, last: int | None = None) -> pa.Table:
    """The ``HISTORY_FOLD`` rows of month indices ``first`` through ``last`` (or later,
    without ``last``); the table itself when every row is (one min and max, no copy)."""
    if rows.num_rows == 0:
        return rows
    index = rows["month"].to_numpy()
    if index.min() >= first and (last is None or index.max() <= last):
        return rows
    keep = index >= first if last is None else (index >= first) & (index <= last)
    return rows.filter(pa.array(keep))

# One row per meter point and period; an account whose meter was replaced has two rows.
# Register values are meter readings before the multiplier (CT x PT ratio).
READINGS = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("meter_point_id", pa.int64(), nullable=False),
        pa.field("period", pa.string(), nullable=False),
        pa.field("reading_date", pa.date32(), nullable=False),
        pa.field("prev_register", pa.float64(), nullable=False),
        pa.field("cur_register", pa.float64(), nullable=False),
        pa.field("multiplier", pa.int32(), nullable=False),
        # TOU register advances (before multiplier); null where not metered.
        pa.field("critical_kwh", pa.float64()),
        pa.field("peak_kwh", pa.float64()),
        pa.field("flat_kwh", pa.float64()),
        pa.field("valley_kwh", pa.float64()),
        pa.field("max_demand_kw", pa.float64()),  # before multiplier; null where not metered
        pa.field("reactive_kvarh", pa.float64()),  # advance before multiplier; null: not metered
    ]
)

# Billed monthly energy per account, from before gridfare (the legacy system's history).
USAGE_HISTORY = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("period", pa.string(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
    ]
)

BILLS = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("period", pa.string(), nullable=False),
        pa.field("section_id", pa.string(), nullable=False),
        pa.field("tariff_code", pa.string(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
        pa.field("power_factor", pa.float64()),
        *[pa.field(line, pa.int64(), nullable=False) for line in CHARGE_LINES],
        pa.field("total_fen", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)

AUDIT_EXCEPTIONS = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("period", pa.string(), nullable=False),
        pa.field("section_id", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)

# Import rejects: the source line (1-based, header is line 1 for CSV) and the rule broken.
REJECTS = pa.schema(
    [
        pa.field("line", pa.int64(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
    ]
)

# ---------------------------------------------------------------- prepaid fee control
# The collection database: an append-only feed of what the meters' collectors deliver.
COLLECTED_KINDS: tuple[str, ...] = ("daily_freeze", "interval", "event", "payment")
METER_EVENTS: tuple[str, ...] = ("power_off", "power_on", "tamper", "cover_open")

# One row per collected record. Registers are cumulative kWh after the multiplier (prepaid
# meters bill what they show), 0.01 kWh resolution; a resend repeats the record_id.
COLLECTED = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("measured_at", pa.timestamp("s"), nullable=False),  # meter's clock, local time
        pa.field("received_at", pa.timestamp("s"), nullable=False),  # collection database's clock
        pa.field("register_kwh", pa.float64()),  # freeze / interval: total register
        pa.field("critical_kwh", pa.float64()),  # TOU registers (cumulative); null: not TOU
        pa.field("peak_kwh", pa.float64()),
        pa.field("flat_kwh", pa.float64()),
        pa.field("valley_kwh", pa.float64()),
        pa.field("event", pa.string()),  # kind event: one of METER_EVENTS
        pa.field("amount_fen", pa.int64()),  # kind payment: the amount paid, > 0
        pa.field("batch", pa.int64(), nullable=False),  # the feed batch that brought it
    ]
)

# Records pre-processing refused, with the first rule broken.
FEE_REJECTS = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("run_date", pa.date32(), nullable=False),
    ]
)

# Accounts the fee audit held for review: no deduction, no disconnect until reviewed.
FEE_HOLDS = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("run_date", pa.date32(), nullable=False),
    ]
)

# Each account's fee-control state after a run date: the last settled reading, the energy
# settled so far in its month and year (tiers fill from there), and the strategy state.
FEE_STATE = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("settled_at", pa.timestamp("s"), nullable=False),
        pa.field("register_kwh", pa.float64(), nullable=False),
        pa.field("critical_kwh", pa.float64()),
        pa.field("peak_kwh", pa.float64()),
        pa.field("flat_kwh", pa.float64()),
        pa.field("valley_kwh", pa.float64()),
        pa.field("month_kwh", pa.float64(), nullable=False),  # settled in settled_at's month
        pa.field("month_critical_kwh", pa.float64(), nullable=False),
        pa.field("month_peak_kwh", pa.float64(), nullable=False),
        pa.field("month_flat_kwh", pa.float64(), nullable=False),
        pa.field("month_valley_kwh", pa.float64(), nullable=False),
        pa.field("year_kwh", pa.float64(), nullable=False),  # settled earlier in the year
        pa.field("state", pa.string(), nullable=False),  # gridfare.feecontrol.strategy.State
        pa.field("below_since", pa.date32()),  # first day under the disconnect level
        pa.field("notice_at", pa.timestamp("s")),  # disconnect notice sent
        pa.field("run_date", pa.date32(), nullable=False),
    ]
)

# One row per account decided in a run: deduction, balance, level and action.
FEE_DECISIONS = pa.schema(
    [
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("customer_kind", pa.string(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),  # energy since the last settlement
        pa.field("deduction_fen", pa.int64(), nullable=False),
        pa.field("balance_fen", pa.int64(), nullable=False),  # after the deduction
        pa.field("level", pa.string(), nullable=False),  # gridfare.feecontrol.benchmark.Level
        pa.field("state", pa.string(), nullable=False),
        pa.field("action", pa.string()),  # gridfare.feecontrol.strategy.Action; null: none
        pa.field("price_version", pa.int64(), nullable=False),
        pa.field("run_date", pa.date32(), nullable=False),
    ]
)

# Commands to user terminals; idempotency_key is also the message's Nats-Msg-Id.
FEE_COMMANDS = pa.schema(
    [
        pa.field("idempotency_key", pa.string(), nullable=False),
        pa.field("account_id", pa.int64(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("customer_kind", pa.string(), nullable=False),
        pa.field("balance_fen", pa.int64(), nullable=False),
        pa.field("run_date", pa.date32(), nullable=False),
    ]
)

# Tariff comparisons (rayjobs/tariff_compare.py): one row per (profile, tariff), a year of
# hourly load billed under each tariff. Money is int64 in the tariff's minor unit (cents,
# fen: see ``currency``); ``rank`` is 1 for the profile's cheapest tariff in that currency.
TARIFF_COMPARISON_LINES = ("energy_minor", "demand_minor", "fixed_minor",
                           "minimum_adjustment_minor")
TARIFF_COMPARISONS = pa.schema(
    [
        pa.field("comparison_id", pa.string(), nullable=False),
        pa.field("profile_id", pa.string(), nullable=False),
        pa.field("tariff", pa.string(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("year", pa.int32(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
        *[pa.field(line, pa.int64(), nullable=False) for line in TARIFF_COMPARISON_LINES],
        pa.field("total_minor", pa.int64(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
    ]
)


# The catalog's manifest (``section_files``): where each section's bills and history fold
# are, a file per bundle of sections (``datasets/datacentre.py``).
ManifestRow = tuple[str, str, str, str, int]  # dataset, period, section_id, file, part


class SectionFiles:
    """Where sections' bills and folds are: rows of the catalog's manifest, looked up by
    ``(dataset, period, section)``. ``file`` is relative to the data centre's root; ``part``
    is the section's row group (bills) or record batch (folds), -1 when it has no rows."""

    def __init__(self, rows: Iterable[ManifestRow] = ()) -> None:
        self._rows: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._by_section: dict[str, list[ManifestRow]] = {}
        for dataset, period, section, file, part in rows:
            key = (dataset, period, section)
            if key in self._rows:
                self._by_section[section].remove((*key, *self._rows[key]))
            self._rows[key] = (file, int(part))
            self._by_section.setdefault(section, []).append(
                (dataset, period, section, file, int(part)))

    def __len__(self) -> int:
        return len(self._rows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SectionFiles) and other._rows == self._rows

    def __reduce__(self):  # pickled as its rows (it crosses to the billing tasks)
        return SectionFiles, (self.rows(),)

    def get(self, dataset: str, period: str, section: str) -> tuple[str, int] | None:
        return self._rows.get((dataset, period, section))

    def periods(self, dataset: str) -> set[str]:
        return {period for d, period, _ in self._rows if d == dataset}

    def of_period(self, dataset: str, period: str) -> list[tuple[str, str, int]]:
        """``(section, file, part)`` of one period's sections, in section order."""
        return sorted((section, *location) for (d, p, section), location in
                      self._rows.items() if d == dataset and p == period)

    def rows(self) -> list[ManifestRow]:
        return sorted((*key, *location) for key, location in self._rows.items())

    def of_section(self, section: str) -> list[ManifestRow]:
        return list(self._by_section.get(section, ()))

    def only(self, sections: Iterable[str]) -> SectionFiles:
        """The rows of ``sections`` alone (what one task needs to be sent)."""
        return SectionFiles(row for section in sections for row in self.of_section(section))
