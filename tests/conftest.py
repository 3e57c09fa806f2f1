"""Shared fixtures. Ray starts once per session (it costs seconds), never per test."""

from __future__ import annotations

import os
import shutil

import pytest

# One machine: keep every Ray process on 127.0.0.1, and no token auth for local clusters.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

PERIOD = "2026-10"


@pytest.fixture(scope="session")
def ray_cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
    })
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, namespace="gridfare", log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def _generate(root, accounts: int, sections: int) -> str:
    from datasets.datacentre import DataCentre
    from datasets.generator import generate_city

    generate_city(DataCentre(str(root), create=True), accounts=accounts, sections=sections,
                  period=PERIOD, seed=21)
    return str(root)


@pytest.fixture(scope="session")
def city_template(tmp_path_factory):
    """A small city: 4,000 accounts in 16 sections."""
    return _generate(tmp_path_factory.mktemp("city"), 4_000, 16)


@pytest.fixture(scope="session")
def big_city_template(tmp_path_factory):
    """Enough work (60,000 accounts, 48 sections) for a fault to land mid-run."""
    return _generate(tmp_path_factory.mktemp("big-city"), 60_000, 48)


def _copy(template: str, tmp_path) -> str:
    copy = tmp_path / "dc"
    shutil.copytree(template, copy)
    return str(copy)


@pytest.fixture
def city(city_template, tmp_path):
    """A fresh copy of the city per test: runs write bills and the catalog."""
    return _copy(city_template, tmp_path)


@pytest.fixture
def big_city(big_city_template, tmp_path):
    return _copy(big_city_template, tmp_path)
