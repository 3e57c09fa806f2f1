import pytest

from gridfare.errors import ConfigError
from gridfare.scheduling import (
    ClusterSnapshot,
    DispatchPolicy,
    NodeLoad,
    SectionDemand,
    autoscale_demand,
    awaiting_reports,
    bundle_sections,
    choose_nodes,
    retry_alone,
)

# Every section in a command of its own: the placement tests below count sections.
ALONE = DispatchPolicy(bundle_weight=1)


def node(node_id, cpus=1.0, busy=0.0, io=0.0, procs=0, at=100.0, cores=None):
    return NodeLoad(node_id, "127.0.0.1", cpus, cores or int(cpus), busy, io, procs, at)


def sections(*weights):
    return [SectionDemand(f"S{i:05d}", w) for i, w in enumerate(weights, 1)]


def placed(plan):
    return {s: c.node_id for c in plan.commands for s in c.sections}


def counts(plan):
    found = {}
    for c in plan.commands:
        found[c.node_id] = found.get(c.node_id, 0) + 1
    return found


def test_largest_sections_go_first_to_the_least_loaded_nodes():
    snap = ClusterSnapshot(100.0, (node("a", cpus=2.0), node("b", cpus=2.0, busy=1.0)))
    plan = choose_nodes(snap, sections(10, 5000, 20))
    assert plan.commands[0].sections == ("S00002",)
    assert placed(plan)["S00002"] == "a"  # half of b is busy with other work


def test_a_node_saturated_by_other_work_gets_nothing_while_others_have_room():
    snap = ClusterSnapshot(100.0, (node("a", busy=1.0), node("b")))
    plan = choose_nodes(snap, sections(*[1] * 6),
                        DispatchPolicy(in_flight_per_cpu=2, bundle_weight=1))
    assert counts(plan) == {"b": 2}
    assert len(plan.unplaced) == 4


def test_when_every_node_is_saturated_each_still_takes_one():
    snap = ClusterSnapshot(100.0, (node("a", busy=1.0), node("b", busy=1.0)))
    assert counts(choose_nodes(snap, sections(1, 1, 1), ALONE)) == {"a": 1, "b": 1}


def test_nodes_sharing_a_machine_bear_a_share_of_its_other_work():
    # Two 1-CPU nodes on one 2-core machine: one core busy elsewhere is half each node's.
    shared = node("a", cpus=1.0, cores=2, busy=1.0)
    assert shared.other_work == 0.5 and shared.free_cpus == 0.5
    snap = ClusterSnapshot(100.0, (shared, node("b", cpus=1.0, cores=2, busy=1.0)))
    assert counts(choose_nodes(snap, sections(1, 1, 1, 1), ALONE)) == {"a": 1, "b": 1}


def test_in_flight_bound_leaves_the_rest_queued_with_a_reason():
    snap = ClusterSnapshot(100.0, (node("a"),), in_flight={"a": 1})
    plan = choose_nodes(snap, sections(1, 2, 3),
                        DispatchPolicy(in_flight_per_cpu=2, bundle_weight=1))
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
    found = counts(choose_nodes(snap, sections(*[1] * 8), ALONE))
    assert found["a"] > found["b"]


def test_stale_nodes_get_nothing():
    snap = ClusterSnapshot(100.0, (node("a", at=10.0),))
    plan = choose_nodes(snap, sections(1))
    assert not plan.commands and "no node has reported" in plan.unplaced[0][1]


def test_deterministic_ties():
    snap = ClusterSnapshot(100.0, (node("b"), node("a")))
    assert placed(choose_nodes(snap, sections(1, 1), ALONE)) == {"S00001": "a", "S00002": "b"}


def test_policy_is_validated():
    with pytest.raises(ConfigError, match="in_flight_per_cpu"):
        DispatchPolicy(in_flight_per_cpu=0)
    with pytest.raises(ConfigError, match="bundle_weight"):
        DispatchPolicy(bundle_weight=0)
    with pytest.raises(ConfigError, match="bundle_max_sections"):
        DispatchPolicy(bundle_max_sections=0)
    with pytest.raises(ConfigError, match="bundle_rounds"):
        DispatchPolicy(bundle_rounds=0)


# -- bundles ------------------------------------------------------------------------------

def bundled(demands, target, most=32):
    return [b.sections for b in bundle_sections(demands, target, most)]


def test_small_sections_are_bundled_largest_first_up_to_the_target():
    # 400, then 300 + 200 + 100 (400 + 300 would pass the target).
    assert bundled(sections(100, 300, 200, 400), 600) == [("S00002", "S00003", "S00001"),
                                                           ("S00004",)]


def test_a_section_at_or_above_the_target_goes_alone():
    assert bundled(sections(5000, 10, 7000, 20), 5000) == [("S00003",), ("S00001",),
                                                            ("S00004", "S00002")]


def test_a_bundle_holds_at_most_max_sections():
    assert bundled(sections(*[1] * 5), 1000, most=2) == [("S00001", "S00002"),
                                                         ("S00003", "S00004"), ("S00005",)]


def test_a_section_marked_alone_is_never_bundled():
    demands = [SectionDemand("S1", 10), SectionDemand("S2", 10, alone=True),
               SectionDemand("S3", 10)]
    assert bundled(demands, 1000) == [("S1", "S3"), ("S2",)]


def test_bundles_carry_their_weight_and_come_heaviest_first():
    found = bundle_sections(sections(100, 100, 100, 250), 260, 32)
    assert [(b.sections, b.weight) for b in found] == [(("S00004",), 250),
                                                       (("S00001", "S00002"), 200),
                                                       (("S00003",), 100)]


def test_every_section_is_in_exactly_one_bundle():
    demands = sections(*[(i * 37) % 900 + 1 for i in range(200)])
    found = [s for b in bundled(demands, 2000, 8) for s in b]
    assert sorted(found) == sorted(d.section_id for d in demands)


def test_choose_nodes_places_bundles_within_the_in_flight_bound():
    snap = ClusterSnapshot(100.0, (node("a"), node("b")))
    plan = choose_nodes(snap, sections(*[500] * 40), DispatchPolicy(bundle_weight=5000),
                        queued_weight=1_000_000)  # a long queue behind these 40
    assert len(plan.commands) == 4  # 2 nodes x 1 CPU x 2 in flight
    assert all(len(c.sections) == 10 and c.weight == 5000 for c in plan.commands)
    assert counts(plan) == {"a": 2, "b": 2}
    assert not plan.unplaced


def test_a_small_run_is_spread_over_every_free_slot_rather_than_bundled_whole():
    snap = ClusterSnapshot(100.0, (node("a"), node("b"), node("c")))
    plan = choose_nodes(snap, sections(*[250] * 16), DispatchPolicy(bundle_weight=5000))
    assert len(plan.commands) == 6 and set(counts(plan)) == {"a", "b", "c"}
    assert sum(len(c.sections) for c in plan.commands) + len(plan.unplaced) == 16


def test_bundles_shrink_so_the_queue_fills_the_slots_several_times():
    snap = ClusterSnapshot(100.0, (node("a"), node("b")))  # 4 slots
    policy = DispatchPolicy(bundle_weight=5000, bundle_rounds=4, bundle_floor=1)
    # 16,000 queued over 4 slots x 4 rounds: bundles of 1,000 (two 500-sections).
    plan = choose_nodes(snap, sections(*[500] * 8), policy, queued_weight=16_000)
    assert [len(c.sections) for c in plan.commands] == [2, 2, 2, 2]
    # The tail of the run: little left, every section goes alone.
    plan = choose_nodes(snap, sections(*[500] * 4), policy, queued_weight=2_000)
    assert [len(c.sections) for c in plan.commands] == [1, 1, 1, 1]


def test_tail_bundles_keep_a_floor_while_every_slot_still_gets_one():
    snap = ClusterSnapshot(100.0, (node("a"), node("b")))  # 4 slots, 16 a round x 4
    policy = DispatchPolicy(bundle_weight=5000, bundle_rounds=4, bundle_floor=2000)
    # 40 sections of 500 left: 20,000 / 16 would be bundles of 1,250 (two sections);
    # the floor makes them four, and 20,000 still fills the 4 slots.
    plan = choose_nodes(snap, sections(*[500] * 16), policy, queued_weight=20_000)
    assert [len(c.sections) for c in plan.commands] == [4, 4, 4, 4]
    # 12 left: the floor would leave a slot without a bundle, so they are spread (3 each).
    plan = choose_nodes(snap, sections(*[500] * 12), policy)
    assert [len(c.sections) for c in plan.commands] == [3, 3, 3, 3]
    assert counts(plan) == {"a": 2, "b": 2}
    with pytest.raises(ConfigError, match="bundle_floor"):
        DispatchPolicy(bundle_floor=0)


def test_sections_of_bundles_that_find_no_node_stay_queued_each_with_the_reason():
    snap = ClusterSnapshot(100.0, (node("a"),), in_flight={"a": 2})
    plan = choose_nodes(snap, sections(1, 2, 3))
    assert not plan.commands
    assert sorted(s for s, _ in plan.unplaced) == ["S00001", "S00002", "S00003"]


def test_a_crashed_bundle_is_retried_section_by_section_and_a_single_section_not_at_all():
    from gridfare.scheduling import BillingCommand

    again = retry_alone(BillingCommand(("S1", "S2", "S3"), "a", 30))
    assert [(d.section_id, d.alone) for d in again] == [("S1", True), ("S2", True),
                                                         ("S3", True)]
    assert bundled(list(again), 1000) == [("S1",), ("S2",), ("S3",)]
    assert retry_alone(BillingCommand(("S1",), "a", 10)) == ()


def test_a_new_run_waits_briefly_for_live_nodes_that_have_not_reported():
    live = {"head": 0.0, "a": 1.0, "b": 1.0}
    policy = DispatchPolicy(first_report_grace_s=2.0)
    assert awaiting_reports(live, {"a"}, 0.5, policy) == ("b",)  # the head has no CPUs
    assert awaiting_reports(live, {"a", "b"}, 0.5, policy) == ()
    assert awaiting_reports(live, {"a"}, 2.0, policy) == ()  # no longer than the grace
    with pytest.raises(ConfigError, match="first_report_grace_s"):
        DispatchPolicy(first_report_grace_s=-1)


def test_autoscale_demand_counts_tasks_not_sections():
    policy = DispatchPolicy(bundle_weight=100)
    assert autoscale_demand(0, 0, 0, 64, policy) == 0  # idle: release everything
    assert autoscale_demand(1_000, 40, 0, 64, policy) == 10  # 40 sections in 10 bundles
    assert autoscale_demand(1_001, 40, 3, 64, policy) == 3 + 11
    assert autoscale_demand(5, 1, 2, 64, policy) == 3  # a light queue is still one task
    assert autoscale_demand(10_000, 5, 0, 64, policy) == 5  # never more than a task each
    assert autoscale_demand(10**9, 10**6, 10, 64, policy) == 64  # capped


def test_autoscale_demand_refuses_negative_counts():
    with pytest.raises(ValueError, match="negative"):
        autoscale_demand(-1, 0, 0, 64)
