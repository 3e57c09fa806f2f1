"""Joining a Ray cluster: the one place every gridfare entry point does it.

Ray's own ``ray.init(address=...)`` joins whatever cluster runs on the host for ``"auto"``,
raises a ``ConnectionError`` traceback when there is none, and retries an unreachable
explicit address for minutes. Entry points (the billing and seats CLIs and jobs, the API's
``cluster=`` arguments, the accounts and fee-control jobs) call :func:`attach` instead, so
that which cluster was joined is said once, a missing cluster is one line naming how to
start one, and an unreachable address fails in seconds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors import NAMESPACE
from gridfare.errors import ClusterUnavailable, ConfigError

__all__ = ["RAY_PROCESS_ENV", "AttachedCluster", "attach"]

# The environment of the Ray processes gridfare starts (cluster.yaml's `ray start` lines and
# rayjobs.devcluster say the same). RAY_worker_niceness 0: Ray's default 15 makes every
# actor, replica and task yield to any nice-0 thread on the host (Ray's metrics agent, which
# replays each histogram observation of the last report interval in one burst, the GCS, the
# raylet, the workers' own gRPC threads, the kernel's), so a served path stalls whenever one
# of those is busy (traced in docs/benchmarks.md, "Seats over HTTP").
RAY_PROCESS_ENV = {"RAY_worker_niceness": "0"}

HOW_TO_START = ("start one with `ray start --head --port 6379` (or `make demo`), "
                "or pass its address, e.g. --cluster 127.0.0.1:6379")


@dataclass(frozen=True)
class AttachedCluster:
    """The Ray cluster this process joined (or started)."""

    address: str  # the GCS address, host:port
    started_local: bool  # True when attach() started a private cluster for this process
    nodes: int  # live nodes when joined

    def describe(self) -> str:
        how = "started a private local Ray cluster" if self.started_local else "joined Ray cluster"
        return f"{how} at {self.address} ({self.nodes} node{'s' if self.nodes != 1 else ''})"


def attach(address: str | None, *, start_local: bool = False, timeout_s: float = 10.0,
           namespace: str = NAMESPACE, local_options: dict[str, Any] | None = None,
           find_auto: Callable[[], str] | None = None) -> AttachedCluster:
    """Join the Ray cluster at ``address``, or start a private one; never hang for minutes.

    ``address``: ``None`` (the job's cluster when run by ``ray job submit``, else a private
    local cluster if ``start_local``, else :class:`ClusterUnavailable`), ``"auto"`` (the one
    cluster on this host), ``"local"`` (always a private one), ``HOST:PORT`` (a GCS address)
    or ``ray://HOST:PORT``. An explicit address is probed with a TCP connect first, so an
    unreachable one fails in about ``timeout_s``. A process already in a cluster stays there.
    ``find_auto`` resolves ``"auto"`` to ``HOST:PORT`` (default: Ray's own host scan).
    """
    import ray

    if address is not None and not isinstance(address, str):
        raise ConfigError(f"cluster address {address!r}: expected a string")
    address = (address or "").strip() or None
    if address is None:
        # Inside `ray job submit` the job's cluster is in RAY_ADDRESS: that is the one meant.
        address = os.environ.get("RAY_ADDRESS") or None
    if address is not None and address.startswith(("http://", "https://")):
        raise ConfigError(
            f"cluster address {address}: that is a dashboard (job submission) address; pass "
            "the cluster's GCS address instead, e.g. 127.0.0.1:6379")
    if address not in (None, "local", "auto"):
        _host_port(address)  # a malformed address is an error even in a joined process
    if ray.is_initialized():
        return _current(started_local=False)
    if address is None and not start_local:
        raise ClusterUnavailable(f"no Ray cluster given: {HOW_TO_START}")
    if address is None or address == "local":
        return _start_local(namespace, local_options or {})
    if address == "auto":
        address = _resolve_auto(find_auto)
    host, port = _host_port(address)
    _probe(host, port, timeout_s, address)
    try:
        ray.init(address=address, namespace=namespace, log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, AuthenticationError
        raise ClusterUnavailable(
            f"cannot join the Ray cluster at {address}: {_last_line(exc)}") from exc
    return _current(started_local=False)


def _with_process_env(environ: dict[str, str]) -> None:
    """Put RAY_PROCESS_ENV into ``environ`` (the raylet ray.init starts inherits it); a value
    the operator set already is kept."""
    for key, value in RAY_PROCESS_ENV.items():
        environ.setdefault(key, value)


def _start_local(namespace: str, options: dict[str, Any]) -> AttachedCluster:
    import ray

    _with_process_env(os.environ)
    try:
        ray.init(address="local", namespace=namespace, log_to_driver=False, **options)
    except Exception as exc:
        raise ClusterUnavailable(
            f"cannot start a local Ray cluster: {_last_line(exc)}") from exc
    return _current(started_local=True)


def _resolve_auto(find_auto: Callable[[], str] | None) -> str:
    if find_auto is None:
        from ray._private.services import canonicalize_bootstrap_address_or_die

        def find_auto() -> str:
            return canonicalize_bootstrap_address_or_die("auto")
    try:
        return find_auto()
    except ConnectionError as exc:
        text = str(exc)
        if "multiple" in text.lower():
            raise ClusterUnavailable(
                f"several Ray clusters run on this host; name one with --cluster HOST:PORT "
                f"({_last_line(exc)})") from exc
        raise ClusterUnavailable(f"no Ray cluster runs on this host: {HOW_TO_START}") from exc


def _host_port(address: str) -> tuple[str, int]:
    bare = address.removeprefix("ray://")
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"cluster address {address!r}: expected HOST:PORT (e.g. 127.0.0.1:6379), "
            "'auto' or 'local'")
    return host.strip("[]"), int(port)


def _probe(host: str, port: int, timeout_s: float, address: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=max(0.5, min(timeout_s, 5.0))):
            pass
    except OSError as exc:
        raise ClusterUnavailable(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): {HOW_TO_START}"
        ) from exc


def _current(*, started_local: bool) -> AttachedCluster:
    import ray

    context = ray.get_runtime_context()
    address = context.gcs_address
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return AttachedCluster(address=address, started_local=started_local, nodes=nodes)


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]
