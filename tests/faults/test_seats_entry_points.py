"""The seats entry points and Ray: each says which cluster it is on, a missing or
unreachable cluster is one line (bounded by the subprocess timeout, never minutes of
retries: no timing is asserted), and ``seats_serve`` without a cluster starts a private
one and serves until it is stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from gridfare.seats.store import SeatsConfig, SeatsRoot

pytestmark = [pytest.mark.timeout(180)]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled",
               RAY_USAGE_STATS_ENABLED="0")
    return env


def _run(*argv: str, timeout: float = 60) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=timeout, env=_env())
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def _gridfare(*argv: str):
    return _run("-c", "import sys; from gridfare.cli import main; sys.exit(main())", *argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def root(tmp_path) -> str:
    path = tmp_path / "seats"
    SeatsRoot(path).init(SeatsConfig(("A", "B"), "A"))
    return str(path)


def test_an_unreachable_cluster_is_one_line_in_seconds(root):
    for argv in (["-m", "rayjobs.seats_serve", "--root", root, "--cluster", "127.0.0.1:1"],):
        code, _, err, _ = _run(*argv)
        assert code == 2 and err.count("\n") == 1, err
        assert "no Ray cluster answers at 127.0.0.1:1" in err and "ray start" in err
    code, _, err, _ = _gridfare("seats", "centres", "--root", root, "--cluster", "127.0.0.1:1")
    assert code == 5 and err.count("\n") == 1 and "127.0.0.1:1" in err  # exit_codes


def test_a_cli_command_without_a_cluster_says_how_to_give_one(root):
    code, _, err, _ = _gridfare("seats", "centres", "--root", root)
    assert code == 5 and err.count("\n") == 1 and "no Ray cluster given" in err, err


@pytest.mark.parametrize("argv, words", [
    (["seats", "status", "--root", "{root}", "../../escape"], "migration id"),
    (["seats", "pause", "--root", "{root}", "a/b"], "migration id"),
    (["seats", "migrate", "--root", "{root}", "G1", "--to", "../B"], "target centre"),
    (["seats", "sell", "--root", "{root}", "--train", "G1", "--date", "2026-10-01", "--from",
      "Beijing", "--to", "Jinan", "--class", "second", "--request-id", "\udcff"], "surrogate"),
    (["seats", "audit", "--root", "{root}/../x"], "'..'"),
    (["seats", "centres", "--root", "a\udcffb"], "surrogate"),
])
def test_bad_names_are_refused_before_any_cluster_is_joined(root, argv, words):
    # Non-UTF-8 bytes in argv arrive as surrogates (os.fsdecode), as from a real shell.
    code, _, err, _ = _gridfare(*[a.replace("{root}", root) for a in argv])
    assert code == 2 and err.count("\n") == 1 and words in err, err


@pytest.mark.slow
def test_seats_serve_without_a_cluster_starts_a_private_one_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rayjobs.seats_serve", "--root", str(tmp_path / "seats"),
         "--centres", "A,B", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, f"seats_serve ended early: {lines} {server.communicate()[1][-2000:]}"
            lines.append(line)
            if line.startswith("seats HTTP API at"):
                break
        assert lines[0].startswith("started a private local Ray cluster at 127.0.0.1:"), lines
        assert f"http://127.0.0.1:{port}" in lines[-1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/centres", timeout=30) as r:
            assert {c["centre_id"] for c in json.loads(r.read())} == {"A", "B"}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
