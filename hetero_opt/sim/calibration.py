"""Reproduce the calibration points with the roofline: predicted tokens/s per pod and relative error."""

from __future__ import annotations

from hetero_opt.sim.perf import pod_perf
from hetero_opt.sim.perfdata import CalibrationPoint, calibration_set


def predict(point: CalibrationPoint) -> float:
    """The roofline's tokens/s per pod under the point's conditions."""
    perf = pod_perf(point.model, point.gpu, point.role, point.gpus_per_pod, point.ep_group_pods)
    if point.role == "prefill":
        return perf.prefill_tps(point.prompt_tokens)
    batch = point.batch or 1.0
    return batch / perf.decode_step(batch, batch * point.prompt_tokens)


def calibration_errors() -> list[tuple[CalibrationPoint, float, float]]:
    """Per point: the point, the prediction and ``prediction / measured - 1``."""
    out = []
    for p in calibration_set().points:
        pred = predict(p)
        out.append((p, pred, pred / p.measured_tps_per_pod - 1))
    return out
