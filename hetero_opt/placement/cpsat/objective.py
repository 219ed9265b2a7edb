"""Objective terms of the CP-SAT model as integer linear forms, matching ``placement.objective``.

Each term is a :class:`Linear` (variables with integer coefficients) so that the staged solver can
evaluate it on any complete assignment (hint or incumbent) without asking the solver.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from hetero_opt.placement.binding import CountKey
from hetero_opt.placement.cpsat.variables import InSlot, OutSlot
from hetero_opt.placement.objective import gpu_cost
from hetero_opt.topology import TopologyView


@dataclass
class Linear:
    """``sum coef * var``; ``expr()`` for the model, ``value(values)`` on an assignment."""

    vars: list[cp_model.IntVar] = field(default_factory=list)
    coefs: list[int] = field(default_factory=list)

    def add(self, var: cp_model.IntVar, coef: int) -> None:
        """Append ``coef * var``."""
        if coef:
            self.vars.append(var)
            self.coefs.append(coef)

    def expr(self) -> cp_model.LinearExprT:
        """The model expression."""
        return cp_model.LinearExpr.weighted_sum(self.vars, self.coefs)

    def value(self, values: list[int]) -> int:
        """Value on a complete assignment indexed by variable index."""
        return sum(c * values[v.index] for v, c in zip(self.vars, self.coefs, strict=True))

    def lowest(self, upper: list[int]) -> int:
        """Smallest value over every assignment within ``[0, upper]``: a trivial lower bound."""
        return sum(min(0, c) * upper[v.index] for v, c in zip(self.vars, self.coefs, strict=True))


def served_gpus(outs: list[OutSlot], ins: list[InSlot]) -> dict[int, Linear]:
    """GPUs served (added or removed) per priority class."""
    out: defaultdict[int, Linear] = defaultdict(Linear)
    for o in outs:
        out[o.request.service.priority].add(o.units, o.request.service.gpus_per_unit)
    for i in ins:
        out[i.request.service.priority].add(i.units, i.request.service.gpus_per_unit)
    return dict(out)


def premium_cost(view: TopologyView, outs: list[OutSlot], ins: list[InSlot]) -> Linear:
    """Premium cost: GPUs added times their cost minus GPUs removed times their cost."""
    lin = Linear()
    for sign, slots in ((1, outs), (-1, ins)):
        for slot in slots:
            svc = slot.request.service
            per_gpu: dict[CountKey, int] = {}
            for key, var in sorted(slot.pods.items()):
                if key not in per_gpu:
                    per_gpu[key] = svc.role(key[0]).gpus_per_pod * gpu_cost(view, svc.id, *key)
                lin.add(var, sign * per_gpu[key])
    return lin


def groups_term(outs: list[OutSlot], ins: list[InSlot]) -> Linear:
    """``(E+1) * new_groups - emptied_groups`` (exactly lexicographic, E = emptiable groups)."""
    k = len(ins) + 1
    lin = Linear()
    for o in outs:
        if o.open is not None:
            lin.add(o.open, k)
    for i in ins:
        lin.add(i.emptied, -1)
    return lin
