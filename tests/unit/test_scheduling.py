import pytest

from gridfare.errors import ConfigError
from gridfare.scheduling import (
    ClusterSnapshot,
    DispatchPolicy,
    NodeLoad,
    SectionDemand,
    choose_nodes,
)


def node(node_id, cpus=1.0, busy=0.0, io=0.0, procs=0, at=100.0, cores=None):
    return NodeLoad(node_id, "127.0.0.1", cpus, cores or int(cpus), busy, io, procs, at)


def sections(*weights):
    return [SectionDemand(f"S{i:05d}", w) for i, w in enumerate(weights, 1)]


def placed(plan):
    return {c.section_id: c.node_id for c in plan.commands}


def counts(plan):
    found = {}
    for n in placed(plan).values():
        found[n] = found.get(n, 0) + 1
    return found


def test_largest_sections_go_first_to_the_least_loaded_nodes():
    snap = ClusterSnapshot(100.0, (node("a", cpus=2.0), node("b", cpus=2.0, busy=1.0)))
    plan = choose_nodes(snap, sections(10, 5000, 20))
    assert plan.commands[0].section_id == "S00002"
    assert placed(plan)["S00002"] == "a"  # half of b is busy with other work


def test_a_node_saturated_by_other_work_gets_nothing_while_others_have_room():
    snap = ClusterSnapshot(100.0, (node("a", busy=1.0), node("b")))
    plan = choose_nodes(snap, sections(*[1] * 6), DispatchPolicy(in_flight_per_cpu=2))
    assert counts(plan) == {"b": 2}
    assert len(plan.unplaced) == 4


def test_when_every_node_is_saturated_each_still_takes_one():
    snap = ClusterSnapshot(100.0, (node("a", busy=1.0), node("b", busy=1.0)))
    assert counts(choose_nodes(snap, sections(1, 1, 1))) == {"a": 1, "b": 1}


def test_nodes_sharing_a_machine_bear_a_share_of_its_other_work():
    # Two 1-CPU nodes on one 2-core machine: one core busy elsewhere is half each node's.
    shared = node("a", cpus=1.0, cores=2, busy=1.0)
    assert shared.other_work == 0.5 and shared.free_cpus == 0.5
    snap = ClusterSnapshot(100.0, (shared, node("b", cpus=1.0, cores=2, busy=1.0)))
    assert counts(choose_nodes(snap, sections(1, 1, 1, 1))) == {"a": 1, "b": 1}


def test_in_flight_bound_leaves_the_rest_queued_with_a_reason():
    snap = ClusterSnapshot(100.0, (node("a"),), in_flight={"a": 1})
    plan = choose_nodes(snap, sections(1, 2, 3), DispatchPolicy(in_flight_per_cpu=2))
    assert len(plan.commands) == 1
    assert [reason for _, reason in plan.unplaced] == ["every node is at its in-flight bound"] * 2


def test_own_billing_processes_are_not_counted_as_other_work():
    # Both nodes fully busy; on a, our one section explains it, on b something else does.
    snap = ClusterSnapshot(100.0, (node("a", busy=1.0, procs=1), node("b", busy=1.0)),
                           in_flight={"a": 1})
    assert placed(choose_nodes(snap, sections(5)))["S00001"] == "a"


def test_saturated_disk_is_avoided():
    snap = ClusterSnapshot(100.0, (node("a", io=0.95), node("b")))
    assert placed(choose_nodes(snap, sections(5)))["S00001"] == "b"


def test_bigger_nodes_take_more():
    snap = ClusterSnapshot(100.0, (node("a", cpus=4.0), node("b", cpus=1.0)))
    found = counts(choose_nodes(snap, sections(*[1] * 8)))
    assert found["a"] > found["b"]


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
