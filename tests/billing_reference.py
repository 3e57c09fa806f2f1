"""What a cluster run's bills must equal: the single-process runner on a copy of the city."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from gridfare.billing.request import RunRequest
from gridfare.billing.runner import run_billing
from gridfare.tariffs import TariffFiles

PERIOD = "2026-10"


def bill_bundled(centre: DataCentre, book, period: str, sections: list[str] | None = None,
                 run_id: str | None = None, bundle_max: int | None = None) -> list:
    """Bill ``period`` as a cluster run does, in one process: the run recorded, its
    sections billed in bundles (``bill_sections``, all in one unless ``bundle_max``) from
    the manifest rows they are sent, each outcome recorded with its files, the run
    finished and swept. Returns the outcomes."""
    from datetime import datetime

    from gridfare.billing.runner import bill_sections, history_files

    catalog = Catalog(centre.catalog_path)
    sections = centre.sections(period) if sections is None else sections
    run_id = run_id or f"{period}-bundled-{datetime.now():%H%M%S%f}"
    catalog.start_run(run_id, period, sections, datetime(2026, 11, 1))
    files = history_files(
        lambda periods, some: catalog.section_files(centre, periods=periods, sections=some),
        sections, period)
    size = bundle_max or max(len(sections), 1)
    outcomes = []
    for start in range(0, len(sections), size):
        bundle = sections[start:start + size]
        outcomes += bill_sections(centre.reading(files.only(bundle)), book, period, bundle,
                                  run_id)
    catalog.finish_run(run_id, datetime(2026, 11, 1), [o.as_record() for o in outcomes])
    catalog.sweep(centre, period, run_id)
    return outcomes


def bills_without_run_id(uri: str) -> pa.Table:
    """Every bill of the period in section order, without the run id that names the run."""
    return DataCentre(uri).dataset("bills", PERIOD).to_table().drop(["run_id"])


def exceptions_without_run_id(uri: str) -> pa.Table:
    centre = DataCentre(uri)
    return Catalog(centre.catalog_path).exceptions(PERIOD).drop(["run_id"])


def reference_bills(uri: str, tmp_path: Path, tariffs: TariffFiles | None = None) -> pa.Table:
    copy = tmp_path / "reference"
    shutil.copytree(uri, copy, ignore=shutil.ignore_patterns("bills", "catalog.duckdb"))
    centre = DataCentre(str(copy))
    run_billing(centre, Catalog(centre.catalog_path), RunRequest(PERIOD, tariffs=tariffs))
    return bills_without_run_id(str(copy))
