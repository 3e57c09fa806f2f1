"""The load the manager watches, read from the metrics Ray already exports (pure).

Serve's routers export, per deployment, ``ray_serve_num_router_requests_total`` (a counter
of requests routed to it), ``ray_serve_deployment_queued_queries`` (requests waiting for a
replica) and ``ray_serve_num_ongoing_requests_at_replicas`` (requests a replica holds); the
ControlServer exports ``ray_gridfare_sections_queued`` (billing sections waiting). The
manager scrapes every node's Prometheus endpoint (what Prometheus and KEDA's Prometheus
scaler read) and this module turns two scrapes into a rate and a queue depth. So any Serve
deployment can be watched by its name, whatever app it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LoadReading", "Sample", "Watched", "parse_prometheus", "read_load"]

REQUESTS = "ray_serve_num_router_requests_total"
QUEUED = "ray_serve_deployment_queued_queries"
ONGOING = "ray_serve_num_ongoing_requests_at_replicas"
BILLING_QUEUED = "ray_gridfare_sections_queued"
WANTED = (REQUESTS, QUEUED, ONGOING, BILLING_QUEUED)

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Watched:
    """A Serve deployment to watch: ``app`` (None: any app) and ``deployment``."""

    deployment: str
    app: str | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return labels.get("deployment") == self.deployment and (
            self.app is None or labels.get("application") == self.app)


@dataclass(frozen=True)
class LoadReading:
    """One scrape's totals: requests routed so far (a counter), queue depth now.

    ``sources``: the scrape targets (nodes) whose samples matched; a reading is only
    comparable with an earlier one when every earlier source answered this time.
    """

    at: float
    requests_total: float
    queue: int
    billing_queued: int
    sources: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()  # targets that did not answer

    def known_after(self, earlier: LoadReading | None) -> bool:
        """False when a target that fed the earlier reading did not answer now."""
        return earlier is None or not (earlier.sources & self.missing)

    def rate_since(self, earlier: LoadReading | None) -> float:
        """Requests/s between two readings (0 on the first, or across a counter reset)."""
        if earlier is None or self.at <= earlier.at:
            return 0.0
        delta = self.requests_total - earlier.requests_total
        return max(0.0, delta) / (self.at - earlier.at)


def parse_prometheus(text: str, names: Iterable[str] = WANTED) -> list[Sample]:
    """The samples of ``names`` in a Prometheus text exposition (others are skipped)."""
    wanted = tuple(names)
    out: list[Sample] = []
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        match = _LINE.match(line)
        if match is None or match.group(1) not in wanted:
            continue
        try:
            value = float(match.group(4))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        out.append(Sample(match.group(1), labels, value))
    return out


def read_load(samples: Iterable[Sample], watched: Iterable[Watched], at: float, *,
              source: Mapping[int, str] | None = None,
              missing: Iterable[str] = ()) -> LoadReading:
    """Sum the watched deployments' series (over every router and node) into one reading.

    ``source`` maps ``id(sample)`` to the target it came from (to know who fed it).
    """
    targets = tuple(watched)
    requests = queue = billing = 0.0
    sources: set[str] = set()
    for sample in samples:
        matched = True
        if sample.name == BILLING_QUEUED:
            billing += sample.value
        elif any(t.matches(sample.labels) for t in targets):
            if sample.name == REQUESTS:
                requests += sample.value
            else:
                queue += sample.value
        else:
            matched = False
        if matched and source is not None:
            sources.add(source[id(sample)])
    return LoadReading(at=at, requests_total=requests, queue=round(queue),
                       billing_queued=round(billing), sources=frozenset(sources),
                       missing=frozenset(missing))
