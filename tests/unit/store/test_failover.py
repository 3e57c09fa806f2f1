import pytest

from gridfare.errors import InvalidInput
from gridfare.store.failover import (
    ActionKind,
    CoordinatorRecord,
    Phase,
    ReplicaStatus,
    Snapshot,
    decide,
    format_lsn,
    parse_lsn,
    sync_standby_names,
)

NAMES = ("pg0", "pg1", "pg2")
RECORD = CoordinatorRecord(3, "pg0", NAMES)


def primary(name="pg0", lsn=900):
    return ReplicaStatus(name, True, False, lsn, None, 3)


def standby(name, lsn, following="pg0"):
    return ReplicaStatus(name, True, True, lsn, following, 3)


def down(name):
    return ReplicaStatus(name, running=False)


def plan(statuses, failures=0, record=RECORD):
    return decide(Snapshot(record, {s.name: s for s in statuses}, failures, 2))


def test_a_healthy_store_needs_nothing():
    assert plan([primary(), standby("pg1", 900), standby("pg2", 880)]).actions == ()


def test_a_lost_primary_waits_for_the_probes_then_promotes_the_most_advanced_standby():
    statuses = [down("pg0"), standby("pg1", 800), standby("pg2", 900)]
    assert plan(statuses, failures=1).actions == ()
    assert "failed 1 of 2 probes" in plan(statuses, failures=1).waiting
    (action,) = plan(statuses, failures=2).actions
    assert (action.kind, action.replica, action.epoch) == (ActionKind.PROMOTE, "pg2", 4)


def test_equal_lsns_promote_the_lowest_name():
    (action,) = plan([down("pg0"), standby("pg2", 900), standby("pg1", 900)], 2).actions
    assert action.replica == "pg1"


def test_a_standby_that_does_not_answer_is_never_promoted():
    result = plan([down("pg0"), down("pg1"), down("pg2")], failures=5)
    assert result.actions == () and "no standby answers" in result.waiting


def test_under_rpo_zero_a_missing_standby_blocks_the_promotion():
    # pg1 may hold a commit that only it acknowledged: promoting pg2 could lose it
    statuses = {s.name: s for s in [down("pg0"), down("pg1"), standby("pg2", 10)]}
    result = decide(Snapshot(RECORD, statuses, 5, 2))
    assert result.actions == () and "standby pg1 does not answer" in result.waiting
    (action,) = decide(Snapshot(RECORD, statuses, 5, 2, every_standby_needed=False)).actions
    assert action.replica == "pg2"


def test_a_primary_in_recovery_counts_as_lost():
    statuses = [ReplicaStatus("pg0", True, True, 900), standby("pg1", 900), standby("pg2", 9)]
    assert plan(statuses, failures=2).actions[0].kind is ActionKind.PROMOTE


def test_a_promotion_in_progress_is_finished_on_its_candidate_not_chosen_again():
    record = RECORD.promoting("pg1")
    assert (record.epoch, record.phase, record.candidate) == (4, Phase.PROMOTING, "pg1")
    # pg2 looks more advanced now, and pg1 already answers as a primary: still pg1
    (action,) = plan([down("pg0"), primary("pg1", 10), standby("pg2", 99)],
                     record=record).actions
    assert (action.kind, action.replica, action.epoch) == (ActionKind.PROMOTE, "pg1", 4)
    assert record.promoted() == CoordinatorRecord(4, "pg1", NAMES)


def test_with_a_healthy_primary_others_are_fenced_rebuilt_or_repointed():
    record = CoordinatorRecord(4, "pg1", NAMES)
    actions = plan([primary("pg0", 5), primary("pg1"), down("pg2")], record=record).actions
    assert [(a.kind, a.replica, a.primary) for a in actions] == [
        (ActionKind.FENCE, "pg0", "pg1"), (ActionKind.REBUILD, "pg2", "pg1")]
    actions = plan([standby("pg0", 5, "pg1"), primary("pg1"), standby("pg2", 5, "pg0")],
                   record=record).actions
    assert [(a.kind, a.replica) for a in actions] == [(ActionKind.REPOINT, "pg2")]


def test_the_record_round_trips_and_checks_itself():
    record = RECORD.promoting("pg2")
    assert CoordinatorRecord.from_dict(record.to_dict()) == record
    with pytest.raises(InvalidInput, match="primary 'pg9'"):
        CoordinatorRecord(1, "pg9", NAMES)
    with pytest.raises(InvalidInput, match="candidate"):
        CoordinatorRecord(1, "pg0", NAMES, Phase.PROMOTING, None)
    with pytest.raises(InvalidInput):
        CoordinatorRecord.from_dict({"epoch": 1})


def test_sync_names_are_every_other_replica():
    assert sync_standby_names("pg1", NAMES) == 'ANY 1 ("pg0", "pg2")'
    assert sync_standby_names("pg0", ("pg0",)) == ""


def test_lsns():
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert parse_lsn(None) == 0
    with pytest.raises(InvalidInput):
        parse_lsn("zz")
