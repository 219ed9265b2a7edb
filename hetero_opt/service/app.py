"""The FastAPI application behind ``hetero-opt serve``.

- ``POST /v1/solve``: instance -> verified plan (:class:`PlacementResult`).
- ``POST /v1/step``: time, metrics and instance -> the autoscaler's decisions; the state lives
  server-side (:mod:`hetero_opt.service.state`), so callers keep none.
- ``GET /metrics``: ``hetero_opt_desired_replicas{service,role}`` and unit gauges for HPA/KEDA.
- ``GET /healthz``: liveness.

Limits: an optional bearer token (all but ``/healthz`` and the docs), a body size limit (413), a
time limit per request (504). Bad input is a 4xx whose ``error`` is the CLI's one-line message;
nothing answers with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hetero_opt import __version__
from hetero_opt.adapters.prometheus import PromQLSource
from hetero_opt.autoscaler import Autoscaler
from hetero_opt.errors import InputError, PlanError
from hetero_opt.io import parse_instance
from hetero_opt.placement.result import PlacementResult
from hetero_opt.placement.solve import solve
from hetero_opt.policy.engine import ServiceMetrics, ServicePolicyState
from hetero_opt.service.config import Loaded
from hetero_opt.service.models import ErrorResponse, Health, SolveRequest, StepRequest, StepResponse
from hetero_opt.service.state import ServiceState, StateStore, StoredState

ENDPOINTS = ("/v1/solve", "/v1/step", "/metrics", "/healthz")
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 504)}


def one_line(text: object) -> str:
    """A message on one line."""
    return " ".join(str(text).split())


def _error(status: int, message: object) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


class BodyTooLarge(Exception):
    """A request body over the limit."""


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` (by Content-Length or as it streams) gets 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _error(413, f"request body={length.decode(errors='replace')} bytes exceeds {self.max_bytes}")(
                scope, receive, send
            )
            return
        seen = 0
        over = False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                over = True
                raise BodyTooLarge(f"request body exceeds {self.max_bytes} bytes")
            return message

        async def unless_over(message: Message) -> None:
            if not over:  # the app's answer to the aborted read is replaced by the 413 below
                await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, limited, unless_over)
        if over:
            await _error(413, f"request body exceeds {self.max_bytes} bytes")(scope, receive, send)


class _Gauges(Collector):
    """Desired replicas and units from the stored state, and request counts, at scrape time."""

    def __init__(self, store: StateStore, counts: dict[tuple[str, str], int]) -> None:
        self.store, self.counts = store, counts

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        replicas = GaugeMetricFamily(
            "hetero_opt_desired_replicas",
            "Pods per service and role after the last step's placement.",
            labels=["service", "role"],
        )
        wanted = GaugeMetricFamily("hetero_opt_wanted_units", "Units the policy asked for.", labels=["service"])
        placed = GaugeMetricFamily("hetero_opt_placed_units", "Units after the last placement.", labels=["service"])
        for sid, s in sorted(self.store.state.services.items()):
            for role, n in sorted(s.desired_replicas.items()):
                replicas.add_metric([sid, role], n)
            if s.desired_units is not None:
                wanted.add_metric([sid], s.desired_units)
            if s.placed_units is not None:
                placed.add_metric([sid], s.placed_units)
        requests = CounterMetricFamily("hetero_opt_requests", "Requests answered.", labels=["endpoint", "code"])
        for (endpoint, code), n in sorted(self.counts.items()):
            requests.add_metric([endpoint, code], n)
        yield from (replicas, wanted, placed, requests)


def create_app(loaded: Loaded, state_dir: Path | None = None) -> FastAPI:
    """The application for ``loaded`` (a :func:`~hetero_opt.service.config.load_service_config`)."""
    cfg = loaded.config
    store = StateStore(state_dir)
    step_lock = threading.Lock()
    counts: dict[tuple[str, str], int] = {}
    registry = CollectorRegistry()
    registry.register(_Gauges(store, counts))
    app = FastAPI(
        title="hetero-opt",
        version=__version__,
        description="Topology-aware placement and autoscaling of P/D-disaggregated LLM serving (HeteroScale).",
    )

    def require_token(request: Request) -> None:
        if loaded.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {loaded.token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token (header Authorization: Bearer <token>)")

    async def timed(fn: Callable[[], Any]) -> Any:
        try:
            return await asyncio.wait_for(run_in_threadpool(fn), timeout=cfg.request_timeout_s)
        except TimeoutError:
            raise HTTPException(504, f"request took longer than request_timeout_s={cfg.request_timeout_s}") from None

    @app.post("/v1/solve", response_model=PlacementResult, responses=ERRORS, dependencies=[Depends(require_token)])
    async def solve_endpoint(req: SolveRequest) -> Any:
        """Place the instance's requests; the plan is verified before it is returned."""
        limit = req.time_limit_s or cfg.time_limit_s
        if limit > cfg.max_time_limit_s:
            raise InputError(f"time_limit_s={limit} exceeds the server's max_time_limit_s={cfg.max_time_limit_s}")
        solver = req.solver or cfg.solver
        seed = cfg.seed if req.seed is None else req.seed
        return await timed(lambda: solve(req.instance, solver, time_limit=limit, seed=seed))

    step_errors = ERRORS | {c: {"model": ErrorResponse} for c in (409, 502)}

    @app.post("/v1/step", response_model=StepResponse, responses=step_errors, dependencies=[Depends(require_token)])
    async def step_endpoint(req: StepRequest) -> Any:
        """One autoscaler cycle with the server-side state; the new state is saved before answering."""
        if loaded.autoscaler is None:
            raise HTTPException(409, "the service config names no policy; /v1/step is off")
        policy = loaded.autoscaler
        return await timed(lambda: _step(req, policy))

    def _metrics(req: StepRequest) -> dict[str, ServiceMetrics]:
        if req.metrics is not None:
            return req.metrics
        prom = cfg.prometheus
        if prom is None:
            raise InputError("metrics=missing: the request brings none and the service config names no prometheus")
        source = PromQLSource(
            prom.url, prom.label_map, window_s=prom.window_s, step_s=prom.step_s, selector=prom.selector
        )
        try:
            return source.metrics(req.time)
        except InputError as exc:  # the metrics server failed, not the caller
            raise HTTPException(502, str(exc)) from None

    def _replayed(req: StepRequest, digest: str) -> StepResponse | None:
        """The saved answer where ``req`` is the last step's request again; 409 for another request at its time."""
        last = store.state
        if last.last_time is None or req.time != last.last_time:
            return None
        if digest == last.last_request and last.last_response is not None:
            return last.last_response
        raise HTTPException(
            409, f"time={req.time:g} is the last step's, taken with another request: send the next time"
        )

    def _step(req: StepRequest, policy: Any) -> StepResponse:
        # A step is applied once: its answer is saved with the state it leads to, so a client whose answer was
        # lost (the server killed after saving, a 504 whose step still ran) sends the same request again and
        # gets the same answer, not a second step (which would count the lost scale-out as already starting).
        digest = hashlib.sha256(req.model_dump_json().encode()).hexdigest()
        with step_lock:
            if (answered := _replayed(req, digest)) is not None:
                return answered
        metrics = _metrics(req)
        with step_lock:
            if (answered := _replayed(req, digest)) is not None:  # the same request, stepped meanwhile
                return answered
            auto = Autoscaler(
                policy,
                cfg.solver,
                time_limit=cfg.time_limit_s,
                seed=cfg.seed,
                startup_delay_s=cfg.startup_delay_s,
                state=store.state.autoscaler_state(),
            )
            decision = auto.step(req.time, metrics, req.instance)
            services = {s.id: s for s in req.instance.services}
            saved: dict[str, ServiceState] = {}
            desired: dict[str, dict[str, int]] = {}
            for row in decision.services:
                per_unit = services[row.service].pods_per_unit
                desired[row.service] = {role: row.placed_units * n for role, n in per_unit.items()}
                saved[row.service] = ServiceState(
                    policy=decision.state.engine.services.get(row.service, ServicePolicyState()),
                    starting=decision.state.starting.get(row.service, []),
                    desired_replicas=desired[row.service],
                    desired_units=row.wanted_units,
                    placed_units=row.placed_units,
                )
            response = StepResponse(
                time=decision.time,
                services=decision.services,
                placement=decision.placement,
                desired_replicas=desired,
                warnings=decision.warnings,
            )
            state = StoredState(last_time=decision.state.last_time, services=saved, last_request=digest)
            store.save(state.model_copy(update={"last_response": response}))
        return response

    @app.get("/metrics", response_class=Response, dependencies=[Depends(require_token)])
    def metrics_endpoint() -> Response:
        """Prometheus text format: desired replicas per service and role, units, request counts."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """Liveness; needs no token."""
        return Health(status="ok", step=loaded.autoscaler is not None, last_time=store.state.last_time)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        endpoint = request.url.path if request.url.path in ENDPOINTS else "other"
        key = (endpoint, str(response.status_code))
        counts[key] = counts.get(key, 0) + 1
        return response

    _add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _error(422, await _validation_message(request, exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return _error(exc.status_code, exc.detail)

    async def input_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(400, exc)

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        kind = "plan failed verification" if isinstance(exc, PlanError) else type(exc).__name__
        return _error(500, f"internal error ({kind}): {exc}")

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(InputError, input_error)
    app.add_exception_handler(ValueError, input_error)
    app.add_exception_handler(Exception, bug)


async def _validation_message(request: Request, exc: RequestValidationError) -> str:
    """The CLI's message for a bad instance; else ``field=value: problem`` of the first error."""
    err = exc.errors()[0]
    loc = [str(x) for x in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        return f"body: malformed JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
    if len(loc) >= 2 and loc[:2] == ["body", "instance"]:
        try:
            body = json.loads(await request.body())
            parse_instance(body.get("instance"), "instance")
        except InputError as bad:
            return str(bad)
        except (ValueError, AttributeError):
            pass
    field = ".".join(loc[1:] if loc[:1] == ["body"] else loc) or "body"
    value = err.get("input")
    shown = (
        "missing"
        if err.get("type") == "missing"
        else type(value).__name__
        if isinstance(value, (dict, list))
        else _clip(repr(value))
    )
    return f"{field}={shown}: {str(err.get('msg', '')).removeprefix('Value error, ')}"


def _clip(text: str, limit: int = 80) -> str:
    """At most ``limit`` characters of a value shown in an error (a refused body is not echoed whole)."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
