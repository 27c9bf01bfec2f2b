"""Long work (simulations, plans, designs) off the request threads: a few job threads in the server process.

A job belongs to the server, not to a browser tab: closing the tab leaves it running, and any tab can follow it
by id (the Runs page lists them all). Jobs run in threads of this process, never in child processes, so stopping
the server leaves nothing behind; a job's folder is written under a hidden name and renamed when complete, so a
folder that exists is always a finished run.
"""

from __future__ import annotations

import itertools
import queue
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scenarios import ScenarioError


class JobError(ValueError):
    """A job that stopped on bad input or an impossible request: its message is shown as it is (no traceback)."""


@dataclass
class Job:
    """One unit of work and what a page needs to follow it."""

    id: str
    kind: str
    label: str
    total: int | None = None
    done: int = 0
    status: str = "queued"  # queued, running, done, failed
    message: str = ""
    folder: Path | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    result: Any = None
    dropped: bool = False  # its result was let go from memory (see ``KEPT_RESULTS``)

    def advance(self, steps: int = 1, message: str | None = None) -> None:
        """Count finished steps (for the progress bar) and say what is happening."""
        self.done += steps
        if message is not None:
            self.message = message

    def as_row(self) -> dict[str, object]:
        """The job as the Runs table shows it."""
        progress = f"{self.done}/{self.total}" if self.total else (str(self.done) if self.done else "")
        return {
            "id": self.id, "kind": self.kind, "name": self.label, "status": self.status, "progress": progress,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created)), "message": self.message,
            "folder": str(self.folder) if self.folder and self.folder.is_dir() else "",
        }


#: Finished jobs whose results stay in memory for the pages (a long-running server must not grow without end).
KEPT_RESULTS = 20

#: The work of a job: given the job (to report progress) and a private folder to write into; returns a result.
Work = Callable[[Job, Path], Any]


class JobManager:
    """Runs jobs on ``threads`` daemon threads, in order of submission; the newest results stay in memory for the pages."""

    def __init__(self, runs: Path, threads: int = 2):
        self.runs = runs
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[tuple[Job, Work]] = queue.Queue()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        for number in range(threads):
            threading.Thread(target=self._worker, name=f"salesops-job-{number}", daemon=True).start()

    def submit(self, kind: str, label: str, work: Work, total: int | None = None, keep: bool = True) -> str:
        """Queue ``work``; its id. With ``keep``, its folder becomes ``runs/web/<id>`` when it succeeds."""
        with self._lock:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            job_id = f"{stamp}-{kind}-{next(self._counter)}"
            job = Job(job_id, kind, label, total, folder=(self.runs / "web" / job_id) if keep else None)
            self._jobs[job_id] = job
        self._queue.put((job, work))
        return job_id

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def jobs(self) -> list[Job]:
        """Every job of this server, newest first."""
        return sorted(self._jobs.values(), key=lambda job: job.created, reverse=True)

    def close(self) -> None:
        """On stopping the server: the unfinished jobs' hidden folders go (their threads end with the process)."""
        for job in self._jobs.values():
            if job.status in ("queued", "running") and job.folder is not None:
                shutil.rmtree(job.folder.parent / f".{job.folder.name}.partial", ignore_errors=True)

    def _worker(self) -> None:
        while True:
            job, work = self._queue.get()
            self._run(job, work)

    def _run(self, job: Job, work: Work) -> None:
        """Run one job; whatever it raises (its folder unwritable or taken included) fails the job, not the thread."""
        job.status = "running"
        partial = None
        try:
            if job.folder is not None:
                partial = job.folder.parent / f".{job.folder.name}.partial"
                partial.mkdir(parents=True, exist_ok=True)
            result = work(job, partial or Path())
            if partial is not None and job.folder is not None:
                partial.rename(job.folder)
                partial = None
        except (JobError, ScenarioError) as error:
            job.status, job.message = "failed", _one_line(error)
        except Exception as error:  # noqa: BLE001 - a failed job must not stop the job thread; the page says why
            traceback.print_exc()
            job.status, job.message = "failed", f"{type(error).__name__}: {_one_line(error)}"
        else:
            job.finished = time.time()  # before the status: a page that sees "done" reads the duration
            job.result, job.status = result, "done"
            self._forget_old_results()
        finally:
            if partial is not None:
                shutil.rmtree(partial, ignore_errors=True)
            job.finished = job.finished or time.time()

    def _forget_old_results(self) -> None:
        """Keep the results of the newest ``KEPT_RESULTS`` finished jobs in memory; older ones are on disk (or gone)."""
        with self._lock:
            finished = sorted((j for j in self._jobs.values() if j.result is not None), key=lambda j: j.created, reverse=True)
        for job in finished[KEPT_RESULTS:]:
            job.result, job.dropped = None, True


def _one_line(error: BaseException) -> str:
    if isinstance(error, ScenarioError):
        return "; ".join(f"{error.source}: {problem}" for problem in error.problems)
    return " ".join(str(error).split())
