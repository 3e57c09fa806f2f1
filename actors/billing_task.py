"""The billing node-service: one Ray task per billing command (sections + chosen node)."""

from __future__ import annotations

import functools
import os

import ray

from gridfare.billing.runner import SectionOutcome, bill_sections

# Ray names the worker process after the running task ("ray::bill_bundle_task"); NodeAgents
# count these processes to report how many billing services run on their node.
TASK_NAME = "bill_bundle_task"


@functools.lru_cache(maxsize=4)
def _centre(uri: str):
    from datasets.datacentre import DataCentre

    return DataCentre(uri)


@functools.lru_cache(maxsize=4)
def _tariffs(directory: str | None):
    from gridfare.tariffs import load_tariff_book

    return load_tariff_book(directory)


@ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)
def bill_bundle_task(uri: str, tariffs_dir: str | None, period: str, sections: list[str],
                     run_id: str) -> tuple[list[SectionOutcome], str]:
    """Bill a bundle of sections (one, or several small ones) where Ray placed it; returns
    one outcome per section, in order, and the node that ran it.

    Ray retries it (``max_retries``) when its worker or node dies: each section's files are
    replaced atomically, so a retry rewrites the same bytes and never duplicates bills. A
    GridfareError (bad data) is not retried: it fails its section alone, as a failed outcome.
    Anything else fails the task, and the ControlServer then bills the bundle's sections one
    by one, so only the bad section ends failed.
    """
    failing = os.environ.get("GRIDFARE_FAIL_SECTION")
    if failing is not None and failing in sections:
        # Fault injection for the tests: a node-service that crashes on one section.
        raise RuntimeError(f"injected failure billing section {failing}")
    outcomes = bill_sections(_centre(uri), _tariffs(tariffs_dir), period, sections, run_id)
    return outcomes, ray.get_runtime_context().get_node_id()
