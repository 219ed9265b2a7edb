"""The roofline reproduces each published calibration point within ±15 %, and covers the GPU types."""

from __future__ import annotations

import pytest

from hetero_opt.errors import InputError
from hetero_opt.sim.calibration import calibration_errors, predict
from hetero_opt.sim.perf import kv_transfer_time, pod_perf
from hetero_opt.sim.perfdata import calibration_set, gpu_catalog, model_catalog

TOLERANCE = 0.15


@pytest.mark.parametrize("point", calibration_set().points, ids=lambda p: p.id)
def test_calibration_point_within_tolerance(point) -> None:  # type: ignore[no-untyped-def]
    pred = predict(point)
    assert abs(pred / point.measured_tps_per_pod - 1) <= TOLERANCE, (point.id, pred, point.measured_tps_per_pod)


def test_every_point_has_a_source_and_errors_listed() -> None:
    errs = calibration_errors()
    assert len(errs) == len(calibration_set().points) >= 5
    assert all(p.source.strip() for p, _, _ in errs)


def test_gpu_types_and_models_covered() -> None:
    assert {"H20", "L20", "A100", "H100", "H800", "V100M32"} <= set(gpu_catalog().gpus)
    assert {"llama3-70b", "deepseek-v3"} <= set(model_catalog().models)
    # the dense model runs on every type (TP8 where 4 GPUs cannot hold it)
    for gpu in gpu_catalog().gpus:
        assert pod_perf("llama3-70b", gpu, "decode", 8).kv_capacity_tokens > 0


def test_unknown_gpu_and_impossible_fit_are_input_errors() -> None:
    with pytest.raises(InputError, match="gpu_type='B200' has no performance data"):
        pod_perf("llama3-70b", "B200", "decode", 4)
    # 671B at 2 bytes (V100 has no FP8) over a 4-node EP group: 361 GB > 8 x 32 GB x 0.9
    with pytest.raises(InputError, match="does not fit on 8 x V100M32"):
        pod_perf("deepseek-v3", "V100M32", "prefill", 8)


def test_roofline_shapes() -> None:
    dec = pod_perf("llama3-70b", "H20", "decode", 4)
    # memory-bound: a step at batch 8 costs barely more than at batch 1, far less than 8x
    assert dec.decode_step(8, 8 * 1000) < 1.5 * dec.decode_step(1, 1000)
    # longer context, slower step (KV reads)
    assert dec.decode_step(32, 32 * 8000) > dec.decode_step(32, 32 * 1000)
    pre = pod_perf("llama3-70b", "H20", "prefill", 4)
    # compute-bound: twice the tokens, about twice the time
    assert pre.prefill_time(8000, 8000 * 2000) == pytest.approx(2 * pre.prefill_time(4000, 4000 * 1000), rel=0.2)
    # a cross-S1 KV transfer is slower than one inside the S1
    same = kv_transfer_time("llama3-70b", 2000, 4, "H20", 4, "H20", True)
    cross = kv_transfer_time("llama3-70b", 2000, 4, "H20", 4, "H20", False)
    assert cross > 2 * same
