"""What a run is asked for travels with the run, on one long-lived ControlServer: each run's
tariff book, its refusals before anything is recorded, a resume's period."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from gridfare.billing.request import RunRequest
from gridfare.billing.runner import run_billing
from gridfare.errors import ConfigError, InvalidInput, NothingToBill, TariffError
from gridfare.tariffs import read_tariff_files

PERIOD = "2026-10"
SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples" / "tariffs"
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def _bills(uri: str):
    return DataCentre(uri).dataset("bills", PERIOD).to_table().drop(["run_id"])


def test_each_run_prices_with_its_own_book_on_one_control_server(ray_cluster, city,
                                                                  tmp_path):
    from rayjobs.billing import submit_and_wait

    dearer = shutil.copytree(SAMPLES, tmp_path / "dearer")
    path = dearer / "cn-bj-residential-monthly.toml"
    path.write_text(path.read_text().replace('"0.4883"', '"0.9883"'))
    catalog = Catalog(DataCentre(city).catalog_path)

    plain = submit_and_wait(city, PERIOD, show_progress=False, poll_s=0.2)
    dear = submit_and_wait(city, PERIOD, tariffs_dir=str(dearer), show_progress=False,
                           poll_s=0.2)
    assert dear["total_fen"] > plain["total_fen"]
    # The same bills as the single-process runner with that book.
    reference = shutil.copytree(city, tmp_path / "reference",
                                ignore=shutil.ignore_patterns("bills", "catalog.duckdb"))
    run_billing(DataCentre(str(reference)), Catalog(reference / "catalog.duckdb"),
                RunRequest(PERIOD, tariffs=read_tariff_files(dearer)))
    assert _bills(city).equals(_bills(str(reference)))
    assert catalog.run_tariffs(dear["run_id"]) == read_tariff_files(dearer).to_json()

    # A broken book is refused before the run is recorded, and sticks to no later run.
    path.write_text("code = 'nope'\n")
    before = catalog.runs()
    with pytest.raises(TariffError, match=r"cn-bj-residential-monthly\.toml"):
        submit_and_wait(city, PERIOD, tariffs_dir=str(dearer), show_progress=False)
    assert catalog.runs() == before
    again = submit_and_wait(city, PERIOD, show_progress=False, poll_s=0.2)
    assert again["total_fen"] == plain["total_fen"]


def test_refusals_come_back_as_their_errors(ray_cluster, city):
    from rayjobs.billing import submit_and_wait

    with pytest.raises(NothingToBill, match="2026-11"):
        submit_and_wait(city, "2026-11", show_progress=False)
    done = submit_and_wait(city, PERIOD, sections=["S0001[0-2]"], show_progress=False)
    with pytest.raises(InvalidInput, match="a resume keeps its run's period"):
        submit_and_wait(city, "2026-09", resume_run_id=done["run_id"], show_progress=False)
    assert not Path(city, "bills", "period=2026-09").exists()
    assert [r.run_id for r in Catalog(DataCentre(city).catalog_path).runs()] == [
        done["run_id"]]
    # The ControlServer's own options apply when it is created: another one is refused.
    from actors.control_server import get_control_server

    with pytest.raises(ConfigError, match="runs with runtime_env None"):
        submit_and_wait(city, PERIOD, show_progress=False,
                        runtime_env={"env_vars": {"GRIDFARE_FAIL_SECTION": "S00001"}})
    with pytest.raises(ConfigError, match="runs with autoscale True, not False"):
        get_control_server(DataCentre(city).uri, autoscale=False)
    assert len(Catalog(DataCentre(city).catalog_path).runs()) == 1


def test_status_on_the_cluster_names_it_and_shows_the_live_run(ray_cluster, city, tmp_path,
                                                                capsys):
    from gridfare.cli import main
    from rayjobs.billing import submit_and_wait

    run = submit_and_wait(city, PERIOD, sections=["S00001"], show_progress=False)["run_id"]
    capsys.readouterr()
    assert main(["status", run, "--datacentre", city, "--cluster", "auto"]) == 0
    out = capsys.readouterr().out
    assert "joined Ray cluster at " in out and "live: 0 queued, 0 running, 1 done" in out
    assert "node " in out
    other = shutil.copytree(city, tmp_path / "other")
    assert main(["status", run, "--datacentre", str(other), "--cluster", "auto"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no ControlServer for" in err


def test_the_api_bills_on_the_cluster_it_is_given(ray_cluster, city):
    import gridfare

    record = gridfare.connect(city).run_billing(PERIOD, sections=["S00002"], cluster="auto")
    assert (record.status, record.sections_done) == ("done", 1)
    with pytest.raises(InvalidInput, match="a resume keeps its run's period"):
        gridfare.connect(city).run_billing("2026-11", resume_run_id=record.run_id,
                                           cluster="auto")
