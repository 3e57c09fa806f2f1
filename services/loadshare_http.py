"""The LoadShareManager over HTTP, for external hot-event sources (a release calendar, a
promotions system, a news feed) that cannot run ``gridfare loadshare signal``.

    POST /loadshare/signal   {"event": "release-2026-01", "end": false}   -> the status
    POST /loadshare/start | /loadshare/stop                              -> the status
    GET  /loadshare/status                                               -> the status

A malformed body answers 400 with ``{"error", "message"}``; the manager not running 503.
"""

from __future__ import annotations

from ray import serve

from gridfare.errors import InvalidInput
from gridfare.loadshare.routes import route
from services.replica_settings import REPLICA_LOGGING

__all__ = ["APP_NAME", "LoadShareHTTP", "start_loadshare_http"]

APP_NAME = "gridfare-loadshare"


@serve.deployment(name="LoadShareHTTP", ray_actor_options={"num_cpus": 0}, num_replicas=1,
                  logging_config=REPLICA_LOGGING)
class LoadShareHTTP:
    def __init__(self, manager_name: str) -> None:
        self._manager_name = manager_name

    async def __call__(self, request):
        import ray
        from starlette.responses import JSONResponse

        from actors import NAMESPACE

        parts = [p for p in request.url.path.split("/") if p]
        action = parts[-1] if parts else ""
        try:
            call = route(request.method, action, await request.body())
        except InvalidInput as exc:
            return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, 400)
        if call is None:
            return JSONResponse({"error": "NotFound",
                                 "message": f"no route {request.method} {request.url.path}"},
                                404)
        method, args = call
        try:
            manager = ray.get_actor(self._manager_name, namespace=NAMESPACE)
            status = await getattr(manager, method).remote(*args)
        except Exception as exc:  # the manager is not running or restarting
            return JSONResponse({"error": "Unavailable",
                                 "message": f"load-sharing manager: {exc}"[:500]}, 503)
        return JSONResponse(status, 200)


def start_loadshare_http(manager_name: str) -> None:
    """Deploy the app on the connected cluster (Serve already started, e.g. by another app)."""
    serve.run(LoadShareHTTP.bind(manager_name), name=APP_NAME, route_prefix="/loadshare")
