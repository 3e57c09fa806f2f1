"""Choose a node for each billing section from the nodes' reported load (a pure policy).

The ControlServer gathers a ``ClusterSnapshot`` (the NodeAgents' latest reports plus the
sections it has in flight on each node) and applies the ``Plan``; this module decides.

The rule, in the source design's terms (CPU usage, IO usage, running service processes):
a node's *other work* is the cores it reports busy minus the billing processes it runs for
us; what is left of its cores is its *capacity*, and it takes at most ``in_flight_per_cpu``
sections per free core (at least one per node when every node is saturated, so a run always
moves). Sections go largest first (longest processing time first keeps the makespan short
when sizes are skewed) to the open node with the lowest pressure per free core, where
pressure counts sections in flight there and a saturated disk. What cannot be placed now
stays queued with the reason.

Small sections travel in *bundles*: one command (one task) bills several sections, so the
fixed cost of a task, its reads and its kernel call is paid once per bundle rather than per
section. Bundles are filled largest section first up to ``bundle_weight`` (never more
than ``bundle_max_sections``); a section at or above the target goes alone. The target
shrinks so that what is queued still makes ``bundle_rounds`` rounds of the nodes' slots: a
small run spreads over every node (also one whose first report comes a moment late), and
bundles get smaller towards the end of a run, so its tail stays balanced; not below
``bundle_floor`` while what is queued still gives every slot a bundle of that weight,
then one a slot (a hand-off costs a core a few milliseconds, and the tail was mostly
1-10-section bundles). A section marked ``alone`` (its bundle crashed) is never bundled,
so a bad section fails by itself and not its bundle-mates.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from gridfare.errors import ConfigError

__all__ = [
    "BillingCommand",
    "ClusterSnapshot",
    "DispatchPolicy",
    "NodeLoad",
    "Plan",
    "SectionDemand",
    "autoscale_demand",
    "awaiting_reports",
    "bundle_sections",
    "choose_nodes",
    "retry_alone",
]


@dataclass(frozen=True)
class DispatchPolicy:
    """Knobs of the dispatch policy (one frozen config, checked on construction)."""

    in_flight_per_cpu: int = 2  # commands (sections or bundles) per core: one runs, one waits
    io_busy_threshold: float = 0.8  # disk busy share above which a node is penalised
    io_penalty: float = 1.0  # extra pressure, in cores, of a saturated disk
    stale_after_s: float = 5.0  # a node silent for this long gets no new sections
    # Bundle small sections up to this weight (1: never bundle). Weights are the
    # ControlServer's size measure, a section's readings bytes (about 35 per account), so
    # this is about 55 sections of the usual 500 accounts, under 0.2 s of work: each task
    # costs the ControlServer and Ray about a millisecond and a core waits on every hand-off,
    # so on 30 M accounts bundles of 10 sections left cores idle 20 % of the time (131 s)
    # where bundles of 55 took 107 s. Short runs get smaller bundles (``bundle_rounds``).
    bundle_weight: int = 1_000_000
    bundle_max_sections: int = 64  # ...and at most this many sections
    bundle_rounds: int = 4  # bundles small enough for the queue to fill the slots this often
    # ...but a tail bundle is not made lighter than this (about 8 sections of 500 accounts)
    # while what is queued still gives every slot one: the shrinking tail of a 3,000-section
    # run was ~100 bundles of 1-10 sections, a hand-off each.
    bundle_floor: int = 140_000
    # A new run waits this long at most for every live node's first load report, so that a
    # node whose agent has just started is not left out of a short run.
    first_report_grace_s: float = 2.0

    def __post_init__(self) -> None:
        if self.in_flight_per_cpu < 1:
            raise ConfigError("dispatch.in_flight_per_cpu: must be at least 1")
        if not 0 < self.io_busy_threshold <= 1:
            raise ConfigError("dispatch.io_busy_threshold: must be in (0, 1]")
        if self.io_penalty < 0 or self.stale_after_s <= 0:
            raise ConfigError("dispatch.io_penalty / stale_after_s: must be positive")
        if self.bundle_weight < 1:
            raise ConfigError("dispatch.bundle_weight: must be at least 1")
        if self.bundle_max_sections < 1:
            raise ConfigError("dispatch.bundle_max_sections: must be at least 1")
        if self.bundle_rounds < 1:
            raise ConfigError("dispatch.bundle_rounds: must be at least 1")
        if self.bundle_floor < 1:
            raise ConfigError("dispatch.bundle_floor: must be at least 1")
        if self.first_report_grace_s < 0:
            raise ConfigError("dispatch.first_report_grace_s: must not be negative")


@dataclass(frozen=True)
class NodeLoad:
    """A node's latest report, as a NodeAgent sends it."""

    node_id: str
    address: str
    cpus: float  # CPUs the node offers to billing (its Ray CPU resource)
    cores: int  # cores the node's processes may run on (its CPU affinity)
    busy_cores: float  # of those, cores busy with anything over the last interval
    io_busy: float  # disk busy share 0..1 over the last interval
    billing_processes: int  # billing node-services running on the node right now
    reported_at: float  # monotonic seconds on the ControlServer's clock

    @property
    def other_work(self) -> float:
        """Cores' worth of work competing with this node's billing, ours excluded.

        A node offering fewer CPUs than the cores it shares (several nodes on one machine)
        bears its share of the machine's other work, not all of it.
        """
        share = min(1.0, self.cpus / self.cores) if self.cores > 0 else 1.0
        return max(0.0, self.busy_cores * share - self.billing_processes)

    @property
    def free_cpus(self) -> float:
        return max(0.0, self.cpus - self.other_work)


@dataclass(frozen=True)
class SectionDemand:
    """A section waiting for a node; ``weight`` is its size (the ControlServer uses the
    bytes of its readings). ``alone``: never bundle it (its bundle failed once; billed
    alone, only a bad section fails)."""

    section_id: str
    weight: int
    alone: bool = False


@dataclass(frozen=True)
class ClusterSnapshot:
    """What the ControlServer knows when it plans."""

    now: float
    nodes: tuple[NodeLoad, ...]
    in_flight: dict[str, int] = field(default_factory=dict)  # node_id -> sections running


@dataclass(frozen=True)
class BillingCommand:
    """Bill ``sections`` (one, or a bundle of small ones) in one task on ``node_id``."""

    sections: tuple[str, ...]
    node_id: str
    weight: int = 0  # sum of the sections' weights



@dataclass(frozen=True)
class Plan:
    commands: tuple[BillingCommand, ...]
    unplaced: tuple[tuple[str, str], ...]  # (section_id, reason)


def choose_nodes(snapshot: ClusterSnapshot, sections: Sequence[SectionDemand],
                 policy: DispatchPolicy = DispatchPolicy(), *,
                 queued_weight: int | None = None) -> Plan:
    """Place as many sections as the nodes' bounds allow, least pressure per core first.

    ``sections`` may be the head of a longer queue; ``queued_weight`` is the weight of the
    whole queue (default: of ``sections``), which bounds the size of bundles.
    """
    live = [n for n in snapshot.nodes
            if snapshot.now - n.reported_at <= policy.stale_after_s and n.cpus > 0]
    if not live:
        reason = f"no node has reported in the last {policy.stale_after_s:.0f} s"
        return Plan((), tuple((s.section_id, reason) for s in sections))
    capacity = {n.node_id: math.ceil(n.free_cpus * policy.in_flight_per_cpu) for n in live}
    if not any(capacity.values()):
        capacity = dict.fromkeys(capacity, 1)  # all saturated: still make progress
    slots = {node: max(0, cap - snapshot.in_flight.get(node, 0))
             for node, cap in capacity.items()}
    pressure = {n.node_id: snapshot.in_flight.get(n.node_id, 0)
                + (policy.io_penalty if n.io_busy >= policy.io_busy_threshold else 0.0)
                for n in live}
    per_core = {n.node_id: max(n.free_cpus, 1.0 / policy.in_flight_per_cpu) for n in live}
    queued = sum(s.weight for s in sections) if queued_weight is None else queued_weight
    rounds = sum(capacity.values()) * policy.bundle_rounds
    floor = min(policy.bundle_floor, math.ceil(queued / sum(capacity.values())))
    target = max(1, min(policy.bundle_weight, max(math.ceil(queued / rounds), floor)))
    commands: list[BillingCommand] = []
    unplaced: list[tuple[str, str]] = []
    for bundle in bundle_sections(sections, target, policy.bundle_max_sections):
        open_nodes = [node for node, free in slots.items() if free > 0]
        if not open_nodes:
            unplaced += [(s, "every node is at its in-flight bound") for s in bundle.sections]
            continue
        best = min(open_nodes, key=lambda node: ((pressure[node] + 1) / per_core[node], node))
        commands.append(replace(bundle, node_id=best))
        slots[best] -= 1
        pressure[best] += 1
    return Plan(tuple(commands), tuple(unplaced))


def bundle_sections(sections: Sequence[SectionDemand], target_weight: int,
                    max_sections: int) -> list[BillingCommand]:
    """Group ``sections`` into bundles (commands without a node yet), largest first.

    Sections are taken largest first and added to the open bundle until the next one would
    take it over ``target_weight`` or it holds ``max_sections``; a section at or above
    the target, or marked ``alone``, makes a bundle of its own. Bundles come out heaviest
    first (longest processing time first), ties by their first section id.
    """
    bundles: list[BillingCommand] = []
    current: list[str] = []
    weight = 0
    for section in sorted(sections, key=lambda s: (-s.weight, s.section_id)):
        if section.alone:
            bundles.append(BillingCommand((section.section_id,), "", section.weight))
            continue
        if current and (weight + section.weight > target_weight
                        or len(current) >= max_sections):
            bundles.append(BillingCommand(tuple(current), "", weight))
            current, weight = [], 0
        current.append(section.section_id)
        weight += section.weight
    if current:
        bundles.append(BillingCommand(tuple(current), "", weight))
    bundles.sort(key=lambda b: (-b.weight, b.sections[0]))
    return bundles


def retry_alone(command: BillingCommand) -> tuple[SectionDemand, ...]:
    """What to queue again when ``command``'s task failed as a whole (it crashed).

    Which section of a bundle broke the task is unknown, so each is billed again alone: a
    bad one then fails by itself and its bundle-mates complete. A single section's failure
    is final (nothing to retry): Ray has already retried a task whose node died.
    """
    if len(command.sections) < 2:
        return ()
    return tuple(SectionDemand(section, 0, alone=True) for section in command.sections)


def awaiting_reports(live_cpus: Mapping[str, float], reported: Collection[str],
                     run_age_s: float, policy: DispatchPolicy = DispatchPolicy(),
                     ) -> tuple[str, ...]:
    """Live nodes with CPUs that a run of ``run_age_s`` seconds should still wait for.

    A node whose NodeAgent has not reported yet has no load to plan with; for the first
    ``first_report_grace_s`` of a run the dispatch waits for it rather than giving the whole
    run to the nodes that happened to report first. Afterwards nobody is waited for.
    """
    if run_age_s >= policy.first_report_grace_s:
        return ()
    return tuple(sorted(node for node, cpus in live_cpus.items()
                        if cpus > 0 and node not in reported))


def autoscale_demand(queued_weight: int, queued_sections: int, tasks_in_flight: int,
                     limit: int, policy: DispatchPolicy = DispatchPolicy()) -> int:
    """CPUs to ask the autoscaler for: one per billing task running or still to come.

    A task takes one CPU and carries a bundle of up to ``bundle_weight``, so the queue
    needs about its weight over the bundle weight in tasks (at least one task while any
    section waits, at most one per section); ``limit`` caps the request.
    """
    if min(queued_weight, queued_sections, tasks_in_flight, limit) < 0:
        raise ValueError("autoscale_demand: counts must not be negative")
    to_come = 0
    if queued_sections:
        to_come = min(queued_sections, max(1, math.ceil(queued_weight / policy.bundle_weight)))
    return min(limit, tasks_in_flight + to_come)
