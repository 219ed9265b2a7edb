"""Shared builders of the simulator tests: the bundled example with a static or given policy."""

from __future__ import annotations

from pathlib import Path

from hetero_opt.instance import Instance
from hetero_opt.io import load_instance
from hetero_opt.policy.config import AutoscalerConfig, ServicePolicy
from hetero_opt.sim.config import SimConfig, load_sim_config
from hetero_opt.sim.trace import RequestTrace, cut_trace, load_trace

ROOT = Path(__file__).resolve().parents[2]
SIM_DIR = ROOT / "instances" / "sim"
TRACES = ROOT / "instances" / "traces"
CONV = TRACES / "azure_llm_2023_conv.csv"


def example() -> tuple[SimConfig, AutoscalerConfig, Instance]:
    """The README example's config, policy and cluster."""
    cfg, policy = load_sim_config(SIM_DIR / "sim.yaml")
    return cfg, policy, load_instance(SIM_DIR / "cluster.yaml")


def static(units: int) -> AutoscalerConfig:
    """Policy holding service 'chat' at ``units`` units."""
    return AutoscalerConfig(
        services=(ServicePolicy(service="chat", policy="static", static_units=units, min_units=1, max_units=40),)
    )


def conv(seconds: float) -> RequestTrace:
    """The first ``seconds`` of the Azure conversation trace."""
    tr = load_trace(CONV)
    assert isinstance(tr, RequestTrace)
    return cut_trace(tr, seconds)
