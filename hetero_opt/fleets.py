"""GPU fleet mixes that synthetic instances draw their nodes from.

A :class:`FleetMix` is a weighted list of node kinds (GPU type, GPUs per node). Three mixes:

- ``h20l20``: the paper's H20/L20 fleet, 8 GPUs per node (half and half).
- ``pai2020``: GPU types and GPUs per node of Alibaba PAI's 2020 cluster, read from the bundled
  ``data/alibaba_pai_v2020_machine_spec.csv`` (CC BY 4.0, see ``data/SOURCE.md``), CPU-only
  machines filtered out, weighted by machine count.
- ``alibaba2026``: node kinds of Alibaba's 2026 spot-GPU cluster, read from
  ``../shared/data/clusters/alibaba_spot_gpu_v2026_node_info.csv`` beside the repository (or under
  ``$HETERO_SHARED_DIR``) only when that file is present (research use only: it is not shipped with
  the package; benchmarks only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

#: The shared data folder beside the repository (``../shared``), unless ``$HETERO_SHARED_DIR`` names one.
SHARED_DIR = Path(os.environ.get("HETERO_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
ALIBABA2026_PATH = SHARED_DIR / "data" / "clusters" / "alibaba_spot_gpu_v2026_node_info.csv"

GPU_MEMORY_GB: dict[str, float] = {
    "H20": 96.0,
    "L20": 48.0,
    "H800": 80.0,
    "A100-SXM4-80GB": 80.0,
    "A800-SXM4-80GB": 80.0,
    "A10": 24.0,
    "V100": 16.0,
    "V100M32": 32.0,
    "P100": 16.0,
    "T4": 16.0,
}


@dataclass(frozen=True, order=True)
class NodeKind:
    """One kind of node: GPU type, GPUs per node and its share of the fleet's nodes."""

    gpu_type: str
    gpus: int
    weight: float


@dataclass(frozen=True)
class FleetMix:
    """A named, weighted list of node kinds (sorted by GPU type, then GPUs per node)."""

    name: str
    kinds: tuple[NodeKind, ...]

    @property
    def gpu_types(self) -> list[str]:
        """Distinct GPU types, sorted."""
        return sorted({k.gpu_type for k in self.kinds})

    def max_gpus(self, gpu_type: str) -> int:
        """Largest node of ``gpu_type`` in the mix."""
        return max(k.gpus for k in self.kinds if k.gpu_type == gpu_type)

    def type_weights(self) -> dict[str, float]:
        """Share of nodes per GPU type (sums to 1)."""
        total = sum(k.weight for k in self.kinds)
        out: dict[str, float] = {}
        for k in self.kinds:
            out[k.gpu_type] = out.get(k.gpu_type, 0.0) + k.weight / total
        return dict(sorted(out.items()))


def _from_counts(name: str, df: pd.DataFrame, type_col: str, gpus_col: str) -> FleetMix:
    counts = df.groupby([type_col, gpus_col]).size().reset_index(name="n")
    kinds = sorted(
        NodeKind(str(t), int(g), float(n))
        for t, g, n in zip(counts[type_col], counts[gpus_col], counts["n"], strict=True)
    )
    return FleetMix(name, tuple(kinds))


@cache
def _pai2020() -> FleetMix:
    with resources.files("hetero_opt").joinpath("data/alibaba_pai_v2020_machine_spec.csv").open("r") as fh:
        df = pd.read_csv(fh)
    df = df[(df["gpu_type"] != "CPU") & (df["cap_gpu"] > 0)]
    return _from_counts("pai2020", df, "gpu_type", "cap_gpu")


@cache
def _alibaba2026() -> FleetMix:
    df = pd.read_csv(ALIBABA2026_PATH)
    df = df[df["gpu_capacity_num"] > 0]
    return _from_counts("alibaba2026", df, "gpu_model", "gpu_capacity_num")


def fleet_names() -> tuple[str, ...]:
    """Fleet mixes available here (``alibaba2026`` only when its file is present)."""
    names = ("h20l20", "pai2020")
    return (*names, "alibaba2026") if ALIBABA2026_PATH.is_file() else names


def get_fleet(name: str) -> FleetMix:
    """The fleet mix called ``name``."""
    if name == "h20l20":
        return FleetMix("h20l20", (NodeKind("H20", 8, 1.0), NodeKind("L20", 8, 1.0)))
    if name == "pai2020":
        return _pai2020()
    if name == "alibaba2026":
        if not ALIBABA2026_PATH.is_file():
            raise ValueError(f"fleet='alibaba2026' needs {ALIBABA2026_PATH}, which is not present")
        return _alibaba2026()
    raise ValueError(f"fleet='{name}' is not one of {list(fleet_names())}")
