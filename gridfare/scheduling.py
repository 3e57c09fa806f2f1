"""Choose a node for each billing section from the nodes' reported load (a pure policy).

The ControlServer gathers a ``ClusterSnapshot`` (the NodeAgents' latest reports plus the
sections it has in flight on each node) and applies the ``Plan``; this module decides.

The rule, in the source design's terms (CPU usage, IO usage, running service processes):
a node's *pressure* is the share of its cores that are busy with other work (reported CPU
minus the billing processes the node runs for us) plus the sections we already have in
flight there, plus a penalty when its disk is saturated. Sections go largest first (longest
processing time first keeps the makespan short when sizes are skewed) to the node with the
lowest pressure per core, never beyond a node's in-flight bound. What cannot be placed now
stays queued with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gridfare.errors import ConfigError

__all__ = [
    "BillingCommand",
    "ClusterSnapshot",
    "DispatchPolicy",
    "NodeLoad",
    "Plan",
    "SectionDemand",
    "choose_nodes",
]


@dataclass(frozen=True)
class DispatchPolicy:
    """Knobs of the dispatch policy (one frozen config, checked on construction)."""

    in_flight_per_cpu: int = 2  # sections queued on a node per core (one runs, one waits)
    io_busy_threshold: float = 0.8  # disk busy share above which a node is penalised
    io_penalty: float = 1.0  # extra pressure, in cores, of a saturated disk
    stale_after_s: float = 5.0  # a node silent for this long gets no new sections

    def __post_init__(self) -> None:
        if self.in_flight_per_cpu < 1:
            raise ConfigError("dispatch.in_flight_per_cpu: must be at least 1")
        if not 0 < self.io_busy_threshold <= 1:
            raise ConfigError("dispatch.io_busy_threshold: must be in (0, 1]")
        if self.io_penalty < 0 or self.stale_after_s <= 0:
            raise ConfigError("dispatch.io_penalty / stale_after_s: must be positive")


@dataclass(frozen=True)
class NodeLoad:
    """A node's latest report, as a NodeAgent sends it."""

    node_id: str
    address: str
    cpus: float  # cores the node offers to billing
    cpu_percent: float  # busy share of those cores, 0..100, all processes
    io_busy: float  # disk busy share 0..1 over the last interval
    billing_processes: int  # billing node-services running on the node right now
    reported_at: float  # monotonic seconds on the ControlServer's clock


@dataclass(frozen=True)
class SectionDemand:
    """A section waiting for a node; ``weight`` is its size (accounts)."""

    section_id: str
    weight: int


@dataclass(frozen=True)
class ClusterSnapshot:
    """What the ControlServer knows when it plans."""

    now: float
    nodes: tuple[NodeLoad, ...]
    in_flight: dict[str, int] = field(default_factory=dict)  # node_id -> sections running


@dataclass(frozen=True)
class BillingCommand:
    """Bill ``section_id`` on ``node_id``."""

    section_id: str
    node_id: str


@dataclass(frozen=True)
class Plan:
    commands: tuple[BillingCommand, ...]
    unplaced: tuple[tuple[str, str], ...]  # (section_id, reason)


def choose_nodes(snapshot: ClusterSnapshot, sections: Sequence[SectionDemand],
                 policy: DispatchPolicy = DispatchPolicy()) -> Plan:
    """Place as many sections as the nodes' bounds allow, least pressure per core first."""
    live = [n for n in snapshot.nodes
            if snapshot.now - n.reported_at <= policy.stale_after_s and n.cpus > 0]
    if not live:
        reason = f"no node has reported in the last {policy.stale_after_s:.0f} s"
        return Plan((), tuple((s.section_id, reason) for s in sections))
    pressure = {n.node_id: _pressure(n, snapshot.in_flight.get(n.node_id, 0), policy)
                for n in live}
    slots = {n.node_id: max(0, int(n.cpus * policy.in_flight_per_cpu)
                            - snapshot.in_flight.get(n.node_id, 0)) for n in live}
    cpus = {n.node_id: n.cpus for n in live}
    commands: list[BillingCommand] = []
    unplaced: list[tuple[str, str]] = []
    for section in sorted(sections, key=lambda s: (-s.weight, s.section_id)):
        open_nodes = [node for node, free in slots.items() if free > 0]
        if not open_nodes:
            unplaced.append((section.section_id, "every node is at its in-flight bound"))
            continue
        best = min(open_nodes, key=lambda node: ((pressure[node] + 1) / cpus[node], node))
        commands.append(BillingCommand(section.section_id, best))
        slots[best] -= 1
        pressure[best] += 1
    return Plan(tuple(commands), tuple(unplaced))


def _pressure(node: NodeLoad, in_flight: int, policy: DispatchPolicy) -> float:
    busy_cores = node.cpus * min(max(node.cpu_percent, 0.0), 100.0) / 100
    # Our own billing processes show up in the CPU figure; count them once, as in-flight.
    other_work = max(0.0, busy_cores - node.billing_processes)
    io = policy.io_penalty if node.io_busy >= policy.io_busy_threshold else 0.0
    return other_work + in_flight + io
