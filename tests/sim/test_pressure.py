"""Capacity at SLO from the roofline (the pressure test of Algorithm 1 on the model)."""

from __future__ import annotations

from hetero_opt.sim.pressure import best_unit, capacity_at_slo


def test_looser_slo_more_capacity() -> None:
    tight = capacity_at_slo("llama3-70b", "H20", 4, ttft_ms=1000, tbt_ms=50, prompt_tokens=2048, output_tokens=256)
    loose = capacity_at_slo("llama3-70b", "H20", 4, ttft_ms=1000, tbt_ms=100, prompt_tokens=2048, output_tokens=256)
    assert loose.decode_tps > tight.decode_tps
    assert loose.decode_batch > tight.decode_batch


def test_prefix_hits_lower_the_prefill_share() -> None:
    # DeepSeek's day: 56.3 % of input tokens hit the cache; fewer prefill pods per decode pod with hits
    cold = capacity_at_slo("deepseek-v3", "H800", 8, ttft_ms=2000, tbt_ms=50, prompt_tokens=2000, output_tokens=1000)
    warm = capacity_at_slo("deepseek-v3", "H800", 8, ttft_ms=2000, tbt_ms=50, prompt_tokens=2000, output_tokens=1000,
                           cached_tokens=1126)
    assert warm.pd_ratio < cold.pd_ratio


def test_best_unit() -> None:
    assert best_unit(5.35, 9) == (5, 1)  # 5.35 -> 5P:1D (16:3 is not allowed: 16 > 9)
    assert best_unit(0.35, 9) == (1, 3)
    assert best_unit(1.0, 9) == (1, 1)
