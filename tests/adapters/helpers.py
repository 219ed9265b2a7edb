"""Shared helpers of the adapter tests: fixture paths and manifest validation against real schemas."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema

from hetero_opt.adapters.k8s_objects import to_dict, to_model

DATA = Path(__file__).parent / "data"
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    "LeaderWorkerSet": "leaderworkerset.v1.json",
    "RoleBasedGroup": "rolebasedgroup.v1alpha1.json",
}


def _strict(schema: Any) -> Any:
    """Unknown fields are an error: the API server would prune them silently."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def assert_round_trips(obj: dict[str, Any], model: str) -> None:
    """``obj`` survives the kubernetes client model unchanged: no unknown, misplaced or mistyped field."""
    assert to_dict(to_model(copy.deepcopy(obj), model)) == obj, f"{model} drops or changes fields"


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Validate one manifest: core/apps kinds through the client's models, CRDs through their schemas."""
    kind = manifest["kind"]
    if kind == "Deployment":
        assert manifest["apiVersion"] == "apps/v1"
        assert_round_trips(manifest, "V1Deployment")
        return
    schema = _strict(json.loads((SCHEMAS / CRD_SCHEMAS[kind]).read_text()))
    jsonschema.validate(manifest, schema)
    assert_round_trips(manifest["metadata"], "V1ObjectMeta")
    for template in pod_templates(manifest):
        assert_round_trips(template, "V1PodTemplateSpec")


def pod_templates(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod template of a manifest, in role order."""
    spec = manifest["spec"]
    if manifest["kind"] == "Deployment":
        return [spec["template"]]
    if manifest["kind"] == "LeaderWorkerSet":
        return [spec["leaderWorkerTemplate"]["workerTemplate"]]
    return [r["template"] for r in spec["roles"]]
