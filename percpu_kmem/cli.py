"""Command line: run a scenario over seeds, replay a trace, list scenarios.

    percpu-kmem run                       # the default scenario, 200 seeds
    percpu-kmem run irq-lock --seeds 500 --policy pct
    percpu-kmem list
"""

from __future__ import annotations

import sys
import time

import click

from .runtime.policies import POLICIES
from .scenarios import DEFAULT_SCENARIO, SCENARIOS, explore_scenario


@click.group()
def main() -> None:
    """percpu_kmem: kernel memory allocation on a simulated SMP machine."""


@main.command("list")
def list_scenarios() -> None:
    """List the scenarios."""
    for sc in SCENARIOS.values():
        click.echo(f"{sc.name:18} {sc.doc}")


@main.command("run")
@click.argument("name", default=DEFAULT_SCENARIO, type=click.Choice(sorted(SCENARIOS)))
@click.option("--seeds", default=200, show_default=True, help="How many seeds to explore (0..N-1).")
@click.option("--first-seed", default=0, show_default=True)
@click.option("--cpus", default=2, show_default=True)
@click.option("--tasks", type=int, default=None, help="Kernel threads (default: the scenario's).")
@click.option("--iterations", type=int, default=None)
@click.option("--policy", default="random", show_default=True, type=click.Choice(POLICIES))
@click.option("--fixed", is_flag=True, help="Run the corrected version of the scenario.")
def run(name: str, seeds: int, first_seed: int, cpus: int, tasks: int | None, iterations: int | None,
        policy: str, fixed: bool) -> None:
    """Explore scenario NAME over seeds and summarise the bugs found."""
    t0 = time.perf_counter()
    res = explore_scenario(name, seeds=range(first_seed, first_seed + seeds), cpus=cpus, policy=policy,
                           tasks=tasks, iterations=iterations, fixed=fixed)
    dt = time.perf_counter() - t0
    click.echo(f"scenario {name} ({'fixed' if fixed else 'buggy'}): {res['runs']} runs, policy={policy}, "
               f"cpus={cpus}, {res['runs'] / dt:.0f} runs/s")
    click.echo(f"runs showing a bug: {len(res['buggy_seeds'])}/{res['runs']}")
    for kind, n in sorted(res["report_kinds"].items()):
        click.echo(f"  {kind}: {n} reports")
    first = res["first"]
    if first:
        click.echo(f"\nfirst failing seed: {first['seed']}  result: {first['result']}")
        for text in first["reports"][:3]:
            click.echo("\n" + text)
        if first["replay"]:
            click.echo("\n" + first["replay"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "list_scenarios", "run"]
