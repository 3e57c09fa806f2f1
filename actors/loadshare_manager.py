"""LoadShareManager: the central management server of load sharing (source design E).

Once a tick (``tick_s``) it gathers a ``LoadSnapshot`` (the watched Serve deployments'
request rate and queue depth and the billing queue, scraped from every node's Prometheus
endpoint; the hot-event signals and manual commands received since), asks the pure
``gridfare.loadshare.decide`` what to do, and applies it:

- **open**: rows ``opening`` in the open-state table, the capacity asked of the autoscaler
  (``actors.capacity``: one ``burst_bundle`` per environment), and the shared deployment's
  replicas raised to base + one per environment (Serve's external scaler). The replicas can
  only start on burst nodes (``loadshare_slot``); each reports from its node every second,
  which registers it: the row goes ``open`` with its node, size and counters.
- **close**: rows ``draining``; the deployment back to its base replicas (Serve stops the
  burst ones after their requests finish); each burst node drained with Ray's preemption
  drain (``GcsClient.drain_node``: no new work, running work finishes, the node leaves when
  idle); the capacity request withdrawn. A row is ``closed`` when its node is gone.

Contribution credit accrues per environment (``gridfare.loadshare.credit``) into the
ledger. Hard state (rows, ledger, trigger memory) is in ``<root>/loadshare.duckdb``
before a tick ends; ``__init__`` rebuilds it, so a restarted manager (``max_restarts=-1``)
carries on: the ledger continues from each environment's last entry, nothing is doubled.
Load readings are rebuilt, not stored. All Ray calls sit in the ``_ray_*`` methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import urllib.request

import ray
from ray.util import metrics

from actors import named_detached, one_line
from gridfare.loadshare.config import LoadShareConfig
from gridfare.loadshare.credit import LedgerEntry, accrue, credits_by
from gridfare.loadshare.policy import (
    Action,
    Cause,
    Command,
    LoadSnapshot,
    Phase,
    ShareMemory,
    Signal,
    decide,
)
from gridfare.loadshare.table import Environment, EnvState, OpenTable
from gridfare.loadshare.watch import LoadReading, parse_prometheus, read_load

logger = logging.getLogger(__name__)

__all__ = ["MANAGER_NAME", "LoadShareManager", "drain_node", "get_loadshare_manager"]

MANAGER_NAME = "gridfare-loadshare"
CAPACITY_OWNER = "gridfare-loadshare"
SCRAPE_TIMEOUT_S = 1.0


def get_loadshare_manager(root: str, config: LoadShareConfig | None = None,
                          name: str = MANAGER_NAME) -> ray.actor.ActorHandle:
    """The manager on the head node, created on first use (options apply then only)."""
    return named_detached(
        LoadShareManager, name, resources={"node:__internal_head__": 0.001},
    ).remote(root, (config or LoadShareConfig()).to_dict(), name)


class _Metrics:
    def __init__(self) -> None:
        self.environments = metrics.Gauge(
            "gridfare_loadshare_environments", "burst environments by state",
            tag_keys=("state",))
        self.sharing = metrics.Gauge("gridfare_loadshare_sharing",
                                     "1 while a load-sharing episode is open")
        self.rate = metrics.Gauge("gridfare_loadshare_request_rate",
                                  "requests/s at the watched deployments")
        self.queue = metrics.Gauge("gridfare_loadshare_queue_depth",
                                   "requests queued or in flight at the watched deployments")
        self.openings = metrics.Counter("gridfare_loadshare_openings",
                                        "load-sharing episodes opened", tag_keys=("cause",))
        self.credit = metrics.Counter("gridfare_loadshare_millicredits",
                                      "contribution credit earned", tag_keys=("node_id",))


def _memory_to_dict(memory: ShareMemory) -> dict:
    data = dataclasses.asdict(memory)
    data["phase"] = memory.phase.value
    data["cause"] = memory.cause.value
    data["hot_events"] = sorted(memory.hot_events)
    return data


def _memory_from_dict(data: dict) -> ShareMemory:
    return ShareMemory(**{**data, "phase": Phase(data["phase"]), "cause": Cause(data["cause"]),
                          "hot_events": frozenset(data["hot_events"])})


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class LoadShareManager:
    def __init__(self, root: str, config: dict, name: str = MANAGER_NAME) -> None:
        from datasets.loadshare_store import LoadShareStore

        self._config = LoadShareConfig.from_dict(config)
        self._name = name
        self._store = LoadShareStore(root)
        self._table = OpenTable(Environment.from_dict(r) for r in self._store.environments())
        state = self._store.state() or {}
        self._memory = (_memory_from_dict(state["memory"]) if "memory" in state
                        else ShareMemory())
        self._episode = int(state.get("episode", 0))
        self._saved_state = state
        self._last: dict[str, LedgerEntry] = {
            env: LedgerEntry(**e) for env, e in self._store.last_entries().items()}
        self._seen: dict[str, float] = {}  # env -> wall time of its last report
        self._dirty: set[str] = set()
        self._signals: list[Signal] = []
        self._command: Command | None = None
        self._reading: LoadReading | None = None
        self._snapshot = LoadSnapshot(now=time.time())
        self._last_plan = ""
        self._replicas: int | None = None  # what Serve was last told (None: tell again)
        self._capacity: list[dict] | None = None
        self._drained: set[str] = set()  # nodes whose drain was accepted
        self._accrued_at = 0.0
        self._metrics = _Metrics()
        self._loop: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None  # one tick at a time; answers after its save

    # -- requests ---------------------------------------------------------------------------

    async def ensure(self) -> dict:
        """Start the tick loop (idempotent); answers the status as last saved."""
        self._ensure_loop()
        async with self._lock:
            return self.status()

    async def command(self, what: str) -> dict:
        """A manual ``start`` or ``stop``: applied and saved before the answer."""
        self._ensure_loop()
        async with self._lock:
            self._command = Command(what)
            await self._tick()
            return self.status()

    async def signal(self, event: str, end: bool = False) -> dict:
        """An external hot event began (or ended): applied and saved before the answer."""
        self._ensure_loop()
        async with self._lock:
            self._signals.append(Signal(event, end=end))
            await self._tick()
            return self.status()

    async def heartbeat(self, node_id: str, worker: str, cpus: float, memory_bytes: int,
                        in_flight: int, done: int) -> str:
        """A burst environment's report from its node (the first one registers it)."""
        self._ensure_loop()
        now = time.time()
        row = self._table.on_node(node_id)
        if row is None:
            opening = [r for r in self._table.in_state(EnvState.OPENING) if not r.node_id]
            if opening:
                row = opening[0]
            else:  # not asked for (a replica Serve kept or placed late): adopt, then close
                row = self._table.ask(f"adopted-{node_id[-8:]}-{int(now)}", self._episode, now)
            row = self._table.register(row.env_id, node_id, cpus, memory_bytes, now)
        row = self._table.report(row.env_id, worker, in_flight, done)
        self._seen[row.env_id] = now
        self._dirty.add(row.env_id)
        return row.env_id

    def status(self) -> dict:
        s = self._snapshot
        return {
            "phase": self._memory.phase.value, "cause": self._memory.cause.value,
            "episode": self._episode, "environments_wanted": self._memory.environments,
            "pinned": self._memory.pinned, "hot_events": sorted(self._memory.hot_events),
            "rate": round(s.rate, 2), "queue": s.queue, "billing_queued": s.billing_queued,
            "last_plan": self._last_plan, "replicas": self._replicas,
            "capacity_requested": self._capacity or [],
            "environments": [r.to_dict() for r in self._table.rows()],
        }

    def credits(self, by: str = "node_id") -> list[dict]:
        entries = [LedgerEntry(**e) for e in self._store.entries()]
        fields = by.split(",")
        return [{**dict(zip(fields, key, strict=True)), **totals}
                for key, totals in credits_by(entries, by).items()]

    def ledger(self) -> list[dict]:
        return self._store.entries()

    # -- the tick ---------------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            try:
                async with self._lock:
                    await self._tick()
            except Exception as exc:  # a tick that failed is retried at the next one
                logger.warning("loadshare tick failed: %s", one_line(exc))
            await asyncio.sleep(self._config.tick_s)

    async def _tick(self) -> None:
        now = time.time()
        reading = await asyncio.to_thread(self._ray_scrape, now)
        known = reading.known_after(self._reading)
        rate = reading.rate_since(self._reading) if known else 0.0
        if known or self._reading is None:
            self._reading = reading
        signals, self._signals = tuple(self._signals), []
        command, self._command = self._command, None
        self._snapshot = LoadSnapshot(now=now, rate=rate, queue=reading.queue,
                                      billing_queued=reading.billing_queued,
                                      signals=signals, command=command, known=known,
                                      open_environments=len(
                                          self._table.in_state(EnvState.OPEN)))
        plan = decide(self._snapshot, self._memory, self._config.policy)
        self._memory = plan.memory
        if plan.action is not Action.NONE:
            self._last_plan = f"{time.strftime('%H:%M:%S')} {plan.action.value}: {plan.reason}"
            logger.info("loadshare: %s", self._last_plan)
        if plan.action is Action.OPEN:
            self._episode += 1
            self._metrics.openings.inc(tags={"cause": plan.cause.value})
        if plan.action is Action.CLOSE:
            for row in self._table.live():
                self._drain(row, now)
        self._follow_nodes(now)
        if self._memory.phase is Phase.SHARING:
            self._keep_wanted(now)
        elif any(r.state is EnvState.OPEN for r in self._table.rows()):
            for row in self._table.in_state(EnvState.OPEN, EnvState.OPENING):
                self._drain(row, now)  # open while idle: adopted, or a restart mid-close
        await self._apply()
        entries = self._accrue(now)
        forgotten = self._table.prune(now - self._config.closed_kept_s)
        for env_id in forgotten:
            self._last.pop(env_id, None)
            self._seen.pop(env_id, None)
        rows = [row for e in sorted(self._dirty) if (row := self._table.get(e)) is not None]
        self._dirty.clear()
        state = {"memory": _memory_to_dict(self._memory), "episode": self._episode}
        if rows or entries or forgotten or state != self._saved_state:  # quiet: no write
            await asyncio.to_thread(
                self._store.save, [r.to_dict() for r in rows],
                [dataclasses.asdict(e) for e in entries], state, forgotten)
            self._saved_state = state
        for entry in entries:
            self._metrics.credit.inc(entry.millicredits, tags={"node_id": entry.node_id})
        self._export(rate, reading.queue)

    def _keep_wanted(self, now: float) -> None:
        """As many environments opening or open as the plan wants (a lost one replaced)."""
        live = self._table.in_state(EnvState.OPENING, EnvState.OPEN)
        for i in range(len(live), self._memory.environments):
            row = self._table.ask(f"ep{self._episode}-{i}-{int(now * 1000) % 100000}",
                                  self._episode, now)
            self._dirty.add(row.env_id)

    def _drain(self, row: Environment, now: float) -> None:
        if row.state is EnvState.OPENING and not row.node_id:
            self._table.close(row.env_id, now, "withdrawn before it opened")
        else:
            self._table.drain(row.env_id, now)
        self._dirty.add(row.env_id)

    def _follow_nodes(self, now: float) -> None:
        """Rows whose node is gone are closed: drained, or lost (their credit stops at the
        environment's last report)."""
        alive = self._ray_alive_nodes()
        for row in self._table.live():
            if not row.node_id or row.node_id in alive:
                continue
            if row.state is EnvState.DRAINING:
                self._table.close(row.env_id, now, "drained")
            else:
                self._table.close(row.env_id, min(now, self._last_alive(row)), "its node died")
            self._drained.discard(row.node_id)
            self._dirty.add(row.env_id)

    async def _apply(self) -> None:
        """Capacity, replicas and drains as the table says; what fails is tried next tick
        (the table is saved whatever happens here)."""
        config = self._config
        active = self._table.in_state(EnvState.OPENING, EnvState.OPEN)
        capacity = [dict(config.burst_bundle) for _ in active]
        try:
            if capacity != self._capacity:
                await asyncio.to_thread(self._ray_request_capacity, capacity)
                self._capacity = capacity
            if config.share is not None:
                replicas = config.base_replicas + config.replicas_per_environment * len(active)
                if replicas != self._replicas:
                    await self._ray_set_replicas(replicas)
                    self._replicas = replicas
            for row in self._table.in_state(EnvState.DRAINING):
                if config.exit_drain != "preemption":
                    break
                if row.node_id and row.node_id not in self._drained and (
                        await asyncio.to_thread(self._ray_drain_node, row.node_id)):
                    self._drained.add(row.node_id)
        except Exception as exc:
            logger.warning("loadshare: %s", one_line(exc))

    def _last_alive(self, row: Environment) -> float:
        """The last moment the environment is known to have run: its last report (since
        this manager started), else where its credit got to, else its opening."""
        last = self._last.get(row.env_id)
        return self._seen.get(row.env_id) or (last.until if last else row.opened_at or 0.0)

    def _accrue(self, now: float) -> list[LedgerEntry]:
        """Credit up to each environment's last report: a killed one stops earning when it
        stopped reporting (not when GCS declares its node dead, seconds later)."""
        due = now - self._accrued_at >= self._config.ledger_interval_s
        entries = []
        for row in self._table.rows():
            if row.opened_at is None:
                continue
            last = self._last.get(row.env_id)
            since = last.until if last else row.opened_at
            until = min(now, self._last_alive(row))
            if row.state is EnvState.CLOSED:
                until = min(until, row.closed_at or until)
            elif not due:
                continue
            entry = accrue(row.env_id, row.node_id, row.cpus, row.memory_bytes,
                           seq=last.seq + 1 if last else 0, since=since, until=until,
                           tasks_total=row.tasks_done,
                           tasks_before=last.tasks_total if last else 0,
                           weights=self._config.credit)
            if entry is not None:
                entries.append(entry)
                self._last[row.env_id] = entry
        if due:
            self._accrued_at = now
        return entries

    def _export(self, rate: float, queue: int) -> None:
        counts = {state: 0 for state in EnvState}
        for row in self._table.rows():
            counts[row.state] += 1
        for state, count in counts.items():
            self._metrics.environments.set(count, tags={"state": state.value})
        self._metrics.sharing.set(1 if self._memory.phase is Phase.SHARING else 0)
        self._metrics.rate.set(rate)
        self._metrics.queue.set(queue)

    # -- all Ray calls --------------------------------------------------------------------

    def _ray_alive_nodes(self) -> set[str]:
        return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}

    def _ray_scrape(self, now: float) -> LoadReading:
        """Every live node's Prometheus text, summed for the watched deployments."""
        samples, source, missing = [], {}, []
        for node in ray.nodes():
            port = node.get("MetricsExportPort")
            if not node.get("Alive") or not port:
                continue
            url = f"http://{node['NodeManagerAddress']}:{port}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
                    found = parse_prometheus(response.read().decode(errors="replace"))
            except OSError as exc:  # a node starting, leaving or too busy: not read now
                logger.debug("scrape %s: %s", url, exc)
                missing.append(node["NodeID"])
                continue
            samples += found
            source.update((id(sample), node["NodeID"]) for sample in found)
        return read_load(samples, self._config.watch, now, source=source, missing=missing)

    def _ray_request_capacity(self, bundles: list[dict]) -> None:
        from actors.capacity import request_capacity

        request_capacity(CAPACITY_OWNER, bundles)

    async def _ray_set_replicas(self, replicas: int) -> None:
        from ray.serve._private.common import DeploymentID
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

        share = self._config.share
        try:
            controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
            await controller.update_deployment_replicas.remote(
                DeploymentID(name=share.deployment, app_name=share.app or "default"), replicas)
        except Exception as exc:  # Serve not up yet, or the app not deployed: next tick
            raise RuntimeError(f"cannot scale {share.app}/{share.deployment} to {replicas}: "
                               f"{one_line(exc)}") from exc

    def _ray_drain_node(self, node_id: str) -> bool:
        return drain_node(node_id, self._config.drain_deadline_s,
                          "gridfare load sharing: the burst episode ended")


def drain_node(node_id: str, deadline_s: float, message: str) -> bool:
    """Ask GCS for a preemption drain of ``node_id`` (Ray 2.60's ``GcsClient.drain_node``,
    what the hidden ``ray drain-node`` calls): accepted while the node is busy, it then takes
    no new tasks, actors or placement groups, lets running work finish and leaves when idle.
    True once accepted."""
    from ray.core.generated import autoscaler_pb2

    gcs = ray._raylet.GcsClient(address=ray.get_runtime_context().gcs_address)
    deadline_ms = int((time.time() + deadline_s) * 1000)
    accepted, why = gcs.drain_node(
        node_id, autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
        message, deadline_ms)
    if not accepted:
        logger.warning("drain of node %s refused: %s", node_id, why)
    return bool(accepted)
