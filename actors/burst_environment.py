"""What makes an actor a capped burst environment: its caps, its counters, its registration.

A load-shared Serve deployment's replica needs one ``loadshare_slot``, a resource only the
base host and ``burst`` nodes offer (deploy/dev-autoscaling.yaml), so a replica beyond the
base ones can only start on a burst node: that replica actor *is* the environment. It
holds an :class:`EnvironmentAgent`, which

- caps its data path with a token bucket (every request's bytes in and out pass
  :meth:`carry`), the one cap Ray has no setting for;
- keeps its working directory under a quota (:meth:`write`: refused whole, before any byte
  is written, when it would go over; the file appears by an atomic rename or not at all);
- counts its tasks in flight and done, and on a burst node reports them (which is also its
  registration) to the LoadShareManager every second, so the manager's open-state table and
  its credit follow the environment; a manager that is restarting is simply reported to a
  second later.

All Ray calls of the agent are in ``_report_once``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import ray

from actors import NAMESPACE
from gridfare.errors import DataCentreError
from gridfare.loadshare.caps import EnvironmentCaps, TokenBucket, WorkdirQuota

__all__ = ["REPORT_INTERVAL_S", "SLOT", "EnvironmentAgent"]

logger = logging.getLogger(__name__)

SLOT = "loadshare_slot"  # the resource one load-shared replica takes
BURST = "burst"  # the resource that marks a burst node
REPORT_INTERVAL_S = 1.0


class EnvironmentAgent:
    def __init__(self, manager_name: str, caps: EnvironmentCaps, *,
                 workdir_root: str | None = None) -> None:
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.worker = context.get_actor_id() or f"pid-{os.getpid()}"
        node = next((n for n in ray.nodes() if n["NodeID"] == self.node_id), {})
        resources = node.get("Resources", {})
        self.burst = resources.get(BURST, 0) > 0
        self.cpus = float(resources.get("CPU", 0.0))
        self.memory_bytes = int(resources.get("memory", 0))
        self.caps = caps
        self.bucket = TokenBucket(caps.bandwidth_bytes_s, caps.burst_bytes, time.monotonic)
        root = Path(workdir_root or tempfile.gettempdir()) / "gridfare-burst"
        self.workdir = root / self.worker[-16:]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.quota = WorkdirQuota(self.worker[-16:], caps.workdir_bytes)
        self.in_flight = 0
        self.done = 0
        self._manager_name = manager_name
        self._manager = None
        self._reporter: asyncio.Task | None = None

    # -- the data path ----------------------------------------------------------------------

    async def carry(self, nbytes: int) -> None:
        """Let ``nbytes`` through the bandwidth cap, waiting as long as the bucket says."""
        wait = self.bucket.reserve(nbytes)
        if wait > 0:
            await asyncio.sleep(wait)

    @contextlib.asynccontextmanager
    async def task(self) -> AsyncIterator[None]:
        """One task (request) of this environment, counted in flight, then done."""
        self.start_reporting()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self.done += 1

    def write(self, name: str, data: bytes) -> Path:
        """Write ``name`` in the working directory within the quota (all or nothing)."""
        if "/" in name or name.startswith("."):
            raise DataCentreError(f"working directory: {name!r} is not a plain file name")
        target = self.workdir / name
        replaces = target.stat().st_size if target.exists() else 0
        self.quota.claim(name, len(data), replaces=replaces)
        temporary = target.with_name(f".{name}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, target)
        except OSError as exc:
            self.quota.release(len(data) - replaces)
            temporary.unlink(missing_ok=True)
            raise DataCentreError(f"working directory {self.workdir}: {exc}") from exc
        return target

    def clear(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- registration and reports -----------------------------------------------------------

    def start_reporting(self) -> None:
        """Start the report loop once, from inside the replica's event loop."""
        if not self.burst or self._reporter is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._reporter = loop.create_task(self._report_loop())

    async def _report_loop(self) -> None:
        while True:
            await self._report_once()
            await asyncio.sleep(REPORT_INTERVAL_S)

    async def _report_once(self) -> None:
        try:
            if self._manager is None:
                self._manager = ray.get_actor(self._manager_name, namespace=NAMESPACE)
            await self._manager.heartbeat.remote(self.node_id, self.worker, self.cpus,
                                                 self.memory_bytes, self.in_flight, self.done)
        except Exception as exc:  # the manager restarting or not started: next second
            self._manager = None
            logger.debug("environment %s: report failed: %s", self.worker, exc)

    def stats(self) -> dict:
        return {"node_id": self.node_id, "worker": self.worker, "burst": self.burst,
                "in_flight": self.in_flight, "done": self.done,
                "workdir_bytes": self.quota.used, "bucket_tokens": self.bucket.tokens}
