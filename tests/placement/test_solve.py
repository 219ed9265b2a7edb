"""The seam in ``solve()``: a backend returns counts; solve() binds, verifies, scores and keeps the
greedy plan where the counts do not do better. Stub backends return chosen counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import make_instance, node, pd_service, request

from hetero_opt import InputError, score, solve, verify
from hetero_opt.placement.backend import BackendOutput, Hint, SolveOptions
from hetero_opt.placement.binding import CountKey, Counts, GroupDraft
from hetero_opt.topology import TopologyView
from placement.test_cpsat import CONTENTION

# S2 'a' holds two low-tier S1s: 'a-1' with node a1 (4 of 8 GPUs free) and 'a-2' with node b1 (all 8
# free). 'chat' (S2 affinity) wants 1 unit of 2 + 2 GPUs. The greedy fills a-1 first (a1 has room):
# premium 4 x 1 = 4, one new group 'chat@a', and b1 stays a whole free node.
TWO_S1S = make_instance(
    nodes=[node("a1", "a", "a-1", free=4), node("b1", "a", "a-2")],
    services=[pd_service("chat", "s2", p_size=2, d_size=2)],
    requests=[request("chat", 1)],
)


def unit_on(s1: str) -> Counts:
    """Counts of one 'chat' unit in S1 ``s1``, in the new group 'chat@a'."""
    counts: Counter[CountKey] = Counter({("prefill", s1, "H20"): 1, ("decode", s1, "H20"): 1})
    return Counts([GroupDraft("chat", "chat@a", True, "a", 1, counts)])


@dataclass
class Stub:
    """A backend that returns fixed counts (or none) with a fixed status."""

    counts: Counts | None
    status: str = "optimal"
    reason: str = ""
    name: str = "stub"
    seen: list[Hint] = field(default_factory=list)

    def available(self) -> bool:
        return True

    def solve(self, view: TopologyView, hint: Hint, options: SolveOptions) -> BackendOutput:
        self.seen.append(hint)
        return BackendOutput(self.counts, self.status, "stub", self.reason)


def test_the_greedy_is_as_stated() -> None:
    greedy = solve(TWO_S1S, "greedy")
    assert [(p.role, p.node) for c in greedy.plan.changes for p in c.pods] == [("decode", "a1"), ("prefill", "a1")]
    assert greedy.score.key() == ((0,), 4, 1, 0, -1)  # b1 stays whole


def test_a_backend_gets_the_greedys_counts_as_they_are() -> None:
    stub = Stub(None, "fallback", "nothing")
    solve(TWO_S1S, stub)
    (hint,) = stub.seen
    (draft,) = hint.counts.drafts
    assert (draft.group, draft.units, dict(draft.counts)) == (
        "chat@a",
        1,
        {("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1},
    )
    assert hint.plan == solve(TWO_S1S, "greedy").plan  # the same counts, bound once


def test_counts_that_tie_on_terms_1_to_4_but_use_a_whole_node_give_way_to_the_greedy() -> None:
    # the unit on a-2 costs the same (4 x 1), opens the same group, but takes b1, the one whole free
    # node: terms 1-4 tie, term 5 (binding only) is worse -> the greedy plan, with the backend's status
    result = solve(TWO_S1S, Stub(unit_on("a-2")))
    assert result.plan == solve(TWO_S1S, "greedy").plan
    assert (result.status, result.fallback_reason) == ("optimal", "")
    assert result.stats["hint_kept"] == 1.0


def test_counts_worse_on_a_modelled_term_fall_back_to_the_greedy() -> None:
    # no unit at all: 4 GPUs unserved where the greedy serves them
    result = solve(TWO_S1S, Stub(Counts([], {"chat": "stub: placed nothing"})))
    assert result.status == "fallback"
    assert result.fallback_reason == "stub plan scored worse than greedy; greedy kept"
    assert result.plan == solve(TWO_S1S, "greedy").plan


def test_no_counts_fall_back_to_the_greedy_with_the_backends_reason() -> None:
    result = solve(TWO_S1S, Stub(None, "fallback", "stub: out of time"))
    assert (result.status, result.fallback_reason) == ("fallback", "stub: out of time")
    assert result.plan == solve(TWO_S1S, "greedy").plan


def test_counts_that_do_not_bind_fall_back_with_the_binding_error() -> None:
    # two units' pods (8 GPUs) in a-1, where a1 has 4 free
    counts = unit_on("a-1")
    counts.drafts[0].counts = Counter({("prefill", "a-1", "H20"): 2, ("decode", "a-1", "H20"): 2})
    counts.drafts[0].units = 2
    result = solve(TWO_S1S, Stub(counts))
    assert result.status == "fallback"
    assert result.fallback_reason.startswith("stub: cannot bind")


def test_counts_past_the_target_fail_verification_and_fall_back() -> None:
    # the unit is bound (b1 has room) but the draft claims 2 units of a 1-unit request
    counts = unit_on("a-2")
    counts.drafts[0].units = 2
    result = solve(TWO_S1S, Stub(counts))
    assert result.status == "fallback"
    assert result.fallback_reason.startswith("verifier rejected the stub plan")
    assert verify(TWO_S1S, result.plan) == []


def test_better_counts_are_bound_verified_and_scored() -> None:
    # CONTENTION: the greedy gives 'hi' the H20 nodes and leaves 'lo' unserved; the stub's counts put
    # 'hi' on L20 ('b-1': 16 x (1 + 2) = 48) and 'lo' on H20 ('a-1': 16 x 1 = 16): premium 64
    def unit(service: str, s1: str, gpu: str) -> GroupDraft:
        counts: Counter[CountKey] = Counter({("prefill", s1, gpu): 1, ("decode", s1, gpu): 1})
        return GroupDraft(service, f"{service}@c", True, "c", 1, counts)

    assert solve(CONTENTION, "greedy").score.unserved_gpus == [0, 16]
    result = solve(CONTENTION, Stub(Counts([unit("lo", "a-1", "H20"), unit("hi", "b-1", "L20")])))
    assert (result.status, result.score.unserved_gpus, result.score.premium_cost) == ("optimal", [0, 0], 64)
    assert result.score == score(CONTENTION, result.plan)
    assert verify(CONTENTION, result.plan) == []
    assert [c.service for c in result.plan.changes] == ["hi", "lo"]  # sorted, whatever order the counts came in
    assert result.plan.unserved == []


def test_a_backend_is_not_called_when_the_greedy_leaves_no_time_within_the_limit() -> None:
    stub = Stub(unit_on("a-2"))
    result = solve(TWO_S1S, stub, time_limit=0.001)  # less than checking any plan takes
    assert stub.seen == []
    assert result.status == "fallback"
    assert "no time left within time_limit=0.001 s" in result.fallback_reason
    assert result.plan == solve(TWO_S1S, "greedy").plan


@pytest.mark.parametrize(
    ("instance", "options", "message"),
    [
        ({"nodes": []}, {}, "solve() takes an Instance, not dict: use load_instance(path) or parse_instance(dict)"),
        ("x.yaml", {}, "solve() takes an Instance, not str: use load_instance(path) or parse_instance(dict)"),
        (TWO_S1S, {"time_limit": "2"}, "solve: time_limit='2' must be a number in (0, 86400] seconds"),
        (TWO_S1S, {"time_limit": True}, "solve: time_limit=True must be a number in (0, 86400] seconds"),
        (TWO_S1S, {"solver": "nosuch"}, "solve: solver='nosuch' is not one of ['greedy', 'cpsat', 'milp', 'milp-cbc']"),
        (TWO_S1S, {"solver": 3}, "solve: solver=3 is not one of ['greedy', 'cpsat', 'milp', 'milp-cbc'] (or"),
    ],
)
def test_wrong_arguments_are_refused_at_the_entry(instance: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as err:
        solve(instance, **options)
    assert str(err.value).startswith(message)
