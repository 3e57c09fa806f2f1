import pytest

from gridfare.errors import ConfigError
from gridfare.store.config import StoreConfig
from gridfare.store.replication import ReplicationRule


def test_defaults_are_rpo_zero_with_one_standby():
    config = StoreConfig()
    assert (config.standbys, config.replication, config.floor_fen) == (
        1, ReplicationRule.REFUSE, 0)
    assert StoreConfig.from_mapping(config.to_dict()) == config


@pytest.mark.parametrize(("data", "key"), [
    ({"standbys": 0}, "store.standbys"),
    ({"standbys": 5}, "store.standbys"),
    ({"replication": "maybe"}, "store.replication"),
    ({"floor_fen": 1}, "store.floor_fen"),
    ({"commit_timeout_s": 0}, "store.commit_timeout_s"),
    ({"failures_to_fail_over": 0}, "store.failures_to_fail_over"),
    ({"standby": 1}, "store.standby: unknown key"),
])
def test_errors_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key):
        StoreConfig.from_mapping(data)
