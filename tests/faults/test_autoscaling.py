"""Elastic billing: a run scales worker nodes up from 0 and back to 0 when idle.

A one-machine autoscaling cluster (``python -m rayjobs.devcluster``: Ray's fake multi-node
provider, ``deploy/dev-autoscaling.yaml``) starts in subprocesses on its own ports and temp
dir, beside the session cluster of conftest.py (this test never calls ``ray.init``). Its head
offers no CPU, so billing cannot start until the ControlServer's ``request_resources`` (one
CPU per queued section) has made the autoscaler launch ``billing`` nodes; when the run ends
the request drops and the idle nodes (idle timeout 0.2 min) are released.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from datasets.datacentre import DataCentre
from rayjobs import devcluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(300)]

PERIOD = "2026-10"
SECTIONS = 40
# Ports and temp dir apart from the devcluster defaults and from any other test cluster.
CLUSTER = devcluster.DevCluster(port=6437, dashboard_port=8287, metrics_port=8297,
                                client_port=23437, agent_port=52437)
JOB_TIMEOUT_S = 150
SCALE_DOWN_TIMEOUT_S = 90


class NodeSampler(threading.Thread):
    """Counts the cluster's live worker nodes twice a second (through the dashboard API)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, int | None]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                count: int | None = devcluster.worker_count(CLUSTER)
            except OSError:
                count = None
            self.samples.append((time.monotonic() - self.t0, count))
            self._stop_event.wait(0.5)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def changes(self) -> list[tuple[float, int | None]]:
        out: list[tuple[float, int | None]] = []
        for t, n in self.samples:
            if not out or out[-1][1] != n:
                out.append((round(t, 1), n))
        return out

    def between(self, start: float, end: float) -> list[int]:
        return [n for t, n in self.samples if start <= t <= end and n is not None]


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rayjobs.devcluster", *args,
                           "--port", str(CLUSTER.port),
                           "--dashboard-port", str(CLUSTER.dashboard_port),
                           "--metrics-port", str(CLUSTER.metrics_port),
                           "--client-port", str(CLUSTER.client_port),
                           "--agent-port", str(CLUSTER.agent_port)],
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def autoscaling_cluster():
    if devcluster.processes(CLUSTER):
        pytest.fail(f"processes of a cluster on port {CLUSTER.port} are already running")
    try:
        started = _cli("up", timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        yield CLUSTER
    finally:
        devcluster.down(CLUSTER, quiet=True)
        assert not devcluster.processes(CLUSTER), "the dev cluster left processes behind"


@pytest.fixture
def city(tmp_path) -> str:
    from datasets.datacentre import DataCentre
    from datasets.generator import generate_city

    root = tmp_path / "dc"
    generate_city(DataCentre(str(root), create=True), accounts=20_000, sections=SECTIONS,
                  period=PERIOD, seed=3)
    return str(root)


def test_billing_run_scales_workers_up_from_zero_and_back(autoscaling_cluster, city, tmp_path):
    cluster = autoscaling_cluster
    head = [n for n in devcluster.nodes(cluster) if n["is_head_node"]]
    assert len(head) == 1 and head[0]["resources_total"].get("CPU", 0) == 0
    sampler = NodeSampler()
    sampler.start()
    try:
        time.sleep(2)
        before = sampler.between(0, 2)
        assert before and max(before) == 0, f"workers before the run: {before}"

        submitted = time.monotonic() - sampler.t0
        ray = str(Path(sys.executable).parent / "ray")
        try:
            job = subprocess.run(
                [ray, "job", "submit", "--address", cluster.dashboard_url, "--",
                 "python", "-m", "rayjobs.billing", "--datacentre", city, "--period", PERIOD],
                env=cluster.env(), cwd=tmp_path, capture_output=True, text=True,
                timeout=JOB_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            output = exc.stdout or b""
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            pytest.fail(f"the billing job did not end in {JOB_TIMEOUT_S} s; nodes over time "
                        f"{sampler.changes()}; its output ended:\n{output[-2000:]}")
        ended = time.monotonic() - sampler.t0
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert f"{SECTIONS} sections done, 0 failed" in job.stdout, job.stdout[-3000:]
        # Every section's bills are named by the catalog's manifest (a file per bundle).
        billed = DataCentre(city).section_files(periods=[PERIOD]).of_period("bills", PERIOD)
        assert len(billed) == SECTIONS

        during = sampler.between(submitted, ended)
        assert during and max(during) > 0, f"no worker node came up: {sampler.changes()}"

        deadline = time.monotonic() + SCALE_DOWN_TIMEOUT_S
        while time.monotonic() < deadline:
            if sampler.samples[-1][1] == 0:
                break
            time.sleep(0.5)
        gone = time.monotonic() - sampler.t0
    finally:
        sampler.stop()
    first_up = next(t for t, n in sampler.samples if t >= submitted and n)
    timeline = sampler.changes()
    print(f"\nworker nodes over time (s, count): {timeline}\n"
          f"job submitted at {submitted:.1f} s, first worker at {first_up:.1f} s, "
          f"peak {max(during)} workers, job ended at {ended:.1f} s, "
          f"back to 0 workers at {gone:.1f} s")
    assert sampler.samples[-1][1] == 0, f"workers did not go back to 0: {timeline}"
