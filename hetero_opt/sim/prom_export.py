"""The simulator's metrics under vLLM's Prometheus names, rendered as text exposition.

One label set per service and role (``service``, ``role``), the labels
``hetero_opt.policy.prometheus`` reads back. Counters accumulate over the run; histograms are
fed each window's per-request samples (request mode) or the window mean once (fluid mode).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hetero_opt.sim.window import Window

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
TBT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)


#: The exporter's counters and gauges, and its histograms (what its pickled state holds).
_SCALARS = ("gen", "prompt", "running", "waiting", "util", "ready")
_HISTOGRAMS = ("ttft", "tbt")


class BulkHistogram(Collector):
    """A histogram fed whole arrays at once (numpy), exposed through the registry like any other."""

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...], registry: CollectorRegistry) -> None:
        self.name, self.doc = name, doc
        self.edges = np.asarray(buckets, dtype=float)
        self.series: dict[tuple[str, str], tuple[np.ndarray, list[float]]] = {}
        registry.register(self)

    def observe_many(self, labels: tuple[str, str], values: np.ndarray) -> None:
        """Add every value of ``values`` to the series of ``labels``."""
        counts, total = self.series.setdefault(labels, (np.zeros(self.edges.size + 1), [0.0]))
        idx = np.searchsorted(self.edges, values, side="left")  # bucket i holds values <= edges[i]
        counts += np.bincount(idx, minlength=self.edges.size + 1)
        total[0] += float(values.sum())

    def collect(self) -> Iterator[Metric]:
        """One histogram family with a series per label set."""
        fam = HistogramMetricFamily(self.name, self.doc, labels=["service", "role"])
        for labels, (counts, total) in sorted(self.series.items()):
            cum = np.cumsum(counts)
            buckets = [(f"{e:g}", float(c)) for e, c in zip(self.edges, cum[:-1], strict=True)]
            buckets.append(("+Inf", float(cum[-1])))
            fam.add_metric(list(labels), buckets, total[0])
        yield fam


class PromExporter:
    """A prometheus-client registry fed once per control window.

    It pickles (for the simulator's checkpoints) as plain values: every series' value, in the order
    the series were created, and the counters' creation times, so a restored exporter renders the
    same text as the one saved.
    """

    def __init__(self, services: list[str]) -> None:
        self.services = list(services)
        self.registry = CollectorRegistry()
        r = self.registry
        labels = ["service", "role"]
        self.gen = Counter("vllm:generation_tokens", "Generated tokens.", labels, registry=r)
        self.prompt = Counter("vllm:prompt_tokens", "Prefilled (cache-missed) prompt tokens.", labels, registry=r)
        self.running = Gauge("vllm:num_requests_running", "Requests in decode batches.", labels, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "Requests queued.", labels, registry=r)
        self.ttft = BulkHistogram("vllm:time_to_first_token_seconds", "TTFT.", TTFT_BUCKETS, r)
        self.tbt = BulkHistogram("vllm:inter_token_latency_seconds", "TBT.", TBT_BUCKETS, r)
        self.util = Gauge("DCGM_FI_DEV_GPU_UTIL", "Mean GPU utilisation of the pool (%).", labels, registry=r)
        self.ready = Gauge("hetero_opt:ready_pods", "Ready pods.", labels, registry=r)
        for s in services:  # every series exists from the start
            for role in ("prefill", "decode"):
                self.gen.labels(s, role)
                self.prompt.labels(s, role)

    def observe(self, service: str, w: Window) -> None:
        """Add one window's counts, set gauges, observe latencies."""
        self.gen.labels(service, "decode").inc(w.decode_tokens)
        self.prompt.labels(service, "prefill").inc(w.prefill_tokens)
        self.running.labels(service, "decode").set(w.running)
        self.waiting.labels(service, "prefill").set(w.queue_prefill)
        self.waiting.labels(service, "decode").set(w.queue_decode)
        if w.prefill_ready_s:
            self.util.labels(service, "prefill").set(min(100.0, 100 * w.prefill_busy_s / w.prefill_ready_s))
        if w.decode_ready_s:
            self.util.labels(service, "decode").set(min(100.0, 100 * w.decode_busy_s / w.decode_ready_s))
        self.ready.labels(service, "prefill").set(w.ready_prefill)
        self.ready.labels(service, "decode").set(w.ready_decode)
        key = (service, "decode")
        if w.ttft.size or w.tbt.size:
            self.ttft.observe_many(key, w.ttft)
            self.tbt.observe_many(key, w.tbt)
        else:
            ttft, tbt = w.latency_stats()
            if "mean" in ttft and ttft["mean"] < float("inf"):
                self.ttft.observe_many(key, np.array([ttft["mean"] / 1000]))
            if "mean" in tbt and tbt["mean"] < float("inf"):
                self.tbt.observe_many(key, np.array([tbt["mean"] / 1000]))

    def __getstate__(self) -> dict[str, Any]:
        scalars: dict[str, list[tuple[tuple[str, ...], float, float | None]]] = {}
        for attr in _SCALARS:
            metric = getattr(self, attr)
            rows = []
            for labels, child in list(metric._metrics.items()):  # creation order, which render keeps
                rows.append((labels, child._value.get(), getattr(child, "_created", None)))
            scalars[attr] = rows
        series = {attr: {k: (c.copy(), list(t)) for k, (c, t) in getattr(self, attr).series.items()}
                  for attr in _HISTOGRAMS}
        return {"services": self.services, "scalars": scalars, "histograms": series}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["services"])  # type: ignore[misc]  # a fresh registry, then the values
        for attr, rows in state["scalars"].items():
            metric = getattr(self, attr)
            for labels, value, created in rows:
                child = metric.labels(*labels)
                child._value.set(value)
                if created is not None:
                    child._created = created
        for attr, series in state["histograms"].items():
            getattr(self, attr).series.update(series)

    def render(self) -> str:
        """The current metrics as Prometheus text exposition (format 0.0.4)."""
        return generate_latest(self.registry).decode()
