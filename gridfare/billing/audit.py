"""Audit rules applied before billing: an account that breaks one goes to exceptions, not bills.

Each rule has a stable name (the ``rule`` column of the exceptions dataset, documented in
docs/data-format.md). Thresholds live in one frozen config, validated on construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridfare.errors import ConfigError

# Rule names, in the order an account is checked. An account gets every rule it breaks.
NEGATIVE_REGISTER = "negative_register"
REGISTER_ROLLBACK = "register_rollback"
TOU_SPLIT_MISMATCH = "tou_split_mismatch"
READING_WITHOUT_ACCOUNT = "reading_without_account"
MISSING_READING = "missing_reading"
UNKNOWN_TARIFF = "unknown_tariff"
ZERO_CONSUMPTION = "zero_consumption"
CONSUMPTION_SPIKE = "consumption_spike"
INPUT_NOT_METERED = "input_not_metered"
# A quantity that is not finite, negative where it cannot be, or beyond what the tariff book
# prices exactly in int64 fen (gridfare.tariffs.bounds); and a meter point id below 1 or
# read on two rows of one section and period (a meter belongs to one account).
OUT_OF_RANGE = "out_of_range"
METER_CONFLICT = "meter_conflict"

RULES: tuple[str, ...] = (
    NEGATIVE_REGISTER,
    REGISTER_ROLLBACK,
    TOU_SPLIT_MISMATCH,
    READING_WITHOUT_ACCOUNT,
    MISSING_READING,
    UNKNOWN_TARIFF,
    ZERO_CONSUMPTION,
    CONSUMPTION_SPIKE,
    INPUT_NOT_METERED,
    OUT_OF_RANGE,
    METER_CONFLICT,
)
# Rules against input no metering system produces (garbage, or a file written by hand):
# the DuckDB baseline (bench/_duckdb_bills.py) does not reproduce them.
IMPOSSIBLE_INPUT = frozenset({OUT_OF_RANGE, METER_CONFLICT})


@dataclass(frozen=True)
class AuditRules:
    """Thresholds of the audit; defaults follow common utility practice."""

    spike_factor: int = 5  # consumption above this many times the monthly average is a spike
    spike_floor_kwh: int = 100  # ...but never below this, so tiny users are not flagged
    history_months: int = 12  # months of history behind the average

    def __post_init__(self) -> None:
        for key in ("spike_factor", "spike_floor_kwh", "history_months"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"audit.{key}: expected a positive integer, got {value!r}")
