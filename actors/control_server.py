"""ControlServer: the head's billing control server (source design A, mapped onto Ray).

It keeps the registered nodes and their latest load reports, turns billing requests into
billing commands with the pure policy ``gridfare.scheduling.choose_nodes`` (one section, or
a bundle of small ones), launches each as a Ray task softly pinned to the chosen node,
records every section's end in the catalog (it is the catalog's single writer) and emits a
run's end signal when all its sections are done or failed. Hard state lives in the catalog,
so a restarted ControlServer resumes the runs that were running; load reports are rebuilt
within a second from the NodeAgents.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING

import ray
from ray.util import metrics
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import named_detached, one_line
from actors.billing_task import bill_bundle_task
from actors.node_agent import NodeAgent
from gridfare.billing.request import RunRequest
from gridfare.billing.runner import (
    RECORD_INTERVAL_S,
    SectionOutcome,
    history_files,
    start_or_resume,
)
from gridfare.errors import ConfigError, InvalidInput
from gridfare.scheduling import (
    BillingCommand,
    ClusterSnapshot,
    DispatchPolicy,
    NodeLoad,
    SectionDemand,
    autoscale_demand,
    awaiting_reports,
    choose_nodes,
    retry_alone,
)
from gridfare.tariffs import TariffFiles

if TYPE_CHECKING:
    from datasets.catalog import RunRecord
    from datasets.schemas import SectionFiles

logger = logging.getLogger(__name__)

AGENT_CHECK_INTERVAL_S = 2.0
AGENT_RELEASE_AFTER_S = 20.0  # idle this long, worker nodes lose their agents (autoscaling)
MAX_RESOURCE_REQUEST = 64  # bundles asked of the autoscaler at most, whatever the queue
# A lower demand is passed on at most this often (a higher one at once). Each request is a
# synchronous GCS write on the dispatch loop (~5 ms), and a draining run lowered its demand
# once per bundle: 64 requests in the tail of a 1.5 M run, while workers waited for work.
# The autoscaler only reads requests at its updates (every few seconds) and releases a node
# after minutes idle, so nothing is lost by saying it less often.
LOWER_REQUEST_INTERVAL_S = 5.0


def control_server_name(datacentre_uri: str) -> str:
    """One ControlServer per data centre, named after it so jobs find it again (after the
    data centre, not its credentials: other keys to the same bucket find the same one)."""
    from datasets.uri import identity

    return ("gridfare-control-"
            + hashlib.sha1(identity(datacentre_uri).encode()).hexdigest()[:10])


def get_control_server(datacentre_uri: str, *, policy: DispatchPolicy | None = None,
                       autoscale: bool | None = None, runtime_env: dict | None = None
                       ) -> ray.actor.ActorHandle:
    """The data centre's ControlServer on the head node, created on first use.

    ``runtime_env`` (environment variables, ...) is inherited by every billing task it
    launches. These options are the ControlServer's own and apply when it is created
    (None: the defaults, or whatever the running one has); one asked for that differs from
    the running ControlServer's is a ConfigError, never silently ignored. What a run is
    asked for (period, sections, tariff book) travels with each ``submit`` instead.
    """
    options = {"policy": policy, "autoscale": autoscale, "runtime_env": runtime_env}
    handle = named_detached(
        ControlServer,
        control_server_name(datacentre_uri),
        resources={"node:__internal_head__": 0.001},
        runtime_env=runtime_env,
    ).remote(datacentre_uri, policy or DispatchPolicy(),
             True if autoscale is None else autoscale, runtime_env)
    asked = {key: value for key, value in options.items() if value is not None}
    if asked:
        running = ray.get(handle.created_with.remote())
        for key, value in asked.items():
            if running[key] != value:
                raise ConfigError(
                    f"the ControlServer of {datacentre_uri} runs with {key} "
                    f"{running[key]!r}, not {value!r}: its options apply when it is created "
                    "(submit the run with its options, or use another data centre)")
    return handle


def _end_signal(record: RunRecord, failed: dict[str, str | None]) -> dict:
    return {
        "run_id": record.run_id, "period": record.period, "status": record.status,
        "sections_done": record.sections_done, "sections_failed": record.sections_failed,
        "billed": record.billed, "exceptions": record.exceptions,
        "total_fen": record.total_fen, "failed": dict(sorted(failed.items())),
    }


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class _Run:
    run_id: str
    period: str
    tariffs: ray.ObjectRef  # the run's TariffFiles, put once, passed to each of its tasks
    queue: dict[str, int]  # section -> weight, waiting for a node
    # The manifest rows of the earlier periods the sections read (read once: the run
    # writes only its own period); each task is sent its sections' rows.
    files: SectionFiles
    running: dict[str, str] = field(default_factory=dict)  # section -> node
    tasks: dict[int, str] = field(default_factory=dict)  # task in flight -> node
    alone: set[str] = field(default_factory=set)  # their bundle crashed: bill them alone
    outcomes: dict[str, SectionOutcome] = field(default_factory=dict)
    unrecorded: list[dict] = field(default_factory=list)  # ended, not yet in the catalog
    started: float = field(default_factory=time.monotonic)
    finished: bool = False
    signal: dict | None = None  # the end signal, once finished
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set with ``finished``
    # Kept with the queue: summing 60,000 weights on every dispatch cost the ControlServer
    # a core-minute per 30 M-account run.
    queued_weight: int = field(init=False)

    def __post_init__(self) -> None:
        self.queued_weight = sum(self.queue.values())

    def take(self, section: str, node_id: str) -> None:
        """A queued section goes to ``node_id``."""
        self.queued_weight -= self.queue.pop(section)
        self.running[section] = node_id

    def requeue_first(self, demands: Iterable[SectionDemand]) -> None:
        """Sections dispatched once already go back at the head of the queue."""
        head = {d.section_id: d.weight for d in demands}
        self.queue = {**head, **self.queue}
        self.queued_weight += sum(head.values())


class _Metrics:
    def __init__(self) -> None:
        self.queued = metrics.Gauge("gridfare_sections_queued", "sections waiting for a node",
                                    tag_keys=("run_id",))
        self.running = metrics.Gauge("gridfare_sections_running", "sections being billed",
                                     tag_keys=("run_id",))
        self.ended = metrics.Counter("gridfare_sections_ended", "sections done or failed",
                                     tag_keys=("run_id", "status"))
        self.accounts = metrics.Counter("gridfare_accounts_billed", "bills written",
                                        tag_keys=("run_id",))
        self.latency = metrics.Histogram(
            "gridfare_section_seconds", "time to bill one section",
            boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60], tag_keys=("node_id",))
        self.node_cpu = metrics.Gauge("gridfare_node_cpu_percent", "reported CPU busy",
                                      tag_keys=("node_id",))
        self.node_io = metrics.Gauge("gridfare_node_io_busy", "reported disk busy share",
                                     tag_keys=("node_id",))
        self.node_procs = metrics.Gauge("gridfare_node_billing_processes",
                                        "billing services running", tag_keys=("node_id",))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ControlServer:
    def __init__(self, datacentre_uri: str, policy: DispatchPolicy, autoscale: bool,
                 runtime_env: dict | None = None) -> None:
        from datasets.catalog import open_catalog
        from datasets.datacentre import DataCentre

        self._uri = datacentre_uri
        self._policy = policy
        self._autoscale = autoscale
        self._runtime_env = runtime_env
        self._centre = DataCentre(datacentre_uri)
        # The catalog's single writer during cluster runs (a remote one: under its lease,
        # held while runs run and given up when none does).
        self._catalog = open_catalog(self._centre, writer=True)
        self._loads: dict[str, NodeLoad] = {}
        self._reports: dict[str, dict] = {}
        self._node_cpus: dict[str, float] = {}
        self._live_cpus: dict[str, float] = {}  # nodes Ray says are alive -> their CPUs
        self._agents: dict[str, ray.actor.ActorHandle] = {}
        self._runs: dict[str, _Run] = {}
        self._metrics = _Metrics()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.Task | None = None
        self._requested, self._requested_at = -1, 0.0
        self._agents_checked = 0.0
        self._flushed = 0.0
        self._writing: asyncio.Task | None = None  # a catalog write of ended sections
        self._idle_since: float | None = None
        self._task_keys = itertools.count()
        # A restart finds the runs that were running in the catalog and carries them on.
        for record in self._catalog.runs():
            if record.status == "running":
                recorded = self._catalog.run_tariffs(record.run_id)
                tariffs = (TariffFiles.from_json(recorded, f"run {record.run_id}")
                           if recorded is not None else None)
                self._adopt(record.run_id, record.period,
                            self._catalog.pending_sections(record.run_id), tariffs)

    # -- requests ------------------------------------------------------------------------

    async def submit(self, request: RunRequest) -> str:
        """Start a billing run (or resume one) and return its run id at once.

        The request is checked whole (its tariff book parsed, its sections matched, a
        resume's period and book against its run's) before anything is recorded; a refusal
        is the GridfareError the caller gets back.
        """
        self._ensure_loop()
        if not isinstance(request, RunRequest):
            raise InvalidInput(f"submit: expected a RunRequest, got {type(request).__name__}")
        resume = request.resume_run_id
        sizes = accounts = None
        if resume is None:
            # One listing gives the sections and their weights; the accounts' listing runs
            # beside it (each ~55 ms for 3,000 sections, while the cores wait for the first
            # dispatch; ~85 ms together: the file-system part of each releases the GIL).
            sizes, accounts = await asyncio.gather(
                asyncio.to_thread(self._centre.section_sizes, str(request.period)),
                asyncio.to_thread(self._centre.all_sections))
        started = start_or_resume(self._centre, self._catalog, request, _now,
                                  with_readings=None if sizes is None else sorted(sizes),
                                  with_accounts=accounts)
        if resume is not None:
            if resume in self._runs and not self._runs[resume].finished:
                return resume
            self._catalog.reopen_run(resume)
        self._adopt(started.run_id, started.period, started.sections, started.tariff_files,
                    sizes)
        return started.run_id

    def created_with(self) -> dict:
        """The options this ControlServer was created with (``get_control_server``'s)."""
        return {"policy": self._policy, "autoscale": self._autoscale,
                "runtime_env": self._runtime_env}

    async def report(self, load: dict) -> None:
        """A NodeAgent's load report (also its registration, the first time)."""
        self._ensure_loop()
        node = load["node_id"]
        self._node_cpus.setdefault(node, float(load["cores"]))
        self._reports[node] = load
        self._loads[node] = NodeLoad(node, load["address"], self._node_cpus[node],
                                     load["cores"], load["busy_cores"], load["io_busy"],
                                     load["billing_processes"], time.monotonic())
        for gauge, key in ((self._metrics.node_cpu, "cpu_percent"),
                           (self._metrics.node_io, "io_busy"),
                           (self._metrics.node_procs, "billing_processes")):
            gauge.set(load[key], tags={"node_id": node})

    def progress(self, run_id: str) -> dict:
        """Counts of a run's sections by state and the nodes working on it."""
        run = self._runs.get(run_id)
        if run is None:
            record = self._catalog.run(run_id)
            return {"run_id": run_id, "period": record.period, "finished": True,
                    "queued": 0, "running": 0, "done": record.sections_done,
                    "failed": record.sections_failed, "total": record.sections_total,
                    "nodes": {}}
        done = sum(o.status == "done" for o in run.outcomes.values())
        nodes: dict[str, int] = {}
        for node in run.running.values():
            nodes[node] = nodes.get(node, 0) + 1
        return {"run_id": run_id, "period": run.period, "finished": run.finished,
                "queued": len(run.queue), "running": len(run.running), "done": done,
                "failed": len(run.outcomes) - done,
                "total": len(run.queue) + len(run.running) + len(run.outcomes),
                "nodes": nodes}

    async def wait_end_signal(self, run_id: str, timeout_s: float) -> dict | None:
        """The run's end signal as soon as it ends, or None after ``timeout_s``: a long
        poll, so a waiting job learns of the end at once and polls nobody meanwhile."""
        run = self._runs.get(run_id)
        if run is not None and not run.finished:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.ended.wait(), timeout_s)
        return self.end_signal(run_id)

    def end_signal(self, run_id: str) -> dict | None:
        """The run's end signal once every section is done or failed, else None."""
        run = self._runs.get(run_id)
        if run is not None:
            return run.signal if run.finished else None
        return _end_signal(self._catalog.run(run_id), self._catalog.failures(run_id))

    def nodes(self) -> list[dict]:
        """Registered nodes with their latest report and age in seconds."""
        now = time.monotonic()
        return [{**self._reports[n], "cpus": load.cpus, "age_s": now - load.reported_at}
                for n, load in sorted(self._loads.items())]

    # -- the dispatch loop ----------------------------------------------------------------

    def _adopt(self, run_id: str, period: str, sections: list[str],
               tariffs: TariffFiles | None, sizes: dict[str, int] | None = None) -> None:
        if sizes is None:
            sizes = self._centre.section_sizes(period)
        if tariffs is None:  # a run recorded before books were: the sample book
            from gridfare.tariffs import read_tariff_files

            tariffs = read_tariff_files()
        # Largest first, once: each dispatch then looks only at the head of the queue.
        ordered = sorted(sections, key=lambda s: (-sizes.get(s, 0), s))
        files = history_files(self._section_files, sections, period)
        self._runs[run_id] = _Run(run_id, period, ray.put(tariffs),
                                  {s: sizes.get(s, 0) for s in ordered}, files)
        if self._wake is not None:
            self._wake.set()

    def _section_files(self, periods: list[str], sections: list[str]) -> SectionFiles:
        return self._catalog.section_files(self._centre, periods=periods, sections=sections)

    def _ensure_loop(self) -> None:
        if self._loop is None or self._loop.done():
            self._wake = asyncio.Event()
            self._loop = asyncio.get_running_loop().create_task(self._dispatch_forever())

    async def _dispatch_forever(self) -> None:
        while True:
            now = time.monotonic()
            # One failing duty (say, the autoscaler unreachable) must not stop the others,
            # nor the loop: it is logged and tried again on the next turn.
            duties = (("agents", partial(self._check_agents, now)),
                      ("dispatch", partial(self._dispatch, now)),
                      ("catalog", partial(self._flush_if_due, now)),
                      ("end signals", self._finish_runs),
                      ("autoscaler request", partial(self._request_resources, now)))
            for name, duty in duties:
                try:
                    duty()
                except Exception:
                    logger.exception("control server: %s failed; retrying next turn", name)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    def _check_agents(self, now: float) -> None:
        if now - self._agents_checked > AGENT_CHECK_INTERVAL_S:
            self._agents_checked = now
            self._ensure_agents()

    def _flush_if_due(self, now: float) -> None:
        if now - self._flushed >= RECORD_INTERVAL_S and not self._recording():
            self._record_outcomes()

    def _recording(self) -> bool:
        """Whether a catalog write of ended sections is under way (in its thread)."""
        return self._writing is not None and not self._writing.done()

    def _ensure_agents(self) -> None:
        """Start a NodeAgent on every live node that has none; forget dead nodes.

        With autoscaling, worker nodes keep their agents only while runs come: Ray counts a
        node running any actor (even one using no CPU) as busy, so an idle worker node with
        an agent would never be released.
        """
        alive = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
        if all(run.finished for run in self._runs.values()):
            self._idle_since = self._idle_since or time.monotonic()
        else:
            self._idle_since = None
        # A grace period keeps agents (and their load history) across back-to-back runs.
        if (self._autoscale and self._idle_since is not None
                and time.monotonic() - self._idle_since >= AGENT_RELEASE_AFTER_S):
            alive = {node_id: info for node_id, info in alive.items()
                     if "node:__internal_head__" in info.get("Resources", {})}
            for node_id in set(self._agents) - set(alive):
                ray.kill(self._agents[node_id], no_restart=True)
        self._live_cpus = {node_id: float(info.get("Resources", {}).get("CPU", 0.0))
                           for node_id, info in alive.items()}
        self._node_cpus.update(self._live_cpus)
        for node_id in alive:
            if node_id in self._agents:
                continue
            # Agents belong to this ControlServer (one per data centre): named after it and
            # the whole node id (fake multi-node ids differ only in their last characters).
            agent = named_detached(
                NodeAgent,
                f"{ray.get_runtime_context().get_actor_name()}-agent-{node_id}",
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(ray.get_runtime_context().current_actor)
            agent.start.remote()
            self._agents[node_id] = agent
        for node_id in set(self._agents) - set(alive):
            del self._agents[node_id]
        for node_id in set(self._loads) - set(alive):
            self._loads.pop(node_id, None)
            self._reports.pop(node_id, None)

    def _dispatch(self, now: float) -> None:
        in_flight: dict[str, int] = {}  # tasks (sections or bundles) per node
        for run in self._runs.values():
            for node in run.tasks.values():
                in_flight[node] = in_flight.get(node, 0) + 1
        # Ray's CPU resource, not the machine's cores, is what a node offers to billing.
        loads = tuple(replace(load, cpus=self._node_cpus.get(load.node_id, load.cpus))
                      for load in self._loads.values())
        for run in list(self._runs.values()):
            if not run.queue or awaiting_reports(self._live_cpus, self._loads,
                                                 now - run.started, self._policy):
                continue
            free = sum(int(load.cpus * self._policy.in_flight_per_cpu) for load in loads)
            free -= sum(in_flight.values())
            # Enough of the queue's head to fill a bundle for every free slot.
            window = max(free, 1) * self._policy.bundle_max_sections
            demands = [SectionDemand(s, w, s in run.alone)
                       for s, w in itertools.islice(run.queue.items(), window)]
            plan = choose_nodes(ClusterSnapshot(now, loads, dict(in_flight)), demands,
                                self._policy, queued_weight=run.queued_weight)
            for command in plan.commands:
                for section in command.sections:
                    run.take(section, command.node_id)
                in_flight[command.node_id] = in_flight.get(command.node_id, 0) + 1
                key = next(self._task_keys)
                run.tasks[key] = command.node_id
                asyncio.get_running_loop().create_task(self._bill(run, key, command))
            self._metrics.queued.set(len(run.queue), tags={"run_id": run.run_id})
            self._metrics.running.set(len(run.running), tags={"run_id": run.run_id})

    async def _bill(self, run: _Run, key: int, command: BillingCommand) -> None:
        started = time.monotonic()
        node = command.node_id
        ref = bill_bundle_task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True),
        ).remote(self._uri, run.tariffs, run.period, list(command.sections), run.run_id,
                 run.files.only(command.sections))
        try:
            outcomes, node = await ref
        except ray.exceptions.RayError as exc:
            retry = retry_alone(command)
            if retry:
                logger.warning("run %s: bundle of %d sections failed (%s); billing them "
                               "one by one", run.run_id, len(retry), one_line(exc))
                run.tasks.pop(key, None)
                for demand in retry:
                    run.running.pop(demand.section_id, None)
                    run.alone.add(demand.section_id)
                run.requeue_first(retry)
                self._wake.set()
                return
            outcomes = [SectionOutcome(command.sections[0], "failed",
                                       seconds=time.monotonic() - started,
                                       error=one_line(exc))]
        run.tasks.pop(key, None)
        finished_at = _now()
        ended: dict[str, int] = {}
        billed = 0
        for outcome in outcomes:
            run.unrecorded.append(outcome.as_record(node_id=node, finished_at=finished_at))
            run.running.pop(outcome.section_id, None)
            # Its exception and manifest rows go to the catalog with the record above; the
            # run keeps the rest (a 30 M run's rows would stay in this actor's memory).
            run.outcomes[outcome.section_id] = replace(outcome, exception_rows=(), files=())
            ended[outcome.status] = ended.get(outcome.status, 0) + 1
            billed += outcome.billed
            self._metrics.latency.observe(outcome.seconds, tags={"node_id": node})
        for status, count in ended.items():
            self._metrics.ended.inc(count, tags={"run_id": run.run_id, "status": status})
        if billed:
            self._metrics.accounts.inc(billed, tags={"run_id": run.run_id})
        self._wake.set()

    def _record_outcomes(self) -> None:
        """Write ended sections to the catalog, one transaction per run and interval, in a
        thread, while this loop goes on receiving results and dispatching.

        On the bench's 13-period catalog a write (a DuckDB open, the transaction, the
        checkpoint at close) takes 50-100 ms; in the loop, it stalled every hand-off for
        that long once a second, and bundles of ~0.1 s ran dry behind it: 1st period of
        1.5 M accounts, 1.5-2 core-seconds idle in gaps of 30-150 ms, one a second
        (docs/benchmarks.md). A run finishes only once no write is under way
        (``_finish_runs``), so its end is recorded after its sections. If the ControlServer
        dies first, those sections are still pending in the catalog and the restarted one
        bills them again: same bytes, one catalog row each. A failed write puts its
        outcomes back, to be written with the next.
        """
        self._flushed = time.monotonic()
        batches = [(run, run.unrecorded) for run in self._runs.values() if run.unrecorded]
        if not batches:
            return
        for run, _ in batches:
            run.unrecorded = []
        self._writing = asyncio.get_running_loop().create_task(self._write(batches))

    async def _write(self, batches: list[tuple[_Run, list[dict]]]) -> None:
        try:
            while batches:
                run, outcomes = batches[0]
                await asyncio.to_thread(self._catalog.record_sections, run.run_id, outcomes)
                batches.pop(0)
        except Exception:
            logger.exception("control server: recording ended sections failed; retrying "
                             "with the next write")
            for run, outcomes in batches:
                run.unrecorded = outcomes + run.unrecorded
        finally:
            self._wake.set()

    def _finish_runs(self) -> None:
        if self._recording():  # its sections first: retried when the write ends (a wake)
            return
        for run in self._runs.values():
            if not run.finished and not run.queue and not run.running and not run.tasks:
                record = self._catalog.finish_run(run.run_id, _now(), run.unrecorded)
                run.unrecorded = []
                # Every section that ever failed in this run was billed again in it (a
                # resume and a restart take the failed ones too): its failures are here.
                run.signal = _end_signal(record, {
                    o.section_id: o.error for o in run.outcomes.values()
                    if o.status == "failed"})
                run.finished = True
                run.ended.set()
                self._metrics.queued.set(0, tags={"run_id": run.run_id})
                self._metrics.running.set(0, tags={"run_id": run.run_id})
                try:
                    # Every task of the run has returned: bundles no manifest row names
                    # (a killed attempt's, sections billed again) go now.
                    self._catalog.sweep(self._centre, run.period, run.run_id)
                except Exception:
                    logger.exception("run %s: sweeping %s's unrecorded files failed; the "
                                     "next run sweeps them", run.run_id, run.period)
        if all(run.finished for run in self._runs.values()):
            self._catalog.release()  # cheap when nothing is held; lets a `bill` in

    def _request_resources(self, now: float) -> None:
        """Ask the autoscaler for one CPU per billing task running or to come (bounded)."""
        if not self._autoscale:
            return
        runs = self._runs.values()
        wanted = autoscale_demand(sum(r.queued_weight for r in runs),
                                  sum(len(r.queue) for r in runs),
                                  sum(len(r.tasks) for r in runs),
                                  MAX_RESOURCE_REQUEST, self._policy)
        if wanted == self._requested or (
                wanted < self._requested
                and now - self._requested_at < LOWER_REQUEST_INTERVAL_S):
            return
        from actors.capacity import request_capacity

        # Through actors.capacity: request_resources keeps one request per cluster, and the
        # LoadShareManager asks for burst nodes beside billing's CPUs.
        owner = ray.get_runtime_context().get_actor_name() or "gridfare-control"
        request_capacity(owner, [{"CPU": 1}] * wanted)
        self._requested, self._requested_at = wanted, now
