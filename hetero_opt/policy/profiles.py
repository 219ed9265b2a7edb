"""Serving profiles: per model deployment, role and GPU type, what one pod sustains within SLO.

One YAML file per deployment shape in the repository's ``models/`` folder. Every number
carries a ``source`` naming the public figure it comes from, or how it was estimated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from hetero_opt.errors import InputError
from hetero_opt.io import load_yaml_model
from hetero_opt.policy._base import Frozen


class Figure(Frozen):
    """A number and where it comes from."""

    value: float = Field(gt=0, description="The number.")
    source: str = Field(min_length=1, description="Public figure cited, or estimate method.")


class SLO(Frozen):
    """The latency targets the throughput figures hold at."""

    ttft_ms: float = Field(gt=0, description="Time-to-first-token target (ms).")
    tbt_ms: float = Field(gt=0, description="Time-between-tokens target (ms).")


class RoleProfile(Frozen):
    """One role (prefill or decode) on one GPU type."""

    gpus_per_pod: int = Field(ge=1, le=64, description="GPUs one pod of this role uses.")
    prefill_tps_per_pod: Figure | None = Field(
        default=None, description="Prompt tokens/s one pod sustains within TTFT SLO."
    )
    decode_tps_per_pod: Figure | None = Field(
        default=None, description="Output tokens/s one pod sustains within TBT SLO."
    )


class RatioBounds(Frozen):
    """How far the prefill guard may move the unit's P:D (prefill pods per decode pod)."""

    min_prefill_per_decode: float = Field(gt=0, description="Lowest P:D the guard may use.")
    max_prefill_per_decode: float = Field(gt=0, description="Highest P:D the guard may use.")
    source: str = Field(min_length=1, description="Why these bounds.")

    @model_validator(mode="after")
    def _ordered(self) -> RatioBounds:
        if self.min_prefill_per_decode > self.max_prefill_per_decode:
            raise ValueError(
                f"bounds: min_prefill_per_decode={self.min_prefill_per_decode} exceeds "
                f"max_prefill_per_decode={self.max_prefill_per_decode}"
            )
        return self


class UnitShape(Frozen):
    """The recommended P/D unit: ``prefill`` + ``decode`` pods scaled together."""

    prefill: int = Field(ge=1, description="Prefill pods per unit.")
    decode: int = Field(ge=1, description="Decode pods per unit.")
    source: str = Field(min_length=1, description="Why this ratio.")
    bounds: RatioBounds | None = Field(default=None, description="Curated P:D range for the prefill guard.")


class GpuProfile(Frozen):
    """Both roles on one GPU type."""

    prefill: RoleProfile = Field(description="Prefill pods on this GPU type.")
    decode: RoleProfile = Field(description="Decode pods on this GPU type.")
    unit: UnitShape = Field(description="Recommended P/D unit on this GPU type.")
    target_utilisation: Figure | None = Field(
        default=None,
        description="Share of the per-pod figures decode-TPS control sizes both pools at, in (0, 1] (written by "
        "hetero-opt curate, decision 63); None = the decode figure as the target and the guard's own default.",
    )

    @model_validator(mode="after")
    def _rates(self) -> GpuProfile:
        if self.decode.decode_tps_per_pod is None:
            raise ValueError("decode.decode_tps_per_pod is required")
        if self.prefill.prefill_tps_per_pod is None:
            raise ValueError("prefill.prefill_tps_per_pod is required")
        if self.target_utilisation is not None and self.target_utilisation.value > 1:
            raise ValueError(f"target_utilisation.value={self.target_utilisation.value} must be in (0, 1]")
        return self


class ServingProfile(Frozen):
    """A model deployment shape and its per-GPU-type capacities."""

    name: str = Field(min_length=1, description="Profile name (the file stem).")
    model: str = Field(min_length=1, description="Model id, e.g. meta-llama/Meta-Llama-3-70B.")
    architecture: Literal["dense", "moe"] = Field(description="Dense or mixture of experts.")
    engine: str = Field(min_length=1, description="Serving engine the figures refer to.")
    precision: str = Field(min_length=1, description="Weights precision, e.g. bf16, fp8.")
    workload: str = Field(min_length=1, description="Input/output lengths the figures assume.")
    slo: SLO = Field(description="Latency targets of the figures.")
    gpu_types: dict[str, GpuProfile] = Field(min_length=1, description="Per GPU type.")
    notes: str = Field(default="", description="Free text.")

    def gpu(self, gpu_type: str) -> GpuProfile:
        """Return the profile of ``gpu_type`` or raise naming the profile and the value."""
        if gpu_type not in self.gpu_types:
            known = ", ".join(sorted(self.gpu_types))
            raise InputError(f"Profile '{self.name}': gpu_type='{gpu_type}' unknown (known: {known})")
        return self.gpu_types[gpu_type]

    def decode_tps_per_pod(self, gpu_type: str) -> float:
        """Target decode tokens/s per decode pod on ``gpu_type``."""
        fig = self.gpu(gpu_type).decode.decode_tps_per_pod
        assert fig is not None  # validated
        return fig.value

    def prefill_tps_per_pod(self, gpu_type: str) -> float:
        """Prompt tokens/s per prefill pod on ``gpu_type``."""
        fig = self.gpu(gpu_type).prefill.prefill_tps_per_pod
        assert fig is not None  # validated
        return fig.value

    def unit(self, gpu_type: str) -> tuple[int, int]:
        """Recommended ``(prefill, decode)`` pods per unit on ``gpu_type``."""
        u = self.gpu(gpu_type).unit
        return u.prefill, u.decode


def load_profile(path: str | Path) -> ServingProfile:
    """Load one profile YAML; errors name the file."""
    p = Path(path)
    return load_yaml_model(p, ServingProfile, "Profile file", defaults={"name": p.stem})


def load_profiles(directory: str | Path) -> dict[str, ServingProfile]:
    """Load every ``*.yaml`` in ``directory``, keyed by profile name, in sorted file order."""
    out: dict[str, ServingProfile] = {}
    for f in sorted(Path(directory).glob("*.yaml")):
        prof = load_profile(f)
        out[prof.name] = prof
    return out
