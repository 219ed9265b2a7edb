"""Shared builders for small hand-made instances (import them: ``from conftest import node, ...``), a
backend runner, and the ``solver`` / ``exact_solver`` fixtures that run a test on every backend."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hetero_opt import Instance, Plan, Score, build_view
from hetero_opt.placement.backend import Backend, Hint, SolveOptions
from hetero_opt.placement.binding import bind_plan
from hetero_opt.placement.greedy import greedy_counts
from hetero_opt.placement.solve import get_backend

INSTANCES_DIR = Path(__file__).resolve().parent.parent / "instances"
BUNDLED = sorted(p for p in INSTANCES_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def node(
    nid: str, s2: str, s1: str, gpu: str = "H20", free: int = 8, total: int = 8, cluster: str = "c"
) -> dict[str, Any]:
    """One node dict; 8 GPUs, all free, by default."""
    return {"id": nid, "gpu_type": gpu, "gpus_total": total, "gpus_free": free, "cluster": cluster, "s2": s2, "s1": s1}


def pd_service(
    sid: str,
    affinity: str = "cluster",
    prio: int = 10,
    p_types: tuple[str, ...] = ("H20",),
    d_types: tuple[str, ...] = ("H20",),
    p_size: int = 8,
    d_size: int = 8,
    ratio: tuple[int, int] = (1, 1),
    **extra: Any,
) -> dict[str, Any]:
    """A prefill/decode service dict; by default a unit is 1 prefill + 1 decode pod of 8 H20 GPUs."""
    return {
        "id": sid,
        "priority": prio,
        "affinity": affinity,
        "roles": [
            {"name": "prefill", "gpus_per_pod": p_size, "gpu_types": list(p_types)},
            {"name": "decode", "gpus_per_pod": d_size, "gpu_types": list(d_types)},
        ],
        "pd_ratio": {"prefill": ratio[0], "decode": ratio[1]},
        **extra,
    }


def moe_service(
    sid: str,
    affinity: str = "s2",
    prio: int = 10,
    attn_size: int = 4,
    ffn_size: int = 4,
    d_size: int = 8,
    pd: tuple[int, int] = (1, 1),
    attn_ffn: tuple[int, int] = (1, 1),
    **extra: Any,
) -> dict[str, Any]:
    """A disaggregated MoE service dict on H20; by default a unit is 1 attn + 1 ffn (4 GPUs) + 1 decode (8)."""
    return {
        "id": sid,
        "priority": prio,
        "affinity": affinity,
        "roles": [
            {"name": "prefill-attn", "gpus_per_pod": attn_size, "gpu_types": ["H20"]},
            {"name": "prefill-ffn", "gpus_per_pod": ffn_size, "gpu_types": ["H20"]},
            {"name": "decode", "gpus_per_pod": d_size, "gpu_types": ["H20"]},
        ],
        "pd_ratio": {"prefill": pd[0], "decode": pd[1]},
        "attn_ffn_ratio": {"prefill": attn_ffn[0], "decode": attn_ffn[1]},
        **extra,
    }


def group(gid: str, service: str, domain: str, *pods: tuple[str, str, int]) -> dict[str, Any]:
    """A deployment group dict; ``pods`` are (role, node, count)."""
    return {
        "id": gid,
        "service": service,
        "domain": domain,
        "pods": [{"role": r, "node": n, "count": c} for r, n, c in pods],
    }


def request(service: str, target: int) -> dict[str, Any]:
    """A scaling request dict."""
    return {"service": service, "target_units": target}


def instance_dict(**parts: Any) -> dict[str, Any]:
    """An instance dict with GPU types H20 and L20 and the given parts."""
    return {"format_version": "1.0", "gpu_types": [{"id": "H20"}, {"id": "L20"}], **parts}


def make_instance(**parts: Any) -> Instance:
    """A validated instance with GPU types H20 and L20 and the given parts."""
    return Instance.model_validate(instance_dict(**parts))


_VALID: dict[str, Any] = instance_dict(
    name="valid",
    nodes=[
        node("n1", "a", "a-1", free=0),  # holds group g1: 1 prefill + 1 decode pod of 4 GPUs
        node("n2", "a", "a-1"),
        node("n3", "b", "b-1", "L20"),
    ],
    subgroups=[{"id": "sg1", "tier": "low", "s1s": ["a-1"]}],
    services=[
        pd_service("chat", "s2", p_size=4, d_size=4, d_types=("H20", "L20"), min_units=1, max_units=8),
        moe_service("moe", "s2"),
    ],
    groups=[group("g1", "chat", "a", ("prefill", "n1", 1), ("decode", "n1", 1))],
    requests=[request("chat", 2), request("moe", 1)],
)


def valid_dict() -> dict[str, Any]:
    """A fresh copy of a small valid instance touching every entity kind (for one-defect mutations)."""
    return copy.deepcopy(_VALID)


@dataclass
class BackendRun:
    """A backend's own output before ``solve()``'s checks: its counts bound to nodes, its status and bound."""

    plan: Plan  # the backend's counts bound to nodes; the greedy plan when it returned none
    greedy: Plan
    status: str
    bound: Score | None
    fallback_reason: str
    termination: str
    stats: dict[str, float]


def run_backend(inst: Instance, backend: Backend, **options: Any) -> BackendRun:
    """Run ``backend`` on ``inst`` from the greedy's counts, as ``solve()`` does, and bind what it returns."""
    view = build_view(inst)
    counts = greedy_counts(view)
    greedy = bind_plan(view, counts)
    out = backend.solve(view, Hint(counts, greedy), SolveOptions(**options))
    plan = greedy if out.counts is None else bind_plan(view, out.counts)
    return BackendRun(plan, greedy, out.status, out.bound, out.fallback_reason, out.termination, out.stats)


SOLVERS = ("greedy", "cpsat", "milp", "milp-cbc")
EXACT_SOLVERS = ("cpsat", "milp", "milp-cbc")  # prove small instances optimal


def _available(name: str) -> str:
    if name != "greedy" and not get_backend(name).available():
        pytest.skip(f"{name} is not available here")
    return name


@pytest.fixture(params=SOLVERS)
def solver(request: pytest.FixtureRequest) -> str:
    """Every solver ``solve()`` offers, greedy included: for behaviour every backend shares."""
    return _available(request.param)


@pytest.fixture(params=EXACT_SOLVERS)
def exact_solver(request: pytest.FixtureRequest) -> str:
    """The solvers that prove small instances optimal: for behaviour the greedy heuristic lacks."""
    return _available(request.param)


TOPOLOGY_SOLVERS = ("greedy", "cpsat", "milp")


@pytest.fixture(params=TOPOLOGY_SOLVERS)
def tas_solver(request: pytest.FixtureRequest) -> str:
    """The solvers the ports of other schedulers' topology-aware scenarios check: greedy, CP-SAT, MILP."""
    return _available(request.param)


def refused(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str, quiet: bool = False) -> str:
    """Run the CLI; assert exit 2 and one stderr line holding every needle (and, with ``quiet``, nothing on
    stdout); return that line."""
    from hetero_opt.cli import main

    assert main(args) == 2
    out, err = capsys.readouterr()
    if quiet:
        assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]



def failing_write(monkeypatch: pytest.MonkeyPatch, name: str, error: OSError) -> None:
    """Make every atomic write of a file called ``name`` fail with ``error`` (a full disk, no permission),
    the other files written as usual; ``monkeypatch.undo()`` lets them through again."""
    import hetero_opt.io

    real = hetero_opt.io.write_synced_temp

    def write(path: Path, data: bytes) -> Path:
        if path.name == name:
            raise error
        return real(path, data)

    monkeypatch.setattr(hetero_opt.io, "write_synced_temp", write)
