"""Faults during a billing run on a real multi-node local Ray cluster.

Each test causes the fault the issue names and checks that the run completes (or fails
cleanly), that no acknowledged bill is lost or doubled, and that each section appears once
in the catalog.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from actors.control_server import get_control_server
from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from gridfare.billing.request import RunRequest
from gridfare.tariffs import TariffFiles, read_tariff_files
from tests.billing_reference import (
    bills_without_run_id,
    exceptions_without_run_id,
    reference_bills,
)

PERIOD = "2026-10"
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(240)]


def start_run(uri: str, tariffs: TariffFiles | None = None, **options
              ) -> tuple[ray.actor.ActorHandle, str]:
    control = get_control_server(uri, **options)
    return control, ray.get(control.submit.remote(RunRequest(PERIOD, tariffs=tariffs)))


def dearer_book() -> TariffFiles:
    """The sample book with residential monthly tier 1 at 0.9883 CNY/kWh, not 0.4883."""
    samples = read_tariff_files()
    return TariffFiles(tuple((name, text.replace('"0.4883"', '"0.9883"'))
                             for name, text in samples.files), "dearer")


def wait_for(predicate, timeout_s: float = 60.0, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {predicate}")


def end_signal(control, run_id: str, timeout_s: float = 180.0) -> dict:
    return wait_for(lambda: ray.get(control.end_signal.remote(run_id)), timeout_s, 0.2)


def catalog_rows(uri: str, run_id: str) -> list:
    return Catalog(DataCentre(uri).catalog_path).sections(run_id)


def test_worker_node_killed_mid_run(ray_cluster, big_city, tmp_path):
    cluster, workers = ray_cluster
    control, run_id = start_run(big_city)
    victim = workers[0]
    # Wait until the victim node is billing, then kill its raylet and everything on it.
    wait_for(lambda: ray.get(control.progress.remote(run_id))["nodes"].get(victim.node_id))
    cluster.remove_node(victim, allow_graceful=False)
    try:
        signal = end_signal(control, run_id)
    finally:
        workers[0] = cluster.add_node(num_cpus=1)  # leave the session's cluster whole
    assert signal["status"] == "done", signal
    assert signal["sections_done"] == 48 and signal["failed"] == {}
    rows = catalog_rows(big_city, run_id)
    assert len(rows) == 48 and len({r.section_id for r in rows}) == 48
    assert bills_without_run_id(big_city).equals(reference_bills(big_city, tmp_path))
    # Audit exceptions neither lost nor doubled (recorded with the section's state).
    assert exceptions_without_run_id(big_city).equals(
        exceptions_without_run_id(str(tmp_path / "reference")))
    # A killed attempt's bundle (renamed, never recorded) was swept at the run's end:
    # every file left is one the manifest names.
    assert on_disk(big_city) == named(big_city)


def on_disk(uri: str) -> set[str]:
    root = Path(uri)
    return {str(p.relative_to(root)) for dataset in ("bills", "history")
            for p in (root / dataset / f"period={PERIOD}").rglob("part-0.*")}


def named(uri: str) -> set[str]:
    files = DataCentre(uri).section_files(periods=[PERIOD])
    return {file for dataset in ("bills", "history")
            for _, file, _ in files.of_period(dataset, PERIOD)}


def test_a_task_that_raises_fails_its_section_alone(ray_cluster, city):
    control, run_id = start_run(
        city, runtime_env={"env_vars": {"GRIDFARE_FAIL_SECTION": "S00005"}})
    signal = end_signal(control, run_id)
    assert signal["status"] == "failed"
    assert signal["sections_done"] == 15 and signal["sections_failed"] == 1
    assert "injected failure billing section S00005" in signal["failed"]["S00005"]
    centre = DataCentre(city)
    assert centre.read_bills(PERIOD, "S00005").num_rows == 0
    assert centre.section_files(sections=["S00005"]).get("bills", PERIOD, "S00005") is None


def test_control_server_killed_mid_run_restarts_from_the_catalog(ray_cluster, big_city,
                                                                 tmp_path):
    # Not the sample book: the restarted ControlServer must price the rest of the run with
    # the run's own book, which it finds in the catalog (it was created with none).
    book = dearer_book()
    control, run_id = start_run(big_city, tariffs=book)
    wait_for(lambda: ray.get(control.progress.remote(run_id))["done"] >= 3)
    waiting = control.wait_end_signal.remote(run_id, 170.0)  # a job's long poll
    ray.kill(control, no_restart=False)
    signal = end_signal(control, run_id)
    assert signal["status"] == "done" and signal["sections_done"] == 48
    assert ray.get(waiting, timeout=180) == signal  # retried on the restarted server
    rows = catalog_rows(big_city, run_id)
    assert len(rows) == 48 and {r.status for r in rows} == {"done"}
    assert bills_without_run_id(big_city).equals(reference_bills(big_city, tmp_path, book))
    # Audit exceptions neither lost nor doubled (recorded with the section's state).
    assert exceptions_without_run_id(big_city).equals(
        exceptions_without_run_id(str(tmp_path / "reference")))


def test_unwritable_period_fails_cleanly_with_no_partial_file(ray_cluster, city):
    centre = DataCentre(city)
    # A data centre billed before (its catalog has the manifest), where the period's bills
    # directory must go a file stands: no bundle can be written (each section is then
    # tried alone, and fails alone with the error naming its file).
    Catalog(centre.catalog_path).migrate(centre)
    blocked = Path(city, "bills", f"period={PERIOD}")
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("in the way")
    try:
        control, run_id = start_run(city)
        signal = end_signal(control, run_id)
        assert signal["sections_done"] == 0 and len(signal["failed"]) == 16
        assert all("\n" not in error and "cannot write" in error
                   for error in signal["failed"].values())
        leftovers = [p for p in Path(city).rglob("*") if ".tmp" in p.name]
        assert leftovers == [] and blocked.read_text() == "in the way"
        # No fold went visible without its bills: the manifest names nothing.
        assert len(centre.section_files(periods=[PERIOD])) == 0
    finally:
        blocked.unlink()
