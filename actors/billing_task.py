"""The billing node-service: one Ray task per billing command (sections + chosen node)."""

from __future__ import annotations

import functools
import os

import ray

from datasets.schemas import SectionFiles
from gridfare.billing.runner import SectionOutcome, bill_sections
from gridfare.tariffs import TariffBook, TariffFiles

# Ray names the worker process after the running task ("ray::bill_bundle_task"); NodeAgents
# count these processes to report how many billing services run on their node.
TASK_NAME = "bill_bundle_task"


@functools.lru_cache(maxsize=4)
def _centre(uri: str):
    from datasets.datacentre import DataCentre

    return DataCentre(uri)


_BOOKS: dict[str, TariffBook] = {}  # digest -> parsed book, for the runs this worker bills


def _book(tariffs: TariffFiles) -> TariffBook:
    """The run's book, parsed once per worker (by digest: the same text, the same book)."""
    digest = tariffs.digest
    if digest not in _BOOKS:
        if len(_BOOKS) >= 4:
            _BOOKS.pop(next(iter(_BOOKS)))
        _BOOKS[digest] = tariffs.book()
    return _BOOKS[digest]


@ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)
def bill_bundle_task(uri: str, tariffs: TariffFiles, period: str, sections: list[str],
                     run_id: str, files: SectionFiles) -> tuple[list[SectionOutcome], str]:
    """Bill a bundle of sections (one, or several small ones) where Ray placed it; returns
    one outcome per section, in order (each naming the files its bills went to), and the
    node that ran it.

    Ray retries it (``max_retries``) when its worker or node dies: every attempt writes
    files of its own name, and only the attempt whose outcomes the ControlServer records
    is named by the manifest, so a retry never duplicates bills (the dead attempt's files
    are swept). A GridfareError (bad data) is not retried: it fails its section alone, as
    a failed outcome. ``tariffs`` is the run's own book (a reference the ControlServer put
    once per run); ``files`` the manifest rows of the earlier periods these sections read.
    Anything else fails the task, and the ControlServer then bills the bundle's sections
    one by one, so only the bad section ends failed.
    """
    failing = os.environ.get("GRIDFARE_FAIL_SECTION")
    if failing is not None and failing in sections:
        # Fault injection for the tests: a node-service that crashes on one section.
        raise RuntimeError(f"injected failure billing section {failing}")
    outcomes = bill_sections(_centre(uri).reading(files), _book(tariffs), period, sections,
                             run_id)
    return outcomes, ray.get_runtime_context().get_node_id()
