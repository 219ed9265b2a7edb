"""Hypothesis strategies over the instance model, raw file bytes and mutations of instance dicts.

:func:`instance_dicts` builds mostly valid instances (a small topology tree, P/D and MoE services,
existing groups that fit their nodes, requests inside the unit limits) with adversarial ids: ids
reused across topology levels, ``@`` and ``#`` in ids, existing groups named like the ids new
groups get. :func:`mutations` changes one thing in any instance dict.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from typing import Any

from hypothesis import strategies as st

GPU_TYPES = ("H20", "L20")
#: Values a mutation writes anywhere: type confusion, bounds, non-finite numbers, awkward ids.
NASTY: tuple[object, ...] = (
    None,
    True,
    -1,
    0,
    1,
    64,
    65,
    10**6,
    10**6 + 1,
    2**31,
    2**63,
    -(2**63),
    0.5,
    1e308,
    math.inf,
    math.nan,
    "",
    "x" * 201,
    "a@b",
    "svc#2",
    "c",
    "H20",
    "é",
    "\n",
    [],
    {},
    [1, 2],
    {"id": "x"},
)


@st.composite
def instance_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A small instance dict: usually valid, sometimes with ids shared across levels."""
    clash = draw(st.booleans()) and draw(st.integers(0, 9)) == 0  # ~5 %: reuse an id across levels
    nodes: list[dict[str, Any]] = []
    for c in range(draw(st.integers(1, 2))):
        cluster = f"c{c}"
        for b in range(draw(st.integers(1, 2))):
            s2 = f"c{c}-b{b}" if not clash else draw(st.sampled_from([f"c{c}-b{b}", f"c{1 - c}", cluster]))
            for a in range(draw(st.integers(1, 2))):
                s1 = f"{s2}-{a}"
                gpu = draw(st.sampled_from(GPU_TYPES))
                for i in range(draw(st.integers(1, 3))):
                    if draw(st.integers(0, 3)) == 0:  # a mixed S1 (high tier)
                        gpu = draw(st.sampled_from(GPU_TYPES))
                    total = draw(st.sampled_from([4, 8]))
                    nodes.append(
                        {
                            "id": f"n{c}.{b}.{a}.{i}",  # unique even when switch ids clash
                            "gpu_type": gpu,
                            "gpus_total": total,
                            "gpus_free": total,
                            "cluster": cluster,
                            "s2": s2,
                            "s1": s1,
                        }
                    )
    services = [_service(draw, k) for k in range(draw(st.integers(1, 3)))]
    used: defaultdict[str, int] = defaultdict(int)
    groups: list[dict[str, Any]] = []
    units: defaultdict[str, int] = defaultdict(int)
    for svc in services:
        for _ in range(draw(st.integers(0, 2))):
            g = _group(draw, svc, nodes, used, len(groups))
            if g is not None:
                groups.append(g[0])
                units[svc["id"]] += g[1]
    for n in nodes:
        n["gpus_free"] = n["gpus_total"] - used[n["id"]] - draw(st.integers(0, n["gpus_total"] - used[n["id"]]))
    requests = []
    for svc in services:
        cur = units[svc["id"]]
        svc["min_units"] = draw(st.integers(0, cur + 1))  # sometimes below min already
        svc["max_units"] = draw(st.integers(max(cur, svc["min_units"]), cur + 6))
        if draw(st.integers(0, 4)):
            req: dict[str, Any] = {
                "service": svc["id"],
                "target_units": draw(st.integers(svc["min_units"], svc["max_units"])),
            }
            if draw(st.integers(0, 4)) == 0:  # ~20 %: a gang (format 1.1)
                req["all_or_nothing"] = True
            requests.append(req)
    subgroups = []
    if draw(st.integers(0, 3)) == 0:
        s2s = sorted({n["s2"] for n in nodes})
        subgroups.append({"id": "sg", "tier": draw(st.sampled_from(["low", "medium", "high"])), "s2s": s2s[:1]})
    return {
        "format_version": "1.1",
        "name": "fuzz",
        "gpu_types": [{"id": t} for t in GPU_TYPES],
        "nodes": nodes,
        "subgroups": subgroups,
        "services": services,
        "groups": groups,
        "requests": requests,
    }


def _service(draw: st.DrawFn, k: int) -> dict[str, Any]:
    kind = draw(st.integers(0, 7))
    moe, single = kind < 2, kind == 7  # ~25 % MoE, ~12 % aggregated ('serve', format 1.1)
    sid = draw(st.sampled_from([f"svc{k}", f"svc{k}@x", f"s.{k}"]))
    sizes = st.sampled_from([1, 2, 3, 4, 8])  # 3 breaks the divisibility chain (node-level rows)
    types = st.sampled_from([["H20"], ["L20"], ["H20", "L20"], ["L20", "H20"]])
    if moe:
        roles = [
            {"name": "prefill-attn", "gpus_per_pod": draw(sizes), "gpu_types": draw(types)},
            {"name": "prefill-ffn", "gpus_per_pod": draw(sizes), "gpu_types": draw(types)},
            {"name": "decode", "gpus_per_pod": draw(sizes), "gpu_types": draw(types)},
        ]
    elif single:
        roles = [{"name": "serve", "gpus_per_pod": draw(sizes), "gpu_types": draw(types)}]
    else:
        roles = [
            {"name": "prefill", "gpus_per_pod": draw(sizes), "gpu_types": draw(types)},
            {"name": "decode", "gpus_per_pod": draw(sizes), "gpu_types": draw(types)},
        ]
    svc: dict[str, Any] = {
        "id": sid,
        "priority": draw(st.integers(0, 3)),
        "affinity": draw(st.sampled_from(["s1", "s2"] if moe else ["s1", "s2", "cluster"])),
        "roles": roles,
        "pd_ratio": {"prefill": draw(st.integers(1, 2)), "decode": draw(st.integers(1, 2))},
        "max_new_groups": draw(st.integers(0, 3)),
    }
    if moe:
        svc["attn_ffn_ratio"] = {"prefill": draw(st.integers(1, 2)), "decode": draw(st.integers(1, 2))}
    if single:
        del svc["pd_ratio"]
    return svc


def _per_unit(svc: dict[str, Any]) -> dict[str, int]:
    if "pd_ratio" not in svc:  # aggregated: a unit is one 'serve' pod
        return {"serve": 1}
    p, d = svc["pd_ratio"]["prefill"], svc["pd_ratio"]["decode"]
    if "attn_ffn_ratio" not in svc:
        return {"prefill": p, "decode": d}
    a, f = svc["attn_ffn_ratio"]["prefill"], svc["attn_ffn_ratio"]["decode"]
    return {"prefill-attn": p * a, "prefill-ffn": p * f, "decode": d}


def _group(
    draw: st.DrawFn, svc: dict[str, Any], nodes: list[dict[str, Any]], used: defaultdict[str, int], k: int
) -> tuple[dict[str, Any], int] | None:
    """An existing group of 1-2 units in one domain, packed first-fit; None when it does not fit."""
    level = {"s1": "s1", "s2": "s2", "cluster": "cluster"}[svc["affinity"]]
    domain = draw(st.sampled_from(sorted({n[level] for n in nodes})))
    n_units = draw(st.integers(1, 2))
    roles = {r["name"]: r for r in svc["roles"]}
    trial = dict(used)
    pods: dict[tuple[str, str], int] = defaultdict(int)
    for role, per_unit in _per_unit(svc).items():
        r = roles[role]
        for _ in range(per_unit * n_units):
            fits = [
                n
                for n in nodes
                if n[level] == domain
                and n["gpu_type"] in r["gpu_types"]
                and n["gpus_total"] - trial.get(n["id"], 0) >= r["gpus_per_pod"]
            ]
            if not fits:
                return None
            n = fits[0]
            trial[n["id"]] = trial.get(n["id"], 0) + r["gpus_per_pod"]
            pods[(role, n["id"])] += 1
    used.update(trial)
    gid = draw(st.sampled_from([f"{svc['id']}@{domain}", f"g{k}", f"{svc['id']}@{domain}#2"]))
    return (
        {
            "id": gid,
            "service": svc["id"],
            "domain": domain,
            "pods": [{"role": r, "node": n, "count": c} for (r, n), c in sorted(pods.items())],
        },
        n_units,
    )


def _paths(data: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every key path inside ``data`` (dicts and lists), the root excluded."""
    out: list[tuple[object, ...]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


@st.composite
def mutations(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with one to three changes: a value replaced, a key deleted, a list item duplicated."""
    out = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(out)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        *head, last = path
        parent: Any = out
        for key in head:
            parent = parent[key]
        kind = draw(st.sampled_from(["set", "set", "delete", "duplicate", "bump"]))
        if kind == "set":
            parent[last] = copy.deepcopy(draw(st.sampled_from(NASTY)))  # never share NASTY's lists
        elif kind == "delete":
            del parent[last]
        elif kind == "duplicate" and isinstance(parent, list) and isinstance(last, int):
            parent.append(copy.deepcopy(parent[last]))
        elif isinstance(parent[last], int) and not isinstance(parent[last], bool):
            parent[last] += draw(st.sampled_from([-1, 1, 7, 10**6]))
    return out


def byte_mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    """``raw`` truncated, with bytes flipped, or with a random chunk spliced in."""
    n = len(raw)
    truncate = st.integers(0, n).map(lambda k: raw[:k])
    flip = st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda edits: _flip(raw, edits)
    )
    splice = st.tuples(st.integers(0, n), st.binary(max_size=64)).map(lambda t: raw[: t[0]] + t[1] + raw[t[0] :])
    return st.one_of(truncate, flip, splice, st.binary(max_size=256))


def _flip(raw: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(raw)
    for i, b in edits:
        if buf:
            buf[i % len(buf)] = b
    return bytes(buf)
