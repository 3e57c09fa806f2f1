from gridfare.store.replication import CommitMode, ReplicationRule, commit_mode


def test_with_a_standby_in_sync_every_write_waits_for_it():
    for rule in ReplicationRule:
        assert commit_mode(1, rule) is CommitMode.REMOTE_APPLY
        assert commit_mode(2, rule) is CommitMode.REMOTE_APPLY


def test_with_none_in_sync_the_rule_decides():
    assert commit_mode(0, ReplicationRule.REFUSE) is CommitMode.REFUSE
    assert commit_mode(0, ReplicationRule.ACCEPT) is CommitMode.LOCAL
