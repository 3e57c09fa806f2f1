"""Billing through the ControlServer on a real multi-node local Ray cluster."""

from __future__ import annotations

import pytest

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from tests.billing_reference import (
    bills_without_run_id,
    exceptions_without_run_id,
    reference_bills,
)

PERIOD = "2026-10"
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def test_cluster_run_matches_the_single_process_runner(ray_cluster, city, tmp_path):
    from rayjobs.billing import submit_and_wait

    signal = submit_and_wait(city, PERIOD, show_progress=False, poll_s=0.2)
    assert signal["status"] == "done" and signal["sections_done"] == 16
    assert signal["failed"] == {}
    assert bills_without_run_id(city).equals(reference_bills(city, tmp_path))
    # The audit exceptions went with the outcomes to the ControlServer's catalog.
    exceptions = exceptions_without_run_id(city)
    assert exceptions.num_rows == signal["exceptions"] > 0
    assert exceptions.equals(exceptions_without_run_id(str(tmp_path / "reference")))
    sections = Catalog(DataCentre(city).catalog_path).sections(signal["run_id"])
    assert {s.status for s in sections} == {"done"}
    # Every section was billed on a worker node, none on the head (0 CPUs). How the work is
    # spread over the workers follows their measured load, which other work on this host
    # moves (it put all 16 on one node once, in a CI run beside other suites): the spread
    # itself is tested on hand-built snapshots in tests/unit/test_scheduling.py.
    _cluster, workers = ray_cluster
    worker_ids = {worker.node_id for worker in workers}
    assert {s.node_id for s in sections} <= worker_ids


def test_selected_sections_and_resume(ray_cluster, city):
    from rayjobs.billing import submit_and_wait

    signal = submit_and_wait(city, PERIOD, sections=["S0000*"], show_progress=False)
    assert signal["sections_done"] == 9
    again = submit_and_wait(city, PERIOD, resume_run_id=signal["run_id"], show_progress=False)
    assert again["run_id"] == signal["run_id"] and again["sections_done"] == 9


def test_unknown_section_is_refused_with_its_name(ray_cluster, city):
    from gridfare.errors import InvalidInput
    from rayjobs.billing import submit_and_wait

    with pytest.raises(InvalidInput, match="S99999"):
        submit_and_wait(city, PERIOD, sections=["S99999"], show_progress=False)
