"""A one-machine autoscaling Ray cluster for development: ``python -m rayjobs.devcluster``.

``up`` starts a Ray head with Ray's fake multi-node provider (``RAY_FAKE_CLUSTER=1``) and
``deploy/dev-autoscaling.yaml``: the head offers no CPU, and the autoscaler starts ``billing``
worker nodes (real raylets on this machine, one CPU each) when work waits, and stops them
when they are idle. ``down`` stops only this cluster's processes (found by its temp dir and
GCS port), never other Ray clusters on the machine; ``status`` lists its live nodes.

Everything stays on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) without token auth
(``RAY_AUTH_MODE=disabled``), on its own ports and temp dir, so it runs beside other clusters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "dev-autoscaling.yaml"


@dataclass(frozen=True)
class DevCluster:
    """Where one development cluster lives: its ports and its temp dir."""

    port: int = 6410  # GCS
    dashboard_port: int = 8270
    metrics_port: int = 8290  # Prometheus endpoint; outside Ray's worker ports 10002-19999
    client_port: int = 23410  # Ray client server (default 10001 would clash with others)
    agent_port: int = 52410  # dashboard agent HTTP (default 52365 would clash with others)
    # Custom resources of the head, e.g. '{"loadshare_slot": 1}' so that the base replica of
    # a load-shared deployment runs there (JSON, as `ray start --resources`).
    head_resources: str = ""

    @property
    def temp_dir(self) -> str:
        return f"/tmp/gridfare-devcluster-{self.port}"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        """The environment of every process of this cluster and of its CLI clients."""
        from actors.attach import RAY_PROCESS_ENV

        venv_bin = str(Path(sys.executable).parent)
        return {
            **RAY_PROCESS_ENV,  # the workers' niceness (actors.attach); the caller's env wins
            **os.environ,
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "RAY_FAKE_CLUSTER": "1",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # Metrics reach the Prometheus endpoint in about 1 s instead of 10 s.
            "RAY_metrics_report_interval_ms": os.environ.get(
                "RAY_metrics_report_interval_ms", "1000"),  # noqa: SIM112 (Ray's spelling)
        }


# -- up ----------------------------------------------------------------------------------


def render_config(cluster: DevCluster, config: Path = DEFAULT_CONFIG) -> Path:
    """The autoscaling config with ``provider.gcs_address`` pointing at this head."""
    data = yaml.safe_load(Path(config).read_text())
    data["provider"]["gcs_address"] = cluster.gcs_address
    out = Path(cluster.temp_dir) / "autoscaling.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def up(cluster: DevCluster = DevCluster(), config: Path = DEFAULT_CONFIG,
       timeout_s: float = 60.0) -> None:
    """Start the head (the autoscaler starts worker nodes on demand); wait for its dashboard."""
    if processes(cluster):
        raise SystemExit(f"devcluster: a cluster already runs on port {cluster.port} "
                         f"(python -m rayjobs.devcluster down --port {cluster.port})")
    rendered = render_config(cluster, config)
    ray = str(Path(sys.executable).parent / "ray")
    command = [
        ray, "start", "--head",
        f"--port={cluster.port}",
        "--num-cpus=0",
        *([f"--resources={cluster.head_resources}"] if cluster.head_resources else []),
        f"--autoscaling-config={rendered}",
        f"--temp-dir={cluster.temp_dir}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={cluster.dashboard_port}",
        f"--dashboard-agent-listen-port={cluster.agent_port}",
        f"--metrics-export-port={cluster.metrics_port}",
        f"--ray-client-server-port={cluster.client_port}",
        "--disable-usage-stats",
    ]
    result = subprocess.run(command, env=cluster.env(), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        down(cluster, quiet=True)
        raise SystemExit(f"devcluster: ray start failed ({result.returncode})")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            nodes(cluster)
            break
        except OSError:
            if time.monotonic() > deadline:
                down(cluster, quiet=True)
                raise SystemExit("devcluster: the dashboard did not come up") from None
            time.sleep(0.5)


def describe(cluster: DevCluster) -> str:
    return "\n".join([
        f"gridfare dev cluster up: GCS {cluster.gcs_address}, temp dir {cluster.temp_dir}",
        f"  dashboard:   {cluster.dashboard_url}",
        f"  metrics:     http://127.0.0.1:{cluster.metrics_port}/metrics",
        "  submit:      RAY_AUTH_MODE=disabled ray job submit "
        f"--address {cluster.dashboard_url} -- \\",
        "                 python -m rayjobs.billing --datacentre $PWD/demo-data "
        "--period 2026-10",
        f"  status:      python -m rayjobs.devcluster status --port {cluster.port} "
        f"--dashboard-port {cluster.dashboard_port}",
        f"  stop:        python -m rayjobs.devcluster down --port {cluster.port}",
    ])


# -- status ------------------------------------------------------------------------------


def nodes(cluster: DevCluster, timeout_s: float = 5.0) -> list[dict]:
    """The cluster's live nodes from the dashboard's state API (no ``ray.init``)."""
    url = f"{cluster.dashboard_url}/api/v0/nodes?limit=1000&detail=true"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body = json.load(response)
    if not body.get("result", False):
        raise OSError(f"state API: {body.get('msg')}")
    return [n for n in body["data"]["result"]["result"] if n.get("state") == "ALIVE"]


def node_kind(node: dict) -> str:
    """A node's type in the dev config: ``head``, ``burst`` (the only type with the
    ``burst`` resource) or ``billing``. The state API gives fake nodes no node-type label."""
    if node.get("is_head_node"):
        return "head"
    return "burst" if node.get("resources_total", {}).get("burst") else "billing"


def worker_counts(cluster: DevCluster) -> dict[str, int]:
    """Live worker (non-head) nodes by type."""
    counts: dict[str, int] = {}
    for node in nodes(cluster):
        kind = node_kind(node)
        if kind != "head":
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def worker_count(cluster: DevCluster) -> int:
    """Live worker (non-head) nodes."""
    return sum(worker_counts(cluster).values())


def status(cluster: DevCluster) -> int:
    try:
        alive = nodes(cluster)
    except (OSError, urllib.error.URLError) as exc:
        print(f"devcluster: no cluster answers on {cluster.dashboard_url} ({exc}); "
              f"{len(processes(cluster))} of its processes are running")
        return 1
    print(f"gridfare dev cluster on {cluster.gcs_address}: {len(alive)} live nodes "
          f"(dashboard {cluster.dashboard_url})")
    for node in sorted(alive, key=lambda n: (not n.get("is_head_node"), n["node_id"])):
        kind = node_kind(node)
        cpus = node.get("resources_total", {}).get("CPU", 0)
        # The fake provider's node ids differ only at the end.
        print(f"  ...{node['node_id'][-12:]}  {kind:<8} CPU {cpus:g}")
    return 0


# -- down --------------------------------------------------------------------------------


def processes(cluster: DevCluster) -> list:
    """This cluster's processes: those naming its temp dir or GCS port, and their children.

    Other Ray clusters on the machine use other temp dirs and ports, so they are left alone.
    """
    import psutil

    mine = re.compile(re.escape(cluster.temp_dir) + r"(/|\b)|"
                      + r"(127\.0\.0\.1|localhost):" + str(cluster.port) + r"\b"
                      + r"|--gcs[-_]address[= ]\S*:" + str(cluster.port) + r"\b"
                      + r"|--port[= ]" + str(cluster.port) + r"\b")
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            line = " ".join(process.info["cmdline"] or ())
        except psutil.Error:
            continue
        if process.pid != os.getpid() and mine.search(line) and "rayjobs.devcluster" not in line:
            found[process.pid] = process
    for process in list(found.values()):
        try:
            for child in process.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.Error:
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


def down(cluster: DevCluster = DevCluster(), grace_s: float = 10.0, quiet: bool = False) -> int:
    """SIGTERM this cluster's processes, SIGKILL what is left after ``grace_s``."""
    import psutil

    victims = processes(cluster)
    for process in victims:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(victims, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    if not quiet:
        print(f"devcluster: stopped {len(victims)} processes of the cluster on "
              f"{cluster.gcs_address} ({len(alive)} needed SIGKILL)")
    return len(victims)


# -- CLI ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rayjobs.devcluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status"))
    defaults = DevCluster()
    parser.add_argument("--port", type=int, default=defaults.port, help="GCS port")
    parser.add_argument("--dashboard-port", type=int, default=defaults.dashboard_port)
    parser.add_argument("--metrics-port", type=int, default=defaults.metrics_port)
    parser.add_argument("--client-port", type=int, default=defaults.client_port)
    parser.add_argument("--agent-port", type=int, default=defaults.agent_port)
    parser.add_argument("--head-resources", default="",
                        help='custom resources of the head as JSON, e.g. \'{"loadshare_slot": 1}\'')
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="autoscaling config (default deploy/dev-autoscaling.yaml)")
    args = parser.parse_args(argv)
    cluster = DevCluster(args.port, args.dashboard_port, args.metrics_port, args.client_port,
                         args.agent_port, args.head_resources)
    if args.command == "up":
        up(cluster, args.config)
        print(describe(cluster))
        return 0
    if args.command == "down":
        down(cluster)
        return 0
    return status(cluster)


if __name__ == "__main__":
    sys.exit(main())
