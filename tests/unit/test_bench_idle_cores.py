"""The billing bench's idle core-seconds: the figure that found the catalog write stalling
the ControlServer's loop (bench/billing_cluster.py)."""

from __future__ import annotations

import pytest

from bench.billing_cluster import _idle_core_seconds


@pytest.mark.parametrize(("bundles", "idle"), [
    ([], 0.0),
    ([(1.0, 1.0), (1.0, 1.0)], 0.0),  # both cores busy from 0 to 1
    ([(1.0, 1.0)], 1.0),  # one core idle throughout
    ([(1.0, 1.0), (3.0, 1.0)], 4.0),  # one core idle 0-1 and 2-3, both cores 1-2
    ([(2.0, 2.0), (1.0, 0.5), (2.0, 0.5)], 1.0),  # core 2 idle 0-0.5 and 1-1.5
    ([(0.5, 1.0)], 0.5),  # a bundle received as if begun before the start: from 0
])
def test_idle_core_seconds_count_cores_without_a_bundle_until_the_last_ends(bundles, idle):
    assert _idle_core_seconds(bundles, cores=2) == pytest.approx(idle)
