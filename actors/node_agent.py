"""NodeAgent: one per node. Registers with the ControlServer, then reports its load each second.

It measures what the source design asks for with psutil: CPU usage of the cores this node
may use (its CPU affinity, so nodes pinned to different cores report apart), disk read/write
rates and busy share, and the number of billing node-services running under this node's
raylet (worker processes titled ``ray::bill_bundle_task``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import psutil
import ray

from actors.billing_task import TASK_NAME

REPORT_INTERVAL_S = 1.0
# The first report's CPU shares are measured over at least this long: over the few
# milliseconds between priming and a first report each core read 0 or 100 %, so an idle node
# could report itself saturated and a short run went whole to another node.
FIRST_SAMPLE_S = 0.25


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class NodeAgent:
    def __init__(self, control_server: ray.actor.ActorHandle) -> None:
        self._control = control_server
        context = ray.get_runtime_context()
        self._node_id = context.get_node_id()
        self._address = ray.util.get_node_ip_address()
        self._cores = sorted(os.sched_getaffinity(0))
        self._raylet = psutil.Process(os.getppid())
        self._last_io = psutil.disk_io_counters()
        self._last_at = time.monotonic()
        psutil.cpu_percent(percpu=True)  # prime the counters: the next call is a real interval
        self._loop: asyncio.Task | None = None

    async def start(self) -> str:
        """Register and start reporting (repeating it does not start a second loop)."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._report_forever())
        return self._node_id

    def load(self) -> dict:
        """This node's load now (also what each report carries)."""
        now = time.monotonic()
        per_core = psutil.cpu_percent(percpu=True)
        mine = [per_core[c] for c in self._cores if c < len(per_core)] or per_core
        io = psutil.disk_io_counters()
        elapsed = max(now - self._last_at, 1e-3)
        read_bps = write_bps = busy = 0.0
        if io is not None and self._last_io is not None:
            read_bps = (io.read_bytes - self._last_io.read_bytes) / elapsed
            write_bps = (io.write_bytes - self._last_io.write_bytes) / elapsed
            busy_ms = getattr(io, "busy_time", 0) - getattr(self._last_io, "busy_time", 0)
            busy = min(1.0, busy_ms / 1000 / elapsed)
        self._last_io, self._last_at = io, now
        return {
            "node_id": self._node_id,
            "address": self._address,
            "hostname": socket.gethostname(),
            "cores": len(self._cores),
            "busy_cores": sum(mine) / 100,
            "cpu_percent": sum(mine) / len(mine),
            "io_busy": busy,
            "read_bps": read_bps,
            "write_bps": write_bps,
            "billing_processes": self._billing_processes(),
        }

    def _billing_processes(self) -> int:
        count = 0
        try:
            children = self._raylet.children(recursive=True)
        except psutil.Error:
            return 0
        for process in children:
            try:
                if any(TASK_NAME in part for part in process.cmdline()[:1]):
                    count += 1
            except psutil.Error:
                continue  # exited while we looked
        return count

    async def _report_forever(self) -> None:
        await asyncio.sleep(max(0.0, FIRST_SAMPLE_S - (time.monotonic() - self._last_at)))
        while True:
            # While the ControlServer restarts a report fails; the next reaches the new one.
            with contextlib.suppress(ray.exceptions.RayActorError):
                await self._control.report.remote(self.load())
            await asyncio.sleep(REPORT_INTERVAL_S)
