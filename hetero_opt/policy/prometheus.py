"""Turn Prometheus samples of vLLM / SGLang servers into :class:`ServiceMetrics`.

Input: samples ``(metric name, labels, timestamp s, value)`` — from a range query or from
scraping at several times (:func:`parse_exposition`, prometheus-client's parsers). Each pod is one
label set (``le`` excluded). Pods carry a service label (default ``service``) and a role label
(default ``role``: ``prefill`` / ``decode``; a pod without role counts as decode).

Metric names read (see ``docs/policy.md``):

- decode TPS: counters ``vllm:generation_tokens_total``, ``sglang:generation_tokens_total``
  (rate over the window, resets handled), else the SGLang gauge ``sglang:gen_throughput``
  (tokens/s, latest value); summed over decode pods.
- prefill TPS (the paper's *cache-missed* prompt tokens/s): counters ``vllm:prompt_tokens_total``,
  ``sglang:prompt_tokens_total`` over prefill pods, less per pod the rate of the vLLM counter
  ``vllm:prefix_cache_hits_total`` (tokens served from the prefix cache) or, for SGLang, times
  ``1 − sglang:cache_hit_rate`` (latest gauge); a pod exporting neither counts every prompt token.
- TTFT: histogram ``vllm:time_to_first_token_seconds`` / ``sglang:time_to_first_token_seconds``.
- TBT: histograms ``vllm:inter_token_latency_seconds``, ``vllm:time_per_output_token_seconds``,
  ``sglang:inter_token_latency_seconds``, ``sglang:time_per_output_token_seconds`` (first found
  per pod). Histogram means are ``Δ_sum / Δ_count`` over the window, pooled over pods.
- GPU utilisation: DCGM gauge ``DCGM_FI_DEV_GPU_UTIL`` (%), mean per role.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import Field

from hetero_opt.errors import InputError
from hetero_opt.policy._base import Frozen
from hetero_opt.policy.engine import ServiceMetrics

GEN_COUNTERS = ("vllm:generation_tokens_total", "sglang:generation_tokens_total")
GEN_GAUGES = ("sglang:gen_throughput",)
PROMPT_COUNTERS = ("vllm:prompt_tokens_total", "sglang:prompt_tokens_total")
CACHE_HIT_COUNTERS = ("vllm:prefix_cache_hits_total",)
CACHE_HIT_RATE_GAUGES = ("sglang:cache_hit_rate",)
TTFT_HISTOGRAMS = ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds")
TBT_HISTOGRAMS = (
    "vllm:inter_token_latency_seconds",
    "vllm:time_per_output_token_seconds",
    "sglang:inter_token_latency_seconds",
    "sglang:time_per_output_token_seconds",
)
GPU_UTIL_GAUGES = ("DCGM_FI_DEV_GPU_UTIL",)

class PromSample(Frozen):
    """One sample of one series."""

    name: str = Field(min_length=1, description="Metric name, e.g. vllm:generation_tokens_total.")
    labels: dict[str, str] = Field(default_factory=dict, description="Label set.")
    timestamp: float = Field(description="Sample time (s).")
    value: float = Field(description="Sample value.")


class MetricsMatchWarning(UserWarning):
    """Samples were given but none could be attributed to a service."""


def parse_exposition(text: str, timestamp: float) -> list[PromSample]:
    """Parse a scrape taken at ``timestamp`` (s) with prometheus-client's parsers.

    OpenMetrics (text ending in ``# EOF``) or the Prometheus text format; exemplars never reach
    values or labels; an explicit per-sample timestamp overrides ``timestamp``. A sample whose
    value is NaN or infinite (a summary quantile with no observations, a gauge not yet set) is
    no value and is left out.
    """
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    openmetrics = text.rstrip().endswith("# EOF")
    try:
        families = list(
            parse_openmetrics(text)  # type: ignore[no-untyped-call]
            if openmetrics
            else parse_text(_strip_exemplars(text))
        )
    except ValueError as exc:
        raise InputError(f"Exposition line {_bad_line(text, openmetrics)}: {' '.join(str(exc).split())}") from None
    return [
        PromSample(
            name=s.name,
            labels=dict(s.labels),
            timestamp=float(s.timestamp) if s.timestamp is not None else timestamp,
            value=float(s.value),
        )
        for fam in families
        for s in fam.samples
        if math.isfinite(float(s.value)) and (s.timestamp is None or math.isfinite(float(s.timestamp)))
    ]


def _strip_exemplars(text: str) -> str:
    """Cut an OpenMetrics exemplar (`` # {...} v``) off each sample line of the Prometheus text format."""
    return "\n".join(_sample_part(line) for line in text.splitlines())


def _sample_part(line: str) -> str:
    if line.lstrip().startswith("#"):
        return line
    quoted = escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i].rstrip()
    return line


def _bad_line(text: str, openmetrics: bool) -> int:
    """Number of the first line the text-format parser rejects on its own (1 when not found)."""
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    if openmetrics:
        return 1
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            list(parse_text(_sample_part(line)))
        except ValueError:
            return lineno
    return 1


def counter_increase(points: Sequence[tuple[float, float]]) -> float:
    """Increase of a counter over time-sorted points; a drop is a reset (restart from 0)."""
    total = 0.0
    for (_, prev), (_, cur) in itertools.pairwise(points):
        total += cur - prev if cur >= prev else cur
    return total


def counter_rate(points: Sequence[tuple[float, float]]) -> float | None:
    """Per-second rate of a counter over its points; None with fewer than two."""
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return counter_increase(points) / (points[-1][0] - points[0][0])


PodKey = tuple[tuple[str, str], ...]


def _pod_key(labels: dict[str, str]) -> PodKey:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "le"))


def service_metrics_from_samples(
    samples: Iterable[PromSample],
    now: float,
    window_s: float = 60.0,
    *,
    service_label: str = "service",
    role_label: str = "role",
) -> dict[str, ServiceMetrics]:
    """Aggregate samples in ``[now - window_s, now]`` into one ServiceMetrics per service."""
    # series[service][role][pod][name] -> [(t, v)]
    series: dict[str, dict[str, dict[PodKey, dict[str, list[tuple[float, float]]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )
    seen = 0
    for s in samples:
        if not now - window_s <= s.timestamp <= now or s.name.endswith("_bucket"):
            continue
        seen += 1
        svc = s.labels.get(service_label)
        if svc is None:
            continue
        role = s.labels.get(role_label, "decode")
        series[svc][role][_pod_key(s.labels)][s.name].append((s.timestamp, s.value))
    if seen and not series:
        warnings.warn(
            f"{seen} samples in the window but none has the label '{service_label}'; no service matched "
            "(map metric labels to services with hetero_opt.adapters.prometheus.LabelMap)",
            MetricsMatchWarning,
            stacklevel=2,
        )
    out: dict[str, ServiceMetrics] = {}
    for svc in sorted(series):
        roles = series[svc]
        for pods in roles.values():
            for by_name in pods.values():
                for pts in by_name.values():
                    pts.sort()
        decode = roles.get("decode", {})
        prefill = roles.get("prefill", {})
        everyone = [by_name for pods in roles.values() for by_name in pods.values()]
        out[svc] = ServiceMetrics(
            decode_tps=_tokens_per_s(decode.values(), GEN_COUNTERS, GEN_GAUGES),
            prefill_tps=_missed_prompt_tps(prefill.values()),
            ttft_ms=_histogram_mean_ms(everyone, TTFT_HISTOGRAMS),
            tbt_ms=_histogram_mean_ms(everyone, TBT_HISTOGRAMS),
            prefill_gpu_util=_gauge_mean(prefill.values(), GPU_UTIL_GAUGES),
            decode_gpu_util=_gauge_mean(decode.values(), GPU_UTIL_GAUGES),
        )
    return out


def _tokens_per_s(
    pods: Iterable[dict[str, list[tuple[float, float]]]],
    counters: Sequence[str],
    gauges: Sequence[str],
) -> float | None:
    total = 0.0
    found = False
    for by_name in pods:
        rate = next((r for n in counters if (r := counter_rate(by_name.get(n, []))) is not None), None)
        if rate is None:
            rate = next((by_name[n][-1][1] for n in gauges if by_name.get(n)), None)
        if rate is not None and math.isfinite(rate):
            total += rate
            found = True
    return total if found else None


def _missed_prompt_tps(pods: Iterable[dict[str, list[tuple[float, float]]]]) -> float | None:
    """Cache-missed prompt tokens/s summed over prefill pods (see the module docstring)."""
    total: float | None = None
    for by_name in pods:
        prompt = _tokens_per_s([by_name], PROMPT_COUNTERS, ())
        if prompt is None:
            continue
        hits = _tokens_per_s([by_name], CACHE_HIT_COUNTERS, ())
        rate = next((by_name[n][-1][1] for n in CACHE_HIT_RATE_GAUGES if by_name.get(n)), None)
        if hits is not None:
            prompt -= hits
        elif rate is not None and math.isfinite(rate):
            prompt *= 1 - min(1.0, max(0.0, rate))
        total = (total or 0.0) + max(0.0, prompt)
    return total


def _histogram_mean_ms(pods: Iterable[dict[str, list[tuple[float, float]]]], names: Sequence[str]) -> float | None:
    sum_inc = 0.0
    count_inc = 0.0
    for by_name in pods:
        for n in names:
            sums, counts = by_name.get(f"{n}_sum", []), by_name.get(f"{n}_count", [])
            if len(sums) >= 2 and len(counts) >= 2:
                sum_inc += counter_increase(sums)
                count_inc += counter_increase(counts)
                break
    if count_inc <= 0:
        return None
    return sum_inc / count_inc * 1000.0


def _gauge_mean(pods: Iterable[dict[str, list[tuple[float, float]]]], names: Sequence[str]) -> float | None:
    values = [by_name[n][-1][1] for by_name in pods for n in names if by_name.get(n)]
    return sum(values) / len(values) if values else None
