"""The accounts store's configuration: one frozen dataclass, checked on load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from gridfare.errors import ConfigError
from gridfare.store.replication import ReplicationRule

__all__ = ["StoreConfig"]


@dataclass(frozen=True)
class StoreConfig:
    standbys: int = 1  # synchronous standbys beside the primary (embedded store)
    replication: ReplicationRule = ReplicationRule.REFUSE  # with no standby in sync
    floor_fen: int = 0  # a new account's overdraft floor (0: never below zero)
    commit_timeout_s: float = 5.0  # a commit waiting this long for a standby is not acked
    probe_interval_s: float = 0.5  # how often the coordinator asks each replica
    failures_to_fail_over: int = 2  # consecutive failed probes of the primary
    dsn: str | None = None  # production: a libpq multi-host DSN; the coordinator is off

    def __post_init__(self) -> None:
        if not isinstance(self.standbys, int) or not 1 <= self.standbys <= 4:
            raise ConfigError(f"store.standbys = {self.standbys!r}: must be 1 to 4")
        try:
            object.__setattr__(self, "replication", ReplicationRule(self.replication))
        except ValueError:
            raise ConfigError(f"store.replication = {self.replication!r}: must be one of "
                              f"{[r.value for r in ReplicationRule]}") from None
        if isinstance(self.floor_fen, bool) or not isinstance(self.floor_fen, int) \
                or self.floor_fen > 0:
            raise ConfigError(f"store.floor_fen = {self.floor_fen!r}: must be an integer <= 0")
        for key in ("commit_timeout_s", "probe_interval_s"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 < value <= 60:
                raise ConfigError(f"store.{key} = {value!r}: must be in (0, 60] seconds")
        if not isinstance(self.failures_to_fail_over, int) or self.failures_to_fail_over < 1:
            raise ConfigError(f"store.failures_to_fail_over = {self.failures_to_fail_over!r}: "
                              "must be an integer >= 1")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> StoreConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"store.{unknown[0]}: unknown key (known: {sorted(known)})")
        return cls(**data)

    def to_dict(self) -> dict[str, object]:
        return {f.name: (v.value if isinstance(v := getattr(self, f.name), ReplicationRule)
                         else v) for f in fields(self)}
