"""Scrape parsing through prometheus-client (exemplars, no-match warning), label maps, query_range answers."""

from __future__ import annotations

import warnings

import pytest

from hetero_opt.adapters.prometheus import METRIC_NAMES, LabelMap, PromQLSource, parse_matrix, service_metrics
from hetero_opt.errors import InputError
from hetero_opt.policy.prometheus import MetricsMatchWarning, parse_exposition, service_metrics_from_samples

TEXT_WITH_EXEMPLAR = (
    "# TYPE vllm:generation_tokens_total counter\n"
    'vllm:generation_tokens_total{model_name="llama",pod="d0"} 10.0 # {trace_id="abc"} 1.0\n'
)
OPENMETRICS = (
    "# TYPE vllm:generation_tokens counter\n"
    'vllm:generation_tokens_total{model_name="llama",pod="d0"} 10.0 # {trace_id="abc"} 1.0\n'
    "# EOF\n"
)


@pytest.mark.parametrize("text", [TEXT_WITH_EXEMPLAR, OPENMETRICS])
def test_exemplar_is_neither_value_nor_label(text: str) -> None:
    [s] = [s for s in parse_exposition(text, 5.0) if s.name == "vllm:generation_tokens_total"]
    assert (s.value, s.timestamp, s.labels) == (10.0, 5.0, {"model_name": "llama", "pod": "d0"})


def test_label_value_with_hash_is_kept() -> None:
    [s] = parse_exposition('m{path="a # {b}"} 2', 0.0)
    assert (s.labels["path"], s.value) == ("a # {b}", 2.0)


def _scrapes(label: str = "model_name", value: str = "llama") -> list:  # type: ignore[type-arg]
    text0 = f'vllm:generation_tokens_total{{{label}="{value}",pod="d0"}} 1000\n'
    text1 = f'vllm:generation_tokens_total{{{label}="{value}",pod="d0"}} 4000\n'
    return parse_exposition(text0, 0.0) + parse_exposition(text1, 60.0)


def test_raw_vllm_scrape_warns_when_no_sample_names_a_service() -> None:
    with pytest.warns(MetricsMatchWarning, match="none has the label 'service'"):
        assert service_metrics_from_samples(_scrapes(), now=60.0) == {}
    with pytest.warns(MetricsMatchWarning, match="label 'service' holds '<absent>'"):
        assert service_metrics(_scrapes(), now=60.0) == {}


def test_label_map_maps_model_names_to_services() -> None:
    lm = LabelMap(service_label="model_name", services={"llama": "chat"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = service_metrics(_scrapes(), now=60.0, window_s=60.0, label_map=lm)
    assert list(m) == ["chat"]
    assert m["chat"].decode_tps == pytest.approx(50.0)  # (4000 - 1000) / 60 s


def test_label_map_drops_unlisted_values_and_says_which_it_saw() -> None:
    lm = LabelMap(service_label="model_name", services={"qwen": "chat"})
    with pytest.warns(MetricsMatchWarning, match="label 'model_name' holds 'llama'"):
        assert service_metrics(_scrapes(), now=60.0, label_map=lm) == {}


def test_parse_matrix_and_errors() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "m", "pod": "p"}, "values": [[1.5, "2"], [2.5, "3"]]}],
        },
    }
    assert [(s.name, s.labels, s.timestamp, s.value) for s in parse_matrix(body)] == [
        ("m", {"pod": "p"}, 1.5, 2.0),
        ("m", {"pod": "p"}, 2.5, 3.0),
    ]
    with pytest.raises(InputError, match="query failed: bad_data"):
        parse_matrix({"status": "error", "error": "bad_data"})
    with pytest.raises(InputError, match="resultType='vector'"):
        parse_matrix({"status": "success", "data": {"resultType": "vector", "result": []}})


def test_query_names_every_metric_and_unreachable_server_is_one_line() -> None:
    src = PromQLSource("http://127.0.0.1:9", selector='namespace="llm"', timeout_s=0.5)
    assert all(n in src.query() for n in METRIC_NAMES)
    assert src.query().endswith(',namespace="llm"}')
    with pytest.raises(InputError, match=r"Prometheus 'http://127.0.0.1:9': cannot query"):
        src.metrics(100.0)


def test_exemplar_after_escaped_quote_in_a_label() -> None:
    [s] = parse_exposition('m{a="x\\"#y"} 3 # {trace_id="t"} 9\n', 0.0)
    assert (s.labels, s.value) == ({"a": 'x"#y'}, 3.0)


def test_nan_and_infinite_samples_are_no_value() -> None:
    # Go exporters write NaN for summary quantiles without observations; one such line in a scrape
    # used to fail the whole parse (PromSample refuses non-finite values)
    scrape = (
        'go_gc_duration_seconds{quantile="0.5"} NaN\n'
        'vllm:gpu_cache_usage_perc{model_name="llama"} +Inf\n'
        'vllm:generation_tokens_total{model_name="llama"} 10\n'
    )
    assert [(s.name, s.value) for s in parse_exposition(scrape, 0.0)] == [("vllm:generation_tokens_total", 10.0)]
    body = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {"__name__": "m"}, "values": [[1, "NaN"], [2, "4"]]}]},
    }
    assert [(s.timestamp, s.value) for s in parse_matrix(body)] == [(2.0, 4.0)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "success", "data": [1]}, "data=list, expected an object"),
        ({"status": "success", "data": {"resultType": "matrix", "result": ["x"]}}, "malformed matrix"),
        ({"status": "success", "data": {"resultType": "matrix", "result": [{"values": [["a", "1"]]}]}},
         "malformed matrix"),
        ({"status": "success", "data": {"resultType": "matrix", "result": [{"values": 5}]}}, "malformed matrix"),
    ],
)
def test_malformed_answer_is_one_clear_error(body: object, message: str) -> None:
    with pytest.raises(InputError, match=f"Prometheus 'Prometheus': {message}"):
        parse_matrix(body)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("notaurl",), "url='notaurl' must be an http:// or https:// URL with a host"),
        (("http://",), "url='http://' must be an http:// or https:// URL with a host"),
        (("http://p:9090", float("nan")), "window_s=nan and step_s=15.0 must be positive and finite"),
    ],
)
def test_source_settings_are_checked(args: tuple[object, ...], message: str) -> None:
    url, *window = args
    with pytest.raises(InputError, match=f"PromQLSource: {message}"):
        PromQLSource(str(url), window_s=float(window[0]) if window else 60.0, step_s=15.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "end", "every"),
    [(float("nan"), 50.0, 10.0), (0.0, float("inf"), 10.0), (0.0, 50.0, float("nan")), (0.0, 1e12, 1.0)],
)
def test_series_range_is_checked_before_any_query(start: float, end: float, every: float) -> None:
    src = PromQLSource("http://127.0.0.1:9", timeout_s=0.5)  # nothing listens: a query would say 'cannot query'
    with pytest.raises(InputError, match="PromQLSource: "):
        src.series(start, end, every)
