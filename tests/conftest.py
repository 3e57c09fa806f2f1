"""Shared fixtures. Ray starts once per session (it costs seconds), never per test."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass

import pytest

# One machine: keep every Ray process on 127.0.0.1, and no token auth for local clusters.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

PERIOD = "2026-10"

# `make test` runs two pytest-xdist workers (-n 2 --dist loadscope) and two queues: the
# scenario modules below, each driving its own private cluster or its own processes and
# spending most of its time waiting on real clocks (the autoscaler's scale-up and idle
# timeout, the load-sharing burst) or in its own process (the CLI fuzzing), on one worker;
# every other test on the other, in collection order, on the one shared session cluster.
# The pure-logic tests (tests/unit) join the scenarios, so the two workers finish closer
# together; the HAProxy settings test stays in the main queue, as it checks that ports it
# picked are free. The load-sharing scenario (about 125 s) joined at stop 28, when the main
# queue held ~790 s of tests against ~175 s here (one exclusive run 13:25 -> 11:23); its
# free ports come from the kernel's bind(0), and its node counts allow for the autoscaler's
# own overshoots (bench/loadshare.py). Stop 27 also moved the billing and seat cluster
# modules here (a second session cluster): 15:18 -> 14:07 in one exclusive run, but 19:41
# and a Serve proxy dead at its start (load average 27) in the next, so they stay in the
# main queue. The scheduler sees node ids only, so the queues are named by module here
# (xdist's loadgroup marks do not reach the node ids under pytest 9).
SCENARIO_MODULES = frozenset({
    "tests/faults/test_autoscaling.py",
    "tests/faults/test_cli_fuzz.py",
    "tests/faults/test_loadshare.py",
})
SCENARIO_FOLDERS = ("tests/unit/",)
MAIN_QUEUE_MODULES = frozenset({"tests/unit/services/test_haproxy.py"})


def _queue(module: str) -> str:
    if module in SCENARIO_MODULES:
        return "scenarios"
    if module.startswith(SCENARIO_FOLDERS) and module not in MAIN_QUEUE_MODULES:
        return "scenarios"
    return "main"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TwoQueues(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _queue(nodeid.split("::", 1)[0])

    return TwoQueues(config, log)


@pytest.fixture(scope="session")
def ray_cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
    })
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, namespace="gridfare", log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def _generate(root, accounts: int, sections: int) -> str:
    from datasets.datacentre import DataCentre
    from datasets.generator import generate_city

    generate_city(DataCentre(str(root), create=True), accounts=accounts, sections=sections,
                  period=PERIOD, seed=21)
    return str(root)


@pytest.fixture(scope="session")
def city_template(tmp_path_factory):
    """A small city: 4,000 accounts in 16 sections."""
    return _generate(tmp_path_factory.mktemp("city"), 4_000, 16)


@pytest.fixture(scope="session")
def big_city_template(tmp_path_factory):
    """Enough work (60,000 accounts, 48 sections) for a fault to land mid-run."""
    return _generate(tmp_path_factory.mktemp("big-city"), 60_000, 48)


def _copy(template: str, tmp_path) -> str:
    copy = tmp_path / "dc"
    shutil.copytree(template, copy)
    return str(copy)


def _retire_control_server(uri: str) -> None:
    """Kill the data centre's ControlServer and its NodeAgents, if a test started them.

    They are detached (one per data centre, for the operators' jobs to find again), so
    each test's copy of a city would otherwise leave them running to the session's end:
    every agent reads the whole process table each second for its load report (stop 27's
    CI run of `make test`, 19:41: the agents took 228 s of CPU, their ControlServers ~130)."""
    import ray

    if not ray.is_initialized():
        return
    from actors.control_server import control_server_name
    from datasets.datacentre import DataCentre

    names = {control_server_name(uri), control_server_name(DataCentre(uri).uri)}
    agents = tuple(f"{name}-agent-" for name in names)
    # The ControlServer first (it starts an agent on any node that has none), then the
    # agents, listed again after it is gone.
    for doomed in (lambda name: name in names, lambda name: name.startswith(agents)):
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if doomed(actor["name"]):
                with contextlib.suppress(ValueError):  # gone meanwhile
                    ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]),
                             no_restart=True)


@pytest.fixture
def city(city_template, tmp_path):
    """A fresh copy of the city per test: runs write bills and the catalog."""
    copy = _copy(city_template, tmp_path)
    yield copy
    _retire_control_server(copy)


@pytest.fixture
def big_city(big_city_template, tmp_path):
    copy = _copy(big_city_template, tmp_path)
    yield copy
    _retire_control_server(copy)


# ----------------------------------------------------------------- a local S3 server
S3_KEY, S3_SECRET = "gridfare-test-key", "gridfare-test-secret-do-not-print"


@dataclass(frozen=True)
class S3Server:
    """A moto S3 server on 127.0.0.1 and one bucket in it."""

    endpoint: str  # host:port
    bucket: str

    def uri(self, prefix: str, *, bucket: str | None = None) -> str:
        """A data-centre URI carrying the endpoint and the credentials (as every process
        that gets it, the ControlServer and the billing tasks too, needs them)."""
        return (f"s3://{S3_KEY}:{S3_SECRET}@{bucket or self.bucket}/{prefix}"
                f"?endpoint_override={self.endpoint}&scheme=http&region=us-east-1")

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(access_key=S3_KEY, secret_key=S3_SECRET, scheme="http",
                                 endpoint_override=self.endpoint, region="us-east-1",
                                 allow_bucket_creation=True)

    def keys(self, prefix: str) -> list[str]:
        """Every object under ``prefix`` in the bucket, relative to it, sorted."""
        import pyarrow.fs as pafs

        base = f"{self.bucket}/{prefix}"
        infos = self.filesystem().get_file_info(
            pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File)


def _die_with_parent() -> None:
    """In the child before exec: a server of a test session killed outright goes with it
    (Linux's PR_SET_PDEATHSIG), instead of holding its port on a shared machine."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """``moto[server]`` on 127.0.0.1 on a free port (its own process, so that Ray workers
    reach it like any S3 endpoint), with a bucket; stopped at the end of the session."""
    import socket
    import subprocess
    import sys
    import time

    workdir = tmp_path_factory.mktemp("moto")
    for _attempt in range(3):  # the free port can be taken between the probe and the bind
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if server.poll() is None:
            break
    else:
        pytest.fail("the moto S3 server did not start")
    s3 = S3Server(f"127.0.0.1:{port}", "gridfare-test")
    s3.filesystem().create_dir(s3.bucket)
    yield s3
    server.terminate()
    server.wait(timeout=10)
