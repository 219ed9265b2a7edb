"""The MILP backend (PuLP + HiGHS / CBC): what only this backend does (warm start, time-outs,
export, engines agreeing). Its small hand-made instances with known optima are built here and run
on every solver in ``test_every_solver.py``.

Tests run on both engines (the ``engine`` fixture); every plan passes ``verify`` and is never worse
than the greedy plan on the modelled terms. Default weights: tier low 1, medium 3, high 9; a
non-preferred GPU type costs 2 more per GPU per rank.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pulp
import pytest
from conftest import run_backend

from hetero_opt.instance import Instance
from hetero_opt.placement.greedy import greedy_counts, greedy_plan
from hetero_opt.placement.milp import MilpBackend, build_model
from hetero_opt.placement.objective import Score, score
from hetero_opt.placement.plan import Plan
from hetero_opt.placement.solve import solve
from hetero_opt.placement.verify import verify
from hetero_opt.topology import build_view


@pytest.fixture(params=["highs", "cbc"])
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if not MilpBackend(name).available():
        pytest.skip(f"{name} not available")
    return name


def node(nid: str, gpu: str, free: int, s2: str, s1: str, total: int = 8) -> dict[str, Any]:
    return {"id": nid, "gpu_type": gpu, "gpus_total": total, "gpus_free": free, "cluster": "c", "s2": s2, "s1": s1}


def pd_service(sid: str, prio: int, affinity: str, prefill: tuple[int, list[str]], decode: tuple[int, list[str]],
               **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "id": sid,
        "priority": prio,
        "affinity": affinity,
        "roles": [
            {"name": "prefill", "gpus_per_pod": prefill[0], "gpu_types": prefill[1]},
            {"name": "decode", "gpus_per_pod": decode[0], "gpu_types": decode[1]},
        ],
        "pd_ratio": {"prefill": 1, "decode": 1},
        **extra,
    }


def make(nodes: list[dict[str, Any]], services: list[dict[str, Any]], requests: dict[str, int],
         groups: list[dict[str, Any]] | None = None) -> Instance:  # fmt: skip
    gpus = sorted({n["gpu_type"] for n in nodes} | {t for s in services for r in s["roles"] for t in r["gpu_types"]})
    return Instance.model_validate(
        {
            "format_version": "1.0",
            "gpu_types": [{"id": g} for g in gpus],
            "nodes": nodes,
            "services": services,
            "groups": groups or [],
            "requests": [{"service": s, "target_units": t} for s, t in requests.items()],
        }
    )


def run(instance: Instance, engine: str, **opts: Any) -> tuple[Plan, Score, Score, str, Score | None]:
    """Solve with the backend directly; check the plan; return plan, its score, greedy's, status, bound."""
    out = run_backend(instance, MilpBackend(engine), **{"time_limit": 20.0, **opts})
    assert out.fallback_reason == ""
    assert verify(instance, out.plan) == []
    got, greedy = score(instance, out.plan), score(instance, out.greedy)
    assert got.modelled() <= greedy.modelled()
    return out.plan, got, greedy, out.status, out.bound


def terms(s: Score) -> tuple[object, ...]:
    """Objective terms 1-4 (the fifth, whole free nodes, is decided by binding, not the MILP)."""
    return s.key()[:4]


def greedy_trap() -> Instance:
    """Greedy gives high-priority 'a' the only mixed S1 with room for 'b'.

    'a' (cluster affinity, 4-GPU pods, H800 prefill + L20 decode) wants 2 units; 'b' (S1 affinity,
    8-GPU pods, same types) wants 1 unit and fits only in mixed S1 'h-1'. Medium S2 'm' holds one
    unit of 'a'; the mixed S1s 'h-1' (8 + 8 free) and 'h-2' (4 + 4 free) are high tier.
    """
    nodes = [
        node("m1", "H800", 4, "m", "m-1"),
        node("m2", "L20", 4, "m", "m-2"),
        node("h1a", "H800", 8, "h", "h-1"),
        node("h1b", "L20", 8, "h", "h-1"),
        node("h2a", "H800", 4, "h", "h-2"),
        node("h2b", "L20", 4, "h", "h-2"),
    ]
    services = [
        pd_service("a", 10, "cluster", (4, ["H800"]), (4, ["L20"])),
        pd_service("b", 5, "s1", (8, ["H800"]), (8, ["L20"])),
    ]
    return make(nodes, services, {"a": 2, "b": 1})


def moe_service(target_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "moe",
        "priority": 1,
        "affinity": "s2",
        "roles": [
            {"name": "prefill-attn", "gpus_per_pod": 4, "gpu_types": ["H800"]},
            {"name": "prefill-ffn", "gpus_per_pod": 2, "gpu_types": ["H800"]},
            {"name": "decode", "gpus_per_pod": 4, "gpu_types": ["H800"]},
        ],
        "pd_ratio": {"prefill": 1, "decode": 1},
        "attn_ffn_ratio": {"prefill": 1, "decode": 2},
        **(target_extra or {}),
    }


def test_no_time_left_keeps_the_greedy_incumbent(engine: str) -> None:
    # A budget too small for any stage: every stage keeps the incumbent (the greedy plan's values),
    # the status says the plan is not proven, and the plan is as good as greedy's.
    instance = greedy_trap()
    out = run_backend(instance, MilpBackend(engine), time_limit=0.001)
    assert out.status == "feasible"
    assert verify(instance, out.plan) == []
    assert terms(score(instance, out.plan)) == terms(score(instance, out.greedy))
    assert "no time left" in out.termination


def scale_in_instance() -> Instance:
    """Service 's' (S1 affinity, 1P + 1D of 8 GPUs = 16 GPUs a unit) holds 3 units in 3 groups.

    'g-low' (2 units) on low S1 'l-1'; 'g-high' (1 unit) on mixed S1 'h-1' (high tier).
    """
    nodes = [
        node("l1", "H20", 0, "l", "l-1"),
        node("l2", "H20", 0, "l", "l-1"),
        node("l3", "H20", 0, "l", "l-1"),
        node("l4", "H20", 0, "l", "l-1"),
        node("h1", "H20", 0, "h", "h-1"),
        node("h2", "L20", 0, "h", "h-1"),
    ]
    svc = pd_service("s", 1, "s1", (8, ["H20"]), (8, ["H20", "L20"]))
    groups = [
        {
            "id": "g-low",
            "service": "s",
            "domain": "l-1",
            "pods": [
                {"role": "prefill", "node": "l1", "count": 1},
                {"role": "prefill", "node": "l2", "count": 1},
                {"role": "decode", "node": "l3", "count": 1},
                {"role": "decode", "node": "l4", "count": 1},
            ],
        },
        {
            "id": "g-high",
            "service": "s",
            "domain": "h-1",
            "pods": [{"role": "prefill", "node": "h1", "count": 1}, {"role": "decode", "node": "h2", "count": 1}],
        },
    ]
    return make(nodes, [svc], {"s": 1}, groups)


def test_non_chain_counts_that_do_not_bind_give_the_greedy_plan() -> None:
    # Sizes 2 and 3 are no chain. A unit = 2 prefill of 3 + 1 decode of 2 = 8 GPUs; two nodes with
    # 4 free pass the relaxed rows (8 <= 8 GPUs, 2 pods of >= 3 <= 2 slots) but the pods do not pack.
    nodes = [node("n1", "H20", 4, "l", "l-1"), node("n2", "H20", 4, "l", "l-1")]
    svc = pd_service("s", 1, "s1", (3, ["H20"]), (2, ["H20"]))
    svc["pd_ratio"] = {"prefill": 2, "decode": 1}
    instance = make(nodes, [svc], {"s": 1})
    result = solve(instance, "milp", time_limit=10)  # the MILP's counts are bound by solve(): they fail
    assert result.status == "fallback"
    assert "cannot bind" in result.fallback_reason
    assert result.plan == greedy_plan(instance)


def test_hint_is_a_feasible_start() -> None:
    instance = greedy_trap()
    view = build_view(instance)
    from hetero_opt.placement.milp.model import hint_values

    values = hint_values(build_model(view), view, greedy_counts(view).drafts)
    assert values is not None  # greedy's counts are expressible and satisfy every row


def test_engines_agree_on_all_terms() -> None:
    instance = greedy_trap()
    highs = run(instance, "highs")
    cbc = run(instance, "cbc")
    assert terms(highs[1]) == terms(cbc[1])


def random_instance(seed: int) -> Instance:
    """Two S2s of mixed and plain S1s, three services with random targets (a cross-check, not a pin)."""
    rng = random.Random(seed)
    nodes = []
    for s2 in ("p", "q"):
        for s1 in range(3):
            for k in range(rng.randint(1, 3)):
                gpu = rng.choice(["H20", "L20"]) if s2 == "q" else "H20"
                nodes.append(node(f"{s2}{s1}{k}", gpu, rng.choice([0, 2, 4, 8]), s2, f"{s2}-{s1}"))
    services = [
        pd_service("a", 3, "s2", (4, ["H20", "L20"]), (2, ["L20", "H20"])),
        pd_service("b", 2, "s1", (8, ["H20"]), (4, ["H20", "L20"])),
        pd_service("c", 2, "cluster", (2, ["L20"]), (2, ["H20"]), max_new_groups=1),
    ]
    return make(nodes, services, {"a": rng.randint(0, 3), "b": rng.randint(0, 2), "c": rng.randint(0, 4)})


@pytest.mark.parametrize("seed", range(8))
def test_random_instances_both_engines_optimal_and_equal(seed: int) -> None:
    instance = random_instance(seed)
    highs = run(instance, "highs")
    cbc = run(instance, "cbc")
    assert highs[3] == cbc[3] == "optimal"
    assert terms(highs[1]) == terms(cbc[1])
    assert highs[4] is not None
    assert terms(highs[4]) == terms(highs[1])  # every stage proven: the bound is the plan's terms


def test_through_solve_entry_point(engine: str) -> None:
    result = solve(greedy_trap(), "milp" if engine == "highs" else "milp-cbc", time_limit=20)
    assert result.status == "optimal"
    assert result.score.unserved_gpus == [0, 0]
    assert result.solver_version.startswith("pulp ")
    assert result.stats["variables"] > 0


@pytest.mark.filterwarnings("ignore:PULP_CBC_CMD is deprecated:DeprecationWarning")
def test_export_writes_mps_and_lp_that_read_back(engine: str, tmp_path: Path) -> None:
    prefix = str(tmp_path / "model")
    instance = greedy_trap()
    out = run_backend(instance, MilpBackend(engine), time_limit=20, export_model=prefix)
    assert out.status == "optimal"
    lp_text = Path(prefix + ".lp").read_text()
    assert "Minimize" in lp_text
    assert "fix_served_p10" in lp_text  # earlier stages are fixed in the final stage's problem
    # The final stage minimises new groups with every earlier term fixed: the optimum is 2.
    _, prob = pulp.LpProblem.fromMPS(prefix + ".mps")
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    assert pulp.LpStatus[prob.status] == "Optimal"
    assert round(pulp.value(prob.objective)) == score(instance, out.plan).new_groups == 2


def test_highs_thread_count_can_change_between_solves() -> None:
    # HiGHS sizes a process-wide thread pool on first use; the backend resets it per solve.
    for workers in (2, 1, 3):
        assert run(greedy_trap(), "highs", num_workers=workers)[3] == "optimal"


def test_a_short_request_is_said_to_follow_higher_priority_ones_only_when_there_are_some() -> None:
    # One service, 3 units wanted, room for 2 (two 8-GPU nodes, units of 8 GPUs): nothing of higher
    # priority took the third, so the reason does not say so.
    inst = Instance.model_validate(
        {
            "format_version": "1.1",
            "gpu_types": [{"id": "H20"}],
            "nodes": [
                {"id": f"n{i}", "gpu_type": "H20", "gpus_total": 8, "gpus_free": 8, "cluster": "c", "s2": "a",
                 "s1": "a-1"}
                for i in range(2)
            ],
            "services": [
                {"id": "job", "priority": 10, "affinity": "s1",
                 "roles": [{"name": "serve", "gpus_per_pod": 8, "gpu_types": ["H20"]}]}
            ],
            "requests": [{"service": "job", "target_units": 3}],
        }
    )
    run = run_backend(inst, MilpBackend(engine="highs"), time_limit=10.0)  # the backend's own words
    (short,) = run.plan.unserved
    assert short.placed_units == 2
    assert short.reason.startswith("optimal placement fits 2 of 3 units")
    assert "higher-priority" not in short.reason
