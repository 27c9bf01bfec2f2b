"""The M/M/c check as a figure: the engine's mean wait for a first touch against Erlang C, at rising load.

The shipped ``mmc`` scenario (4 reps around the clock, exponential handling of 1 hour) is simulated at arrival
rates giving utilisations from 0.4 to 0.9; each point is the mean over replications with ±2 standard errors.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from engine import run_replication  # noqa: E402
from tests.conftest import mmc  # noqa: E402
from tests.test_queueing import erlang_c  # noqa: E402

FIGURE = "explanation/mmc.png"
SERVERS = 4
UTILIZATIONS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
REPLICATIONS = 6
MONTHS = 6


def simulated_waits() -> list[tuple[float, float, float]]:
    """Per utilisation: (ρ, mean wait in hours over replications, its standard error)."""
    points = []
    for rho in UTILIZATIONS:
        scenario = mmc(rho * SERVERS, SERVERS, months=MONTHS)
        waits = [
            run_replication(scenario, r, keep_log=True).lead_log["response_hours"].dropna().mean()
            for r in range(REPLICATIONS)
        ]
        points.append((rho, float(np.mean(waits)), float(np.std(waits, ddof=1) / np.sqrt(len(waits)))))
    return points


def figure_png() -> bytes:
    """The figure, as PNG bytes."""
    points = simulated_waits()
    grid = np.linspace(0.3, 0.92, 100)
    theory = [erlang_c(SERVERS, rho * SERVERS) / (SERVERS - rho * SERVERS) for rho in grid]
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    axes.plot(grid, theory, color="0.3", label="Erlang C: $W_q = C(c, a) / (c - a)$")
    rho, mean, error = (np.array(column) for column in zip(*points))
    axes.errorbar(rho, mean, yerr=2 * error, fmt="o", color="tab:blue", capsize=3,
                  label=f"engine, {REPLICATIONS} replications of {MONTHS} months (±2 s.e.)")
    axes.set(xlabel="utilisation ρ = λ / (c μ)", ylabel="mean wait for a first touch (hours)",
             title=f"The engine as an M/M/{SERVERS} queue (mean handling 1 hour)")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()
