"""Tariff quotes over HTTP, a load-shared Serve deployment: ``POST /quote``.

Body: ``{"tariff_code": "cn-bj-residential-monthly", "kwh": "320", ...}`` with the fields
of ``gridfare tariff quote`` (``peak_kwh``, ``flat_kwh``, ``valley_kwh``, ``critical_kwh``,
``max_demand_kw``, ``capacity_kva``, ``power_factor``, ``pf_standard``, ``ytd_kwh``,
``month``), amounts as strings or integers. Answer: the quote's lines and total (strings,
two places). A bad body answers 400 with ``{"error", "message"}``; an unknown tariff 404.

Every replica is a capped environment (``actors.burst_environment``): it takes one
``loadshare_slot`` and its request and answer bytes pass its token-bucket bandwidth cap.
The app is deployed with ``external_scaler_enabled``, so the LoadShareManager sets its
number of replicas: the base ones, plus those for the open burst environments. Serve's
router spreads requests over all of them by queue length, and when more arrive than the
replicas may hold and queue (``max_ongoing_requests``, ``max_queued_requests``) the proxy
answers 503: a request lost.
"""

from __future__ import annotations

import json

from ray import serve

from actors.burst_environment import SLOT, EnvironmentAgent
from gridfare.errors import GridfareError, InvalidInput, UnknownTariff
from gridfare.loadshare.caps import EnvironmentCaps
from services.replica_settings import REPLICA_LOGGING

__all__ = ["APP_NAME", "DEPLOYMENT", "Quote", "start_quote_service"]

APP_NAME = "gridfare-quote"
DEPLOYMENT = "Quote"
MAX_BODY = 16 * 1024
FIELDS = ("kwh", "peak_kwh", "flat_kwh", "valley_kwh", "critical_kwh", "max_demand_kw",
          "capacity_kva", "power_factor", "pf_standard", "ytd_kwh", "month")
# As the seats replica (rayjobs/seats_serve.py): the handler on the replica's main loop,
# no per-request access log.
REPLICA_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_LOG_TO_STDERR": "0",
}


@serve.deployment(
    name=DEPLOYMENT,
    ray_actor_options={"num_cpus": 0, "resources": {SLOT: 1},
                       "runtime_env": {"env_vars": REPLICA_ENV}},
    num_replicas=1,
    max_ongoing_requests=16,
    max_queued_requests=400,
    # A replica told to stop (scale-down, node drain) finishes what it holds first.
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=60,
    logging_config=REPLICA_LOGGING,
)
class Quote:
    def __init__(self, manager_name: str, caps: dict, tariffs_dir: str | None = None) -> None:
        from gridfare.tariffs import load_tariff_book

        self._book = load_tariff_book(tariffs_dir)
        self._env = EnvironmentAgent(manager_name, EnvironmentCaps(**caps))
        self._env.start_reporting()

    async def __call__(self, request):
        from starlette.responses import Response

        raw = await request.body()
        async with self._env.task():
            await self._env.carry(len(raw))
            try:
                status, body = 200, self._quote(raw)
            except UnknownTariff as exc:
                status, body = 404, {"error": type(exc).__name__, "message": str(exc)}
            except GridfareError as exc:
                status, body = 400, {"error": type(exc).__name__, "message": str(exc)}
            out = json.dumps(body, ensure_ascii=False).encode()
            await self._env.carry(len(out))
        return Response(out, status_code=status, media_type="application/json")

    def _quote(self, raw: bytes) -> dict:
        from gridfare.tariffs import quote

        if len(raw) > MAX_BODY:
            raise InvalidInput(f"body of {len(raw)} bytes; at most {MAX_BODY}")
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise InvalidInput(f"malformed JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("tariff_code"), str):
            raise InvalidInput("the body must be a JSON object with a 'tariff_code' string")
        unknown = sorted(set(body) - {"tariff_code", *FIELDS})
        if unknown:
            raise InvalidInput(f"field {unknown[0]!r} is not one of {FIELDS}")
        if "kwh" not in body:
            raise InvalidInput("field 'kwh' is required")
        values = {k: (str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else v)
                  for k, v in body.items() if k != "tariff_code"}
        for name, value in values.items():
            if not isinstance(value, str):
                raise InvalidInput(f"field {name!r} must be a string or an integer")
        tariff = self._book[body["tariff_code"]]
        return quote(tariff, **values).to_dict()

    def stats(self) -> dict:
        return self._env.stats()


def start_quote_service(manager_name: str, caps: EnvironmentCaps | None = None, *,
                        base_replicas: int = 1, port: int = 8000, host: str = "127.0.0.1",
                        tariffs_dir: str | None = None,
                        max_queued_requests: int | None = None) -> str:
    """Deploy the quote app on the connected cluster; returns its URL."""
    caps = caps or EnvironmentCaps()
    # One proxy, on the head: a burst node runs replicas, not a proxy of its own.
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
    options = {"num_replicas": base_replicas}
    if max_queued_requests is not None:
        options["max_queued_requests"] = max_queued_requests
    app = Quote.options(**options).bind(
        manager_name, {k: getattr(caps, k) for k in EnvironmentCaps.__dataclass_fields__},
        tariffs_dir)
    serve.run(app, name=APP_NAME, route_prefix="/quote", external_scaler_enabled=True)
    return f"http://{host}:{port}/quote"
