"""Request-level discrete-event simulation of P/D-disaggregated serving (one heap of events).

Per service: one FIFO prefill queue that idle prefill pods pull batches from (up to the token
budget), the KV transfer of each prefilled request to a decode pod chosen by the power of two
choices (time by link: inside one S1 or across), and continuous batching on the decode pod. A
decode pod advances in *steps*: between two events its batch is fixed, so its step time is
constant and every sequence gains one token per step; a sequence finishes when the pod's step
count reaches its join step plus its output length. Events are therefore per request and per
batch change, never per token. Pods start after a start-up delay and drain before removal.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hetero_opt.sim.config import SimConfig
from hetero_opt.sim.perf import PodPerf, kv_transfer_time, pod_perf
from hetero_opt.sim.pods import Pod
from hetero_opt.sim.trace import RequestTrace
from hetero_opt.sim.window import Window

PREFILL_DONE, KV_DONE, DECODE_NEXT, POD_READY = 0, 1, 2, 3
#: The engine's copies of the trace's requests (set by :meth:`RequestEngine.attach`, not pickled).
_INPUTS = frozenset({"arrival", "inp", "out", "hit", "svc_of"})
STATUS_PENDING, STATUS_DONE, STATUS_DROPPED = 0, 1, 2


@dataclass(slots=True)
class _PrefillPod:
    pod: Pod
    perf: PodPerf
    batch: list[int] = field(default_factory=list)
    busy_since: float = -1.0


@dataclass(slots=True)
class _DecodePod:
    pod: Pod
    perf: PodPerf
    steps: float = 0.0
    last_t: float = 0.0
    tau: float = 0.0
    batch: int = 0
    ctx0: float = 0.0  # Σ (context at join − steps at join); context now = ctx0 + batch·steps
    kv_used: float = 0.0
    next_t: float = float("inf")  # earliest completion event in the heap for this pod
    finish: list[tuple[float, int]] = field(default_factory=list)
    pending: deque[int] = field(default_factory=deque)
    tokens: float = 0.0
    busy: float = 0.0


@dataclass(slots=True)
class _Service:
    name: str
    model: str
    ttft_slo: float
    tbt_slo: float
    max_kv_tokens: float
    queue: deque[int] = field(default_factory=deque)
    idle: list[int] = field(default_factory=list)
    decode_ready: list[int] = field(default_factory=list)
    decode_wait: deque[tuple[int, int]] = field(default_factory=deque)  # (request, prefill pod)
    window: Window = field(default_factory=lambda: Window(0.0, 0.0))
    ttft: list[float] = field(default_factory=list)
    tbt: list[float] = field(default_factory=list)


class RequestEngine:
    """The event loop; :meth:`run_until` advances it, :meth:`collect` closes a control window.

    Slotted, as are its pods and windows: a checkpoint pickles them, and reading an instance's
    ``__dict__`` (which pickling does) moves CPython 3.11 attribute reads off their fast path for the
    rest of the run (measured: one pickle at cycle 1 slowed the Azure x10 run by 25 %).
    """

    __slots__ = ("_uniform", "arrival", "cfg", "decode", "events", "finish_t", "first_t", "hit", "inp", "join_t",
                 "next_arrival", "now", "out", "prefill", "prefill_t", "reason", "rng", "seq", "services", "status",
                 "svc_index", "svc_of")

    def __init__(self, trace: RequestTrace, cached: np.ndarray, cfg: SimConfig, service_of: np.ndarray,
                 max_kv_tokens: dict[str, float]) -> None:
        self.cfg = cfg
        self.attach(trace, cached, service_of)
        n = len(self.arrival)
        self.first_t = [float("nan")] * n
        self.prefill_t = [float("nan")] * n
        self.finish_t = [float("nan")] * n
        self.join_t = [float("nan")] * n
        self.status = [STATUS_PENDING] * n
        self.reason = [""] * n
        self.services = [
            _Service(s.service, s.model, s.slo.ttft_ms / 1000, s.slo.tbt_ms / 1000, max_kv_tokens[s.service])
            for s in cfg.services
        ]
        self.svc_index = {s.name: i for i, s in enumerate(self.services)}
        self.prefill: dict[int, _PrefillPod] = {}
        self.decode: dict[int, _DecodePod] = {}
        self.events: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.next_arrival = 0
        self.now = 0.0
        self.rng = np.random.default_rng(cfg.seed)
        self._uniform: list[float] = []

    def attach(self, trace: RequestTrace, cached: np.ndarray, service_of: np.ndarray) -> None:
        """Read the requests: arrival, prompt, output and cached tokens, service (never changed after)."""
        self.arrival = trace.arrival_s.tolist()
        self.inp = trace.input_tokens.tolist()
        self.out = trace.output_tokens.tolist()
        self.hit = cached.tolist()
        self.svc_of = service_of.tolist()

    def __getstate__(self) -> dict[str, object]:
        """Everything but the requests' inputs, which :meth:`attach` gives back after loading (a checkpoint
        is a third smaller and faster to write without them)."""
        return {k: getattr(self, k) for k in self.__slots__ if k not in _INPUTS}

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    # -------------------------------------------------------------------- pods

    def add_pod(self, pod: Pod) -> None:
        """A placed pod; it serves from ``pod.ready_at``."""
        si = self.svc_index[pod.service]
        perf = pod_perf(self.services[si].model, pod.gpu_type, pod.role, pod.gpus)
        if pod.role == "prefill":
            self.prefill[pod.id] = _PrefillPod(pod, perf)
        else:
            self.decode[pod.id] = _DecodePod(pod, perf, last_t=pod.ready_at)
        self._push(pod.ready_at, POD_READY, pod.id, 0)

    def drain_pod(self, pod: Pod, now: float) -> None:
        """Stop sending work to ``pod``; it is removed once its requests are done."""
        pod.draining = True
        si = self.svc_index[pod.service]
        svc = self.services[si]
        if pod.ready_at > now:
            pod.removed_at = now
            return
        if pod.role == "prefill":
            pp = self.prefill[pod.id]
            if not pp.batch:
                if pod.id in svc.idle:
                    svc.idle.remove(pod.id)
                pod.removed_at = now
        else:
            if pod.id in svc.decode_ready:
                svc.decode_ready.remove(pod.id)
            dp = self.decode[pod.id]
            if dp.batch == 0 and not dp.pending:
                pod.removed_at = now

    # -------------------------------------------------------------------- loop

    def _push(self, t: float, kind: int, a: int, b: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, a, b))

    def run_until(self, t_end: float) -> None:
        """Process every arrival and event before ``t_end``."""
        events, arrival = self.events, self.arrival
        n = len(arrival)
        while True:
            ta = arrival[self.next_arrival] if self.next_arrival < n else float("inf")
            te = events[0][0] if events else float("inf")
            if min(ta, te) >= t_end:
                break
            if ta <= te:
                self.now = ta
                self._arrive(self.next_arrival)
                self.next_arrival += 1
                continue
            t, _, kind, a, b = heapq.heappop(events)
            self.now = t
            if kind == DECODE_NEXT:
                self._decode_next(a, b, t)
            elif kind == KV_DONE:
                self._kv_done(a, b, t)
            elif kind == PREFILL_DONE:
                self._prefill_done(a, t)
            else:
                self._ready(a, t)
        self.now = t_end

    def idle(self) -> bool:
        """No arrival left and no event pending."""
        return self.next_arrival >= len(self.arrival) and not self.events

    # -------------------------------------------------------------------- requests

    def _drop(self, r: int, reason: str) -> None:
        self.status[r] = STATUS_DROPPED
        self.reason[r] = reason
        self.services[self.svc_of[r]].window.dropped[reason] += 1

    def _arrive(self, r: int) -> None:
        svc = self.services[self.svc_of[r]]
        w = svc.window
        w.arrivals += 1
        w.prompt_tokens += self.inp[r]
        w.prefill_demand_tokens += self.inp[r] - self.hit[r]
        w.decode_demand_tokens += self.out[r]
        if self.inp[r] + self.out[r] > svc.max_kv_tokens:
            self._drop(r, "too_long_for_kv")
            return
        svc.queue.append(r)
        if svc.idle:
            self._start_batch(svc, svc.idle.pop(), self.now)

    def _start_batch(self, svc: _Service, pid: int, t: float) -> None:
        pp = self.prefill[pid]
        budget = pp.perf.token_budget
        tokens = 0.0
        pairs = 0.0
        q = svc.queue
        batch = pp.batch
        while q:
            r = q[0]
            new = self.inp[r] - self.hit[r]
            if batch and tokens + new > budget:
                break
            q.popleft()
            self.prefill_t[r] = t
            batch.append(r)
            tokens += new
            pairs += new * (self.hit[r] + new / 2)
        dt = pp.perf.prefill_time(tokens, pairs)
        svc.window.prefill_tokens += tokens
        svc.window.prefill_busy_s += dt
        pp.busy_since = t
        self._push(t + dt, PREFILL_DONE, pid, 0)

    def _prefill_done(self, pid: int, t: float) -> None:
        pp = self.prefill[pid]
        svc = self.services[self.svc_index[pp.pod.service]]
        for r in pp.batch:
            self._send_to_decode(svc, r, pp, t)
        pp.batch = []
        if pp.pod.draining:
            pp.pod.removed_at = t
        elif svc.queue:
            self._start_batch(svc, pid, t)
        else:
            svc.idle.append(pid)

    def _pick_decode(self, svc: _Service) -> int | None:
        ready = svc.decode_ready
        if not ready:
            return None
        n = len(ready)
        if n == 1:
            return ready[0]
        if len(self._uniform) < 2:  # draw in blocks: one numpy call per 65,536 choices
            self._uniform = self.rng.random(65_536).tolist()
        a = self.decode[ready[int(self._uniform.pop() * n)]]
        b = self.decode[ready[int(self._uniform.pop() * n)]]
        la, lb = a.batch + len(a.pending), b.batch + len(b.pending)
        return a.pod.id if (la, a.pod.id) <= (lb, b.pod.id) else b.pod.id

    def _send_to_decode(self, svc: _Service, r: int, pp: _PrefillPod, t: float) -> None:
        did = self._pick_decode(svc)
        if did is None:
            svc.decode_wait.append((r, pp.pod.id))
            self.join_t[r] = t  # time it left prefill, to time out later
            return
        dp = self.decode[did]
        dt = kv_transfer_time(svc.model, self.inp[r], pp.pod.gpus, pp.pod.gpu_type, dp.pod.gpus, dp.pod.gpu_type,
                              pp.pod.s1 == dp.pod.s1)
        self._push(t + dt, KV_DONE, r, did)

    def _kv_done(self, r: int, did: int, t: float) -> None:
        dp = self.decode[did]
        if self._fits(dp, r):
            self._advance(dp, t)
            self._join(dp, r, t)
            self._retime(dp)
        else:
            dp.pending.append(r)

    def _fits(self, dp: _DecodePod, r: int) -> bool:
        return dp.batch < dp.perf.max_batch and dp.kv_used + self.inp[r] + self.out[r] <= dp.perf.kv_capacity_tokens

    def _advance(self, dp: _DecodePod, t: float) -> None:
        if dp.batch > 0 and t > dp.last_t:
            d = (t - dp.last_t) / dp.tau
            dp.steps += d
            dp.tokens += dp.batch * d
            dp.busy += t - dp.last_t
        dp.last_t = max(dp.last_t, t)

    def _join(self, dp: _DecodePod, r: int, t: float) -> None:
        svc = self.services[self.svc_of[r]]
        self.first_t[r] = t
        ttft = t - self.arrival[r]
        svc.ttft.append(ttft)
        self.join_t[r] = t
        rest = self.out[r] - 1  # the first token came with prefill
        if rest <= 0:
            self._complete(svc, r, t, 0.0)
            return
        dp.batch += 1
        dp.ctx0 += self.inp[r] - dp.steps
        dp.kv_used += self.inp[r] + self.out[r]
        heapq.heappush(dp.finish, (dp.steps + rest, r))

    def _complete(self, svc: _Service, r: int, t: float, tbt: float) -> None:
        self.status[r] = STATUS_DONE
        self.finish_t[r] = t
        w = svc.window
        w.completed += 1
        ttft = self.first_t[r] - self.arrival[r]
        svc.tbt.append(tbt)
        ok_f, ok_b = ttft <= svc.ttft_slo, tbt <= svc.tbt_slo
        w.judged += 1
        w.ok_ttft += ok_f
        w.ok_tbt += ok_b
        w.ok_both += ok_f and ok_b

    def _retime(self, dp: _DecodePod) -> None:
        """New step time; schedule the next completion unless an event at or before it is pending.

        An event that fires early is harmless (nothing finishes, it re-schedules), so a join, which
        only delays completions, pushes nothing: about one heap event per request fewer.
        """
        if dp.batch == 0:
            dp.tau = 0.0
            return
        dp.tau = dp.perf.decode_step(dp.batch, dp.ctx0 + dp.batch * dp.steps)
        t_next = dp.last_t + max(dp.finish[0][0] - dp.steps, 0.0) * dp.tau
        if t_next < dp.next_t:
            dp.next_t = t_next
            self._push(t_next, DECODE_NEXT, dp.pod.id, 0)

    def _decode_next(self, did: int, _tag: int, t: float) -> None:
        dp = self.decode[did]
        if t < dp.next_t:  # superseded by an earlier event that has already run
            return
        dp.next_t = float("inf")
        self._advance(dp, t)
        svc = self.services[self.svc_index[dp.pod.service]]
        fin = dp.finish
        while fin and fin[0][0] <= dp.steps + 1e-6:
            _, r = heapq.heappop(fin)
            dp.batch -= 1
            dp.ctx0 -= self.inp[r] - (dp.steps - (self.out[r] - 1))
            dp.kv_used -= self.inp[r] + self.out[r]
            self._complete(svc, r, t, (t - self.join_t[r]) / (self.out[r] - 1))
        while dp.pending and self._fits(dp, dp.pending[0]):
            self._join(dp, dp.pending.popleft(), t)
        if dp.batch == 0:
            dp.ctx0 = 0.0
        self._retime(dp)
        if dp.pod.draining and dp.batch == 0 and not dp.pending:
            dp.pod.removed_at = t

    def _ready(self, pid: int, t: float) -> None:
        if pid in self.prefill:
            pp = self.prefill[pid]
            if pp.pod.removed_at is not None:
                return
            svc = self.services[self.svc_index[pp.pod.service]]
            if svc.queue:
                self._start_batch(svc, pid, t)
            else:
                svc.idle.append(pid)
            return
        dp = self.decode[pid]
        if dp.pod.removed_at is not None:
            return
        svc = self.services[self.svc_index[dp.pod.service]]
        svc.decode_ready.append(pid)
        dp.last_t = t
        while svc.decode_wait:
            r, src = svc.decode_wait.popleft()
            self._send_to_decode(svc, r, self.prefill[src], t)

    # -------------------------------------------------------------------- windows

    def collect(self, t0: float, t1: float, pods: list[Pod]) -> dict[str, Window]:
        """Close the window ``[t0, t1)``: per service counters, queues, pods, latencies."""
        for dp in self.decode.values():
            if dp.pod.removed_at is None:
                self._advance(dp, t1)
        out: dict[str, Window] = {}
        for svc in self.services:
            w = svc.window
            w.t0, w.t1 = t0, t1
            # drop requests that waited too long for prefill or for any decode pod
            limit = t1 - self.cfg.queue_timeout_s
            while svc.queue and self.arrival[svc.queue[0]] < limit:
                self._drop(svc.queue.popleft(), "queue_timeout")
            while svc.decode_wait and self.join_t[svc.decode_wait[0][0]] < limit:
                self._drop(svc.decode_wait.popleft()[0], "no_decode_pod")
            w.queue_prefill = len(svc.queue)
            w.ttft = np.asarray(svc.ttft)
            w.tbt = np.asarray(svc.tbt)
            svc.ttft, svc.tbt = [], []
            out[svc.name] = w
            svc.window = Window(t1, t1)
        for p in pods:
            w = out[p.service]
            w.gpu_seconds += p.gpu_seconds(t0, t1)
            if p.removed_at is not None and p.removed_at < t1:
                continue
            if p.draining:
                w.draining += 1
            ready = p.ready_at <= t1
            ready_s = max(0.0, t1 - max(t0, p.ready_at))
            if p.role == "prefill":
                w.ready_prefill += ready and not p.draining
                w.unready_prefill += not ready
                w.prefill_ready_s += ready_s
            else:
                w.ready_decode += ready and not p.draining
                w.unready_decode += not ready
                w.decode_ready_s += ready_s
                dp = self.decode[p.id]
                w.decode_tokens += dp.tokens
                w.decode_busy_s += dp.busy
                w.running += dp.batch
                w.queue_decode += len(dp.pending)
                dp.tokens = dp.busy = 0.0
        for p in pods:  # pods removed inside the window still generated tokens in it
            if p.role == "decode" and p.removed_at is not None and t0 <= p.removed_at < t1:
                dp = self.decode[p.id]
                out[p.service].decode_tokens += dp.tokens
                out[p.service].decode_busy_s += dp.busy
                dp.tokens = dp.busy = 0.0
        for svc in self.services:
            out[svc.name].queue_decode += len(svc.decode_wait)
        return out

    def finish(self, t: float) -> None:
        """Count every request still in the system as dropped ``unfinished_at_end``."""
        for r, st in enumerate(self.status):
            if st == STATUS_PENDING:
                self._drop(r, "unfinished_at_end")
