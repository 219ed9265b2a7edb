"""The simulation config: which model each service serves, its SLO, the control loop's settings.

YAML example (``instances/sim/sim.yaml``)::

    policy_file: policy.yaml      # an AutoscalerConfig, relative to this file
    solver: greedy
    control_period_s: 60
    startup_delay_s: 120
    services:
      - service: chat
        model: llama3-70b
        slo: {ttft_ms: 2000, tbt_ms: 100}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from hetero_opt.autoscaler import MAX_STARTUP_DELAY_S
from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen, Instance
from hetero_opt.io import load_yaml_model
from hetero_opt.placement.solve import MAX_SEED, MAX_TIME_LIMIT_S
from hetero_opt.policy.config import AutoscalerConfig, check_listed_once, load_policy_config
from hetero_opt.sim.perf import pod_perf
from hetero_opt.sim.perfdata import model_catalog


class SimSLO(Frozen):
    """Latency targets a request is judged against."""

    ttft_ms: float = Field(gt=0, description="Time to first token target (ms).")
    tbt_ms: float = Field(gt=0, description="Mean time between tokens target (ms).")


class SimService(Frozen):
    """One simulated service."""

    service: str = Field(min_length=1, description="Service id (must be in the cluster instance).")
    model: str = Field(min_length=1, description="Model name in hetero_opt/data/perf_models.yaml.")
    slo: SimSLO = Field(description="SLO of the service.")
    traffic_share: float = Field(default=1.0, gt=0, description="Share of the trace's requests sent here.")


class SimConfig(Frozen):
    """Everything the closed loop needs besides the trace and the cluster."""

    policy_file: str = Field(min_length=1, description="AutoscalerConfig YAML, relative to this file.")
    solver: Literal["greedy", "cpsat", "milp"] = Field(default="greedy", description="Placement solver.")
    solver_time_limit_s: float = Field(
        default=2.0, gt=0, le=MAX_TIME_LIMIT_S, description="Placement time limit per cycle (s)."
    )
    control_period_s: float = Field(
        default=60.0, ge=1, le=86_400, description="Seconds between autoscaler cycles (1 s to a day)."
    )
    startup_delay_s: float = Field(
        default=120.0, ge=0, le=MAX_STARTUP_DELAY_S, description="Seconds from placement to a ready pod."
    )
    queue_timeout_s: float = Field(default=300.0, gt=0, description="A request waiting longer for prefill is dropped.")
    drain_limit_s: float = Field(default=1800.0, ge=0, description="Time after the last arrival to finish requests.")
    prefix_cache_blocks: int = Field(default=200_000, ge=0, description="Shared prefix pool, 512-token blocks.")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Seed of every random choice (and the solver's).")
    services: tuple[SimService, ...] = Field(min_length=1, description="Simulated services.")

    @model_validator(mode="after")
    def _unique(self) -> SimConfig:
        check_listed_once(s.service for s in self.services)
        return self


def load_sim_config(path: str | Path) -> tuple[SimConfig, AutoscalerConfig]:
    """Read the simulation config and the policy config it names."""
    p = Path(path)
    cfg = load_yaml_model(p, SimConfig, "Simulation config", kinds={"services": "Service"})
    policy_path = p.parent / cfg.policy_file
    if not policy_path.is_file():
        raise InputError(f"Simulation config '{p}': policy_file='{cfg.policy_file}' not found")
    return cfg, load_policy_config(policy_path)


def check_against(cfg: SimConfig, policy: AutoscalerConfig, instance: Instance, where: str) -> None:
    """Cross-check config, policy and cluster: services, models, GPU types with performance data."""
    services = {s.id: s for s in instance.services}
    models = model_catalog().models
    for s in cfg.services:
        if s.service not in services:
            raise InputError(f"{where}: service='{s.service}' is not in the cluster instance")
        if s.model not in models:
            raise InputError(f"{where}: service '{s.service}': model='{s.model}' has no performance data")
        svc = services[s.service]
        if svc.is_moe:
            raise InputError(f"{where}: service '{s.service}': MoE attn/ffn services are not simulated")
        for role in svc.roles:
            for gpu in role.gpu_types:
                pod_perf(s.model, gpu, role.name, role.gpus_per_pod)  # InputError names the GPU type
    names = {s.service for s in cfg.services}
    for sp in policy.services:
        if sp.service not in names:
            raise InputError(f"{where}: policy service='{sp.service}' is not a simulated service")
