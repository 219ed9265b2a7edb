"""Prometheus in: label maps from metric labels to services, and a PromQL ``query_range`` source.

vLLM and SGLang servers do not label their metrics with a service: a scrape carries
``model_name`` and, once Prometheus has relabelled it, ``namespace``/``pod``/``job``. A
:class:`LabelMap` says which label names the service and the role and how their values map;
:func:`service_metrics` applies it and warns when nothing matches. :class:`PromQLSource` asks a
Prometheus server for the samples of the last window (one ``query_range`` call) and builds the
:class:`~hetero_opt.policy.engine.ServiceMetrics` that ``Autoscaler.step`` takes.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping

from pydantic import Field

from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen
from hetero_opt.policy.engine import ServiceMetrics
from hetero_opt.policy.prometheus import (
    GEN_COUNTERS,
    GEN_GAUGES,
    GPU_UTIL_GAUGES,
    PROMPT_COUNTERS,
    TBT_HISTOGRAMS,
    TTFT_HISTOGRAMS,
    MetricsMatchWarning,
    PromSample,
    service_metrics_from_samples,
)

#: Every metric name the policy reads (histograms by their ``_sum`` and ``_count`` series).
METRIC_NAMES: tuple[str, ...] = (
    *GEN_COUNTERS,
    *GEN_GAUGES,
    *PROMPT_COUNTERS,
    *(f"{h}{suffix}" for h in (*TTFT_HISTOGRAMS, *TBT_HISTOGRAMS) for suffix in ("_sum", "_count")),
    *GPU_UTIL_GAUGES,
)
#: Names as stored when Prometheus scraped OpenMetrics from prometheus-client >= 0.22, which
#: writes ``vllm:x`` as ``vllm_x`` there -> the policy's name.
CANONICAL_NAMES: dict[str, str] = {n.replace(":", "_"): n for n in METRIC_NAMES if ":" in n}


class LabelMap(Frozen):
    """Which metric labels name the service and the role, and how their values map."""

    service_label: str = Field(default="service", min_length=1, description="Label naming the service.")
    services: dict[str, str] = Field(
        default_factory=dict, description="Label value -> service id; empty = the value is the service id."
    )
    role_label: str = Field(default="role", min_length=1, description="Label naming the role.")
    roles: dict[str, str] = Field(default_factory=dict, description="Label value -> role (prefill/decode).")
    default_role: str = Field(default="decode", description="Role of a sample without the role label.")


def relabel(samples: Iterable[PromSample], label_map: LabelMap) -> tuple[list[PromSample], int]:
    """Samples that map to a service, with canonical ``service`` and ``role`` labels; and how many did not."""
    out: list[PromSample] = []
    missed = 0
    for s in samples:
        value = s.labels.get(label_map.service_label)
        service = None if value is None else (label_map.services.get(value) if label_map.services else value)
        if service is None:
            missed += 1
            continue
        role_value = s.labels.get(label_map.role_label)
        role = label_map.default_role if role_value is None else label_map.roles.get(role_value, role_value)
        out.append(s.replace(labels={**s.labels, "service": service, "role": role}))
    return out, missed


def service_metrics(
    samples: Iterable[PromSample], now: float, window_s: float = 60.0, label_map: LabelMap | None = None
) -> dict[str, ServiceMetrics]:
    """One ServiceMetrics per mapped service from samples in ``[now - window_s, now]``.

    Warns (:class:`MetricsMatchWarning`) when samples were given but none maps to a service,
    naming the values the service label did carry.
    """
    lm = label_map or LabelMap()
    samples = list(samples)
    matched, missed = relabel(samples, lm)
    if samples and not matched:
        seen = Counter(s.labels.get(lm.service_label, "<absent>") for s in samples)
        shown = ", ".join(f"{v!r}" for v, _ in seen.most_common(5))
        warnings.warn(
            f"{missed} samples, none maps to a service: label '{lm.service_label}' holds {shown}",
            MetricsMatchWarning,
            stacklevel=2,
        )
        return {}
    return service_metrics_from_samples(matched, now, window_s, service_label="service", role_label="role")


#: Most cycles one ``series`` call returns (60-s cycles: 69 days).
MAX_CYCLES = 100_000


class PromQLSource:
    """Reads the policy's metrics from a Prometheus server's HTTP API (``/api/v1/query_range``).

    Parameters
    ----------
    base_url
        E.g. ``http://127.0.0.1:9090``.
    label_map
        How metric labels map to services and roles.
    window_s, step_s
        The window read before ``now`` and the query resolution (s).
    selector
        Extra PromQL label matchers, e.g. ``namespace="llm"``.
    timeout_s
        HTTP timeout per request (s).
    """

    def __init__(
        self,
        base_url: str,
        label_map: LabelMap | None = None,
        *,
        window_s: float = 60.0,
        step_s: float = 5.0,
        selector: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        if not (0 < window_s < math.inf and 0 < step_s < math.inf):
            raise InputError(f"PromQLSource: window_s={window_s} and step_s={step_s} must be positive and finite")
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise InputError(f"PromQLSource: url={base_url!r} must be an http:// or https:// URL with a host")
        self.base_url = base_url.rstrip("/")
        self.label_map = label_map or LabelMap()
        self.window_s, self.step_s, self.timeout_s = window_s, step_s, timeout_s
        self.selector = selector

    def query(self) -> str:
        """The one PromQL selector for every metric name the policy reads (both spellings)."""
        names = "|".join((*METRIC_NAMES, *CANONICAL_NAMES))
        extra = f",{self.selector}" if self.selector else ""
        return f'{{__name__=~"{names}"{extra}}}'

    def query_range(self, query: str, start: float, end: float, step: float) -> list[PromSample]:
        """Run ``query_range`` and return its matrix as samples."""
        params = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
        url = f"{self.base_url}/api/v1/query_range?{params}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise InputError(f"Prometheus '{self.base_url}': HTTP {exc.code}: {_error_text(exc)}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise InputError(f"Prometheus '{self.base_url}': cannot query: {getattr(exc, 'reason', exc)}") from None
        except json.JSONDecodeError:
            raise InputError(f"Prometheus '{self.base_url}': answer is not JSON") from None
        return parse_matrix(body, self.base_url)

    def samples(self, now: float) -> list[PromSample]:
        """Samples of the policy's metrics in ``[now - window_s, now]``."""
        return self.query_range(self.query(), now - self.window_s, now, self.step_s)

    def metrics(self, now: float) -> dict[str, ServiceMetrics]:
        """ServiceMetrics per service at ``now``, for ``Autoscaler.step``."""
        return service_metrics(self.samples(now), now, self.window_s, self.label_map)

    def series(self, start: float, end: float, every: float) -> list[tuple[float, dict[str, ServiceMetrics]]]:
        """ServiceMetrics at ``start, start + every, ...`` up to ``end``, from one ``query_range`` call."""
        if not (0 < every < math.inf and math.isfinite(start) and math.isfinite(end) and end >= start):
            raise InputError(f"PromQLSource: every={every} must be positive and end={end} not before start={start}")
        if (end - start) / every >= MAX_CYCLES:
            raise InputError(
                f"PromQLSource: start={start} to end={end} every={every} s is more than {MAX_CYCLES} cycles"
            )
        samples = self.query_range(self.query(), start - self.window_s, end, self.step_s)
        times = [start + k * every for k in range(int((end - start) // every) + 1)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetricsMatchWarning)  # an idle cycle is no mapping problem
            out = [(t, service_metrics(samples, t, self.window_s, self.label_map)) for t in times]
        if samples and not any(m for _, m in out):
            service_metrics(samples, end, end - start + self.window_s, self.label_map)  # warns, naming values seen
        return out


def parse_matrix(body: object, source: str = "Prometheus") -> list[PromSample]:
    """Samples from a ``query_range`` answer (``resultType: matrix``)."""
    if not isinstance(body, Mapping) or body.get("status") != "success":
        err = body.get("error", body) if isinstance(body, Mapping) else body
        raise InputError(f"Prometheus '{source}': query failed: {err}")
    data = body.get("data") or {}
    if not isinstance(data, Mapping):
        raise InputError(f"Prometheus '{source}': data={type(data).__name__}, expected an object")
    if data.get("resultType") != "matrix":
        raise InputError(f"Prometheus '{source}': resultType={data.get('resultType')!r}, expected 'matrix'")
    out: list[PromSample] = []
    try:
        for series in data.get("result", []):
            labels = {str(k): str(v) for k, v in dict(series.get("metric", {})).items()}
            name = labels.pop("__name__", "")
            name = CANONICAL_NAMES.get(name, name)
            for t, v in series.get("values", []):
                t, v = float(t), float(v)
                if math.isfinite(t) and math.isfinite(v):  # Prometheus writes "NaN" for no value
                    out.append(PromSample(name=name, labels=labels, timestamp=t, value=v))
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(f"Prometheus '{source}': malformed matrix ({' '.join(str(exc).split())[:120]})") from None
    return out


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read().decode("utf-8"))
        return str(body.get("error", body))
    except (ValueError, OSError):
        return str(exc.reason)
