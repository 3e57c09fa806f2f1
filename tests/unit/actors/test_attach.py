"""attach(): which cluster is joined is decided in one place, and a missing or unreachable
cluster is one error in seconds. These cases never reach ray.init (no cluster is started);
the resolving steps are called directly, as a process of the test session may already be
in the session's cluster (and then stays there)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from actors.attach import AttachedCluster, _probe, _resolve_auto, attach
from gridfare.errors import ClusterUnavailable, ConfigError


@pytest.fixture(autouse=True)
def _no_job_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_address_and_no_local_start_says_how_to_start_one():
    # A fresh process: this one may be in the session's cluster, where None means that one.
    code = ("from actors.attach import attach\n"
            "try:\n"
            "    attach(None)\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.stdout.startswith("ClusterUnavailable no Ray cluster given")
    assert "ray start --head" in done.stdout


@pytest.mark.timeout(20)
def test_an_unreachable_address_fails_at_once_naming_it():
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterUnavailable, match=f"no Ray cluster answers at {address}"):
        _probe("127.0.0.1", int(address.rsplit(":", 1)[1]), 2, address)


def test_auto_with_no_cluster_on_the_host_is_one_error():
    def none_here() -> str:
        raise ConnectionError("Could not find any running Ray instance.")

    with pytest.raises(ClusterUnavailable, match="no Ray cluster runs on this host"):
        _resolve_auto(none_here)


def test_auto_with_several_clusters_asks_for_one():
    def several() -> str:
        raise ConnectionError("Found multiple active Ray instances: {'a:1', 'b:2'}.")

    with pytest.raises(ClusterUnavailable, match="several Ray clusters"):
        _resolve_auto(several)


@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "https://head:8265"])
def test_a_dashboard_address_is_refused_with_the_right_one(address):
    with pytest.raises(ConfigError, match="GCS address"):
        attach(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "host:", ":6379", "h:0", "h:70000", "h:x"])
def test_a_malformed_address_names_the_form(address):
    with pytest.raises(ConfigError, match="HOST:PORT"):
        attach(address)


def test_describe_says_joined_or_started():
    assert AttachedCluster("127.0.0.1:6379", False, 3).describe() == (
        "joined Ray cluster at 127.0.0.1:6379 (3 nodes)")
    assert AttachedCluster("127.0.0.1:1234", True, 1).describe().startswith(
        "started a private local Ray cluster at 127.0.0.1:1234 (1 node)")


def test_a_local_start_gets_the_process_env_unless_the_operator_set_it():
    from actors.attach import RAY_PROCESS_ENV, _with_process_env

    environ: dict[str, str] = {}
    _with_process_env(environ)
    assert environ == RAY_PROCESS_ENV
    environ = {"RAY_worker_niceness": "15", "OTHER": "x"}
    _with_process_env(environ)
    assert environ == {"RAY_worker_niceness": "15", "OTHER": "x"}
