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
