"""The greedy's speed-ups (decisions 41, 45) do not change its plans: passing over subgroups and domains
where no unit fits (``_Capacity.may_fit``, ``domain_may_fit``) and refusing pods larger than a pool's free
GPUs (``FreePool.total``) give the same counts, node picks and reasons (the new-group-limit one included) as
the plain walk, on views with GPUs taken too."""

from __future__ import annotations

import bisect
import random
from functools import cached_property
from typing import Any

import pytest
from fuzz.strategies import instance_dicts
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hetero_opt.instance import Instance
from hetero_opt.placement import binding, greedy
from hetero_opt.placement.binding import Counts
from hetero_opt.placement.slots import out_slot_specs
from hetero_opt.topology import TopologyView, build_view


def _key(c: Counts) -> tuple[object, ...]:
    drafts = [(d.service, d.group, d.new, d.domain, d.units, sorted(d.counts.items())) for d in c.drafts]
    picks = None if c.picks is None else [sorted(p.items()) for p in c.picks]
    return drafts, sorted(c.reasons.items()), picks


def _plain_take(self: binding.FreePool, size: int) -> str | None:
    """FreePool.take without the refusal on ``total``."""
    for free in range(size, self.max_free + 1):
        bucket = self.buckets.get(free)
        if bucket:
            node_id = bucket.pop(0)
            self.free[node_id] = free - size
            self.total -= size
            if free - size > 0:
                bisect.insort(self.buckets[free - size], node_id)
            return node_id
    return None


def _views(instance: Instance, seed: int) -> list[TopologyView]:
    view = build_view(instance)
    rng = random.Random(seed)
    taken = {n.id: rng.randint(1, n.gpus_free) for n in instance.nodes if n.gpus_free > 0 and rng.random() < 0.3}
    return [view, view.with_taken(taken)] if taken else [view]


@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(instance_dicts(), st.integers(0, 1000))
def test_skips_do_not_change_the_greedy(data: dict[str, Any], seed: int) -> None:
    try:
        instance = Instance.model_validate(data)
    except (ValidationError, ValueError):
        assume(False)
        return
    fast = [_key(greedy.greedy_counts(v)) for v in _views(instance, seed)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(greedy._Capacity, "may_fit", lambda self, subgroup, shape: True)
        mp.setattr(greedy._Capacity, "domain_may_fit", lambda self, s1s, shape: True)
        mp.setattr(binding.FreePool, "take", _plain_take)
        plain = [_key(greedy.greedy_counts(v)) for v in _views(instance, seed)]
    assert fast == plain


def _cached_names() -> list[str]:
    return sorted(k for k, v in vars(TopologyView).items() if isinstance(v, cached_property))


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(instance_dicts(), st.integers(0, 1000))
def test_a_view_with_gpus_taken_recomputes_every_look_up_that_depends_on_them(data: dict[str, Any], seed: int) -> None:
    """``with_taken`` shares the look-ups that do not depend on free GPUs and recomputes the rest: every cached
    look-up of the derived view equals that of a view built afresh with the same GPUs taken, even when the
    original view had computed them all first."""
    try:
        instance = Instance.model_validate(data)
    except (ValidationError, ValueError):
        assume(False)
        return
    view, *taken_views = _views(instance, seed)
    assume(taken_views)
    for name in _cached_names():
        getattr(view, name)
    greedy.greedy_counts(view)  # fills the view's memo, some of it from free GPUs (a request's slots)
    outs = [r for r in view.requests if r.delta > 0]
    for r in outs:
        out_slot_specs(view, r)
    derived = view.with_taken(taken_views[0].taken)
    fresh = TopologyView(instance, [], dict(taken_views[0].taken))
    for name in _cached_names():
        if name != "memo":
            assert getattr(derived, name) == getattr(fresh, name), name
    assert _key(greedy.greedy_counts(derived)) == _key(greedy.greedy_counts(fresh))
    assert [out_slot_specs(derived, r) for r in outs] == [out_slot_specs(fresh, r) for r in outs]
