"""cluster.yaml and deploy/dev-autoscaling.yaml pass Ray's own config checks (offline).

`ray up` cannot run here (no other machines), so this is as far as the on-prem config can be
checked without them: Ray's preparation (defaults, the on-prem node type) and its JSON schema.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTES_KEYS = (  # what the fake provider needed to work (RAY-NOTES, "Fake multi-node")
    "auth", "docker", "idle_timeout_minutes", "upscaling_speed", "initialization_commands",
    "setup_commands", "head_setup_commands", "worker_setup_commands",
    "head_start_ray_commands", "worker_start_ray_commands", "file_mounts",
    "cluster_synced_files", "rsync_exclude", "rsync_filter", "file_mounts_sync_continuously",
)


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture
def cluster() -> dict:
    return _load("cluster.yaml")


def test_cluster_yaml_passes_ray_preparation_and_schema(cluster):
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(cluster)
    validate_config(prepared)
    (node_type,) = prepared["available_node_types"].values()
    assert node_type["min_workers"] == 0  # scale to the head alone when idle
    assert node_type["max_workers"] == prepared["max_workers"] == len(
        cluster["provider"]["worker_ips"])


def test_cluster_yaml_head_takes_no_billing_and_runs_the_autoscaler(cluster):
    head = " ".join(cluster["head_start_ray_commands"])
    assert "--head" in head and "--num-cpus=0" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--metrics-export-port=8080" in head
    assert "--dashboard-host=127.0.0.1" in head  # the job API is not open to the network
    workers = " ".join(cluster["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in workers
    assert cluster["provider"]["type"] == "local"
    assert {"ssh_user", "ssh_private_key"} <= set(cluster["auth"])
    assert "~/gridfare" in cluster["file_mounts"]
    assert any("pip install" in c and "~/gridfare" in c for c in cluster["setup_commands"])
    assert cluster["idle_timeout_minutes"] > 0


def test_ray_refuses_named_node_types_for_on_prem_clusters(cluster):
    """Why cluster.yaml has no `billing` node type: the local provider does not take any."""
    import click
    from ray.autoscaler._private.util import prepare_config

    typed = copy.deepcopy(cluster)
    typed["available_node_types"] = {"billing": {"resources": {"CPU": 8}, "node_config": {}}}
    with pytest.raises(click.ClickException, match="available_node_types is not supported"):
        prepare_config(typed)


def test_dev_autoscaling_yaml_is_complete_for_the_fake_provider():
    from ray.autoscaler._private.util import validate_config

    dev = _load("deploy/dev-autoscaling.yaml")
    validate_config(dev)
    assert set(NOTES_KEYS) <= set(dev)
    provider = dev["provider"]
    assert provider["type"] == "fake_multinode"
    for key in ("use_node_id_as_ip", "disable_node_updaters", "disable_launch_config_check",
                "launch_multiple"):
        assert provider[key] is True, key
    assert provider["gcs_address"].startswith("127.0.0.1:")
    assert dev["head_node_type"] == "ray.head.default"
    types = dev["available_node_types"]
    assert types["ray.head.default"]["resources"] == {"CPU": 0}
    billing = types["billing"]
    assert billing["resources"] == {"CPU": 1} and billing["node_config"] == {}
    assert billing["min_workers"] == 0 < billing["max_workers"] <= dev["max_workers"]
    assert dev["idle_timeout_minutes"] <= 0.5  # short, so scale-down is seen in a test


def test_devcluster_renders_the_gcs_address_of_its_port(tmp_path, monkeypatch):
    from rayjobs import devcluster

    cluster = devcluster.DevCluster(port=6499)
    monkeypatch.setattr(devcluster.DevCluster, "temp_dir", property(lambda _: str(tmp_path)))
    rendered = yaml.safe_load(devcluster.render_config(cluster).read_text())
    assert rendered["provider"]["gcs_address"] == "127.0.0.1:6499"
    env = cluster.env()
    assert env["RAY_FAKE_CLUSTER"] == "1"
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert env["RAY_AUTH_MODE"] == "disabled"


def test_devcluster_tells_each_node_type_of_its_config_by_its_resources():
    # The state API gives fake nodes no node-type label: `status` printed every worker as
    # "worker" until stop 28, and the load-sharing bench counts burst nodes by this.
    from rayjobs import devcluster

    types = yaml.safe_load(devcluster.DEFAULT_CONFIG.read_text())["available_node_types"]
    for name, spec in types.items():
        node = {"is_head_node": name == "ray.head.default", "resources_total": spec["resources"]}
        assert devcluster.node_kind(node) == ("head" if node["is_head_node"] else name)


def test_every_cluster_gridfare_starts_runs_its_workers_at_the_process_env(monkeypatch):
    # RAY_worker_niceness 0 (actors.attach.RAY_PROCESS_ENV): with Ray's default 15 the served
    # paths yield to every nice-0 process (docs/benchmarks.md, "Seats over HTTP")
    from actors.attach import RAY_PROCESS_ENV
    from rayjobs import devcluster

    assert RAY_PROCESS_ENV == {"RAY_worker_niceness": "0"}
    cluster = _load("cluster.yaml")
    for key, value in RAY_PROCESS_ENV.items():
        for commands in ("head_start_ray_commands", "worker_start_ray_commands"):
            start = next(c for c in cluster[commands] if "ray start" in c)
            assert f"export {key}={value};" in start, commands
        monkeypatch.delenv(key, raising=False)
        assert devcluster.DevCluster().env()[key] == value
        monkeypatch.setenv(key, "5")  # an operator's own value wins
        assert devcluster.DevCluster().env()[key] == "5"
