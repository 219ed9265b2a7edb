"""Prometheus adapter on synthetic exposition text; serving profiles and YAML config loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetero_opt.errors import InputError
from hetero_opt.policy import (
    ServicePolicy,
    load_policy_config,
    load_profiles,
    parse_exposition,
    service_metrics_from_samples,
)
from hetero_opt.policy.prometheus import counter_increase, counter_rate

MODELS = Path(__file__).resolve().parents[2] / "models"


def scrape(
    gen_vllm: float, gen_sgl: float, ttft_sum: float, ttft_count: float, itl_sum: float, itl_count: float, prompt: float
) -> str:
    return f"""
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{service="chat",role="decode",pod="d0"}} {gen_vllm}
vllm:inter_token_latency_seconds_sum{{service="chat",role="decode",pod="d0"}} {itl_sum}
vllm:inter_token_latency_seconds_count{{service="chat",role="decode",pod="d0"}} {itl_count}
vllm:inter_token_latency_seconds_bucket{{service="chat",role="decode",pod="d0",le="0.05"}} 1
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{{service="chat",role="decode",pod="d1"}} {gen_sgl}
vllm:prompt_tokens_total{{service="chat",role="prefill",pod="p0"}} {prompt}
vllm:time_to_first_token_seconds_sum{{service="chat",role="prefill",pod="p0"}} {ttft_sum}
vllm:time_to_first_token_seconds_count{{service="chat",role="prefill",pod="p0"}} {ttft_count}
DCGM_FI_DEV_GPU_UTIL{{service="chat",role="prefill",pod="p0",gpu="0"}} 80
DCGM_FI_DEV_GPU_UTIL{{service="chat",role="prefill",pod="p0",gpu="1"}} 60
"""


def test_exposition_to_service_metrics() -> None:
    samples = parse_exposition(scrape(1000, 300, 10.0, 20, 2.0, 100, 5000), 0.0)
    samples += parse_exposition(scrape(4000, 500, 16.0, 30, 5.0, 200, 65000), 60.0)
    m = service_metrics_from_samples(samples, now=60.0, window_s=60.0)["chat"]
    # vLLM counter: (4000 − 1000)/60 = 50 tok/s; SGLang gauge latest 500 → 550
    assert m.decode_tps == pytest.approx(550.0)
    assert m.prefill_tps == pytest.approx(1000.0)  # (65000 − 5000)/60
    assert m.ttft_ms == pytest.approx(600.0)  # Δsum 6 s / Δcount 10 = 0.6 s
    assert m.tbt_ms == pytest.approx(30.0)  # 3 s / 100 tokens
    assert m.prefill_gpu_util == pytest.approx(70.0)
    assert m.decode_gpu_util is None


def test_prefill_tps_is_cache_missed() -> None:
    # vLLM pod: 60,000 prompt tokens in 60 s, 45,000 of them prefix-cache hits → 250 tok/s missed;
    # SGLang pod: 12,000 prompt tokens in 60 s at a 75 % hit rate → 50 tok/s missed
    def text(prompt: float, hits: float, sgl: float) -> str:
        return (
            f'vllm:prompt_tokens_total{{service="chat",role="prefill",pod="p0"}} {prompt}\n'
            f'vllm:prefix_cache_hits_total{{service="chat",role="prefill",pod="p0"}} {hits}\n'
            f'sglang:prompt_tokens_total{{service="chat",role="prefill",pod="p1"}} {sgl}\n'
            f'sglang:cache_hit_rate{{service="chat",role="prefill",pod="p1"}} 0.75\n'
        )

    samples = parse_exposition(text(0, 0, 0), 0.0) + parse_exposition(text(60_000, 45_000, 12_000), 60.0)
    m = service_metrics_from_samples(samples, now=60.0, window_s=60.0)["chat"]
    assert m.prefill_tps == pytest.approx(250.0 + 50.0)


def test_counter_reset_is_handled() -> None:
    # 100 → 400 (+300), restart → 50 (+50), → 250 (+200)
    pts = [(0.0, 100.0), (30.0, 400.0), (60.0, 50.0), (90.0, 250.0)]
    assert counter_increase(pts) == 550.0
    assert counter_rate(pts) == pytest.approx(550.0 / 90.0)
    assert counter_rate(pts[:1]) is None


def test_exposition_explicit_timestamp_and_errors() -> None:
    s = parse_exposition('sglang:gen_throughput{service="a",model_name="x y"} 12.5 1500', 0.0)
    assert (s[0].timestamp, s[0].value, s[0].labels["model_name"]) == (1.5, 12.5, "x y")
    with pytest.raises(InputError, match="line 1"):
        parse_exposition("not a metric line {", 0.0)


def test_profiles_load_and_cite_sources() -> None:
    profiles = load_profiles(MODELS)
    assert {"llama3-70b-pd", "deepseek-v3-moe"} <= set(profiles)
    ds = profiles["deepseek-v3-moe"]
    assert ds.decode_tps_per_pod("H800") == 14800
    # DeepSeek's published day: 608e9 / 86,400 / 73,700 = 95.5 prefill and 168e9 / 86,400 / 14,800
    # = 131.4 decode nodes, P:D = 0.727; the unit 3:4 = 0.75 is within 5 % of it
    assert ds.unit("H800") == (3, 4)
    published = (608e9 / 73_700) / (168e9 / 14_800)
    assert published == pytest.approx(0.727, abs=1e-3)
    assert pytest.approx(published, rel=0.05) == 3 / 4
    for prof in profiles.values():
        for gpu, g in prof.gpu_types.items():
            # every unit gives prefill at least 90 % of what its decode pods need at the
            # profile's own input/output mix (DeepSeek 3.6 or 2 input tokens per output, Llama 8)
            p, d = prof.unit(gpu)
            assert g.prefill.prefill_tps_per_pod
            assert g.decode.decode_tps_per_pod
            per_output = {"deepseek-v3-moe": 2.0 if gpu == "H100" else 3.6}.get(prof.name, 8.0)
            if prof.name == "deepseek-v3-moe" and gpu == "H800":
                per_output = 608 / 168  # the published day's mix
            need = d * g.decode.decode_tps_per_pod.value * per_output / g.prefill.prefill_tps_per_pod.value
            assert p >= 0.9 * need, (prof.name, gpu, p, need)
            assert g.decode.decode_tps_per_pod
            assert g.decode.decode_tps_per_pod.source
            assert g.prefill.prefill_tps_per_pod
            assert g.prefill.prefill_tps_per_pod.source
    with pytest.raises(InputError, match="gpu_type='B200' unknown"):
        ds.unit("B200")


def test_policy_config_yaml_reads_profile_targets(tmp_path: Path) -> None:
    cfg_file = tmp_path / "policy.yaml"
    cfg_file.write_text(
        f"""
models_dir: {MODELS}
services:
  - service: chat
    policy: hybrid
    profile: llama3-70b-pd
    gpu_type: H100
    min_units: 2
    max_units: 40
  - service: search
    policy: proportional
    profile: llama3-70b-pd
    gpu_type: H100
    proportional: {{target_decode_tps_per_pod: 999}}
  - service: batch
    policy: periodic
    periodic:
      windows: [{{start: "22:00", end: "06:00", units: 4}}]
      default_units: 1
""",
        encoding="utf-8",
    )
    cfg = load_policy_config(cfg_file).by_service()
    assert cfg["chat"].proportional.target_decode_tps_per_pod == 1480
    assert cfg["chat"].feedback.target_tbt_ms == 50
    assert cfg["search"].proportional.target_decode_tps_per_pod == 999  # override wins
    assert cfg["batch"].periodic.windows[0].units == 4


def _curated_profile(tmp_path: Path, value: float) -> Path:
    """models/llama3-70b-pd.yaml with a curated headroom on H100 (as `hetero-opt curate` writes it)."""
    import yaml

    doc = yaml.safe_load((MODELS / "llama3-70b-pd.yaml").read_text(encoding="utf-8"))
    doc["gpu_types"]["H100"]["target_utilisation"] = {"value": value, "source": "closed-loop comparison"}
    models = tmp_path / "models"
    models.mkdir()
    (models / "llama3-70b-pd.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return models


def test_a_curated_headroom_sizes_both_pools_unless_the_config_says_otherwise(tmp_path: Path) -> None:
    models = _curated_profile(tmp_path, 0.65)
    cfg_file = tmp_path / "policy.yaml"
    cfg_file.write_text(
        f"""
models_dir: {models}
services:
  - {{service: chat, policy: proportional, profile: llama3-70b-pd, gpu_type: H100}}
  - {{service: own, policy: proportional, profile: llama3-70b-pd, gpu_type: H100,
      proportional: {{target_decode_tps_per_pod: 999}}, prefill_guard: {{target_utilisation: 0.9}}}}
  - {{service: plain, policy: proportional, profile: llama3-70b-pd, gpu_type: H20}}
  - {{service: half, policy: proportional, profile: llama3-70b-pd, gpu_type: H100,
      prefill_guard: {{target_utilisation: 0.8}}}}
  - {{service: given, policy: proportional, profile: llama3-70b-pd, gpu_type: H20,
      prefill_guard: {{target_utilisation: 0.7}}}}
""",
        encoding="utf-8",
    )
    cfg = load_policy_config(cfg_file).by_service()
    # 0.65 x the profile's 1,480 decode tok/s per pod; prefill pods sized at 0.65 x 22,800
    assert cfg["chat"].proportional.target_decode_tps_per_pod == pytest.approx(0.65 * 1480)
    assert cfg["chat"].prefill_guard.utilisation == 0.65
    assert cfg["chat"].prefill_guard.prefill_tps_per_pod == 22800
    # what the config gives wins over the profile
    assert cfg["own"].proportional.target_decode_tps_per_pod == 999
    assert cfg["own"].prefill_guard.utilisation == 0.9
    # a GPU type without a curated headroom: the decode figure itself, the guard's default
    assert cfg["plain"].proportional.target_decode_tps_per_pod == 1300
    assert cfg["plain"].prefill_guard.utilisation == 0.8
    # a target_utilisation given in the config replaces the curated one for both pools, even where it
    # equals the default (the reviews found decode at 0.65 beside prefill at 0.8)
    assert cfg["half"].proportional.target_decode_tps_per_pod == pytest.approx(0.8 * 1480)
    assert cfg["half"].prefill_guard.utilisation == 0.8
    # without a curated one, a given target_utilisation sizes both pools too (not decode at 1.0 x)
    assert cfg["given"].proportional.target_decode_tps_per_pod == pytest.approx(0.7 * 1300)
    assert cfg["given"].prefill_guard.utilisation == 0.7
    # a copy made before resolving (Frozen.replace counts every field as set) resolves the same
    raw = ServicePolicy(service="x", policy="proportional", profile="llama3-70b-pd", gpu_type="H100")
    copied = raw.replace(min_units=2).resolve(load_profiles(models))
    assert copied.proportional.target_decode_tps_per_pod == pytest.approx(0.65 * 1480)
    assert copied.prefill_guard.utilisation == 0.65


def test_a_headroom_above_one_is_refused_naming_the_field(tmp_path: Path) -> None:
    models = _curated_profile(tmp_path, 1.2)
    with pytest.raises(InputError, match=r"target_utilisation.value=1.2 must be in \(0, 1\]"):
        load_profiles(models)


def test_policy_config_errors_name_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - service: a\n    policy: magic\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"Service 'a': policy='magic': Input should be 'proportional'"):
        load_policy_config(bad)
    bad.write_text(
        "services:\n  - {service: a, policy: static, static_units: 1, min_units: 5, max_units: 2}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="min_units=5 exceeds max_units=2"):
        load_policy_config(bad)
