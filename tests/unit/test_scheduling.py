import pytest

from gridfare.errors import ConfigError
from gridfare.scheduling import (
    ClusterSnapshot,
    DispatchPolicy,
    NodeLoad,
    SectionDemand,
    choose_nodes,
)


def node(node_id, cpus=1.0, cpu=0.0, io=0.0, procs=0, at=100.0):
    return NodeLoad(node_id, "127.0.0.1", cpus, cpu, io, procs, at)


def sections(*weights):
    return [SectionDemand(f"S{i:05d}", w) for i, w in enumerate(weights, 1)]


def placed(plan):
    return {c.section_id: c.node_id for c in plan.commands}


def test_largest_sections_go_first_to_the_least_loaded_nodes():
    snap = ClusterSnapshot(100.0, (node("a"), node("b", cpu=90.0)))
    plan = choose_nodes(snap, sections(10, 5000, 20))
    assert plan.commands[0].section_id == "S00002"
    assert placed(plan)["S00002"] == "a"  # b is busy with other work


def test_in_flight_bound_leaves_the_rest_queued_with_a_reason():
    snap = ClusterSnapshot(100.0, (node("a"),), in_flight={"a": 1})
    plan = choose_nodes(snap, sections(1, 2, 3), DispatchPolicy(in_flight_per_cpu=2))
    assert len(plan.commands) == 1
    assert [reason for _, reason in plan.unplaced] == ["every node is at its in-flight bound"] * 2


def test_own_billing_processes_are_not_counted_as_other_work():
    # Both nodes at 100 % CPU; on a, our one section explains it, on b something else does.
    snap = ClusterSnapshot(100.0, (node("a", cpu=100.0, procs=1), node("b", cpu=100.0)),
                           in_flight={"a": 1})
    assert placed(choose_nodes(snap, sections(5)))["S00001"] == "a"


def test_saturated_disk_is_avoided():
    snap = ClusterSnapshot(100.0, (node("a", io=0.95), node("b")))
    assert placed(choose_nodes(snap, sections(5)))["S00001"] == "b"


def test_bigger_nodes_take_more():
    snap = ClusterSnapshot(100.0, (node("a", cpus=4.0), node("b", cpus=1.0)))
    counts = {}
    for n in placed(choose_nodes(snap, sections(*[1] * 8))).values():
        counts[n] = counts.get(n, 0) + 1
    assert counts["a"] > counts["b"]


def test_stale_nodes_get_nothing():
    snap = ClusterSnapshot(100.0, (node("a", at=10.0),))
    plan = choose_nodes(snap, sections(1))
    assert not plan.commands and "no node has reported" in plan.unplaced[0][1]


def test_deterministic_ties():
    snap = ClusterSnapshot(100.0, (node("b"), node("a")))
    assert placed(choose_nodes(snap, sections(1, 1))) == {"S00001": "a", "S00002": "b"}


def test_policy_is_validated():
    with pytest.raises(ConfigError, match="in_flight_per_cpu"):
        DispatchPolicy(in_flight_per_cpu=0)
