import pytest

from gridfare.errors import IllegalTransition
from gridfare.loadshare import Environment, EnvState, OpenTable


def test_an_environment_goes_opening_open_draining_closed():
    table = OpenTable()
    table.ask("e1", episode=1, now=10)
    row = table.register("e1", "node-a", cpus=1, memory_bytes=2 << 30, now=12)
    assert (row.state, row.node_id, row.opened_at) == (EnvState.OPEN, "node-a", 12)
    table.report("e1", "replica-1", tasks_in_flight=3, tasks_done=40)
    assert table.drain("e1", now=20).state is EnvState.DRAINING
    row = table.close("e1", now=25, reason="drained")
    assert (row.state, row.tasks_done, row.tasks_in_flight) == (EnvState.CLOSED, 40, 0)
    assert table.live() == []


def test_every_change_is_safe_to_repeat():
    table = OpenTable()
    first = table.ask("e1", 1, now=10)
    assert table.ask("e1", 2, now=99) == first
    opened = table.register("e1", "node-a", 1, 0, now=12)
    assert table.register("e1", "node-a", 1, 0, now=13) == opened
    drained = table.drain("e1", now=20)
    assert table.drain("e1", now=21) == drained
    closed = table.close("e1", now=25, reason="drained")
    assert table.close("e1", now=26, reason="again") == closed


def test_illegal_moves_are_refused_with_the_environment_named():
    table = OpenTable()
    table.ask("e1", 1, now=0)
    table.close("e1", now=1, reason="withdrawn")
    with pytest.raises(IllegalTransition, match="e1: registration while closed"):
        table.register("e1", "node-a", 1, 0, now=2)
    table.ask("e2", 1, now=0)
    table.register("e2", "node-b", 1, 0, now=1)
    table.drain("e2", now=2)
    with pytest.raises(IllegalTransition, match="e2: registration while draining"):
        table.register("e2", "node-c", 1, 0, now=3)
    with pytest.raises(IllegalTransition, match="e9: not in the open-state table"):
        table.drain("e9", now=0)


def test_tasks_done_never_goes_back_and_a_closed_row_is_frozen():
    table = OpenTable()
    table.ask("e1", 1, now=0)
    table.register("e1", "n", 1, 0, now=0)
    table.report("e1", "r1", 0, 50)
    assert table.report("e1", "r1", 1, 20).tasks_done == 50  # a stale report answers less
    # A second replica on the node, or one Serve restarted there: it counts from zero.
    row = table.report("e1", "r2", 1, 5)
    assert (row.tasks_done, row.tasks_in_flight) == (55, 2)
    assert table.report("e1", "r2", 0, 9).tasks_done == 59
    assert table.on_node("n").env_id == "e1"
    table.close("e1", now=5, reason="node died")
    assert table.report("e1", "r2", 4, 90).tasks_done == 59
    assert table.on_node("n") is None


def test_rows_round_trip_through_dicts():
    row = Environment("e1", 3, EnvState.DRAINING, "n", 1.5, 1 << 30, 1.0, 2.0, 3.0, None, 2, 7,
                      "", (("r1", 1, 4), ("r2", 1, 3)))
    assert Environment.from_dict(row.to_dict()) == row


def test_closed_rows_past_the_retention_are_pruned_and_live_ones_never():
    table = OpenTable()
    for env_id, closed_at in (("old", 100.0), ("recent", 900.0)):
        table.ask(env_id, 1, now=10)
        table.register(env_id, f"node-{env_id}", 1, 0, now=12)
        table.close(env_id, now=closed_at, reason="drained")
    table.ask("live", 2, now=50)
    table.register("live", "node-live", 1, 0, now=51)
    table.ask("never-opened", 2, now=60)
    assert table.prune(closed_before=500.0) == ["old"]
    assert [r.env_id for r in table.rows()] == ["recent", "live", "never-opened"]
    assert table.prune(closed_before=500.0) == []  # repeating it forgets nothing more
    assert table.prune(closed_before=10_000.0) == ["recent"]
    assert {r.env_id for r in table.live()} == {"live", "never-opened"}
