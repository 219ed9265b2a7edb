"""Request and response bodies of the HTTP API (their JSON Schemas make the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hetero_opt.autoscaler import ServiceCycle
from hetero_opt.instance import Frozen, Instance
from hetero_opt.placement.result import PlacementResult
from hetero_opt.policy.engine import ServiceMetrics


class SolveRequest(Frozen):
    """An instance to place, with optional solver settings."""

    instance: Instance = Field(description="The instance (format 1.0) with its scaling requests.")
    solver: Literal["greedy", "cpsat", "milp"] | None = Field(default=None, description="Solver; None = config's.")
    time_limit_s: float | None = Field(default=None, gt=0, description="Time limit (s), at most the config's max.")
    seed: int | None = Field(default=None, description="Solver seed; None = config's.")


class StepRequest(Frozen):
    """One autoscaler cycle: the time, each service's metrics and the live cluster."""

    time: float = Field(description="Cycle time (s); never before the last step's.")
    metrics: dict[str, ServiceMetrics] | None = Field(
        default=None, description="Observations per service id; None = read from the configured Prometheus."
    )
    instance: Instance = Field(description="The cluster now (its requests are ignored).")


class StepResponse(Frozen):
    """The cycle's decisions and placement."""

    time: float = Field(description="Cycle time (s).")
    services: list[ServiceCycle] = Field(description="Per service, sorted by id.")
    placement: PlacementResult | None = Field(description="Verified placement; None if nothing changed.")
    desired_replicas: dict[str, dict[str, int]] = Field(
        description="Pods per service and role after the placement (what /metrics serves)."
    )
    warnings: tuple[str, ...] = Field(
        default=(), description="What the cycle ignored, e.g. metrics of a service that is not configured."
    )


class ErrorResponse(Frozen):
    """Every error: one line naming the entity, field and value, as the CLI prints it."""

    error: str = Field(description="The message.")


class Health(Frozen):
    """Liveness and what the server can do."""

    status: Literal["ok"] = Field(description="Always 'ok' when the server answers.")
    step: bool = Field(description="Whether /v1/step is on (a policy is configured).")
    last_time: float | None = Field(description="Time of the last step (s).")
