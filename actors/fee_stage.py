"""The six stages on the cluster: one Ray task per shard of accounts runs ``STAGES`` in order.

A shard is the accounts whose id is ``shard`` modulo the shard count; its records and last
states travel as Arrow tables through the object store. The task is retried when its worker
dies (``max_retries``): every payment and deduction it posts carries its idempotency key and
the state it starts from is the run's input, so a retried shard answers exactly what the
first attempt would have. Its worker keeps a ``LocalCache`` of published versions across
tasks (the hit rate is in the shard's counts and on the dashboard).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import ray
from ray.util.metrics import Counter

from actors.fee_accounts import AccountsSpec, open_accounts
from gridfare.feecontrol.batch import Context
from gridfare.feecontrol.cache import BalanceCache, Kind, LocalCache
from gridfare.feecontrol.pipeline import STAGES, Stage, outcome, run_stages

_caches: dict[str, LocalCache] = {}
_metrics: dict[str, Counter] = {}


def _local_cache(registry: Any) -> LocalCache:
    name = registry._actor_id.hex()
    if name not in _caches:
        _caches[name] = LocalCache(
            fetch=lambda kind, version: ray.get(registry.get.remote(kind.value, version)))
    return _caches[name]


def _count(name: str, value: int, **tags: str) -> None:
    if name not in _metrics:
        _metrics[name] = Counter(f"gridfare_fee_{name}", description=f"fee control: {name}",
                                 tag_keys=tuple(sorted(tags)))
    if value:
        _metrics[name].inc(value, tags=tags or None)


def _timed(spent: dict[str, float]) -> tuple[Stage, ...]:
    """``STAGES``, each adding its wall time to ``spent`` by name."""

    def timed(stage: Stage) -> Stage:
        def run(batch, context):
            started = time.perf_counter()
            try:
                return stage.run(batch, context)
            finally:
                spent[stage.name] = spent.get(stage.name, 0.0) + time.perf_counter() - started

        return Stage(stage.name, run)

    return tuple(timed(stage) for stage in STAGES)


@ray.remote(max_retries=3)
def run_fee_shard(records, states, versions: dict[str, int], registry, accounts: AccountsSpec,
                  run_date: dt.date, decide_at: dt.datetime) -> dict[str, Any]:
    started = time.perf_counter()
    cache = _local_cache(registry)
    hits, misses = sum(cache.hits.values()), sum(cache.misses.values())
    snapshot = cache.snapshot({Kind(k): v for k, v in versions.items()})
    balances = BalanceCache(open_accounts(accounts))
    context = Context(snapshot=snapshot, accounts=balances, states=states)
    spent: dict[str, float] = {}
    result = outcome(run_stages(records, run_date, decide_at, context, _timed(spent)),
                     context)
    counts = dict(result.counts)
    for name, seconds in spent.items():  # where a shard's time goes, for the benchmark
        counts[f"stage_ms_{name}"] = int(seconds * 1000)
    counts["cache_hits"] = sum(cache.hits.values()) - hits
    counts["cache_misses"] = sum(cache.misses.values()) - misses
    counts["balance_hits"], counts["balance_misses"] = balances.hits, balances.misses
    counts["accounts_ms"] = int(balances.io_s * 1000)
    counts["shard_ms"] = int((time.perf_counter() - started) * 1000)
    for name in ("records", "decided", "held", "rejected", "deductions_posted"):
        _count(name, counts.get(name, 0))
    for action in ("warn", "remind", "notice", "disconnect", "reconnect"):
        _count("commands", counts.get(f"command_{action}", 0), action=action)
    _count("cache_hits", counts["cache_hits"])
    _count("cache_misses", counts["cache_misses"])
    return {"tables": result.tables, "counts": counts}
