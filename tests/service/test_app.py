"""The HTTP service through FastAPI's TestClient: solve, step with server-side state, metrics, limits, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hetero_opt import apply_plan, load_instance, verify
from hetero_opt.errors import InputError
from hetero_opt.io import parse_instance
from hetero_opt.placement.result import PlacementResult
from hetero_opt.service.app import create_app
from hetero_opt.service.config import Loaded, ServiceConfig, load_service_config
from service.helpers import CONFIG, DEMO, drive, reference, series

SMALL = DEMO.parent / "tier_preference.yaml"


def _client(state_dir: Path | None = None, **changes: Any) -> TestClient:
    loaded = load_service_config(CONFIG)
    token = changes.pop("token", None)
    if changes or token:
        loaded = Loaded(loaded.config.replace(**changes), loaded.autoscaler, token)
    return TestClient(create_app(loaded, state_dir), raise_server_exceptions=False)


def _small() -> dict[str, Any]:
    return load_instance(SMALL).model_dump(mode="json")


def test_solve_returns_a_verified_plan() -> None:
    r = _client().post("/v1/solve", json={"instance": _small()})
    assert r.status_code == 200, r.text
    result = PlacementResult.model_validate(r.json())
    assert result.solver == "greedy"
    assert verify(load_instance(SMALL), result.plan) == []


def test_bad_instance_gets_the_clis_message() -> None:
    data = _small()
    data["nodes"][0]["gpus_free"] = 99
    with pytest.raises(InputError) as cli:
        parse_instance(data, "instance")
    r = _client().post("/v1/solve", json={"instance": data})
    assert r.status_code == 422
    assert r.json() == {"error": str(cli.value)}
    assert "gpus_free=99" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 422, "body: malformed JSON"),
        (b"[]", 422, "body="),
        (b'{"instance": {}, "solver": "simplex"}', 422, "instance: format_version=missing"),
        (json.dumps({"instance": _small(), "solver": "simplex"}).encode(), 422, "solver='simplex'"),
        (json.dumps({"instance": _small(), "time_limit_s": 99}).encode(), 400, "time_limit_s=99"),
        (json.dumps({"instance": _small(), "time_limit_s": -1}).encode(), 422, "time_limit_s=-1"),
    ],
)
def test_bad_requests_are_4xx_with_one_line(body: bytes, status: int, message: str) -> None:
    r = _client().post("/v1/solve", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert "\n" not in r.json()["error"]


def test_refused_body_is_not_echoed_whole() -> None:
    # a JSON body sent as text/plain is one string to FastAPI; the error showed all of it (up to 8 MiB)
    body = json.dumps({"instance": _small()}).encode()
    r = _client().post("/v1/solve", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error.startswith("body=b'{\"instance\"")
    assert error.endswith("...: Input should be a valid dictionary or object to extract fields from")
    assert len(error) < 200


def test_body_size_limit() -> None:
    client = _client(max_body_bytes=1024)
    r = client.post("/v1/solve", json={"instance": _small()})
    assert r.status_code == 413
    assert "exceeds 1024" in r.json()["error"]

    def chunks() -> Any:  # no Content-Length: the limit applies as the body streams
        yield b'{"instance": '
        yield b" " * 2048

    r = client.post("/v1/solve", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(token="s3cret")
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/solve", json={"instance": _small()}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.post("/v1/solve", json={"instance": _small()}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_token_env_must_be_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("token_env: HETERO_OPT_TEST_TOKEN\n")
    monkeypatch.delenv("HETERO_OPT_TEST_TOKEN", raising=False)
    with pytest.raises(InputError, match="token_env='HETERO_OPT_TEST_TOKEN'"):
        load_service_config(cfg)
    monkeypatch.setenv("HETERO_OPT_TEST_TOKEN", "t")
    assert load_service_config(cfg).token == "t"


def test_steps_match_an_uninterrupted_autoscaler_and_survive_a_restart(tmp_path: Path) -> None:
    expected = reference()

    def post_with(client: TestClient) -> Any:
        def post(path: str, body: dict[str, Any]) -> Any:
            r = client.post(path, json=body)
            assert r.status_code == 200, r.text
            return r.json()

        return post

    inst = load_instance(DEMO / "cluster.yaml")
    first, inst = drive(post_with(_client(tmp_path)), 0, 3, inst)
    # a new server on the same state folder continues where the first stopped
    second, _ = drive(post_with(_client(tmp_path)), 3, 6, inst)
    assert first + second == expected
    assert any(row["placed_units"] != row["current_units"] for rows in expected for row in rows)  # something moved


def test_a_step_whose_answer_was_lost_is_answered_again_not_applied_twice(tmp_path: Path) -> None:
    # a resume audit: the server killed after saving a step and before answering; the client's retry was
    # stepped again and answered 'none 9->9' instead of 'out 9->12', and every later cycle differed
    expected = reference()
    inst = load_instance(DEMO / "cluster.yaml")
    client = _client(tmp_path)

    def post(path: str, body: dict[str, Any]) -> Any:
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    rows, inst = drive(post, 0, 3, inst)
    (t, ms) = series()[3]
    body = {"time": t, "metrics": ms, "instance": inst.model_dump(mode="json")}
    lost = client.post("/v1/step", json=body).json()  # stepped and saved; say the answer never arrived
    retried = _client(tmp_path).post("/v1/step", json=body)  # a restarted server, the same request
    assert retried.status_code == 200
    assert retried.json() == lost
    other = _client(tmp_path).post("/v1/step", json={**body, "metrics": {"chat": {"decode_tps": 1.0}}})
    assert other.status_code == 409
    assert "is the last step's, taken with another request" in other.json()["error"]
    if lost["placement"] is not None:
        from hetero_opt.placement.plan import Plan

        inst = apply_plan(inst, Plan.model_validate(lost["placement"]["plan"]))
    later, _ = drive(post, 4, 6, inst)
    assert [*rows, lost["services"], *later] == expected


def test_metrics_serve_desired_replicas(tmp_path: Path) -> None:
    client = _client(tmp_path)
    inst = load_instance(DEMO / "cluster.yaml")

    def post(path: str, body: dict[str, Any]) -> Any:
        return client.post(path, json=body).json()

    rows, _ = drive(post, 0, 1, inst)
    [row] = rows[0]
    text = client.get("/metrics").text
    per_unit = next(s for s in inst.services if s.id == "chat").pods_per_unit  # pods of each role in a unit
    for role in ("prefill", "decode"):
        want = per_unit[role] * row["placed_units"]
        assert f'hetero_opt_desired_replicas{{role="{role}",service="chat"}} {want}.0' in text
    assert f'hetero_opt_wanted_units{{service="chat"}} {row["wanted_units"]}.0' in text
    assert 'hetero_opt_requests_total{code="200",endpoint="/v1/step"} 1.0' in text


def test_step_errors(tmp_path: Path) -> None:
    client = _client(tmp_path)
    inst = load_instance(DEMO / "cluster.yaml").model_dump(mode="json")
    metrics = {"chat": {"decode_tps": 1000.0}}
    assert client.post("/v1/step", json={"time": 100.0, "metrics": metrics, "instance": inst}).status_code == 200
    r = client.post("/v1/step", json={"time": 50.0, "metrics": metrics, "instance": inst})
    assert r.status_code == 400
    assert "now=50.0 is before the last cycle 100.0" in r.json()["error"]
    r = client.post("/v1/step", json={"time": 200.0, "metrics": {"chat": {"decode_tps": -5}}, "instance": inst})
    assert r.status_code == 422
    assert "metrics.chat.decode_tps=-5" in r.json()["error"]
    off = TestClient(create_app(Loaded(ServiceConfig(), None, None)))
    r = off.post("/v1/step", json={"time": 1.0, "metrics": metrics, "instance": inst})
    assert (r.status_code, r.json()["error"]) == (409, "the service config names no policy; /v1/step is off")


def test_openapi_comes_from_the_models() -> None:
    doc = _client().get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert {"SolveRequest", "StepRequest", "StepResponse", "PlacementResult", "Instance", "ErrorResponse"} <= set(
        schemas
    )
    assert set(doc["paths"]) >= {"/v1/solve", "/v1/step", "/metrics", "/healthz"}


def test_unknown_path_and_health() -> None:
    client = _client()
    r = client.get("/v2/nothing")
    assert (r.status_code, r.json()) == (404, {"error": "Not Found"})
    assert client.get("/healthz").json() == {"status": "ok", "step": True, "last_time": None}


def test_step_without_metrics_reads_the_configured_prometheus(monkeypatch: pytest.MonkeyPatch) -> None:
    from hetero_opt.adapters.prometheus import PromQLSource
    from hetero_opt.policy.engine import ServiceMetrics
    from hetero_opt.service.config import PrometheusConfig

    inst = load_instance(DEMO / "cluster.yaml").model_dump(mode="json")
    assert _client().post("/v1/step", json={"time": 1.0, "instance": inst}).status_code == 400  # none configured
    client = _client(prometheus=PrometheusConfig(url="http://127.0.0.1:9", window_s=30.0))
    r = client.post("/v1/step", json={"time": 1.0, "instance": inst})
    assert r.status_code == 502  # nothing listens on port 9
    assert "Prometheus 'http://127.0.0.1:9': cannot query" in r.json()["error"]
    asked: list[float] = []

    def fake(self: PromQLSource, now: float) -> dict[str, ServiceMetrics]:
        asked.append(now)
        return {"chat": ServiceMetrics(decode_tps=6000.0)}

    monkeypatch.setattr(PromQLSource, "metrics", fake)
    r = client.post("/v1/step", json={"time": 1.0, "instance": inst})
    assert r.status_code == 200, r.text
    assert asked == [1.0]
    # 6000 tok/s / 1300 per H20 decode pod (models/llama3-70b-pd.yaml) = 4.6 decode pods -> 5 units
    # of 3 prefill + 1 decode pods (instances/autoscale/policy.yaml)
    assert r.json()["services"][0]["wanted_units"] == 5


def test_serve_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hetero_opt.cli import main

    assert main(["serve", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "Service config" in capsys.readouterr().err
    assert main(["serve", "--config", str(CONFIG), "--port", "70000"]) == 2
    assert "--port=70000 must be in 1..65535" in capsys.readouterr().err
    state = tmp_path / "state"
    state.mkdir()
    (state / "autoscaler-state.json").write_text("{broken")
    assert main(["serve", "--config", str(CONFIG), "--state-dir", str(state)]) == 2
    assert "cannot be read back" in capsys.readouterr().err
    for text in ("{}", '{"services": {}}'):  # emptied, or cut to part of a state: no fresh start in silence
        (state / "autoscaler-state.json").write_text(text)
        assert main(["serve", "--config", str(CONFIG), "--state-dir", str(state)]) == 2
        err = capsys.readouterr().err
        assert "holds no autoscaler state (no 'last_time'" in err
        assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # each started the server; every /v1/solve and /v1/step then answered 400 'solve: seed=-1 ...'
        ("seed: -1\n", "seed=-1: Input should be greater than or equal to 0"),
        ("time_limit_s: 100000\nmax_time_limit_s: 100000\n", "time_limit_s=100000: Input should be less than or"),
        ("max_time_limit_s: 1e9\n", "max_time_limit_s='1e9': Input should be less than or equal to 86400"),
        ("startup_delay_s: 1e12\n", "startup_delay_s='1e12': Input should be less than or equal to 1000000000"),
    ],
)
def test_values_solve_would_refuse_are_refused_at_start_up(tmp_path: Path, settings: str, expected: str) -> None:
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(settings)
    with pytest.raises(InputError) as err:
        load_service_config(cfg)
    assert str(err.value).startswith(f"Service config '{cfg}': {expected}")


def test_prometheus_url_without_scheme_is_refused_at_start_up(tmp_path: Path) -> None:
    # 'prometheus:9090' used to pass the config and fail every step without metrics as the caller's 400
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"policy: {DEMO / 'policy.yaml'}\nprometheus:\n  url: prometheus:9090\n")
    with pytest.raises(InputError) as err:
        load_service_config(cfg)
    assert str(err.value) == (
        f"Service config '{cfg}': prometheus: url='prometheus:9090' must be an http:// or https:// URL with a host"
    )


def test_missing_extras_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from hetero_opt.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--config", str(CONFIG)]) == 2
    assert "uvicorn is not installed: pip install 'hetero_opt[serve]'" in capsys.readouterr().err
