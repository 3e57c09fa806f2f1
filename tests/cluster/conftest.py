"""A real local Ray cluster for the session: a head and two worker nodes (separate raylets),
and a small generated city to bill on it."""

from __future__ import annotations

import shutil

import pytest

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


@pytest.fixture(scope="session")
def city_template(tmp_path_factory):
    from datasets.datacentre import DataCentre
    from datasets.generator import generate_city

    root = tmp_path_factory.mktemp("city")
    generate_city(DataCentre(str(root), create=True), accounts=4_000, sections=16,
                  period=PERIOD, seed=21)
    return root


@pytest.fixture
def city(city_template, tmp_path):
    """A fresh copy of the city per test: runs write bills and the catalog."""
    copy = tmp_path / "dc"
    shutil.copytree(city_template, copy)
    return str(copy)
