"""The versioned cache: what a batch is decided with, pinned to one version of each kind.

Six kinds (the source's distributed cache): customer files, account balances, price
parameters, strategy benchmarks, audit rules, system parameters. The five that change
slowly are immutable values published under a version (``Registry``): an update is a new
version, never a change in place. A batch takes one ``Snapshot`` (a version of each) when
it starts and every stage of it reads that snapshot only, so **no record is estimated with
a mix of old and new prices**; the next batch sees the new version. Balances change with
every payment and deduction: they are read through from the accounts service
(``BalanceCache``), kept for one cycle and updated from the service's own answers.

``LocalCache`` is a worker's copy of published values by (kind, version) with hit and miss
counts (the hit-rate metrics); fetching a missing one is I/O passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gridfare.errors import ConfigError
from gridfare.feecontrol.config import AuditRules, StrategyRules, SystemParams, Thresholds
from gridfare.feecontrol.ports import BALANCES, AccountsPort
from gridfare.tariffs import Tariff

__all__ = ["BalanceCache", "Kind", "LocalCache", "Registry", "Snapshot"]


class Kind(str, Enum):
    """The versioned kinds (balances are read through, not versioned)."""

    CUSTOMERS = "customers"
    PRICES = "prices"
    THRESHOLDS = "thresholds"
    AUDIT = "audit"
    STRATEGY = "strategy"
    SYSTEM = "system"


@dataclass(frozen=True)
class Snapshot:
    """One version of each kind: everything a batch is decided with."""

    versions: Mapping[Kind, int]
    customers: pa.Table  # account_id, customer_kind, tariff_code of prepaid accounts
    prices: Mapping[str, Tariff]  # tariff code -> tariff
    thresholds: Mapping[str, Thresholds]  # customer kind -> benchmarks
    audit: AuditRules
    strategy: StrategyRules
    system: SystemParams

    @property
    def price_version(self) -> int:
        return self.versions[Kind.PRICES]


_TYPES: dict[Kind, type | tuple[type, ...]] = {
    Kind.CUSTOMERS: pa.Table,
    Kind.PRICES: Mapping,
    Kind.THRESHOLDS: Mapping,
    Kind.AUDIT: AuditRules,
    Kind.STRATEGY: StrategyRules,
    Kind.SYSTEM: SystemParams,
}


@dataclass
class Registry:
    """The current version of each kind and its value; ``publish`` makes a new version."""

    _values: dict[tuple[Kind, int], Any] = field(default_factory=dict)
    _current: dict[Kind, int] = field(default_factory=dict)

    def publish(self, kind: Kind, value: Any) -> int:
        kind = Kind(kind)
        if not isinstance(value, _TYPES[kind]):
            raise ConfigError(f"cache: {kind.value} must be a {_TYPES[kind]}, got "
                              f"{type(value).__name__}")
        version = self._current.get(kind, 0) + 1
        self._values[(kind, version)] = value
        self._current[kind] = version
        return version

    def versions(self) -> dict[Kind, int]:
        missing = [kind.value for kind in Kind if kind not in self._current]
        if missing:
            raise ConfigError(f"cache: nothing published for {', '.join(missing)}")
        return dict(self._current)

    def get(self, kind: Kind, version: int) -> Any:
        try:
            return self._values[(Kind(kind), version)]
        except KeyError:
            raise ConfigError(f"cache: no {Kind(kind).value} version {version}") from None


@dataclass
class LocalCache:
    """A worker's values by (kind, version); a version never changes, so a hit is exact."""

    fetch: Callable[[Kind, int], Any]
    _values: dict[tuple[Kind, int], Any] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    keep: int = 2  # versions kept per kind (the current one and the one before)

    def snapshot(self, versions: Mapping[Kind, int]) -> Snapshot:
        values = {kind: self._get(Kind(kind), version) for kind, version in versions.items()}
        return Snapshot(
            versions=MappingProxyType({Kind(k): v for k, v in versions.items()}),
            customers=values[Kind.CUSTOMERS], prices=values[Kind.PRICES],
            thresholds=values[Kind.THRESHOLDS], audit=values[Kind.AUDIT],
            strategy=values[Kind.STRATEGY], system=values[Kind.SYSTEM])

    def hit_rate(self) -> float:
        hits, total = sum(self.hits.values()), sum(self.hits.values()) + sum(
            self.misses.values())
        return hits / total if total else 0.0

    def _get(self, kind: Kind, version: int) -> Any:
        key = (kind, version)
        if key in self._values:
            self.hits[kind.value] = self.hits.get(kind.value, 0) + 1
            return self._values[key]
        self.misses[kind.value] = self.misses.get(kind.value, 0) + 1
        value = self.fetch(kind, version)
        self._values[key] = value
        older = sorted(v for k, v in self._values if k == kind)[:-self.keep]
        for stale in older:
            del self._values[(kind, stale)]
        return value


class BalanceCache:
    """Balances read through from the accounts service, for one cycle.

    ``balances`` answers cached accounts from memory and reads the rest in one call; every
    answer of ``post`` replaces the account's entry (the service's balance after the
    operation), so a cycle never decides on a balance older than its own writes. ``new_cycle``
    forgets everything: payments made elsewhere are seen by the next cycle.
    """

    def __init__(self, accounts: AccountsPort) -> None:
        self._accounts = accounts
        self._ids = np.empty(0, np.int64)
        self._fen = np.empty(0, np.int64)
        self.hits = 0
        self.misses = 0
        self.io_s = 0.0  # time spent waiting for the accounts service

    def new_cycle(self) -> None:
        self._ids = np.empty(0, np.int64)
        self._fen = np.empty(0, np.int64)

    def balances(self, account_ids: pa.Array) -> pa.Table:
        wanted = np.unique(np.asarray(account_ids, dtype=np.int64))
        known = np.isin(wanted, self._ids)
        self.hits += int(known.sum())
        self.misses += int((~known).sum())
        if (~known).any():
            started = time.perf_counter()
            read = self._accounts.balances(pa.array(wanted[~known], pa.int64()))
            self.io_s += time.perf_counter() - started
            self._remember(read["account_id"].to_numpy(), read["balance_fen"].to_numpy())
        position = np.searchsorted(self._ids, wanted)
        position = np.minimum(position, max(len(self._ids) - 1, 0))
        found = (self._ids[position] == wanted) if len(self._ids) else np.zeros(0, bool)
        return pa.table({"account_id": wanted[found], "balance_fen": self._fen[position][found]},
                        schema=BALANCES)

    def post(self, operations: pa.Table) -> pa.Table:
        started = time.perf_counter()
        answers = self._accounts.post(operations)
        self.io_s += time.perf_counter() - started
        if answers.num_rows:
            # The last answer of an account is its balance after all of this batch's posts.
            order = np.argsort(answers["account_id"].to_numpy(), kind="stable")
            ids = answers["account_id"].to_numpy()[order]
            fen = answers["balance_fen"].to_numpy()[order]
            last = np.r_[ids[1:] != ids[:-1], True]
            known = pc.not_equal(answers["status"], "unknown_account").to_numpy(
                zero_copy_only=False)[order]
            self._remember(ids[last & known], fen[last & known])
        return answers

    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def _remember(self, ids: np.ndarray, fen: np.ndarray) -> None:
        keep = ~np.isin(self._ids, ids)
        all_ids = np.concatenate([self._ids[keep], ids.astype(np.int64)])
        all_fen = np.concatenate([self._fen[keep], fen.astype(np.int64)])
        order = np.argsort(all_ids, kind="stable")
        self._ids, self._fen = all_ids[order], all_fen[order]
