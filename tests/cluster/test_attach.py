"""attach() on a real cluster: a process already in a cluster stays there and says where."""

from __future__ import annotations

import pytest

from actors.attach import attach

pytestmark = pytest.mark.cluster


def test_a_joined_process_stays_in_its_cluster_and_names_it(ray_cluster):
    cluster, _workers = ray_cluster
    joined = attach("auto")
    assert joined.address == cluster.gcs_address
    assert joined.nodes == 3 and not joined.started_local
    assert joined.describe() == f"joined Ray cluster at {cluster.gcs_address} (3 nodes)"
