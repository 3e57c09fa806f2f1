"""FeeRegistry: the versioned cache's registry on the cluster (a thin shell over
``gridfare.feecontrol.cache.Registry``).

It holds every published version of the slowly changing kinds (customer files, price
parameters, strategy benchmarks, audit rules, system parameters); workers fetch a version
once into their ``LocalCache`` (versions never change, so a cached one is exact) and a
batch pins the versions current when it starts. ``publish`` is how a price change reaches
the cluster: the next batch sees it, a batch under way does not.
"""

from __future__ import annotations

import hashlib
from typing import Any

import ray
from ray.util.metrics import Gauge

from actors import named_detached
from gridfare.feecontrol.cache import Kind, Registry


def registry_name(datacentre: str) -> str:
    return f"gridfare-fee-registry-{hashlib.sha1(datacentre.encode()).hexdigest()[:10]}"


def get_fee_registry(datacentre: str) -> ray.actor.ActorHandle:
    return named_detached(FeeRegistry, registry_name(datacentre)).remote()


@ray.remote(num_cpus=0)
class FeeRegistry:
    def __init__(self) -> None:
        self._registry = Registry()
        self._version = Gauge("gridfare_fee_cache_version",
                              description="current version of each fee-control cache kind",
                              tag_keys=("kind",))

    def publish(self, kind: str, value: Any) -> int:
        version = self._registry.publish(Kind(kind), value)
        self._version.set(version, tags={"kind": Kind(kind).value})
        return version

    def publish_missing(self, values: dict[str, Any]) -> dict[str, int]:
        """Publish the kinds that have no version yet (a restart of the job keeps versions)."""
        current = {kind.value: v for kind, v in self._registry._current.items()}
        for kind, value in values.items():
            if kind not in current:
                current[kind] = self.publish(kind, value)
        return current

    def versions(self) -> dict[str, int]:
        return {kind.value: version for kind, version in self._registry.versions().items()}

    def get(self, kind: str, version: int) -> Any:
        return self._registry.get(Kind(kind), version)
