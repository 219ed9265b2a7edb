"""What one service did in one control window: the numbers both modes report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DROP_REASONS = ("queue_timeout", "too_long_for_kv", "no_decode_pod", "unfinished_at_end")


@dataclass(slots=True)
class Window:
    """Counters of one service over ``[t0, t1)``; latencies in seconds."""

    t0: float
    t1: float
    arrivals: int = 0
    completed: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    prompt_tokens: float = 0.0
    prefill_tokens: float = 0.0
    decode_tokens: float = 0.0
    prefill_busy_s: float = 0.0
    decode_busy_s: float = 0.0
    prefill_ready_s: float = 0.0
    decode_ready_s: float = 0.0
    prefill_demand_tokens: float = 0.0
    decode_demand_tokens: float = 0.0
    prefill_capacity_tokens: float = 0.0
    decode_capacity_tokens: float = 0.0
    queue_prefill: int = 0
    queue_decode: int = 0
    running: int = 0
    ready_prefill: int = 0
    unready_prefill: int = 0
    ready_decode: int = 0
    unready_decode: int = 0
    draining: int = 0
    gpu_seconds: float = 0.0
    ttft: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tbt: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # judged requests (completed in the window) and how many met each SLO
    judged: float = 0.0
    ok_ttft: float = 0.0
    ok_tbt: float = 0.0
    ok_both: float = 0.0
    # fluid mode gives latency statistics directly (request mode fills them from samples)
    ttft_stats: dict[str, float] = field(default_factory=dict)
    tbt_stats: dict[str, float] = field(default_factory=dict)

    def latency_stats(self) -> tuple[dict[str, float], dict[str, float]]:
        """TTFT and TBT mean/p50/p90/p99 in ms (empty when nothing was measured)."""
        if self.ttft_stats or self.tbt_stats:
            return self.ttft_stats, self.tbt_stats
        return _stats(self.ttft), _stats(self.tbt)


def _stats(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {}
    q = np.percentile(x, [50, 90, 99]) * 1000
    return {"mean": float(x.mean() * 1000), "p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}
