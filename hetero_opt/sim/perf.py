"""Roofline performance model of one pod: (model, GPU type, role, GPUs per pod).

Prefill of a batch (compute-bound, with the attention term)::

    t_prefill = max(F / (g·peak·mfu_p), W / (g·BW), t_a2a) + t_tp
    F = 2·P_active·N + a_p·L·Σ n_i·(h_i + n_i/2)

Decode step of ``B`` sequences holding ``C`` context tokens (memory-bound: weights plus KV)::

    t_step = max((W + k·C) / (g·BW·η), (2·P_active·B + a_d·L·C) / (g·peak·mfu_d), t_a2a) + t_0 + t_tp

``W`` is the weight bytes one pod holds and reads (MoE: shared weights plus its share of the
experts over the EP group), ``k`` KV bytes per token, ``a`` attention FLOPs per (query, key) pair
per layer, ``L`` layers, ``g`` GPUs, ``N`` new (cache-missed) tokens, ``h_i`` cached prefix tokens.
``t_a2a`` is MoE dispatch/combine over RDMA (overlapped with compute, so it is a third ceiling);
``t_tp`` the tensor-parallel all-reduces. KV capacity is memory left after weights.
Constants and their sources: ``hetero_opt/data/perf_*.yaml``; see ``docs/simulator.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from hetero_opt.errors import InputError
from hetero_opt.sim.perfdata import GpuSpec, ModelSpec, gpu_catalog, model_catalog

#: Share of GPU memory the engine may use (vLLM's default ``gpu_memory_utilization``).
MEMORY_UTILIZATION = 0.9


@dataclass(frozen=True, slots=True)
class PodPerf:
    """Speed of one pod; every method is plain arithmetic so the event loop can call it often."""

    model: str
    gpu: str
    role: str
    gpus: int
    weight_bytes: float
    kv_bytes_per_token: float
    kv_capacity_tokens: int
    max_batch: int
    token_budget: int
    # prefill: seconds per linear FLOP, per attention pair, fixed
    _p_flop_s: float
    _p_attn_s: float
    _p_min_s: float
    _p_a2a_s_per_token: float
    _p_tp_s_per_token: float
    _p_tp_fixed_s: float
    # decode
    _d_mem_fixed_s: float
    _d_mem_s_per_ctx: float
    _d_cmp_s_per_seq: float
    _d_cmp_s_per_ctx: float
    _d_a2a_s_per_seq: float
    _d_fixed_s: float
    _d_tp_s_per_seq: float

    def prefill_time(self, new_tokens: float, attn_pairs: float) -> float:
        """Seconds to prefill ``new_tokens`` with ``attn_pairs`` = Σ n_i·(h_i + n_i/2)."""
        compute = self._p_flop_s * new_tokens + self._p_attn_s * attn_pairs
        return max(compute, self._p_min_s, self._p_a2a_s_per_token * new_tokens) + (
            self._p_tp_fixed_s + self._p_tp_s_per_token * new_tokens
        )

    def decode_step(self, batch: float, context_tokens: float) -> float:
        """Seconds of one decode step of ``batch`` sequences holding ``context_tokens`` in all."""
        if batch <= 0:
            return 0.0
        mem = self._d_mem_fixed_s + self._d_mem_s_per_ctx * context_tokens
        cmp = self._d_cmp_s_per_seq * batch + self._d_cmp_s_per_ctx * context_tokens
        return max(mem, cmp, self._d_a2a_s_per_seq * batch) + self._d_fixed_s + self._d_tp_s_per_seq * batch

    def prefill_tps(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        """Cache-missed prompt tokens/s at full batches of prompts of this length."""
        n = max(prompt_tokens - cached_tokens, 1.0)
        per_batch = max(1.0, self.token_budget // n)
        t = self.prefill_time(per_batch * n, per_batch * n * (cached_tokens + n / 2))
        return per_batch * n / t

    def decode_tps_at(self, tbt_s: float, context_tokens: float) -> tuple[float, int]:
        """Output tokens/s and batch of the largest batch whose step stays within ``tbt_s``."""
        best = (0.0, 0)
        cap = min(self.max_batch, int(self.kv_capacity_tokens // max(context_tokens, 1.0)))
        lo, hi = 1, max(cap, 1)
        while lo <= hi:  # step time grows with the batch: bisect for the largest that fits
            mid = (lo + hi) // 2
            t = self.decode_step(mid, mid * context_tokens)
            if t <= tbt_s:
                best = (mid / t, mid)
                lo = mid + 1
            else:
                hi = mid - 1
        return best


def _peak_and_bytes(gpu: GpuSpec, model: ModelSpec) -> tuple[float, float]:
    if model.weight_bytes.value <= 1 and gpu.fp8_tflops is not None:
        return gpu.fp8_tflops.value * 1e12, 1.0
    return gpu.bf16_tflops.value * 1e12, max(2.0, model.weight_bytes.value)


@cache
def pod_perf(model: str, gpu: str, role: str, gpus: int, ep_group_pods: int | None = None) -> PodPerf:
    """The roofline of one pod; InputError when the model, GPU type or fit is impossible."""
    models, gpus_cat = model_catalog().models, gpu_catalog().gpus
    if model not in models:
        raise InputError(f"Performance model: model='{model}' has no data (known: {sorted(models)})")
    if gpu not in gpus_cat:
        raise InputError(f"Performance model: gpu_type='{gpu}' has no performance data (known: {sorted(gpus_cat)})")
    if role not in ("prefill", "decode"):
        raise InputError(f"Performance model: role='{role}' must be prefill or decode")
    m, s = models[model], gpus_cat[gpu]
    setup = m.prefill if role == "prefill" else m.decode
    ep = ep_group_pods or int(setup.ep_group_pods.value)
    peak, wbytes = _peak_and_bytes(s, m)
    shared_b = m.params_b.value - m.expert_params_b.value
    weights = (shared_b + m.expert_params_b.value / ep) * 1e9 * wbytes
    usable = MEMORY_UTILIZATION * gpus * s.memory_gb.value * 1e9
    kv = m.kv_bytes_per_token.value
    kv_cap = int((usable - weights) / kv)
    if kv_cap <= 0:
        raise InputError(
            f"Performance model: {model} {role} does not fit on {gpus} x {gpu} "
            f"(weights {weights / 1e9:.0f} GB > usable {usable / 1e9:.0f} GB)"
        )
    bw = gpus * s.hbm_tb_s.value * 1e12
    layers, hidden = m.layers.value, m.hidden.value
    # tensor parallel inside a dense pod: 2 all-reduces per layer of hidden x 2 bytes per token
    tp_fixed = 2 * layers * m.allreduce_latency_us.value * 1e-6 if gpus > 1 else 0.0
    tp_per_token = 0.0
    if gpus > 1 and m.architecture == "dense":
        ring = 2 * (gpus - 1) / gpus
        tp_per_token = 2 * layers * hidden * 2 * ring / (s.nvlink_gb_s.value * 1e9)
    a2a = 0.0
    if m.architecture == "moe" and ep > 1 and m.moe_dispatch_bytes_per_token and m.moe_nodes_per_token and m.moe_layers:
        # a token visits at most moe_nodes_per_token nodes (pods); (ep-1)/ep of them are remote
        remote = min(m.moe_nodes_per_token.value, ep) * (ep - 1) / ep
        per_token = hidden * m.moe_dispatch_bytes_per_token.value * m.moe_layers.value * remote
        a2a = per_token / (gpus * s.nic_gb_s.value * 1e9 * gpu_catalog().network.same_s1_efficiency.value)
    compute = gpus * peak * setup.mfu.value
    bw_eff = setup.bw_efficiency.value if setup.bw_efficiency else 1.0
    overhead = setup.step_overhead_ms.value / 1000 if setup.step_overhead_ms else 0.0
    return PodPerf(
        model=model,
        gpu=gpu,
        role=role,
        gpus=gpus,
        weight_bytes=weights,
        kv_bytes_per_token=kv,
        kv_capacity_tokens=kv_cap,
        max_batch=int(setup.max_batch.value) if setup.max_batch else 1,
        token_budget=int(setup.token_budget.value) if setup.token_budget else 8192,
        _p_flop_s=2 * m.active_params_b.value * 1e9 / compute,
        _p_attn_s=m.attn_flops_per_pair_prefill.value * layers / compute,
        _p_min_s=weights / bw,
        _p_a2a_s_per_token=a2a,
        _p_tp_s_per_token=tp_per_token,
        _p_tp_fixed_s=tp_fixed,
        _d_mem_fixed_s=weights / (bw * bw_eff),
        _d_mem_s_per_ctx=kv / (bw * bw_eff),
        _d_cmp_s_per_seq=2 * m.active_params_b.value * 1e9 / compute,
        _d_cmp_s_per_ctx=m.attn_flops_per_pair_decode.value * layers / compute,
        _d_a2a_s_per_seq=a2a,
        _d_fixed_s=overhead + tp_fixed,
        _d_tp_s_per_seq=tp_per_token,
    )


def kv_transfer_time(
    model: str, tokens: float, src_gpus: int, src_gpu: str, dst_gpus: int, dst_gpu: str, same_s1: bool
) -> float:
    """Seconds to move the KV cache of ``tokens`` from a prefill pod to a decode pod over RDMA."""
    cat = gpu_catalog()
    net = cat.network
    kv = model_catalog().models[model].kv_bytes_per_token.value * tokens
    bw = min(src_gpus * cat.gpus[src_gpu].nic_gb_s.value, dst_gpus * cat.gpus[dst_gpu].nic_gb_s.value) * 1e9
    bw *= net.same_s1_efficiency.value
    if same_s1:
        return net.same_s1_latency_ms.value / 1000 + kv / bw
    return net.cross_s1_latency_ms.value / 1000 + kv / (bw * net.cross_s1_bandwidth_share.value)
