"""HAProxy mode's settings (``services.haproxy``): every file in one short folder of its
own, free ports, and a folder too long for HAProxy's socket-path limit refused by name."""

from __future__ import annotations

import shutil
import socket

import pytest

from gridfare.errors import ConfigError
from services.haproxy import (
    MAX_SOCKET_PATH,
    controller_options,
    haproxy_env,
    haproxy_folder,
    listener,
)


def test_every_file_lives_in_the_folder_and_the_ports_are_free():
    folder = haproxy_folder()
    try:
        env = haproxy_env(folder)
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))]
        assert len(paths) == 5 and all(p.startswith(str(folder)) for p in paths)
        # Serve adds "/<56-hex node id>/admin.sock": the socket path must stay within 97
        assert len(env["RAY_SERVE_HAPROXY_SOCKET_PATH"]) + 57 <= MAX_SOCKET_PATH
        for key in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"):
            with socket.socket() as s:
                s.bind(("127.0.0.1", int(env[key])))  # free: binds
        assert "RAY_SERVE_HAPROXY_RETRY_ON" not in env
        assert haproxy_env(folder, retry_on="conn-failure")["RAY_SERVE_HAPROXY_RETRY_ON"] == \
            "conn-failure"
        assert controller_options(env) == {"runtime_env": {"env_vars": env}}
    finally:
        shutil.rmtree(folder)


def test_a_folder_too_long_for_the_socket_path_is_refused(tmp_path):
    long = tmp_path / ("x" * 40)
    with pytest.raises(ConfigError, match="at most 29 characters"):
        haproxy_env(long)
    assert not long.exists()  # refused before anything is made


def test_listener_names_the_process_on_a_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert listener(port) is None
        s.listen()
        assert listener(port) in ("python", "python3", "python3.11", "pytest")
