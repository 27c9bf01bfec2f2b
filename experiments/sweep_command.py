"""The ``sweep`` command: a sweep file in, ``cells/``, ``results.csv`` and ``summary.csv`` out, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from experiments.console import check_run_size_or_exit, edge_errors, fail
from experiments.runner import ExecutorError, executor
from experiments.sweep import SweepProgress, run_sweep
from experiments.sweep_spec import SweepError, load_sweep
from experiments.tracking import DEFAULT_EXPERIMENT, make_tracker

console = Console()
TrackOpt = Annotated[bool, typer.Option("--track", help="log to MLflow (default store: sqlite:///mlflow.db here)")]
TrackingUriOpt = Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI; implies --track")]
ExperimentOpt = Annotated[str, typer.Option("--experiment", help="MLflow experiment name")]


class BarProgress(SweepProgress):
    """A rich progress bar over replications, with cells done, failures and time left."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task: TaskID | None = None
        self.cells = self.done = self.failed = 0

    def start(self, cells: int, done: int, replications: int) -> None:
        self.cells, self.done = cells, done
        self.task = self.progress.add_task("sweep", total=(cells - done) * replications, cells=self._cells())

    def replication_done(self) -> None:
        self.progress.advance(self.task)  # type: ignore[arg-type]

    def cell_done(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        self.progress.update(self.task, cells=self._cells())  # type: ignore[arg-type]

    def _cells(self) -> str:
        return f"{self.done}/{self.cells} cells" + (f", [red]{self.failed} failed[/]" if self.failed else "")


def sweep(
    sweep_file: Annotated[str, typer.Argument(help="a sweep file (YAML), or the name of a shipped sweep")],
    out: Annotated[Path, typer.Option(help="folder for cells/, results.csv and summary.csv")],
    workers: Annotated[int, typer.Option(min=1, help="processes (or Dask workers with --scheduler local)")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler: tcp://host:port, or 'local' for a local cluster")] = None,
    max_cells: Annotated[Optional[int], typer.Option(min=1, help="refuse designs with more cells (default: the file's max_cells)")] = None,
    track: TrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    experiment: ExperimentOpt = DEFAULT_EXPERIMENT,
) -> None:
    """Run every cell of a sweep (factors × replications, common random numbers); a re-run resumes."""
    try:
        definition = load_sweep(sweep_file, max_cells)
    except SweepError as error:
        fail(f"{error.source}: {problem}" for problem in error.problems)
    for cell in definition.cells:
        check_run_size_or_exit(cell.scenario, f"{definition.source}: cell {cell.index}")
    columns = (
        TextColumn("{task.fields[cells]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
    )
    try:
        with edge_errors():
            tracker = make_tracker(track, tracking_uri, experiment)
            with executor(workers, scheduler) as pool, Progress(*columns, console=console, transient=True) as bar:
                outcome = run_sweep(definition, out, pool, tracker, BarProgress(bar))
    except ExecutorError as error:
        fail([str(error)])
    cells = outcome.ran + outcome.reused
    console.print(
        f"{definition.spec.name}: {cells} cells ({outcome.reused} already done, {outcome.ran} run, {outcome.failed} failed) "
        f"× {definition.spec.replications} replications; wrote {outcome.results}, {outcome.summary}",
        highlight=False,
    )
    if outcome.failed:
        fail([f"{outcome.failed} cells failed: see the error column of {outcome.summary}"], code=1)
