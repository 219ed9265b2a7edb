"""PromQLSource against a real Prometheus server (Debian's package) scraping a vLLM-named exporter.

The fixture starts, on free localhost ports, two exporters (one prefill pod, one decode pod) that
serve a fixed series through prometheus-client, and a Prometheus server scraping them every
second; it waits for samples, and stops both when the test ends. ``make test`` installs the
server (target ``prometheus``); without it the test skips and says why.
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from hetero_opt.adapters.prometheus import LabelMap, PromQLSource

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
MODEL = "meta-llama/Llama-3.1-70B-Instruct"
DECODE_TPS, PREFILL_TPS = 800.0, 3000.0  # tokens/s the fixed series grow by
TTFT_S, TBT_S = 0.2, 0.05  # every request's latency in the fixed series


class FixedSeries(Collector):
    """vLLM-named metrics of one pod as exact functions of the time since start."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.t0 = time.time()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        t = time.time() - self.t0
        requests = math.floor(t * 10)  # 10 requests/s, each with the same latency
        labels = ["model_name"]
        if self.role == "decode":
            tokens = CounterMetricFamily("vllm:generation_tokens", "Generation tokens.", labels=labels)
            tokens.add_metric([MODEL], DECODE_TPS * t)
            latency = ("vllm:inter_token_latency_seconds", TBT_S)
            util = GaugeMetricFamily("DCGM_FI_DEV_GPU_UTIL", "GPU utilisation (%).", labels=labels)
            util.add_metric([MODEL], 70.0)
            yield util
        else:
            tokens = CounterMetricFamily("vllm:prompt_tokens", "Prompt tokens.", labels=labels)
            tokens.add_metric([MODEL], PREFILL_TPS * t)
            latency = ("vllm:time_to_first_token_seconds", TTFT_S)
        yield tokens
        hist = HistogramMetricFamily(latency[0], "Latency.", labels=labels)
        hist.add_metric([MODEL], buckets=[("0.5", requests), ("+Inf", requests)], sum_value=requests * latency[1])
        yield hist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:
        body: bytes = resp.read()
        return body


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(PROMETHEUS).exists():
        pytest.skip("Debian's prometheus is not installed (`make prometheus` installs it: apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("prometheus")
    exporters = []
    targets = []
    for role in ("prefill", "decode"):
        registry = CollectorRegistry()
        registry.register(FixedSeries(role))
        port = _free_port()
        exporters.append(start_http_server(port, addr="127.0.0.1", registry=registry))
        targets.append(f"  - targets: ['127.0.0.1:{port}']\n    labels: {{role: {role}}}\n")
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n- job_name: vllm\n  static_configs:\n" + "".join(targets)
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with {proc.returncode}: {(tmp / 'prometheus.log').read_text()[-500:]}")
            try:
                if b"up" in _get(f"{url}/api/v1/query?query=up%3D%3D1") and _enough_samples(url):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("prometheus did not collect 6 s of samples within 30 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for server, thread in exporters:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _enough_samples(url: str) -> bool:
    samples = PromQLSource(url, window_s=6.0, step_s=1.0).samples(time.time())
    points = Counter(s.name for s in samples)
    return points["vllm:generation_tokens_total"] >= 6 and points["vllm:prompt_tokens_total"] >= 6


def test_promql_source_builds_service_metrics_from_a_real_server(prometheus: str) -> None:
    lm = LabelMap(service_label="model_name", services={MODEL: "chat"})
    src = PromQLSource(prometheus, lm, window_s=5.0, step_s=1.0, selector='job="vllm"')
    m = src.metrics(time.time())["chat"]
    # histogram means are exact: every request in the series has the same latency
    assert m.ttft_ms == pytest.approx(TTFT_S * 1000)
    assert m.tbt_ms == pytest.approx(TBT_S * 1000)
    assert m.decode_gpu_util == pytest.approx(70.0)
    assert m.prefill_gpu_util is None
    # rates: Prometheus reports each step with the last scrape before it (1 s apart), so a 5 s
    # window can be off by up to one scrape interval: 1/5 = 20 %
    assert m.decode_tps == pytest.approx(DECODE_TPS, rel=0.25)
    assert m.prefill_tps == pytest.approx(PREFILL_TPS, rel=0.25)


def test_selector_that_matches_nothing_gives_no_service(prometheus: str) -> None:
    src = PromQLSource(prometheus, LabelMap(service_label="model_name"), window_s=5.0, selector='job="other"')
    assert src.metrics(time.time()) == {}


def test_cli_metrics_csv_feeds_autoscale(prometheus: str, tmp_path: Path) -> None:
    from hetero_opt.cli import main
    from hetero_opt.replay import load_metrics

    demo = Path(__file__).resolve().parents[2] / "instances" / "autoscale"
    label_map = tmp_path / "labels.yaml"
    label_map.write_text(f"service_label: model_name\nservices: {{{MODEL}: chat}}\n")
    out = tmp_path / "metrics.csv"
    end = round(time.time())
    argv = ["metrics", "prometheus", "--url", prometheus, "--map", str(label_map), "--out", str(out)]
    argv += ["--start", str(end - 4), "--end", str(end), "--every", "2", "--window", "4", "--step", "1"]
    assert main(argv) == 0
    series = load_metrics(out)
    assert [t for t, _ in series] == [end - 4, end - 2, end]  # cycles every 2 s
    last = series[-1][1]["chat"]
    assert last.ttft_ms == pytest.approx(TTFT_S * 1000)
    assert last.decode_tps == pytest.approx(DECODE_TPS, rel=0.3)  # 4 s window: one 1 s scrape off at most
    config, cluster = str(demo / "policy.yaml"), str(demo / "cluster.yaml")
    assert main(["autoscale", "--config", config, "--metrics", str(out), "--instance", cluster, "--once"]) == 0


def test_cli_metrics_nothing_mapped_is_exit_2(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hetero_opt.cli import main

    end = str(round(time.time()))
    argv = ["metrics", "prometheus", "--url", prometheus, "--end", end, "--every", "2", "--window", "4", "--step", "1"]
    assert main([*argv, "--start", str(int(end) - 2), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "none maps to a service: label 'service' holds '<absent>'" in err
    assert "no samples map to a service" in err.splitlines()[-1]
    assert not (tmp_path / "m.csv").exists()
