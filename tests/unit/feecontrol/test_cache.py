"""The versioned cache: versions never change, a batch pins one of each, hit rates."""

from __future__ import annotations

import pyarrow as pa
import pytest

from gridfare.errors import ConfigError
from gridfare.feecontrol.cache import BalanceCache, Kind, LocalCache, Registry
from gridfare.feecontrol.config import (
    AuditRules,
    StrategyRules,
    SystemParams,
    default_thresholds,
)
from gridfare.feecontrol.ports import OPERATIONS
from tests.unit.feecontrol.helpers import BOOK, customers
from tests.unit.feecontrol.memory import MemoryAccounts


def _registry() -> Registry:
    registry = Registry()
    registry.publish(Kind.CUSTOMERS, customers((1, "residential", "x")))
    registry.publish(Kind.PRICES, dict(BOOK))
    registry.publish(Kind.THRESHOLDS, default_thresholds())
    registry.publish(Kind.AUDIT, AuditRules())
    registry.publish(Kind.STRATEGY, StrategyRules())
    registry.publish(Kind.SYSTEM, SystemParams())
    return registry


def test_a_snapshot_keeps_its_prices_when_new_ones_are_published():
    registry = _registry()
    local = LocalCache(fetch=registry.get)
    pinned = registry.versions()
    before = local.snapshot(pinned)
    assert registry.publish(Kind.PRICES, {}) == 2
    assert local.snapshot(pinned).prices is before.prices  # the pinned version, from memory
    after = local.snapshot(registry.versions())
    assert after.price_version == 2 and after.prices == {}
    assert local.hits["prices"] == 1 and local.misses["prices"] == 2
    assert local.hits["customers"] == 2 and 0 < local.hit_rate() < 1


def test_publishing_the_wrong_kind_of_value_is_refused():
    with pytest.raises(ConfigError, match="audit"):
        Registry().publish(Kind.AUDIT, {"max_gap_days": 3})
    with pytest.raises(ConfigError, match="nothing published"):
        Registry().versions()


def test_balances_read_through_once_a_cycle_and_follow_the_answers():
    accounts = MemoryAccounts({1: 100, 2: 200})
    cache = BalanceCache(accounts)
    assert cache.balances(pa.array([1, 2, 3])).to_pylist() == [
        {"account_id": 1, "balance_fen": 100}, {"account_id": 2, "balance_fen": 200}]
    cache.post(pa.table({"idempotency_key": ["k"], "account_id": [1], "kind": ["payment"],
                         "amount_fen": [50]}, schema=OPERATIONS))
    assert cache.balances(pa.array([1]))["balance_fen"].to_pylist() == [150]
    assert accounts.reads == 1 and cache.hits == 1 and cache.misses == 3
    cache.new_cycle()
    cache.balances(pa.array([1]))
    assert accounts.reads == 2
