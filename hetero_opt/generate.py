"""Synthetic placement instances: realistic fleets, services, deployment groups and requests.

``generate_instance(family, seed, **overrides)`` builds a validated :class:`~hetero_opt.Instance`.
The network tree cluster → S2 → S1 → S0 → node is synthetic (no public node list carries one);
node GPU mixes come from real fleets (:mod:`hetero_opt.fleets`). Most S2s are homogeneous (low
tier), some mix GPU types over homogeneous S1s (medium), a few hold S1s that mix types (high).
Occupancy is drawn per S1 (50–80 % of GPUs used by default) in pod-sized chunks, so a node's free
GPUs are 0, 1, 2, 4 or 8 (capped by its size); existing deployment groups are placed inside the
used GPUs. The ``contention`` family is built by hand so that the greedy's request-by-request order
loses priority demand or burns premium tiers that a joint plan spares.

The same family, seed and overrides give the same instance, byte for byte.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetero_opt.fleets import GPU_MEMORY_GB, FleetMix, get_fleet
from hetero_opt.instance import COLUMNS_FORMAT_VERSION, NODE_FIELDS, POD_FIELDS, ROWS_FORMAT_VERSION, Instance

Rng = np.random.Generator


@dataclass(frozen=True)
class FamilySpec:
    """Parameters of a synthetic family; every field can be overridden by keyword."""

    description: str
    num_nodes: int
    s1_nodes: tuple[int, int]
    s2_s1s: tuple[int, int]
    num_clusters: int
    num_services: int
    num_requests: int
    fleet: str = "h20l20"
    p_medium: float = 0.2
    p_high: float = 0.1
    occupancy: tuple[float, float] = (0.5, 0.8)
    moe_share: float = 0.0
    max_step: int = 6
    max_current: int = 8
    rack_nodes: int = 8


SPECS: dict[str, FamilySpec] = {
    "tiny": FamilySpec("~10 nodes, H20/L20, 4 services, 3 requests", 10, (2, 4), (1, 3), 1, 4, 3, max_step=3),
    "small": FamilySpec("~100 nodes, H20/L20, 12 services, 6 requests", 100, (8, 16), (2, 4), 1, 12, 6),
    "medium": FamilySpec(
        "~1,000 nodes, PAI-2020 GPU mix (V100/P100/T4/MISC), 40 services, 15 requests",
        1000,
        (32, 64),
        (4, 8),
        2,
        40,
        15,
        fleet="pai2020",
    ),
    "large": FamilySpec("~5,000 nodes, H20/L20, 100 services, 30 requests", 5000, (32, 96), (4, 12), 2, 100, 30),
    "production": FamilySpec(
        "20,480 nodes / 163,840 GPUs, H20/L20, >300 S1s, 200 services, 50 requests",
        20480,
        (32, 80),
        (4, 12),
        4,
        200,
        50,
        max_step=12,
        max_current=12,
    ),
    "heavy": FamilySpec(
        "production size at ~85 % occupancy: 20,480 nodes, 200 services, 100 requests (issue 8)",
        20480,
        (32, 80),
        (4, 12),
        4,
        200,
        100,
        occupancy=(0.8, 0.9),
        max_step=12,
        max_current=12,
    ),
    "moe": FamilySpec(
        "~200 nodes, H20/L20, 12 services of which half disaggregated MoE (attn/ffn)",
        200,
        (16, 32),
        (2, 4),
        1,
        12,
        8,
        moe_share=0.5,
    ),
    "contention": FamilySpec(
        "30-100 nodes built so greedy's request order loses priority demand or burns premium tiers",
        0,
        (0, 0),
        (0, 0),
        1,
        0,
        0,
    ),
}
FAMILIES: tuple[str, ...] = tuple(SPECS)
FAMILY_DESCRIPTIONS: dict[str, str] = {name: spec.description for name, spec in SPECS.items()}

_PD_RATIOS = [(1, 1), (1, 2), (1, 3), (2, 1), (1, 4), (1, 5), (2, 3), (3, 1), (9, 1), (3, 2)]
_PD_WEIGHTS = [0.28, 0.22, 0.14, 0.08, 0.06, 0.04, 0.08, 0.04, 0.02, 0.04]
_MOE_PD = [(1, 1), (1, 2), (2, 1), (1, 3)]
_ATTN_FFN = [(1, 1), (1, 2), (2, 1), (1, 3)]
_POD_SIZES = [1, 2, 4, 8]
_POD_WEIGHTS = [0.1, 0.2, 0.3, 0.4]
_PRIORITIES = [100, 50, 10]
_PRIORITY_WEIGHTS = [0.2, 0.5, 0.3]
# Free GPUs as a fraction of a node, and two distributions mixed to hit an S1's occupancy.
_FREE_FRACTIONS = np.array([0.0, 0.125, 0.25, 0.5, 1.0])
_FULLISH = np.array([0.6, 0.1, 0.15, 0.1, 0.05])
_EMPTYISH = np.array([0.1, 0.05, 0.1, 0.25, 0.5])


#: Families of at least this many nodes are generated with columnar nodes and pods (format 1.3): their files
#: load 2-3x faster (docs/benchmarks.md, "Columnar nodes").
COLUMNAR_MIN_NODES = 1000


def generate_instance(family: str, seed: int, *, columnar: bool | None = None, **overrides: Any) -> Instance:
    """Build a synthetic instance of ``family`` from ``seed``.

    Parameters
    ----------
    family
        One of :data:`FAMILIES` (see :data:`FAMILY_DESCRIPTIONS`).
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives the same instance.
    columnar
        Hold the nodes and each group's pods as columns (a :class:`~hetero_opt.instance.NodeTable` and
        :class:`~hetero_opt.instance.PodTable`s, format 1.3: saved as columns,
        loaded fast) or as a list of nodes; by default columns from :data:`COLUMNAR_MIN_NODES` nodes on.
    **overrides
        Fields of :class:`FamilySpec` to change, e.g. ``num_nodes=500, fleet="pai2020"``.

    Returns
    -------
    Instance
        A validated instance named ``<family>-s<seed>``.
    """
    if family not in SPECS:
        raise ValueError(f"family='{family}' is not one of {list(FAMILIES)}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(FamilySpec)})
    if unknown:
        raise ValueError(f"override '{unknown[0]}' is not a FamilySpec field")
    spec = dataclasses.replace(SPECS[family], **overrides)
    rng = np.random.default_rng(seed)
    name = f"{family}-s{seed}"
    if family == "contention":
        data = _contention(rng, name, ["spill", "strict", "burn"][seed % 3])
    else:
        data = _Builder(spec, get_fleet(spec.fleet), rng).build(name)
    nodes = data["nodes"]
    if len(nodes) >= COLUMNAR_MIN_NODES if columnar is None else columnar:
        data["nodes"] = {f: [n.get(f) for n in nodes] for f in NODE_FIELDS}
        for g in data["groups"]:
            g["pods"] = {f: [p[f] for p in g["pods"]] for f in POD_FIELDS}
    else:  # rows need nothing of 1.2: the file stays readable by releases before it
        data["format_version"] = ROWS_FORMAT_VERSION
    return Instance.model_validate(data)


# ---------------------------------------------------------------------------------------------
# Generic families


def _pow2_floor(x: int) -> int:
    return 0 if x <= 0 else 1 << (x.bit_length() - 1)


class _Builder:
    """Builds the plain-data dict of one generic instance."""

    def __init__(self, spec: FamilySpec, fleet: FleetMix, rng: Rng) -> None:
        self.spec, self.fleet, self.rng = spec, fleet, rng
        weights = np.array([k.weight for k in fleet.kinds])
        self.kind_p = weights / weights.sum()
        self.nodes: list[dict[str, Any]] = []
        self.avail: list[int] = []  # used GPUs not yet taken by a generated group
        self.node_index: dict[tuple[str, str], list[int]] = {}  # (S1, type) -> node indices
        self.s1s_by_domain: dict[str, list[str]] = {}
        self.types_by_s1: dict[str, set[str]] = {}

    def build(self, name: str) -> dict[str, Any]:
        self._topology()
        services = [self._service(i) for i in range(self.spec.num_services)]
        groups: list[dict[str, Any]] = []
        requests: list[dict[str, Any]] = []
        for svc in services:
            groups.extend(self._groups(svc))
        current = Counter[str]()
        for g in groups:
            current[g["service"]] += g.pop("_units")
        for svc in services:
            cur = current[svc["id"]]
            svc["min_units"] = min(cur, int(self.rng.integers(0, 2)))
            svc["max_units"] = cur + self.spec.max_step + int(self.rng.integers(0, 10))
        n_req = min(self.spec.num_requests, len(services))
        picked = sorted(int(i) for i in self.rng.choice(len(services), size=n_req, replace=False))
        for i in picked:
            svc = services[i]
            cur = current[svc["id"]]
            if cur > svc["min_units"] and self.rng.random() < 0.2:
                target = int(self.rng.integers(svc["min_units"], cur))
            else:
                target = min(svc["max_units"], cur + int(self.rng.integers(1, self.spec.max_step + 1)))
            requests.append({"service": svc["id"], "target_units": target})
        types = self.fleet.gpu_types
        return {
            "format_version": COLUMNS_FORMAT_VERSION,
            "name": name,
            "gpu_types": [{"id": t, "memory_gb": GPU_MEMORY_GB.get(t)} for t in types],
            "nodes": self.nodes,
            "services": services,
            "groups": groups,
            "requests": requests,
        }

    # -- topology --------------------------------------------------------------------------

    def _pick_kind(self, avoid_type: str | None = None) -> int:
        p = self.kind_p.copy()
        if avoid_type is not None:
            mask = np.array([k.gpu_type != avoid_type for k in self.fleet.kinds])
            if mask.any():
                p = np.where(mask, p, 0.0)
                p = p / p.sum()
        return int(self.rng.choice(len(p), p=p))

    def _topology(self) -> None:
        spec, rng = self.spec, self.rng
        n_types = len(self.fleet.gpu_types)
        s2_count = 0
        while len(self.nodes) < spec.num_nodes:
            cluster = f"c{s2_count % spec.num_clusters}"
            s2 = f"{cluster}-b{s2_count // spec.num_clusters:03d}"
            s2_count += 1
            num_s1 = int(rng.integers(spec.s2_s1s[0], spec.s2_s1s[1] + 1))
            r = rng.random()
            kind = "low" if r >= spec.p_medium + spec.p_high else "medium" if r < spec.p_medium else "high"
            if s2_count in (2, 3):  # the second S2 is high, the third medium: every tier is present
                kind = "high" if s2_count == 2 else "medium"
            if n_types < 2:
                kind = "low"
            base = self._pick_kind()
            num_mixed = int(rng.integers(1, max(1, num_s1 // 3) + 1)) if kind == "high" else 0
            for j in range(num_s1):
                left = spec.num_nodes - len(self.nodes)
                if left <= 0:
                    break
                size = min(left, int(rng.integers(spec.s1_nodes[0], spec.s1_nodes[1] + 1)))
                if kind == "low" or j == 0:
                    kinds = [base]
                elif j == 1 or j < num_mixed + 1:
                    other = self._pick_kind(avoid_type=self.fleet.kinds[base].gpu_type)
                    kinds = [base, other] if kind == "high" and j <= num_mixed else [other]
                else:
                    kinds = [self._pick_kind()]
                self._s1(cluster, s2, f"{s2}-m{j:02d}", size, kinds)

    def _s1(self, cluster: str, s2: str, s1: str, size: int, kinds: list[int]) -> None:
        rng, spec = self.rng, self.spec
        occ = rng.uniform(*spec.occupancy)
        full_mean = float(_FULLISH @ _FREE_FRACTIONS)
        empty_mean = float(_EMPTYISH @ _FREE_FRACTIONS)
        lam = float(np.clip((1.0 - occ - full_mean) / (empty_mean - full_mean), 0.0, 1.0))
        p = (1 - lam) * _FULLISH + lam * _EMPTYISH
        fractions = _FREE_FRACTIONS[rng.choice(len(p), size=size, p=p / p.sum())]
        split = size if len(kinds) == 1 else max(1, min(size - 1, round(size * rng.uniform(0.3, 0.7))))
        for s1_key in (s1, s2, cluster):
            self.s1s_by_domain.setdefault(s1_key, [])
            if not self.s1s_by_domain[s1_key] or self.s1s_by_domain[s1_key][-1] != s1:
                self.s1s_by_domain[s1_key].append(s1)
        for i in range(size):
            k = self.fleet.kinds[kinds[0] if i < split else kinds[1]]
            free = min(k.gpus, _pow2_floor(int(fractions[i] * k.gpus)))
            idx = len(self.nodes)
            self.nodes.append(
                {
                    "id": f"{s1}-n{i:03d}",
                    "gpu_type": k.gpu_type,
                    "gpus_total": k.gpus,
                    "gpus_free": free,
                    "cluster": cluster,
                    "s2": s2,
                    "s1": s1,
                    "s0": f"{s1}-r{i // spec.rack_nodes}",
                }
            )
            self.avail.append(k.gpus - free)
            self.node_index.setdefault((s1, k.gpu_type), []).append(idx)
            self.types_by_s1.setdefault(s1, set()).add(k.gpu_type)

    # -- services --------------------------------------------------------------------------

    def _pick_type(self, exclude: set[str], min_gpus: int = 1) -> str | None:
        present = self.types_by_s1_union()
        weights = {t: w for t, w in self.fleet.type_weights().items() if t not in exclude and t in present}
        weights = {t: w for t, w in weights.items() if self.fleet.max_gpus(t) >= min_gpus}
        if not weights:
            return None
        names = sorted(weights)
        p = np.array([weights[t] for t in names])
        return names[int(self.rng.choice(len(names), p=p / p.sum()))]

    def types_by_s1_union(self) -> set[str]:
        """GPU types present on some node."""
        return set().union(*self.types_by_s1.values())

    def _role(self, name: str, primary: str) -> dict[str, Any]:
        rng = self.rng
        cap = self.fleet.max_gpus(primary)
        sizes = [s for s in _POD_SIZES if s <= cap]
        w = np.array(_POD_WEIGHTS[: len(sizes)])
        size = sizes[int(rng.choice(len(sizes), p=w / w.sum()))]
        types = [primary]
        if rng.random() < 0.5:
            alt = self._pick_type({primary}, size)
            if alt is not None:
                types.append(alt)
        return {"name": name, "gpus_per_pod": size, "gpu_types": types}

    def _service(self, i: int) -> dict[str, Any]:
        rng = self.rng
        moe = rng.random() < self.spec.moe_share
        prefill_type = self._pick_type(set())
        assert prefill_type is not None
        hetero = len(self.types_by_s1_union()) > 1 and rng.random() < 0.35
        decode_type = (self._pick_type({prefill_type}) if hetero else None) or prefill_type
        svc: dict[str, Any] = {
            "id": f"svc-{i:03d}",
            "priority": _PRIORITIES[int(rng.choice(3, p=_PRIORITY_WEIGHTS))],
            "max_new_groups": int(rng.integers(1, 5)),
        }
        if moe:
            pd = _MOE_PD[int(rng.integers(len(_MOE_PD)))]
            af = _ATTN_FFN[int(rng.integers(len(_ATTN_FFN)))]
            svc["affinity"] = "s1" if rng.random() < 0.4 else "s2"
            svc["roles"] = [
                self._role("prefill-attn", prefill_type),
                self._role("prefill-ffn", prefill_type),
                self._role("decode", decode_type),
            ]
            svc["attn_ffn_ratio"] = {"prefill": af[0], "decode": af[1]}
        else:
            pd = _PD_RATIOS[int(rng.choice(len(_PD_RATIOS), p=_PD_WEIGHTS))]
            svc["affinity"] = ["s1", "s2", "cluster"][int(rng.choice(3, p=[0.3, 0.4, 0.3]))]
            svc["roles"] = [self._role("prefill", prefill_type), self._role("decode", decode_type)]
        svc["pd_ratio"] = {"prefill": pd[0], "decode": pd[1]}
        return svc

    # -- existing groups -------------------------------------------------------------------

    def _groups(self, svc: dict[str, Any]) -> list[dict[str, Any]]:
        rng = self.rng
        if rng.random() < 0.2:
            return []
        units_left = int(rng.integers(1, self.spec.max_current + 1))
        num_groups = int(rng.integers(1, min(3, units_left) + 1))
        roles = {r["name"]: r for r in svc["roles"]}
        domains = self._domains(svc["affinity"], roles)
        out: list[dict[str, Any]] = []
        used_domains: set[str] = set()
        for k in range(num_groups):
            want = units_left if k == num_groups - 1 else int(rng.integers(1, units_left - (num_groups - k - 1) + 1))
            fresh = [d for d in domains if d not in used_domains]
            if not fresh or want <= 0:
                break
            domain = fresh[int(rng.integers(len(fresh)))]
            used_domains.add(domain)
            s1s = list(self.s1s_by_domain[domain])
            rng.shuffle(s1s)
            pods, units = self._place(svc, roles, s1s, want)
            units_left -= want
            if units:
                out.append(
                    {
                        "id": f"{svc['id']}-g{k}",
                        "service": svc["id"],
                        "domain": domain,
                        "pods": [
                            {"role": r, "node": self.nodes[n]["id"], "count": c} for (r, n), c in sorted(pods.items())
                        ],
                        "_units": units,
                    }
                )
        return out

    def _domains(self, affinity: str, roles: dict[str, dict[str, Any]]) -> list[str]:
        def ok(s1s: list[str]) -> bool:
            have = set().union(*(self.types_by_s1[s] for s in s1s))
            return all(have & set(r["gpu_types"]) for r in roles.values())

        level = {"s1": 0, "s2": 1, "cluster": 2}[affinity]
        out = []
        for dom, s1s in sorted(self.s1s_by_domain.items()):
            depth = dom.count("-")  # c0 -> 0, c0-b000 -> 1, c0-b000-m00 -> 2
            if 2 - depth == level and ok(s1s):
                out.append(dom)
        return out

    def _place(
        self, svc: dict[str, Any], roles: dict[str, dict[str, Any]], s1s: list[str], units: int
    ) -> tuple[Counter[tuple[str, int]], int]:
        pods: Counter[tuple[str, int]] = Counter()
        pd = svc["pd_ratio"]

        def take(role: str, region: list[str], taken: list[tuple[str, int]]) -> bool:
            r = roles[role]
            size = r["gpus_per_pod"]
            for t in r["gpu_types"]:
                for s1 in region:
                    for idx in self.node_index.get((s1, t), []):
                        if self.avail[idx] >= size:
                            self.avail[idx] -= size
                            taken.append((role, idx))
                            return True
            return False

        def undo(taken: list[tuple[str, int]]) -> None:
            for role, idx in taken:
                self.avail[idx] += roles[role]["gpus_per_pod"]

        placed = 0
        for _ in range(units):
            taken: list[tuple[str, int]] = []
            ok = True
            if "attn_ffn_ratio" in svc:
                af = svc["attn_ffn_ratio"]
                for _ in range(pd["prefill"]):
                    for s1 in s1s:
                        mark: list[tuple[str, int]] = []
                        if all(take("prefill-attn", [s1], mark) for _ in range(af["prefill"])) and all(
                            take("prefill-ffn", [s1], mark) for _ in range(af["decode"])
                        ):
                            taken.extend(mark)
                            break
                        undo(mark)
                    else:
                        ok = False
                        break
                plain = {"decode": pd["decode"]} if ok else {}
            else:
                plain = {"prefill": pd["prefill"], "decode": pd["decode"]}
            for role, n in plain.items():
                if not all(take(role, s1s, taken) for _ in range(n)):
                    ok = False
                    break
            if not ok:
                undo(taken)
                break
            placed += 1
            pods.update(taken)
        return pods, placed


# ---------------------------------------------------------------------------------------------
# Contention family


def _contention(rng: Rng, name: str, mode: str) -> dict[str, Any]:
    """A small instance where request-by-request greedy placement is provably short of a joint plan.

    Three modes (the family takes mode ``seed % 3``), with sizes and GPU-type roles drawn from the seed. ``A`` and ``B``
    are H20/L20 in random order; every core pod takes a whole 8-GPU node, a unit ``m = p + d`` nodes.

    - ``spill``: a high-priority cluster-affinity service ``hog`` (accepts A then B) needs all of
      the low and medium tiers plus ``x`` units, so it spills into the mixed (high-tier) S1s, where
      it takes A first; a lower-priority S1-affinity service ``het`` (prefill A, decode B) needs
      those S1s' A nodes. A joint plan puts hog's spill on B and serves het.
    - ``strict``: hog takes the one low-tier A S2 that an S2-affinity, A-only, single-new-group
      service ``strict`` needs whole; every other S2 has too few free A nodes, so strict loses
      units. A joint plan moves hog to the medium tier.
    - ``burn``: as ``strict``, but a mixed S2 can hold strict: nothing is lost, but strict lands
      on the high tier (weight 9) instead of hog on medium (3 + penalty 2).

    Background: one low-tier S2 with only partly free nodes (useless to 8-GPU pods) and small
    background services with existing groups and requests.
    """
    a, b = ("H20", "L20") if rng.random() < 0.5 else ("L20", "H20")
    p, d = [(1, 1), (1, 2), (2, 1)][int(rng.integers(0, 3))]
    m = p + d
    nodes: list[dict[str, Any]] = []
    used_nodes: list[str] = []
    s2_seq = 0

    def add_s2(s1_specs: list[list[tuple[str, int, int]]]) -> str:
        """Add an S2 whose S1s hold (type, whole-free nodes, full nodes) runs."""
        nonlocal s2_seq
        s2 = f"c0-b{s2_seq:02d}"
        s2_seq += 1
        for j, runs in enumerate(s1_specs):
            s1 = f"{s2}-m{j}"
            i = 0
            for gpu_type, free_nodes, full_nodes in runs:
                for k in range(free_nodes + full_nodes):
                    nid = f"{s1}-n{i:02d}"
                    free = 8 if k < free_nodes else 0
                    if free == 0:
                        used_nodes.append(nid)
                    nodes.append(_node(nid, gpu_type, free, s2, s1, i))
                    i += 1
        return s2

    def full() -> int:
        return int(rng.integers(1, 4))

    if mode == "spill":
        low_units = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 3)))]
        for u in low_units:
            t = a if rng.random() < 0.5 else b
            add_s2([[(t, u * m, full())], [(t, 0, full())]])
        med_units = int(rng.integers(1, 3))
        add_s2([[(a, med_units * m, full())], [(b, 0, full())]])
        het_units = [int(rng.integers(1, 3)) for _ in range(int(rng.integers(1, 3)))]
        x = int(rng.integers(1, 3))
        # hog's x spill units need x*m nodes; put them all as extra B in the first mixed S1.
        add_s2([[(a, u * p, 1), (b, u * d + (x * m if j == 0 else 0), 1)] for j, u in enumerate(het_units)])
        hog_units = sum(low_units) + med_units + x
        services = [
            _core("hog", 100, "cluster", [a, b], [a, b], p, d, 4),
            _core("het", 50, "s1", [a], [b], p, d, len(het_units)),
        ]
        requests = [("hog", hog_units), ("het", sum(het_units))]
    else:
        units = int(rng.integers(2, 5))
        add_s2([[(a, units * m, full())], [(a, 0, full())]])
        # Free A nodes of the medium S2s: fewer than strict needs (none in burn mode).
        short = int(rng.integers(0, units)) * m if mode == "strict" else 0
        for _ in range(int(rng.integers(1, 3))):
            add_s2([[(a, short, full())], [(b, units * m, full())]])
        if mode == "strict":
            add_s2([[(a, max(0, short - 1), 1), (b, units * m, 1)]])
        else:
            # Whole units per mixed S1: the greedy fills high-tier S1s one at a time.
            half = (units + 1) // 2
            add_s2([[(a, half * m, 1), (b, 1, 1)], [(a, (units - half) * m, 1), (b, 1, 1)]])
        services = [
            _core("hog", 100, "cluster", [a, b], [a, b], p, d, 4),
            _core("strict", 50, "s2", [a], [a], p, d, 1),
        ]
        requests = [("hog", units), ("strict", units)]
    groups: list[dict[str, Any]] = []
    # hog already runs one unit on used nodes (cluster domain), kept consistent with occupancy.
    hog_nodes = [n for n in nodes if n["id"] in set(used_nodes) and n["gpu_type"] in (a, b)][:m]
    if len(hog_nodes) == m:
        roles = ["prefill"] * p + ["decode"] * d
        groups.append(
            {
                "id": "hog-g0",
                "service": "hog",
                "domain": "c0",
                "pods": [{"role": r, "node": n["id"], "count": 1} for r, n in zip(roles, hog_nodes, strict=True)],
            }
        )
        requests[0] = ("hog", requests[0][1] + 1)
    # Background: a low-tier S2 of partly free nodes and small services living there.
    bg_type = a if rng.random() < 0.5 else b
    bg_s2 = f"c0-b{s2_seq:02d}"
    bg_nodes = int(rng.integers(8, 17))
    bg_free = [int(rng.choice([0, 1, 2, 4])) for _ in range(bg_nodes)]
    for i, free in enumerate(bg_free):
        nodes.append(_node(f"{bg_s2}-m0-n{i:02d}", bg_type, free, bg_s2, f"{bg_s2}-m0", i))
    bg_avail = [8 - f for f in bg_free]  # used GPUs that background groups may occupy
    for k in range(int(rng.integers(1, 4))):
        sid = f"bg{k}"
        size = int(rng.choice([1, 2]))
        pd_d = int(rng.integers(1, 3))
        services.append(_core(sid, 10, "s2", [bg_type], [bg_type], 1, pd_d, 2, size))
        merged: Counter[tuple[str, str]] = Counter()
        have = 0
        for _ in range(int(rng.integers(0, 3))):
            taken: list[tuple[str, int]] = []
            for role in ["prefill"] + ["decode"] * pd_d:
                i = next((i for i in range(bg_nodes) if bg_avail[i] >= size), -1)
                if i < 0:
                    break
                bg_avail[i] -= size
                taken.append((role, i))
            if len(taken) < 1 + pd_d:
                for _, i in taken:
                    bg_avail[i] += size
                break
            have += 1
            merged.update((role, f"{bg_s2}-m0-n{i:02d}") for role, i in taken)
        if have:
            groups.append(
                {
                    "id": f"{sid}-g0",
                    "service": sid,
                    "domain": bg_s2,
                    "pods": [{"role": r, "node": n, "count": c} for (r, n), c in sorted(merged.items())],
                }
            )
        requests.append((sid, have + int(rng.integers(1, 3))))
    return {
        "format_version": COLUMNS_FORMAT_VERSION,
        "name": f"{name}-{mode}",
        "gpu_types": [{"id": t, "memory_gb": GPU_MEMORY_GB[t]} for t in ("H20", "L20")],
        "nodes": nodes,
        "services": services,
        "groups": groups,
        "requests": [{"service": s, "target_units": t} for s, t in requests],
    }


def _node(nid: str, gpu_type: str, free: int, s2: str, s1: str, i: int) -> dict[str, Any]:
    return {
        "id": nid,
        "gpu_type": gpu_type,
        "gpus_total": 8,
        "gpus_free": free,
        "cluster": "c0",
        "s2": s2,
        "s1": s1,
        "s0": f"{s1}-r{i // 8}",
    }


def _core(
    sid: str,
    priority: int,
    affinity: str,
    prefill: list[str],
    decode: list[str],
    p: int,
    d: int,
    max_new: int,
    size: int = 8,
) -> dict[str, Any]:
    return {
        "id": sid,
        "priority": priority,
        "affinity": affinity,
        "roles": [
            {"name": "prefill", "gpus_per_pod": size, "gpu_types": prefill},
            {"name": "decode", "gpus_per_pod": size, "gpu_types": decode},
        ],
        "pd_ratio": {"prefill": p, "decode": d},
        "max_units": 10_000,
        "max_new_groups": max_new,
    }
