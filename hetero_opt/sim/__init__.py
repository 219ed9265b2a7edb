"""What-if: a closed-loop serving simulator (roofline performance model, request and fluid modes).

``simulate(trace, config, policy, instance, mode)`` runs requests of a trace through simulated
prefill and decode pools with the autoscaler and placement in the loop; see ``docs/simulator.md``.
With ``checkpoint=Checkpoint(path)`` an interrupted run resumes from its saved state.
"""

from hetero_opt.sim.calibration import calibration_errors
from hetero_opt.sim.checkpoint import Checkpoint, CheckpointError, SignalStop, SimInterrupted
from hetero_opt.sim.config import SimConfig, SimService, SimSLO, load_sim_config
from hetero_opt.sim.loop import SimRun, simulate
from hetero_opt.sim.perf import PodPerf, kv_transfer_time, pod_perf
from hetero_opt.sim.prom_export import PromExporter
from hetero_opt.sim.trace import RateTrace, RequestTrace, load_trace, scale_rates, scale_trace

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "PodPerf",
    "PromExporter",
    "RateTrace",
    "RequestTrace",
    "SignalStop",
    "SimConfig",
    "SimInterrupted",
    "SimRun",
    "SimSLO",
    "SimService",
    "calibration_errors",
    "kv_transfer_time",
    "load_sim_config",
    "load_trace",
    "pod_perf",
    "scale_rates",
    "scale_trace",
    "simulate",
]
