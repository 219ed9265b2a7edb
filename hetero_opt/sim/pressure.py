"""Per-pod capacity at SLO from the roofline: the numbers a serving profile holds (paper Algorithm 1).

:func:`capacity_at_slo` is the pressure test run on the model instead of a GPU: the prompt tokens/s
one prefill pod sustains with a full batch within the TTFT target, the output tokens/s one decode
pod sustains within the TBT target, and the P:D pod ratio that balances them for a workload mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hetero_opt.sim.perf import pod_perf


@dataclass(frozen=True)
class Capacity:
    """One (model, GPU type, pod size) at one SLO and workload."""

    model: str
    gpu: str
    gpus_per_pod: int
    prefill_tps: float
    decode_tps: float
    decode_batch: int
    pd_ratio: float
    unit: tuple[int, int]


def capacity_at_slo(
    model: str,
    gpu: str,
    gpus_per_pod: int,
    *,
    ttft_ms: float,
    tbt_ms: float,
    prompt_tokens: float,
    output_tokens: float,
    cached_tokens: float = 0.0,
    max_unit_pods: int = 9,
) -> Capacity:
    """Capacity of one prefill and one decode pod and the P:D unit (≤ ``max_unit_pods`` a side).

    Prefill: the largest batch of prompts whose prefill fits in half the TTFT target (the other half
    is left to queueing); decode: the largest batch whose step fits in the TBT target at the mean
    context (prompt + half the output).
    """
    pre = pod_perf(model, gpu, "prefill", gpus_per_pod)
    dec = pod_perf(model, gpu, "decode", gpus_per_pod)
    new = max(prompt_tokens - cached_tokens, 1.0)
    per_batch = 1
    while (
        (per_batch + 1) * new <= pre.token_budget
        and pre.prefill_time((per_batch + 1) * new, (per_batch + 1) * new * (cached_tokens + new / 2))
        <= ttft_ms / 2000
    ):
        per_batch += 1
    t = pre.prefill_time(per_batch * new, per_batch * new * (cached_tokens + new / 2))
    prefill_tps = per_batch * new / t
    decode_tps, batch = dec.decode_tps_at(tbt_ms / 1000, prompt_tokens + output_tokens / 2)
    # prefill pods per decode pod: the decode pod's requests/s x missed tokens / one prefill pod's rate
    ratio = decode_tps / max(output_tokens, 1.0) * new / prefill_tps if prefill_tps > 0 else float("inf")
    unit = best_unit(ratio, max_unit_pods)
    return Capacity(model, gpu, gpus_per_pod, prefill_tps, decode_tps, batch, ratio, unit)


def best_unit(ratio: float, max_pods: int) -> tuple[int, int]:
    """``(prefill, decode)`` pods, each ≤ ``max_pods``, closest to ``ratio`` in log terms; smallest on ties."""
    if not math.isfinite(ratio) or ratio <= 0:
        return (max_pods, 1) if ratio > 0 else (1, max_pods)
    best = min(
        ((abs(math.log(p / d / ratio)), p + d, p, d) for p in range(1, max_pods + 1) for d in range(1, max_pods + 1)),
    )
    return best[2], best[3]
