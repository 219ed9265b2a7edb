"""Window-level (fluid) simulation with a queueing approximation, for day- and week-scale traces.

Per control window and service, with the same roofline as request mode:

- prefill: capacity ``Σ_pods prefill_tps(mean prompt)``; cache-missed demand plus carried
  backlog; what exceeds capacity waits (backlog) and is dropped after ``queue_timeout_s``.
  TTFT: M/M/c waiting time (Erlang C, ``c`` ready prefill pods) + one prefill + KV transfer +
  backlog wait; its tail is exponential, ``P(TTFT > x) = C·exp(−(cμ−λ)(x − base))``.
- decode: each ready pod carries load in proportion to its capacity; its batch ``B`` solves
  ``B / step(B, B·ctx) = per-pod token rate`` (Little's law on the batch), TBT = ``step(B)``;
  above capacity the batch is at its cap and the excess is carried.
- decode GPU utilisation is ``P(batch > 0) = 1 − e^(−B)``: high even at low load (paper Fig. 2c).

Requests are counted as fractions: arrivals = completed + dropped + in flight, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hetero_opt.sim.config import SimConfig
from hetero_opt.sim.perf import PodPerf, kv_transfer_time, pod_perf
from hetero_opt.sim.pods import Pod
from hetero_opt.sim.window import Window

#: Equal-probability points of the prompt-length distribution TTFT is averaged over.
QUANTILES = (np.arange(16) + 0.5) / 16
#: Prompt lengths of an exponential distribution at QUANTILES, relative to the mean (rate traces).
EXPONENTIAL_SPREAD = -np.log(1 - QUANTILES)


@dataclass(slots=True)
class Load:
    """Offered load of one service in one window."""

    requests: float
    prompt: float  # mean prompt tokens
    missed: float  # mean cache-missed prompt tokens
    output: float  # mean output tokens
    spread: np.ndarray = field(default_factory=lambda: EXPONENTIAL_SPREAD)  # missed tokens / mean at QUANTILES




def spread_of(missed: np.ndarray) -> np.ndarray:
    """Cache-missed prompt lengths at :data:`QUANTILES`, relative to their mean."""
    if missed.size == 0 or missed.mean() <= 0:
        return EXPONENTIAL_SPREAD
    out: np.ndarray = np.quantile(missed, QUANTILES) / missed.mean()
    return out


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a = λ/μ`` (1 when ``a >= c``)."""
    if c <= 0 or a >= c:
        return 1.0
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1 - rho * (1 - b))


def batch_for_rate(perf: PodPerf, rate: float, ctx: float) -> tuple[float, float]:
    """Batch ``B`` whose throughput ``B/step`` equals ``rate`` (tokens/s), and its step time."""
    cap = max(1.0, min(perf.max_batch, perf.kv_capacity_tokens / max(ctx, 1.0)))
    if rate <= 0:
        return 0.0, perf.decode_step(1.0, ctx)
    lo, hi = 0.0, cap
    if cap / perf.decode_step(cap, cap * ctx) <= rate:
        return cap, perf.decode_step(cap, cap * ctx)
    for _ in range(40):
        mid = (lo + hi) / 2
        if mid / perf.decode_step(mid, mid * ctx) < rate:
            lo = mid
        else:
            hi = mid
    b = max(hi, 1e-9)
    return b, perf.decode_step(max(b, 1.0), max(b, 1.0) * ctx)


def decode_capacity(perf: PodPerf, ctx: float) -> float:
    """Most tokens/s one decode pod can emit at this context (batch at its cap)."""
    cap = max(1.0, min(perf.max_batch, perf.kv_capacity_tokens / max(ctx, 1.0)))
    return cap / perf.decode_step(cap, cap * ctx)


class FluidEngine:
    """Advances window by window; same pod interface as the request engine (slotted like it)."""

    __slots__ = ("arrived", "backlog_d", "backlog_p", "cfg", "completed", "cursor", "dropped", "in_decode", "loads",
                 "models", "out_left", "perf", "slo")

    def __init__(self, cfg: SimConfig, loads: dict[str, list[tuple[float, float, Load]]]) -> None:
        self.cfg = cfg
        self.loads = loads  # per service: (t0, t1, load) sorted, covering the trace
        self.models = {s.service: s.model for s in cfg.services}
        self.slo = {s.service: (s.slo.ttft_ms / 1000, s.slo.tbt_ms / 1000) for s in cfg.services}
        self.perf: dict[int, PodPerf] = {}
        self.backlog_p = dict.fromkeys(self.models, 0.0)  # requests waiting for prefill
        self.backlog_d = dict.fromkeys(self.models, 0.0)  # requests waiting for decode
        self.in_decode = dict.fromkeys(self.models, 0.0)  # requests in decode batches
        self.out_left = dict.fromkeys(self.models, 0.0)
        self.arrived = dict.fromkeys(self.models, 0.0)
        self.completed = dict.fromkeys(self.models, 0.0)
        self.dropped = dict.fromkeys(self.models, 0.0)
        self.cursor = dict.fromkeys(self.models, 0)

    def add_pod(self, pod: Pod) -> None:
        """A placed pod, serving from ``pod.ready_at``."""
        self.perf[pod.id] = pod_perf(self.models[pod.service], pod.gpu_type, pod.role, pod.gpus)

    def drain_pod(self, pod: Pod, now: float) -> None:
        """A fluid pod keeps serving (and costing GPUs) for up to 60 s while its batch empties, then goes."""
        pod.draining = True
        pod.removed_at = now if pod.ready_at > now else now + min(self.cfg.control_period_s, 60.0)

    def _load(self, service: str, t0: float, t1: float) -> Load:
        """Requests arriving in ``[t0, t1)`` and their mean lengths (pro rata over trace windows)."""
        rows = self.loads[service]
        i = self.cursor[service]
        while i < len(rows) and rows[i][1] <= t0:
            i += 1
        self.cursor[service] = i
        n = tok_p = tok_m = tok_o = 0.0
        spread = np.zeros(QUANTILES.size)
        j = i
        while j < len(rows) and rows[j][0] < t1:
            a, b, ld = rows[j]
            share = (min(b, t1) - max(a, t0)) / (b - a) if b > a else 1.0
            k = ld.requests * max(share, 0.0)
            n += k
            tok_p += k * ld.prompt
            tok_m += k * ld.missed
            tok_o += k * ld.output
            spread += k * ld.spread
            j += 1
        if n <= 0:
            return Load(0.0, 0.0, 0.0, 0.0)
        return Load(n, tok_p / n, tok_m / n, tok_o / n, spread / n)

    def step(self, t0: float, t1: float, pods: list[Pod]) -> dict[str, Window]:
        """Simulate ``[t0, t1)`` and return its windows."""
        dt = t1 - t0
        out: dict[str, Window] = {}
        for svc, model in self.models.items():
            w = Window(t0, t1)
            ld = self._load(svc, t0, t1)
            w.arrivals = round(ld.requests)
            self.arrived[svc] += ld.requests
            w.prompt_tokens = ld.requests * ld.prompt
            ctx = ld.prompt + ld.output / 2 if ld.requests else 1.0
            pre = [(p, self.perf[p.id]) for p in pods if p.service == svc and p.role == "prefill"]
            dec = [(p, self.perf[p.id]) for p in pods if p.service == svc and p.role == "decode"]
            frac = {p.id: _live_share(p, t0, t1) for p, _ in pre + dec}
            missed = max(ld.missed, 1.0)
            pre_tps = sum(frac[p.id] * f.prefill_tps(max(ld.prompt, 1.0), ld.prompt - missed) for p, f in pre)
            # ---- prefill
            want_p = self.backlog_p[svc] + ld.requests
            can_p = pre_tps * dt / missed
            done_p = min(want_p, can_p)
            self.backlog_p[svc] = want_p - done_p
            w.prefill_tokens = done_p * missed
            w.prefill_capacity_tokens = pre_tps * dt
            w.prefill_demand_tokens = ld.requests * missed
            w.prefill_busy_s = done_p * missed / pre_tps * sum(frac.get(p.id, 0) for p, _ in pre) if pre_tps else 0.0
            w.prefill_ready_s = sum(frac[p.id] for p, _ in pre) * dt
            # ---- decode
            caps = [(p, f, frac[p.id] * decode_capacity(f, ctx)) for p, f in dec]
            cap_d = sum(c for _, _, c in caps)
            out_tok = max(ld.output, 1.0) if ld.requests else max(self.out_left[svc], 1.0)
            self.backlog_d[svc] += done_p
            want_tokens = (self.backlog_d[svc] + self.in_decode[svc]) * out_tok
            done_tokens = min(want_tokens, cap_d * dt)
            util = done_tokens / (cap_d * dt) if cap_d > 0 else 0.0
            tbt_num = tbt_den = busy = 0.0
            batch_total = 0.0
            for p, f, c in caps:
                if c <= 0:
                    continue
                b, step = batch_for_rate(f, util * c / frac[p.id], ctx)
                tbt_num += util * c * step
                tbt_den += util * c
                busy += frac[p.id] * dt * (1 - math.exp(-b))
                batch_total += b * frac[p.id]
            done_req = done_tokens / out_tok
            self.out_left[svc] = out_tok
            # requests move backlog -> batch -> done; the batch holds Little's-law B
            pool = self.backlog_d[svc] + self.in_decode[svc]
            done_req = min(done_req, pool)
            pool -= done_req
            self.in_decode[svc] = min(pool, batch_total)
            self.backlog_d[svc] = pool - self.in_decode[svc]
            w.decode_tokens = done_tokens
            w.decode_capacity_tokens = cap_d * dt
            w.decode_demand_tokens = ld.requests * ld.output
            w.decode_busy_s = busy
            w.decode_ready_s = sum(frac[p.id] for p, _ in dec) * dt
            # ---- drops: backlog older than the timeout (waiting time = backlog / service rate)
            rate_p = can_p / dt if dt else 0.0
            max_wait = self.cfg.queue_timeout_s
            excess = self.backlog_p[svc] - rate_p * max_wait
            if excess > 0:
                self.backlog_p[svc] -= excess
                self.dropped[svc] += excess
                w.dropped["queue_timeout"] += round(excess)
            if cap_d <= 0 and self.backlog_d[svc] > 0 and not dec:
                self.dropped[svc] += self.backlog_d[svc]
                w.dropped["no_decode_pod"] += round(self.backlog_d[svc])
                self.backlog_d[svc] = 0.0
            self.completed[svc] += done_req
            w.completed = round(done_req)
            # ---- latency
            ttft_slo, tbt_slo = self.slo[svc]
            tbt = tbt_num / tbt_den if tbt_den else (
                caps[0][1].decode_step(1.0, ctx) if caps else float("inf"))
            kv = 0.0
            if pre and dec:
                kv = kv_transfer_time(model, ld.prompt, pre[0][0].gpus, pre[0][0].gpu_type, dec[0][0].gpus,
                                      dec[0][0].gpu_type, True)
            n_pre = sum(1 for p, _ in pre if frac[p.id] > 0)
            hit = max(ld.prompt - missed, 0.0)
            lengths = missed * ld.spread
            one = (np.array([pre[0][1].prefill_time(x, x * (hit + x / 2)) for x in lengths]) if pre
                   else np.full(lengths.size, np.inf))
            mu = (pre_tps / n_pre / missed) if n_pre else 0.0
            lam = ld.requests / dt
            wait = (self.backlog_p[svc] / rate_p if rate_p > 0 else float("inf"))
            wait += self.backlog_d[svc] * out_tok / cap_d if cap_d > 0 else 0.0
            base = one + kv + wait
            ttft_q = _ttft_quantiles(n_pre, lam, mu, base)
            w.ttft_stats = {k: v * 1000 for k, v in ttft_q.items()}
            w.tbt_stats = {k: tbt * 1000 for k in ("mean", "p50", "p90", "p99")}
            ok_f = _ttft_attainment(n_pre, lam, mu, base, ttft_slo)
            ok_b = 1.0 if tbt <= tbt_slo else 0.0
            w.judged = done_req
            w.ok_ttft = done_req * ok_f
            w.ok_tbt = done_req * ok_b
            w.ok_both = done_req * ok_f * ok_b
            w.queue_prefill = round(self.backlog_p[svc])
            w.queue_decode = round(self.backlog_d[svc])
            w.running = round(self.in_decode[svc])
            _count_pods(w, [p for p, _ in pre + dec], t0, t1)
            out[svc] = w
        return out

    def in_flight(self, service: str) -> float:
        """Requests still waiting or decoding."""
        return self.backlog_p[service] + self.backlog_d[service] + self.in_decode[service]

    def finish(self, windows: dict[str, Window]) -> None:
        """Count what is still in flight as dropped ``unfinished_at_end`` (into ``windows``)."""
        for svc in self.models:
            left = self.in_flight(svc)
            self.dropped[svc] += left
            windows[svc].dropped["unfinished_at_end"] += round(left)
            self.backlog_p[svc] = self.backlog_d[svc] = self.in_decode[svc] = 0.0


def _live_share(p: Pod, t0: float, t1: float) -> float:
    start = max(t0, p.ready_at)
    end = min(t1, p.removed_at) if p.removed_at is not None else t1
    return max(0.0, end - start) / (t1 - t0)


def _count_pods(w: Window, pods: list[Pod], t0: float, t1: float) -> None:
    for p in pods:
        w.gpu_seconds += p.gpu_seconds(t0, t1)
        if p.removed_at is not None and p.removed_at < t1:
            continue
        ready = p.ready_at <= t1
        w.draining += p.draining
        if p.role == "prefill":
            w.ready_prefill += ready and not p.draining
            w.unready_prefill += not ready
        else:
            w.ready_decode += ready and not p.draining
            w.unready_decode += not ready


def _tail(c: int, lam: float, mu: float, base: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(TTFT > x) for each ``x``, over the prompt-length points: ``base_k`` plus the M/M/c wait."""
    xs = np.asarray(x, dtype=float)[..., None]
    a = lam / mu
    if a >= c:
        out: np.ndarray = (base > xs).mean(axis=-1)
        return out
    pw, gap = erlang_c(c, a), c * mu - lam
    out = np.where(base > xs, 1.0, pw * np.exp(-gap * np.maximum(xs - base, 0.0))).mean(axis=-1)
    return out


def _quantile(c: int, lam: float, mu: float, base: np.ndarray, q: float) -> float:
    """Exact ``q``-quantile of TTFT = base_k (equally likely) + the M/M/c wait.

    Between two sorted bases the tail is ``A_j + B_j·e^(−gap·x)`` (points not yet reached count 1,
    the others their exponential wait), so each segment is solved in closed form.
    """
    b = np.sort(base)
    k = b.size
    target = 1 - q
    a = lam / mu
    pw = erlang_c(c, a) if a < c else 1.0
    if a >= c or pw <= 0:  # no steady state (the wait is the backlog in base), or no wait at all
        return float(b[max(k - int(target * k + 1e-12) - 1, 0)])
    gap = c * mu - lam
    log_b = np.log(pw / k) + np.logaddexp.accumulate(gap * b)  # ln B_j
    for j in range(k):
        a_j = (k - j - 1) / k
        if a_j + math.exp(log_b[j] - gap * b[j]) <= target:
            return float(b[j])  # the tail falls below target at the jump onto this point
        if target > a_j:
            x = (log_b[j] - math.log(target - a_j)) / gap
            if j == k - 1 or x < b[j + 1]:
                return float(x)
    return float(b[-1])


def _ttft_quantiles(c: int, lam: float, mu: float, base: np.ndarray) -> dict[str, float]:
    if c == 0 or mu <= 0 or not np.isfinite(base).all():
        return dict.fromkeys(("mean", "p50", "p90", "p99"), float("inf"))
    a = lam / mu
    wait = erlang_c(c, a) / (c * mu - lam) if a < c else 0.0
    out = {"mean": float(base.mean()) + wait}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        out[name] = _quantile(c, lam, mu, base, q)
    return out


def _ttft_attainment(c: int, lam: float, mu: float, base: np.ndarray, slo: float) -> float:
    if c == 0 or mu <= 0:
        return 0.0
    return float(1 - _tail(c, lam, mu, base, np.array(slo)))
