"""Reading and writing instance files (JSON or YAML) with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hetero_opt.errors import InputError
from hetero_opt.instance import Instance

M = TypeVar("M", bound=BaseModel)

_KINDS = {
    "gpu_types": "GpuType",
    "nodes": "Node",
    "subgroups": "RdmaSubgroup",
    "services": "Service",
    "groups": "DeploymentGroup",
    "requests": "ScalingRequest",
}


def parse_instance(data: object, source: str = "<instance>") -> Instance:
    """Validate already-parsed data; raise :class:`InputError` naming entity, field and value."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return Instance.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {describe_error(exc, data)}") from None


def load_instance(path: str | Path) -> Instance:
    """Load and validate an instance file (``.json``, ``.yaml`` or ``.yml``)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(f"{p}: cannot read file ({exc.strerror})") from None
    return loads_instance(text, p)


def loads_instance(text: str, path: str | Path) -> Instance:
    """Decode and validate the text of an instance file; ``path`` gives the format (suffix) and the error's name."""
    p = Path(path)
    try:
        data = yaml.safe_load(text) if p.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise InputError(f"{p}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_instance(data, str(p))


def save_instance(instance: Instance, path: str | Path) -> None:
    """Write ``instance`` as JSON or YAML (by suffix), atomically."""
    p = Path(path)
    data = instance.model_dump(mode="json", exclude_defaults=False)
    text = (
        yaml.safe_dump(data, sort_keys=False) if p.suffix.lower() in (".yaml", ".yml") else json.dumps(data, indent=1)
    )
    write_atomic(p, text)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never a partial file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def describe_error(exc: ValidationError, data: dict[str, Any]) -> str:
    """One line for the first error: entity (by its id), field and value."""
    err = exc.errors()[0]
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    loc = list(err["loc"])
    entity = ""
    if len(loc) >= 2 and loc[0] in _KINDS and isinstance(loc[1], int):
        items = data.get(str(loc[0]))
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        ident = item.get("id", item.get("service")) if isinstance(item, dict) else None
        entity = f"{_KINDS[str(loc[0])]} '{ident}'" if ident is not None else f"{loc[0]}[{loc[1]}]"
        loc = loc[2:]
    field = ".".join(str(x) for x in loc) or "(entry)"
    value = err.get("input")
    if err["type"] == "missing":
        shown = "missing"
    elif isinstance(value, (dict, list)):
        shown = type(value).__name__
    else:
        shown = repr(value)
    head = f"{entity}: " if entity else ""
    return f"{head}{field}={shown}: {msg}"


def load_yaml_model(path: Path, model: type[M], what: str, defaults: dict[str, Any] | None = None) -> M:
    """Read a YAML file into ``model``; one-line :class:`InputError` naming ``what``, the file and field.

    ``defaults`` fill keys the file leaves out (when it holds a mapping).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{what} '{path}': cannot read: {exc}") from exc
    if isinstance(data, dict) and defaults:
        data = {**defaults, **data}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"{what} '{path}': {loc}: {msg}") from exc
