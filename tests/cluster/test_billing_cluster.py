"""Billing through the ControlServer on a real multi-node local Ray cluster."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from gridfare.billing.runner import run_billing
from gridfare.tariffs import load_tariff_book

PERIOD = "2026-10"
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def all_bills(uri: str) -> pa.Table:
    return DataCentre(uri).dataset("bills", PERIOD).to_table().drop(["run_id"])


def reference_bills(uri: str, tmp_path) -> pa.Table:
    import shutil

    copy = tmp_path / "reference"
    shutil.copytree(uri, copy, ignore=shutil.ignore_patterns("bills", "exceptions",
                                                             "catalog.duckdb"))
    centre = DataCentre(str(copy))
    run_billing(centre, Catalog(centre.catalog_path), load_tariff_book(), PERIOD)
    return all_bills(str(copy))


def test_cluster_run_matches_the_single_process_runner(ray_cluster, city, tmp_path):
    from rayjobs.billing import submit_and_wait

    signal = submit_and_wait(city, PERIOD, show_progress=False, poll_s=0.2)
    assert signal["status"] == "done" and signal["sections_done"] == 16
    assert signal["failed"] == {}
    assert all_bills(city).equals(reference_bills(city, tmp_path))
    sections = Catalog(DataCentre(city).catalog_path).sections(signal["run_id"])
    assert {s.status for s in sections} == {"done"}
    # The work was spread: every worker node billed something, the head (0 CPUs) nothing.
    assert len({s.node_id for s in sections}) == 2


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
