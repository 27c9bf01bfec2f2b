"""Automation portfolios: the check of the chosen set against brute force, and what racing saves.

1. The shipped ``four_tools`` catalogue (CRM data automation, instant routing, sales engagement, predictive scoring
   requiring CRM; one start month each; budget 200,000; 20 replications) at seeds 1-7: every feasible portfolio is
   simulated jointly with the same random numbers, and the chosen portfolio is compared with the best of them
   (paired 95% interval of best − chosen).
2. The shipped ``example`` catalogue on the baseline, with racing and without: run time (wall and CPU), replications
   run and saved, and whether the choice is the same.

Run with ``.venv/bin/python benchmarks/automation_check.py [--seeds 1 2 ...] [--skip-shipped]`` (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import itertools
import time

from engine import simulate
from optimizers.automation import AutomationOptions, Estimate, Simulations, plan_automation
from optimizers.automation_catalogue import Catalogue, item_cost, load_catalogue
from scenarios import Scenario, load_scenario

BUDGET = 200_000.0


def cached_engine():
    """The engine, remembering what it simulated, so that brute force reuses the optimizer's simulations."""
    done = {}

    def run(scenario: Scenario, replications: int, seed: int):
        key = (scenario.model_dump_json(exclude={"name", "description"}), replications, seed)
        if key not in done:
            done[key] = simulate(scenario, replications, seed)
        return done[key]

    return run


def feasible_portfolios(scenario: Scenario, catalogue: Catalogue, starts: dict[str, list[int]], staffed, budget: float):
    """Every portfolio the rules allow, by enumeration: at most one start per item, prerequisites started by then,
    no exclusions, the spend (one-time, monthly and per-rep costs on the expected staff) within the budget."""
    names = list(starts)
    for choice in itertools.product(*([None, *starts[name]] for name in names)):
        portfolio = {name: start for name, start in zip(names, choice) if start is not None}
        if any(portfolio.get(other, 10**6) > start for name, start in portfolio.items() for other in catalogue.items[name].requires):
            continue
        if any(catalogue.excluded(a, b) for a, b in itertools.combinations(portfolio, 2)):
            continue
        if sum(item_cost(scenario, catalogue.items[name], start, staffed).sum() for name, start in portfolio.items()) <= budget + 1e-6:
            yield portfolio


def brute_force(scenario: Scenario, catalogue: Catalogue, seed: int, replications: int, run) -> dict[str, object]:
    """The optimizer's choice against the best feasible portfolio, every one simulated jointly with the same random
    numbers (the optimizer's batches): ``lead`` is best − chosen, paired, with its 95% interval."""
    report = plan_automation(scenario, catalogue, AutomationOptions(budget=BUDGET, replications=replications, seed=seed), run)
    simulations = Simulations(scenario, catalogue, AutomationOptions(budget=BUDGET, replications=replications, seed=seed), seed, run)
    staffed = simulations.outcome({}).staffed
    values = {}
    for portfolio in feasible_portfolios(scenario, catalogue, report.valuation.starts, staffed, BUDGET):
        simulations.outcome(portfolio)  # every one with all its replications, even those racing stopped
        values[frozenset(portfolio.items())] = simulations.value(portfolio)
    best = dict(max(values, key=lambda key: values[key].mean))
    chosen = report.portfolio.starts
    lead = Estimate.of(simulations.outcome(best).margins - simulations.outcome(chosen).margins)
    return {"report": report, "best": best, "chosen": chosen, "lead": lead, "feasible": len(values)}


def four_items(seeds: list[int], replications: int) -> None:
    scenario, catalogue = load_scenario("baseline"), load_catalogue("four_tools")
    run = cached_engine()
    print(f"four_tools catalogue, budget {BUDGET:,.0f}, {replications} replications")
    for seed in seeds:
        began = time.perf_counter()
        found = brute_force(scenario, catalogue, seed, replications, run)
        report, lead, check = found["report"], found["lead"], found["report"].check
        verdict = "best" if found["best"] == found["chosen"] else ("within the interval" if lead.low <= 0 else "WORSE")
        comparison = check.comparison
        print(
            f"  seed {seed}: chosen {'+'.join(sorted(found['chosen']))} ({verdict}; best − chosen {lead.mean / 1e6:.2f}M "
            f"[{lead.low / 1e6:.2f}, {lead.high / 1e6:.2f}] over {found['feasible']} feasible); model's first choice "
            f"{'+'.join(sorted(check.checked[0].portfolio.starts))}; {len(check.checked)} simulated jointly, stopped: {check.stopped}; "
            f"chosen − runner-up {comparison.mean / 1e6:.2f}M [{comparison.low / 1e6:.2f}, {comparison.high / 1e6:.2f}]; "
            f"{time.perf_counter() - began:.0f} s"
        )


def shipped(replications: int, budget: float) -> None:
    scenario, catalogue = load_scenario("baseline"), load_catalogue("example")
    print(f"shipped catalogue 'example' on baseline, budget {budget:,.0f}, {replications} replications")
    choices = {}
    for racing in (False, True):
        wall, cpu = time.perf_counter(), time.process_time()
        report = plan_automation(scenario, catalogue, AutomationOptions(budget=budget, replications=replications, racing=racing))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        choices[racing] = report.portfolio.starts
        print(
            f"  racing {'on ' if racing else 'off'}: {wall:6.1f} s wall, {cpu:6.1f} s CPU, {report.replications_run:5d} replications run, "
            f"{report.replications_saved:4d} saved; {len(report.check.checked)} portfolios simulated jointly; chosen "
            + ", ".join(f"{item}@{scenario.month_label(start)}" for item, start in report.portfolio.starts.items())
        )
    print(f"  same choice: {choices[False] == choices[True]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 8)))
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--budget", type=float, default=BUDGET)
    parser.add_argument("--skip-shipped", action="store_true")
    args = parser.parse_args()
    four_items(args.seeds, args.replications)
    if not args.skip_shipped:
        shipped(args.replications, args.budget)


if __name__ == "__main__":
    main()
