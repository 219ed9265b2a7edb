"""The ``hetero-opt serve`` configuration file (YAML)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from hetero_opt.adapters.prometheus import LabelMap, PromQLSource
from hetero_opt.autoscaler import MAX_STARTUP_DELAY_S
from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen
from hetero_opt.io import load_yaml_model
from hetero_opt.placement.solve import MAX_SEED, MAX_TIME_LIMIT_S
from hetero_opt.policy.config import AutoscalerConfig, load_policy_config


class PrometheusConfig(Frozen):
    """Where ``/v1/step`` reads metrics when a request brings none."""

    url: str = Field(min_length=1, description="Prometheus base URL, e.g. http://prometheus:9090.")
    window_s: float = Field(default=60.0, gt=0, description="Window read before the step's time (s).")
    step_s: float = Field(default=15.0, gt=0, description="query_range resolution (s).")
    selector: str = Field(default="", description='Extra label matchers, e.g. namespace="llm".')
    label_map: LabelMap = Field(default_factory=LabelMap, description="Metric labels -> services and roles.")


class ServiceConfig(Frozen):
    """What the service serves and within which limits."""

    policy: str | None = Field(
        default=None, description="Policy config YAML, relative to this file; None = no /v1/step."
    )
    solver: Literal["greedy", "cpsat", "milp"] = Field(default="greedy", description="Default placement solver.")
    time_limit_s: float = Field(default=2.0, gt=0, le=MAX_TIME_LIMIT_S, description="Default solver time limit (s).")
    max_time_limit_s: float = Field(
        default=10.0, gt=0, le=MAX_TIME_LIMIT_S, description="Largest time limit a request may ask for (s)."
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Solver seed.")
    startup_delay_s: float = Field(
        default=120.0, ge=0, le=MAX_STARTUP_DELAY_S, description="Seconds until placed units are ready."
    )
    request_timeout_s: float = Field(default=30.0, gt=0, description="A request still running after this gets 504.")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    prometheus: PrometheusConfig | None = Field(
        default=None, description="Metrics source for steps without metrics; None = requests must bring them."
    )
    token_env: str | None = Field(
        default=None, description="Environment variable holding the bearer token; None = no token needed."
    )


class Loaded:
    """A service config with its policy loaded and token read."""

    def __init__(self, config: ServiceConfig, autoscaler: AutoscalerConfig | None, token: str | None) -> None:
        self.config, self.autoscaler, self.token = config, autoscaler, token


def load_service_config(path: str | Path) -> Loaded:
    """Read the config, its policy file and its token; one-line InputError on any problem."""
    p = Path(path)
    cfg = load_yaml_model(p, ServiceConfig, "Service config")
    if cfg.time_limit_s > cfg.max_time_limit_s:
        raise InputError(
            f"Service config '{p}': time_limit_s={cfg.time_limit_s} exceeds max_time_limit_s={cfg.max_time_limit_s}"
        )
    if cfg.prometheus is not None:
        prom = cfg.prometheus
        try:  # the source the steps will build: a bad URL is the config's fault, found at start-up
            PromQLSource(prom.url, prom.label_map, window_s=prom.window_s, step_s=prom.step_s)
        except InputError as exc:
            raise InputError(f"Service config '{p}': prometheus: {str(exc).removeprefix('PromQLSource: ')}") from None
    policy = load_policy_config(p.parent / cfg.policy) if cfg.policy else None
    token = None
    if cfg.token_env is not None:
        token = os.environ.get(cfg.token_env)
        if not token:
            raise InputError(f"Service config '{p}': token_env='{cfg.token_env}' but that variable is unset or empty")
    return Loaded(cfg, policy, token)
