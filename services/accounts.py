"""The accounts processors: N + B stateless Ray Serve replicas behind the HTTP ingress.

A processor holds nothing between requests: it reads the account from the primary,
computes, writes back under a version check and forgets (``actors.accounts_client``, the
same code as the Python client; it keeps only a connection per thread and the
coordinator's last answer). N replicas carry the load and B are spares; ``scale`` resizes
the pool live (a ``num_replicas`` change: Serve adds or drains replicas, the others keep
serving).

HTTP (JSON bodies; the idempotency key in ``key`` or the ``Idempotency-Key`` header):

    POST /accounts/{id}                 open           {"floor_fen": 0}
    GET  /accounts/{id}                 balance, floor, version
    GET  /accounts/{id}/operations      every answer recorded on the account
    POST /accounts/{id}/payments        {"amount_fen": 1000, "key": "pay-1"}
    POST /accounts/{id}/deductions      {"amount_fen": 250, "key": "fee-1"}
    POST /accounts/{id}/refunds         {"amount_fen": 50, "key": "ref-1", "refund_of": "fee-1"}

Every refusal is one JSON line ``{"error": class, "message": ...}`` with its status from
``STATUS_BY_ERROR`` (by class, never by message). A retried request with the same key gets
the first answer, so a client (or HAProxy, ``RAY_SERVE_HAPROXY_RETRY_ON``) may retry one
whose processor died.

Payments and deductions are coalesced in the replica: the requests that arrive while
``in_flight`` transactions are in flight wait and go together in the next one
(``AccountsClient.apply_each_async``: one transaction, one commit, one standby
confirmation for all of them), at most ``max_batch`` each (``ProcessorConfig``). A lone
new operation (``apply``'s two simple statements, cheaper for the primary than the set
statement for one row) and a batch of two or more new operations on distinct accounts (one
statement, with its generic plan) go on a connection of the replica's event loop (no
thread hand-off); anything else (a replay, an account twice, a store error) goes to
``apply_each`` in the thread pool. A lone request goes at once, so it pays no delay;
each request still gets its own answer (applied, replayed, refused at the floor, no such
account, ...), and operations on one account apply in arrival order. Nothing is kept once
the answers are out. Refunds, reads and opens go one at a time (a refund needs what is left
of its deduction).

Each replica writes its request count, busy time and coalescing (transactions and the
operations they carried) to ``<store>/processors/<replica>.json`` at most once a second:
the load distributor's evenness and the batching are measured from these.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from ray import serve
from starlette.responses import Response

from gridfare.errors import (
    ConfigError,
    GridfareError,
    IdempotencyConflict,
    InvalidInput,
    NotReplicated,
    Overdraft,
    StaleEpoch,
    StoreUnavailable,
    UnknownAccount,
    VersionConflict,
)
from services.ingress import DISCONNECT_WATCH_OFF_ENV
from services.replica_settings import REPLICA_ENV, REPLICA_LOGGING

__all__ = ["APP_NAME", "STATUS_BY_ERROR", "AccountsProcessor", "ProcessorConfig",
           "processor_stats", "scale", "start_processors"]

APP_NAME = "gridfare-accounts"
THREADS = 8  # blocking transactions in flight per replica (batches, reads, refunds)
STATS_EVERY_S = 1.0
CODE_VERSION = "accounts-5"  # bump when the processor's code or arguments change
KINDS = {"payments": "payment", "deductions": "deduction", "refunds": "refund"}
COALESCED = frozenset({"payment", "deduction"})



@dataclass(frozen=True)
class ProcessorConfig:
    """How a processor coalesces payments and deductions (checked on load; errors name the
    key): at most ``in_flight`` batch transactions at once per replica, at most
    ``max_batch`` operations each; ``in_flight = 8, max_batch = 1`` is one transaction per
    request, as before coalescing.

    One transaction in flight per replica (3 replicas, 32 connections, quiet 2 cores): 5.0-5.3
    payments per transaction, 1,452-1,509 payments/s, 1.24-1.27 ms of CPU per payment; two in
    flight: 2.7 per transaction, 1,399/s, 1.34 ms (the 2nd in flight mostly carried lone
    requests). A request that arrives during a commit waits for it (a few ms)."""

    in_flight: int = 1
    max_batch: int = 64

    def __post_init__(self) -> None:
        for name, top in (("in_flight", THREADS), ("max_batch", 5000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ConfigError(f"accounts processors: {name}: must be an integer in "
                                  f"1..{top}, got {value!r}")

    @classmethod
    def from_mapping(cls, values: dict | None) -> ProcessorConfig:
        values = dict(values or {})
        unknown = sorted(set(values) - {"in_flight", "max_batch"})
        if unknown:
            raise ConfigError(f"accounts processors: unknown key {unknown[0]!r}")
        return cls(**values)

# one table: error class -> HTTP status (the most specific class listed first)
STATUS_BY_ERROR: tuple[tuple[type[GridfareError], int], ...] = (
    (UnknownAccount, 404),
    (IdempotencyConflict, 409),
    (VersionConflict, 409),
    (Overdraft, 422),
    (InvalidInput, 400),
    (NotReplicated, 503),
    (StaleEpoch, 503),
    (StoreUnavailable, 503),
    (GridfareError, 500),
)


def status_of(exc: GridfareError) -> int:
    return next(code for cls, code in STATUS_BY_ERROR if isinstance(exc, cls))


# no access log: one log line per request was 9 % of a replica's busy samples (py-spy, the
# Logger.info under Serve's request wrapper); with the access log off Serve still formats
# and filters that line per request (2.5 % of the GIL, py-spy) unless the level is WARNING;
# warnings and errors are still logged.
# max_ongoing_requests: the requests a replica holds at once, most of them waiting to join
# the next batch; Serve's router spreads the rest over the other replicas
# DISCONNECT_WATCH_OFF_ENV: in HAProxy mode Serve then awaits each request directly,
# without its disconnect-watch task and asyncio.wait (services.ingress; a request whose
# client left is finished, and its retry by the same key gets that answer)
@serve.deployment(ray_actor_options={"num_cpus": 0, "runtime_env": {
                      "env_vars": {**REPLICA_ENV, **DISCONNECT_WATCH_OFF_ENV}}},
                  max_ongoing_requests=64,
                  health_check_period_s=2, health_check_timeout_s=10,
                  graceful_shutdown_timeout_s=5,
                  logging_config=REPLICA_LOGGING)
class AccountsProcessor:
    def __init__(self, root: str, retry_s: float = 10.0,
                 config: dict | None = None) -> None:
        import ray

        from actors import NAMESPACE
        from actors.accounts_client import AccountsClient
        from actors.store_coordinator import coordinator_name
        from backends.store_root import StoreRoot
        from gridfare.seats.batching import Batcher

        store = StoreRoot(root)
        coordinator = ray.get_actor(coordinator_name(store), namespace=NAMESPACE)
        self._client = AccountsClient(coordinator, retry_s=retry_s)
        self._pool = ThreadPoolExecutor(max_workers=THREADS)
        limits = ProcessorConfig.from_mapping(config)
        # the Batcher of the seats replica, as is: a batch is one apply_each_async call
        self._batcher = Batcher(self._send, in_flight=limits.in_flight,
                                max_batch=limits.max_batch)
        replica = serve.get_replica_context().replica_id.unique_id
        self._stats_path = store.path / "processors" / f"{replica}.json"
        self._stats_path.parent.mkdir(parents=True, exist_ok=True)
        self._stats = {"replica": replica, "pid": os.getpid(), "requests": 0, "busy_s": 0.0,
                       "batches": 0, "coalesced": 0}
        self._written = 0.0

    async def __call__(self, request) -> object:
        started = time.perf_counter()
        try:
            status, body = await self._route(request)
        except GridfareError as exc:
            status, body = status_of(exc), {"error": type(exc).__name__, "message": str(exc)}
        self._account(time.perf_counter() - started)
        return Response(json.dumps(body).encode(), status_code=status,
                        media_type="application/json")

    def _account(self, busy_s: float) -> None:
        self._stats["requests"] += 1
        self._stats["busy_s"] += busy_s
        now = time.monotonic()
        if now - self._written >= STATS_EVERY_S:
            self._written = now
            self._stats["batches"] = self._batcher.calls
            self._stats["coalesced"] = self._batcher.requests
            tmp = self._stats_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._stats))
            os.replace(tmp, self._stats_path)

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _send(self, ops: list):
        # on this loop's own connection when the set statement answers the batch in one
        # round trip; else apply_each in the pool
        return self._client.apply_each_async(ops, self._call)

    async def _apply(self, op) -> dict:
        """One payment or deduction, coalesced with its neighbours; its own answer."""
        answer = await self._batcher.submit(op)
        if isinstance(answer, GridfareError):
            raise answer
        return answer.to_dict()

    async def _route(self, request) -> tuple[int, object]:
        # the scope's path, not request.url (a URL object built per request: ~1.5 % of the
        # replica's GIL time under load, py-spy); relative to the app's route prefix, which
        # Serve's replica server (HAProxy mode) puts in root_path and leaves in path
        scope = request.scope
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        parts = [p for p in path.split("/") if p]
        method = request.method
        if len(parts) < 2 or parts[0] != "accounts":
            raise InvalidInput(f"no route {method} {request.url.path}")
        account_id = _account_id(parts[1])
        client = self._client
        match (method, parts[2:]):
            case ("GET", []):
                return 200, (await self._call(client.get, account_id)).__dict__
            case ("GET", ["operations"]):
                results = await self._call(client.operations, account_id)
                return 200, [r.to_dict() for r in results]
            case ("POST", []):
                body = await _json(request, required=False)
                floor = body.get("floor_fen")
                return 200, (await self._call(client.open, account_id, floor)).__dict__
            case ("POST", [kind]) if kind in KINDS:
                from gridfare.store.operations import Operation

                body = await _json(request)
                key = body["key"] if "key" in body else \
                    request.headers.get("idempotency-key")
                op = Operation.make(account_id, KINDS[kind], body.get("amount_fen"), key,
                                    body.get("refund_of"))
                if op.kind.value in COALESCED:
                    return 200, await self._apply(op)
                return 200, (await self._call(client.apply, op)).to_dict()
        raise InvalidInput(f"no route {method} {request.url.path}")


def _account_id(text: str) -> int:
    if not text.isdigit() or len(text) > 19:
        raise InvalidInput(f"account {text!r}: the id in the path must be a positive integer")
    return int(text)


async def _json(request, required: bool = True) -> dict:
    raw = await request.body()
    if not raw and not required:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{request.url.path}: the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"{request.url.path}: the body must be a JSON object")
    return body


# ---- deploy, scale, measure (the driver's side) ----------------------------------------


# HAProxy retries a request whose processor died (same body, same key: idempotent)
HAPROXY_RETRY_ON = "conn-failure empty-response response-timeout"


def start_processors(root: str, processors: int, spares: int, port: int = 8000,
                     host: str = "127.0.0.1", route_prefix: str = "/",
                     retry_s: float = 10.0, *, config: ProcessorConfig | None = None,
                     haproxy: bool = False, haproxy_drain_s: float | None = None,
                     proxy_location: str | None = None) -> str:
    """Deploy the processors on the joined cluster: ``processors + spares`` replicas
    behind Serve's HTTP ingress on ``host:port``, coalescing by ``config``. Returns the
    base URL.

    ``haproxy``: when this call starts Serve, it starts it in HAProxy mode
    (``services.haproxy``: its own folder and ports, a request whose processor died retried
    on another); a Serve already running keeps its ingress. ``haproxy_drain_s`` is how long
    a stopping replica stays reachable; ``proxy_location`` is Serve's (``"HeadOnly"`` where
    several Ray nodes share one address, since each node's HAProxy binds ``host:port``)."""
    from ray.serve.context import _get_global_client

    options: dict = {} if proxy_location is None else {"proxy_location": proxy_location}
    if haproxy and _get_global_client(raise_if_no_controller_running=False) is None:
        from services.haproxy import (
            HAPROXY_TUNING,
            controller_options,
            haproxy_env,
            haproxy_folder,
        )

        env = {**haproxy_env(haproxy_folder(), retry_on=HAPROXY_RETRY_ON,
                             drain_s=haproxy_drain_s), **HAPROXY_TUNING}
        options["controller_options"] = controller_options(env)
    serve.start(http_options={"host": host, "port": port}, **options)
    _deploy(root, processors, spares, route_prefix, retry_s, config or ProcessorConfig())
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"


def scale(root: str, processors: int, spares: int) -> dict:
    """Resize the running pool to ``processors + spares`` replicas without stopping it
    (only ``num_replicas`` changes: running replicas keep serving)."""
    from backends.store_root import StoreRoot

    path = StoreRoot(root).path / "processors.json"
    if APP_NAME not in serve.status().applications or not path.exists():
        raise InvalidInput(f"no {APP_NAME} app is running for {root}: start it with "
                           "`gridfare accounts serve` first")
    before = json.loads(path.read_text())
    _deploy(root, processors, spares, before["route_prefix"], before["retry_s"],
            ProcessorConfig.from_mapping(before.get("coalescing")))
    return {"before": before, "after": json.loads(path.read_text())}


def _deploy(root: str, processors: int, spares: int, route_prefix: str,
            retry_s: float, config: ProcessorConfig) -> None:
    from backends.store_root import StoreRoot, write_json

    for name, value, low in (("processors", processors, 1), ("spares", spares, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInput(f"{name} {value!r}: must be an integer >= {low}")
    # a fixed version makes a resize a lightweight update (Serve only adds or drains
    # replicas); without one every serve.run is a code change and replaces them all, and
    # requests met "Path not found" 404s at the proxy during that rolling update
    version = (f"{CODE_VERSION}-{StoreRoot(root).suffix}-{retry_s}-"  # the arguments count
               f"{config.in_flight}x{config.max_batch}")
    app = AccountsProcessor.options(num_replicas=processors + spares, version=version,
                                    _internal=True).bind(str(root), retry_s, asdict(config))
    serve.run(app, name=APP_NAME, route_prefix=route_prefix, blocking=False)
    _wait_running(processors + spares)
    write_json(StoreRoot(root).path / "processors.json",
               {"processors": processors, "spares": spares, "route_prefix": route_prefix,
                "retry_s": retry_s, "coalescing": asdict(config)})


def _wait_running(replicas: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = serve.status().applications.get(APP_NAME)
        if app is not None and app.status == "RUNNING":
            deployment = app.deployments["AccountsProcessor"]
            if deployment.replica_states.get("RUNNING", 0) == replicas and \
                    sum(deployment.replica_states.values()) == replicas:
                return
        time.sleep(0.25)
    raise StoreUnavailable(f"{APP_NAME}: {replicas} replicas not running after "
                           f"{timeout_s:.0f} s")


def processor_stats(root: str) -> list[dict]:
    """Each replica's request count and busy time (as last written, at most 1 s old)."""
    from backends.store_root import StoreRoot

    folder = StoreRoot(root).path / "processors"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
