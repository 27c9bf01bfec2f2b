"""The Dash app: a header with the pages, the tab's own stores, and each page's layout and callbacks.

Each page is a module of ``experiments.web.pages`` with a ``PAGE``; adding one to ``PAGES`` adds it to the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dash import Dash, Input, Output, State, dcc, html, no_update

from experiments.web.jobs import JobManager

ASSETS = Path(__file__).with_name("assets")


@dataclass(frozen=True)
class Context:
    """What every page may use: where runs are written, the tracking store (if any) and the job threads."""

    runs: Path
    tracking_uri: str | None
    jobs: JobManager


@dataclass(frozen=True)
class Page:
    """A page: its path, its name in the header, its layout (given the tab's stores) and its callbacks."""

    path: str
    title: str
    layout: Callable[[Context, dict[str, Any] | None, dict[str, Any] | None], Any]
    register: Callable[[Dash, Context], None]


def create_app(runs: Path, tracking_uri: str | None = None, threads: int = 2) -> Dash:
    """The app, with ``threads`` job threads writing runs under ``runs/web``."""
    from experiments.web.pages import PAGES

    context = Context(runs.resolve(), tracking_uri, JobManager(runs.resolve(), threads))
    app = Dash(
        __name__, title="salesops", assets_folder=str(ASSETS), suppress_callback_exceptions=True,
        serve_locally=True, update_title=None,
    )
    app.layout = html.Div([
        dcc.Location(id="url"),
        dcc.Store(id="scenario-store", storage_type="session"),  # this tab's scenario and its edits
        dcc.Store(id="jobs-store", storage_type="session"),  # this tab's latest job per page
        html.Header([
            html.Span("salesops", className="brand"),
            html.Nav([dcc.Link(page.title, href=page.path, id=f"nav-{page.path.strip('/') or 'scenario'}") for page in PAGES]),
        ]),
        html.Main(id="page"),
    ])

    @app.callback(Output("page", "children"), Input("url", "pathname"), State("scenario-store", "data"), State("jobs-store", "data"))
    def show(pathname: str | None, scenario: dict | None, jobs: dict | None) -> Any:
        for page in PAGES:
            if page.path == (pathname or "/"):
                return page.layout(context, scenario, jobs)
        return html.Div([html.H2("No such page"), dcc.Link("Back to the scenario", href="/")])

    for page in PAGES:
        page.register(app, context)
    app.server.config["SALESOPS_CONTEXT"] = context
    return app


def errors(lines: list[str] | str | None, kind: str = "error") -> html.Div:
    """Problems (or a note) shown in the page, one line each."""
    if not lines:
        return html.Div()
    return html.Div([html.Div(line) for line in ([lines] if isinstance(lines, str) else lines)], className=kind)


def progress_bar(done: int, total: int | None, text: str) -> html.Div:
    """A progress bar with its text; an indeterminate stripe when the total is not known."""
    share = min(done / total, 1.0) if total else None
    bar = html.Div(className="bar" if share is not None else "bar busy", style={"width": f"{share:.0%}"} if share is not None else {})
    return html.Div([html.Div(bar, className="track"), html.Div(text, className="progress-text")], className="progress")


def job_id(jobs: dict | None, kind: str) -> str | None:
    """This tab's latest job of a page."""
    return (jobs or {}).get(kind)


def table(rows: list[dict[str, Any]], table_id: str | None = None, columns: list[str] | None = None) -> html.Div:
    """A read-only table of rows (dicts), columns in the order of the first row unless given; scrolls sideways when wide."""
    columns = columns or (list(rows[0]) if rows else [])
    head = html.Thead(html.Tr([html.Th(c) for c in columns]))
    body = html.Tbody([html.Tr([html.Td(_cell(row.get(c))) for c in columns]) for row in rows])
    return html.Div(html.Table([head, body], className="data", **({"id": table_id} if table_id else {})), className="table-wrap")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value)


def job_area(prefix: str, kind: str, jobs: dict | None) -> list[Any]:
    """Where a page follows its latest job: progress, a poll while it runs, and the results when done."""
    return [
        html.Div(id=f"{prefix}-progress"),
        dcc.Interval(id=f"{prefix}-poll", interval=1000, disabled=job_id(jobs, kind) is None),
        dcc.Store(id=f"{prefix}-done"),
        html.Div(id=f"{prefix}-results"),
    ]


def follow_jobs(app: Dash, context: Context, prefix: str, kind: str, render: Callable[[Any], Any]) -> None:
    """Poll the tab's latest ``kind`` job: a progress bar while it runs, its error if it failed, ``render(job)`` once
    done. Rendering is its own callback, fired once, so a slow render is never cut short by the next poll."""
    @app.callback(
        Output(f"{prefix}-progress", "children"), Output(f"{prefix}-done", "data"), Output(f"{prefix}-poll", "disabled", allow_duplicate=True),
        Input(f"{prefix}-poll", "n_intervals"), Input("jobs-store", "data"), prevent_initial_call="initial_duplicate",
    )
    def poll(_ticks: int | None, jobs: dict | None) -> tuple[Any, Any, bool]:
        job = context.jobs.get(job_id(jobs, kind))
        if job is None:
            return html.Div(), None, True
        if job.status in ("queued", "running"):
            return progress_bar(job.done, job.total, f"{job.status}: {job.message or job.label}"), no_update, False
        if job.status == "failed":
            return errors(f"{job.id} failed: {job.message}"), None, True
        said = f" ({job.message})" if job.message else ""
        return html.Div(f"{job.id} done in {(job.finished or 0) - job.created:.1f} s{said}; files in {job.folder}", className="hint"), job.id, True

    @app.callback(Output(f"{prefix}-results", "children"), Input(f"{prefix}-done", "data"))
    def show(done: str | None) -> Any:
        job = context.jobs.get(done)
        if job is None or job.status != "done":
            return html.Div()
        if job.dropped:
            return html.Div(f"{job.id} is one of the older runs, no longer shown here; its files are in {job.folder}", className="hint")
        return render(job)
