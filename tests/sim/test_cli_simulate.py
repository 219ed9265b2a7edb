"""``hetero-opt simulate``: the README example, outputs, Prometheus names, bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from sim_helpers import ROOT, SIM_DIR, TRACES

from hetero_opt.cli import main
from hetero_opt.policy.prometheus import parse_exposition, service_metrics_from_samples


def _readme_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^\.venv/bin/hetero-opt (simulate .*)$", text, flags=re.MULTILINE)
    assert m, "README shows a simulate example"
    return shlex.split(m.group(1))


def test_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    args = _readme_command()
    out = tmp_path / "sim"
    args[args.index("--out-dir") + 1] = str(out)
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("gpu_hours", "slo_attainment_ttft", "slo_attainment_tbt", "slo_attainment_both", "actions",
                "reversals_within_30min", "pd_ratio_drift_max", "windows_prefill_short", "windows_decode_short",
                "prefill_gpu_util_mean", "decode_gpu_util_mean"):
        assert key in summary
    assert summary["arrivals"] == summary["completed"] + summary["dropped_total"]
    # the README's proportional policy sizes at the default 0.8 (no curated profile); a 15-minute run
    # closes no day's window of the SLO-tuned headroom
    assert summary["target_utilisation_min"] == summary["target_utilisation_last"] == {"chat": 0.8}
    assert (out / "cycles.csv").stat().st_size > 0
    assert (out / "requests.csv").stat().st_size > 0
    assert len(list(out.glob("*.png"))) == 4
    # the exposition reads back through the policy's Prometheus reader
    text = (out / "metrics.prom").read_text()
    for name in ("vllm:num_requests_running", "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds"):
        assert name in text
    assert any(s.name == "vllm:generation_tokens_total" and s.value > 0 for s in parse_exposition(text, 0.0))


def test_exposition_rates_read_back(tmp_path: Path) -> None:
    from hetero_opt.sim.prom_export import PromExporter
    from hetero_opt.sim.window import Window

    exp = PromExporter(["chat"])
    exp.observe("chat", Window(0, 60, decode_tokens=0.0))
    first = exp.render()
    exp.observe("chat", Window(60, 120, decode_tokens=6000.0, decode_busy_s=60.0, decode_ready_s=60.0))
    samples = parse_exposition(first, 0.0) + parse_exposition(exp.render(), 60.0)
    m = service_metrics_from_samples(samples, now=60.0, window_s=60.0)
    assert m["chat"].decode_tps == pytest.approx(100.0)


BAD_AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,10,5\n2023-11-16 18:15:47,{},5\n"


@pytest.mark.parametrize(
    ("trace_text", "match"),
    [
        ("TIMESTAMP,ContextTokens,GeneratedTokens,Extra\n2023-11-16 18:15:46,10,5,1\n", "column='Extra' is unknown"),
        (BAD_AZURE.format(-3), "row 2: ContextTokens=-3.0 must be at least 1"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,10,5\n2023-11-16 18:15:40,10,5\n",
         "row 2: TIMESTAMP goes back in time"),
    ],
)
def test_bad_trace_exit_2_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str], trace_text: str,
                                          match: str) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(trace_text)
    out = tmp_path / "out"
    code = main(["simulate", "--trace", str(trace), "--config", str(SIM_DIR / "sim.yaml"), "--cluster",
                 str(SIM_DIR / "cluster.yaml"), "--out-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert match in err
    assert len(err.splitlines()) == 1
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_bad_cluster_and_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a GPU type with no performance data
    cluster = (SIM_DIR / "cluster.yaml").read_text().replace("- L20\n  pd_ratio", "- B200\n  pd_ratio")
    cluster = cluster.replace("gpu_types:\n- id: H20\n- id: L20", "gpu_types:\n- id: H20\n- id: L20\n- id: B200")
    (tmp_path / "cluster.yaml").write_text(cluster)
    out = tmp_path / "out"
    args = ["simulate", "--trace", str(TRACES / "azure_llm_2023_conv.csv"), "--out-dir", str(out)]
    assert main([*args, "--config", str(SIM_DIR / "sim.yaml"), "--cluster", str(tmp_path / "cluster.yaml")]) == 2
    assert "gpu_type='B200' has no performance data" in capsys.readouterr().err
    # a config naming an unknown service
    (tmp_path / "policy.yaml").write_text((SIM_DIR / "policy.yaml").read_text())
    (tmp_path / "sim.yaml").write_text((SIM_DIR / "sim.yaml").read_text().replace("service: chat", "service: code"))
    assert main([*args, "--config", str(tmp_path / "sim.yaml"), "--cluster", str(SIM_DIR / "cluster.yaml")]) == 2
    assert "service='code' is not in the cluster instance" in capsys.readouterr().err
    assert not out.exists()
