import pytest

from gridfare.errors import ConfigError
from gridfare.loadshare.config import LoadShareConfig
from gridfare.loadshare.watch import Watched


def test_defaults_round_trip_through_plain_data():
    config = LoadShareConfig()
    assert LoadShareConfig.from_dict(config.to_dict()) == config


def test_toml_is_loaded_and_checked(tmp_path):
    path = tmp_path / "loadshare.toml"
    path.write_text("""
[loadshare]
watch = ["gridfare-quote/Quote", "SeatsHTTP"]
share = "gridfare-quote/Quote"
exit_drain = "idle"
[loadshare.policy]
rate_above = 80.0
rate_below = 30.0
[loadshare.credit]
task = "2.5"
[loadshare.caps]
bandwidth_bytes_s = 1000
""")
    config = LoadShareConfig.load(path)
    assert config.watch == (Watched("Quote", "gridfare-quote"), Watched("SeatsHTTP"))
    assert config.policy.rate_above == 80.0 and str(config.credit.task) == "2.5"
    assert config.caps.bandwidth_bytes_s == 1000 and config.exit_drain == "idle"


@pytest.mark.parametrize("data, key", [
    ({"tick": 1}, "loadshare.tick"),
    ({"exit_drain": "pull-the-plug"}, "loadshare.exit_drain"),
    ({"base_replicas": 0}, "loadshare.base_replicas"),
    ({"burst_bundle": {"burst": 0}}, "loadshare.burst_bundle"),
    ({"watch": ["/"]}, "loadshare.watch"),
    ({"credit": {"cpu": 1}}, "loadshare.credit.cpu"),
    ({"caps": {"bandwidth": 1}}, "loadshare.caps.bandwidth"),
    ({"policy": {"rate_below": 99}}, "loadshare.rate_below"),
    ({"closed_kept_s": 0.5}, "loadshare.closed_kept_s"),
])
def test_bad_keys_are_named(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        LoadShareConfig.from_dict(data)


def test_a_broken_file_is_one_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[loadshare\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        LoadShareConfig.load(path)
