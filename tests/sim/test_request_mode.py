"""Request mode: conservation, Little's law, determinism, drops with reasons."""

from __future__ import annotations

import numpy as np
from sim_helpers import conv, example, static

from hetero_opt.sim.loop import simulate


def test_conservation_and_determinism() -> None:
    cfg, policy, inst = example()
    trace = conv(900)
    a = simulate(trace, cfg, policy, inst, "request")
    b = simulate(trace, cfg, policy, inst, "request")
    assert a.arrivals == trace.num_requests
    assert a.arrivals == a.completed + sum(a.dropped.values())
    assert a.requests is not None
    assert b.requests is not None
    assert a.requests.equals(b.requests)
    assert a.cycles.equals(b.cycles)
    # every request is completed or dropped with a reason
    req = a.requests
    assert set(req["status"]) <= {"completed", "dropped"}
    assert (req.loc[req["status"] == "dropped", "drop_reason"] != "").all()


def test_drops_are_counted_with_reasons() -> None:
    # one unit (4 prefill pods, ~8k tok/s) against 3 copies of the trace (~19k prompt tok/s): queues time out
    cfg, _, inst = example()
    from hetero_opt.sim.trace import scale_trace

    trace = scale_trace(conv(600), 3, 0)
    run = simulate(trace, cfg.replace(queue_timeout_s=30.0), static(1), inst, "request")
    assert run.dropped["queue_timeout"] > 0
    assert run.arrivals == run.completed + sum(run.dropped.values())
    assert run.cycles[[c for c in run.cycles if c.startswith("dropped_")]].sum().sum() == sum(run.dropped.values())


def test_littles_law_on_decode_batches() -> None:
    # L = λ W on the decode pool: the batch size sampled every 10 s against completions/s x decode time
    cfg, _, inst = example()
    run = simulate(conv(1800), cfg.replace(control_period_s=10.0), static(2), inst, "request")
    c, r = run.cycles, run.requests
    assert r is not None
    done = r[r["status"] == "completed"]
    steady = c[(c["time"] > 300) & (c["time"] <= 1800)]
    in_window = done[(done["arrival_s"] > 300) & (done["arrival_s"] <= 1800)]
    lam = len(in_window) / 1500
    decode_time = (in_window["e2e_s"] - in_window["ttft_s"]).mean()
    assert np.isclose(steady["running"].mean(), lam * decode_time, rtol=0.1)
