"""The simulator's input data: GPU data sheets, model configurations, calibration points.

Three YAML files ship in ``hetero_opt/data`` (``perf_gpus.yaml``, ``perf_models.yaml``,
``perf_calibration.yaml``); every number is a :class:`Sourced` value saying where it comes from.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen


class Sourced(Frozen):
    """A number and where it comes from."""

    value: float = Field(ge=0, description="The number.")
    source: str = Field(min_length=1, description="Data sheet, config file, paper, or how it was fitted/assumed.")


class GpuSpec(Frozen):
    """One GPU type's data sheet figures (dense peaks)."""

    bf16_tflops: Sourced = Field(description="Peak dense BF16 (or FP16) TFLOP/s.")
    fp8_tflops: Sourced | None = Field(default=None, description="Peak dense FP8 TFLOP/s; None = no FP8.")
    hbm_tb_s: Sourced = Field(description="Memory bandwidth (TB/s).")
    memory_gb: Sourced = Field(description="Memory per GPU (GB).")
    nvlink_gb_s: Sourced = Field(description="Intra-node GPU-GPU bandwidth per direction (GB/s).")
    nic_gb_s: Sourced = Field(description="RDMA NIC bandwidth per GPU (GB/s).")


class NetworkSpec(Frozen):
    """KV-transfer links between prefill and decode pods."""

    same_s1_latency_ms: Sourced = Field(description="Set-up latency of a transfer inside one S1 (ms).")
    cross_s1_latency_ms: Sourced = Field(description="Set-up latency of a transfer across S1s (ms).")
    same_s1_efficiency: Sourced = Field(description="Achieved share of NIC bandwidth inside an S1.")
    cross_s1_bandwidth_share: Sourced = Field(description="Share of the same-S1 bandwidth across S1s.")


class GpuCatalog(Frozen):
    """All GPU types and the network."""

    gpus: dict[str, GpuSpec] = Field(min_length=1, description="Per GPU type id.")
    network: NetworkSpec = Field(description="KV-transfer links.")


class RoleSetup(Frozen):
    """How one role is served and the efficiency factors fitted for it."""

    token_budget: Sourced | None = Field(default=None, description="Prefill: most new tokens per batch.")
    max_batch: Sourced | None = Field(default=None, description="Decode: most sequences per pod.")
    mfu: Sourced = Field(description="Achieved share of peak FLOP/s.")
    bw_efficiency: Sourced | None = Field(default=None, description="Decode: achieved share of memory bandwidth.")
    step_overhead_ms: Sourced | None = Field(default=None, description="Decode: fixed time per step (ms).")
    ep_group_pods: Sourced = Field(description="MoE: pods sharing the experts (1 for dense).")


class ModelSpec(Frozen):
    """One model's architecture and serving set-up."""

    hf_id: str = Field(min_length=1, description="Hugging Face id of the model.")
    architecture: Literal["dense", "moe"] = Field(description="Dense or mixture of experts.")
    layers: Sourced = Field(description="Transformer layers.")
    hidden: Sourced = Field(description="Hidden size.")
    params_b: Sourced = Field(description="Total parameters (billions).")
    active_params_b: Sourced = Field(description="Parameters used per token (billions).")
    expert_params_b: Sourced = Field(description="Routed-expert parameters (billions); 0 for dense.")
    weight_bytes: Sourced = Field(description="Bytes per weight as served (1 = FP8, 2 = BF16).")
    kv_bytes_per_token: Sourced = Field(description="KV-cache bytes per token of context.")
    attn_flops_per_pair_prefill: Sourced = Field(
        description="Attention FLOPs per (query, key) pair per layer, prefill."
    )
    attn_flops_per_pair_decode: Sourced = Field(description="Same, decode (MLA: absorbed form).")
    prefill: RoleSetup = Field(description="Prefill set-up.")
    decode: RoleSetup = Field(description="Decode set-up.")
    allreduce_latency_us: Sourced = Field(description="Tensor-parallel all-reduce latency (µs), 2 per layer.")
    moe_dispatch_bytes_per_token: Sourced | None = Field(
        default=None, description="MoE: bytes per hidden element per node visited."
    )
    moe_nodes_per_token: Sourced | None = Field(default=None, description="MoE: most nodes one token is sent to.")
    moe_layers: Sourced | None = Field(default=None, description="MoE: layers with routed experts.")


class ModelCatalog(Frozen):
    """All models."""

    models: dict[str, ModelSpec] = Field(min_length=1, description="Per model name.")


class CalibrationPoint(Frozen):
    """A published measurement the roofline must reproduce."""

    id: str = Field(min_length=1, description="Point id.")
    model: str = Field(min_length=1, description="Model name (perf_models.yaml).")
    gpu: str = Field(min_length=1, description="GPU type (perf_gpus.yaml).")
    role: Literal["prefill", "decode"] = Field(description="Role measured.")
    gpus_per_pod: int = Field(ge=1, le=64, description="GPUs per pod (tensor-parallel group or EP node).")
    prompt_tokens: float = Field(gt=0, description="Prompt length (prefill) or mean context (decode).")
    batch: float | None = Field(default=None, gt=0, description="Decode: sequences per pod.")
    measured_tps_per_pod: float = Field(gt=0, description="Measured tokens/s per pod (prompt or output tokens).")
    ep_group_pods: int | None = Field(default=None, ge=1, description="MoE: EP group size of the measurement.")
    fitted: bool = Field(description="True if the point was used to fit an efficiency factor.")
    source: str = Field(min_length=1, description="Where the measurement is published and what was assumed.")


class CalibrationSet(Frozen):
    """The calibration points."""

    points: tuple[CalibrationPoint, ...] = Field(min_length=1, description="Points.")


def _load(name: str, model: type[Frozen]) -> Frozen:
    try:
        text = resources.files("hetero_opt.data").joinpath(name).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{name}: cannot read: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise InputError(f"{name}: {loc}: {first['msg']}") from exc


@cache
def gpu_catalog() -> GpuCatalog:
    """The bundled GPU data sheets."""
    out = _load("perf_gpus.yaml", GpuCatalog)
    assert isinstance(out, GpuCatalog)
    return out


@cache
def model_catalog() -> ModelCatalog:
    """The bundled model configurations."""
    out = _load("perf_models.yaml", ModelCatalog)
    assert isinstance(out, ModelCatalog)
    return out


@cache
def calibration_set() -> CalibrationSet:
    """The bundled calibration points."""
    out = _load("perf_calibration.yaml", CalibrationSet)
    assert isinstance(out, CalibrationSet)
    return out
