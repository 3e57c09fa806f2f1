"""Arrow schemas of every dataset in the data centre (documented in docs/data-format.md).

Energy columns are kWh (float64, 0.01 kWh resolution); money columns are int64 fen and end
in ``_fen``. Partition keys (``period``, ``section``) live in the hive path, not the file.
"""

from __future__ import annotations

import re

import pyarrow as pa

from gridfare.errors import InvalidInput

# A section id is a path component (``section=<id>``) and a query value: 1-64 letters,
# digits, ``_``, ``-`` or ``.``, never a dot first (no hidden names) and never ``..``.
SECTION_ID = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def check_section_id(section: object) -> str:
    """``section`` if it is a valid section id, else InvalidInput naming it and the rule."""
    if not isinstance(section, str) or not SECTION_ID.fullmatch(section):
        raise InvalidInput(f"section {section!r}: a section id is 1-64 letters, digits, "
                           "'_', '-' or '.' (not first, no '..')")
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
        pa.field("pf_standard", pa.float64()),  # 0.90 / 0.85 / 0.80, null: no PF adjustment
        pa.field("active", pa.bool_(), nullable=False),
        pa.field("opened_on", pa.date32(), nullable=False),
    ]
)

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
