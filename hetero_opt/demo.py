"""``python -m hetero_opt.demo`` (``make demo``): solve the bundled instances and print the figures.

:func:`run_placement_demo` solves every instance in ``instances/`` with greedy and CP-SAT, checks
each plan with the independent verifier and prints one table. Further demo parts (an autoscaler
replay) are appended in :func:`main`.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from hetero_opt.cli import _console, collect_instance_files, served_gpus
from hetero_opt.io import load_instance
from hetero_opt.placement.solve import solve
from hetero_opt.placement.verify import verify

INSTANCES_DIR = Path(__file__).resolve().parent.parent / "instances"
DEMO_SOLVERS = ("greedy", "cpsat")


def run_placement_demo(
    console: Console | None = None,
    folder: Path = INSTANCES_DIR,
    solvers: tuple[str, ...] = DEMO_SOLVERS,
    time_limit: float = 2.0,
) -> bool:
    """Solve every bundled instance with every solver, print one table; True if all plans verify.

    Parameters
    ----------
    console
        Where to print (default: a new console of at least 120 columns).
    folder
        Folder of instance files.
    solvers
        Solver names passed to :func:`hetero_opt.solve`.
    time_limit
        Time limit per solve in seconds.
    """
    console = console or _console()
    table = Table(title="Placement of the bundled instances (instances/README.md has the known answers)")
    for head in ("instance", "solver", "status", "served GPUs", "unserved GPUs", "premium cost", "new groups"):
        table.add_column(
            head, justify="left" if head in ("instance", "solver", "status") else "right", no_wrap=head == "instance"
        )
    table.add_column("time (s)", justify="right")
    table.add_column("verified", justify="center")
    all_ok = True
    for path in collect_instance_files([str(folder)]):
        instance = load_instance(path)
        for solver in solvers:
            result = solve(instance, solver, time_limit=time_limit, seed=0)
            ok = not verify(instance, result.plan)
            all_ok &= ok
            table.add_row(
                path.stem,
                solver,
                result.status,
                str(served_gpus(instance, result)),
                str(sum(result.score.unserved_gpus)),
                str(result.score.premium_cost),
                str(result.score.new_groups),
                f"{result.wall_time_s:.3f}",
                "[green]✓[/green]" if ok else "[red]✗[/red]",
            )
    console.print(table)
    return all_ok


def main() -> int:
    """Run every demo part; exit code 1 if a bundled plan fails verification or the verifier rejected
    a solver's plan during the replay (``solve()`` then falls back to greedy and says so)."""
    ok = run_placement_demo()
    ok = run_autoscaler_demo() and ok
    return 0 if ok else 1


def run_autoscaler_demo() -> bool:
    """Replay one day of ServeGen m-large decode TPS through the autoscaler (CP-SAT placement)."""
    from hetero_opt.autoscaler import Autoscaler
    from hetero_opt.policy.config import load_policy_config
    from hetero_opt.replay import decisions_table, load_metrics, replay

    root = INSTANCES_DIR / "autoscale"
    config = load_policy_config(root / "policy.yaml")
    autoscaler = Autoscaler(config, "cpsat", time_limit=1.0, startup_delay_s=300)
    series = load_metrics(root / "metrics.csv")
    decisions = [d for d, _ in replay(autoscaler, load_instance(root / "cluster.yaml"), series)]
    console = Console(width=170)
    console.print(decisions_table(decisions, only_changes=True))
    ok = all(d.placement is None or not d.placement.fallback_reason.startswith("verifier") for d in decisions)
    rows = [s for d in decisions for s in d.services]
    console.print(
        f"{len(decisions)} cycles replayed: {sum(d.placement is not None for d in decisions)} placements, "
        f"{sum(d.drain is not None for d in decisions)} soft scale-ins (drains), "
        f"{sum(s.moved_from is not None for s in rows)} P:D ratio moves, "
        f"{sum(s.reinstated_units for s in rows)} units reinstated, {sum(s.deleted_units for s in rows)} deleted, "
        f"{sum(bool(s.alerts) for s in rows)} cycles with alerts"
    )
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
