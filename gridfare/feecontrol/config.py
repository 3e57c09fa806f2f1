"""Fee control's parameters: strategy benchmarks, audit rules, system parameters.

Each kind is one frozen dataclass, checked on construction with an error naming the key;
``from_mapping`` reads the TOML form (``[strategy.residential]``, ``[audit]``, ``[system]``).
They are the slowly changing kinds of the versioned cache (``gridfare.feecontrol.cache``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from datasets.schemas import CUSTOMER_KINDS
from gridfare.errors import ConfigError

__all__ = ["AuditRules", "StrategyRules", "SystemParams", "Thresholds", "default_thresholds"]


def _int(owner: str, key: str, value: object, *, low: int | None = None,
         high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{owner}.{key}: expected an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{owner}.{key}: {value} is outside {low}..{high}")
    return value


@dataclass(frozen=True)
class Thresholds:
    """One customer class's strategy benchmarks (fen), the source's 'fee-control strategy'.

    A balance under ``warn_fen`` (or lasting fewer than ``warn_days`` days at the current
    daily fee) warns, under ``remind_fen`` reminds, under ``disconnect_fen`` (the overdraft
    floor, at or below zero) leads to a disconnect once it has lasted ``grace_days`` days.
    """

    warn_fen: int
    remind_fen: int
    disconnect_fen: int
    grace_days: int = 1
    warn_days: int = 5

    def __post_init__(self) -> None:
        owner = "strategy"
        for item in fields(self):
            _int(owner, item.name, getattr(self, item.name))
        if self.disconnect_fen > 0:
            raise ConfigError(f"{owner}.disconnect_fen: {self.disconnect_fen} must be <= 0 "
                              "(the disconnect level is an overdraft floor)")
        if not self.disconnect_fen < self.remind_fen <= self.warn_fen:
            raise ConfigError(f"{owner}: expected disconnect_fen < remind_fen <= warn_fen, got "
                              f"{self.disconnect_fen}, {self.remind_fen}, {self.warn_fen}")
        _int(owner, "grace_days", self.grace_days, low=0, high=60)
        _int(owner, "warn_days", self.warn_days, low=0, high=365)


def default_thresholds() -> Mapping[str, Thresholds]:
    return MappingProxyType({
        "residential": Thresholds(3_000, 1_000, -2_000, grace_days=1),
        "commercial": Thresholds(50_000, 20_000, -50_000, grace_days=2),
        "industrial": Thresholds(3_000_000, 1_000_000, -2_000_000, grace_days=3),
    })


@dataclass(frozen=True)
class AuditRules:
    """When a record is held for review instead of deducted (it never leads to a disconnect).

    ``max_daily_kwh`` per customer class: more energy a day than that is implausible;
    ``max_gap_days``: a reading more than that many days after the last settled one covers a
    gap too long to deduct unseen.
    """

    max_daily_kwh: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(
        {"residential": 200, "commercial": 5_000, "industrial": 400_000}))
    max_gap_days: int = 3

    def __post_init__(self) -> None:
        missing = [kind for kind in CUSTOMER_KINDS if kind not in self.max_daily_kwh]
        if missing:
            raise ConfigError(f"audit.max_daily_kwh: no limit for {missing[0]!r}")
        for kind, value in self.max_daily_kwh.items():
            _int("audit.max_daily_kwh", kind, value, low=1)
        _int("audit", "max_gap_days", self.max_gap_days, low=1, high=366)
        object.__setattr__(self, "max_daily_kwh", MappingProxyType(dict(self.max_daily_kwh)))


@dataclass(frozen=True)
class StrategyRules:
    """When commands may go out: no disconnect in the night window nor on a holiday (it stays
    pending until the window opens), and not before ``notice_hours`` after its notice."""

    night_start: dt.time = dt.time(22, 0)
    night_end: dt.time = dt.time(7, 0)
    holidays: frozenset[dt.date] = frozenset()
    notice_hours: int = 12

    def __post_init__(self) -> None:
        _int("strategy_rules", "notice_hours", self.notice_hours, low=0, high=24 * 14)
        for key in ("night_start", "night_end"):
            if not isinstance(getattr(self, key), dt.time):
                raise ConfigError(f"strategy_rules.{key}: expected a time of day")
        object.__setattr__(self, "holidays", frozenset(self.holidays))

    def may_disconnect(self, at: dt.datetime) -> bool:
        """Whether a disconnect may be executed at ``at`` (outside the night, not a holiday)."""
        if at.date() in self.holidays:
            return False
        now = at.time()
        if self.night_start <= self.night_end:
            in_night = self.night_start <= now < self.night_end
        else:  # the window wraps midnight (22:00-07:00)
            in_night = now >= self.night_start or now < self.night_end
        return not in_night


@dataclass(frozen=True)
class SystemParams:
    """How runs are made: the hour a batch run decides at, command retries."""

    decide_hour: int = 9  # a batch run for date D decides as of D at this hour
    command_attempts: int = 4  # deliveries before a command goes to the manual-work queue
    command_backoff_s: float = 0.5  # first retry delay; doubles each attempt

    def __post_init__(self) -> None:
        _int("system", "decide_hour", self.decide_hour, low=0, high=23)
        _int("system", "command_attempts", self.command_attempts, low=1, high=100)
        if not 0 <= self.command_backoff_s <= 3600:
            raise ConfigError(f"system.command_backoff_s: {self.command_backoff_s} is "
                              "outside 0..3600")

    def decide_at(self, run_date: dt.date) -> dt.datetime:
        return dt.datetime.combine(run_date, dt.time(self.decide_hour))


def thresholds_from_mapping(data: Mapping[str, object]) -> Mapping[str, Thresholds]:
    """``{kind: {warn_fen, remind_fen, disconnect_fen, grace_days?, warn_days?}}``."""
    result = dict(default_thresholds())
    for kind, values in data.items():
        if kind not in CUSTOMER_KINDS:
            raise ConfigError(f"strategy.{kind}: not a customer kind ({', '.join(CUSTOMER_KINDS)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"strategy.{kind}: expected a table")
        known = {item.name for item in fields(Thresholds)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"strategy.{kind}.{unknown[0]}: unknown key")
        try:
            result[kind] = Thresholds(**values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(f"strategy.{kind}: {exc}") from exc
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("strategy", f"strategy.{kind}", 1)) from None
    return MappingProxyType(result)
