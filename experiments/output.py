"""Writing a command's files: the one place for atomic writes, the completeness marker, CSV for people and JSON.

A command claims its output folder before it works (``output_folder``): the folder is created, proved writable and
locked, so a bad ``--out`` fails in one line before any work and a second writer is refused. Its files are staged
as hidden temporary files in the folder as they are produced (a full disk shows there, with the previous results
untouched) and published together by ``RunFiles.commit``: the marker ``complete.json`` is removed, every file is
renamed into place, files of the previous set that this one lacks are removed (no stale file survives), and the
marker is written last, listing each file with its size and SHA-256. ``check_complete`` is what readers call:
a folder without the marker, or whose files differ from it, is refused. An interrupted command leaves either the
previous complete set or no marker, never a set that looks complete and is not.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from engine import ReplicationResult, Results
from scenarios import Scenario
from scenarios.json_values import json_ready

#: The completeness marker: the files of the last finished command, with their sizes and SHA-256.
MARKER = "complete.json"
#: Held (``flock``) while a command writes the folder; the kernel releases it when the process ends, however.
LOCK = ".salesops.lock"
#: A cell beginning with one of these may be run as a formula by a spreadsheet (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class OutputError(RuntimeError):
    """An output folder or file that cannot be written or read as a complete result; the message is one line.
    ``code`` is the exit code: 2 for a bad ``--out`` or an incomplete folder given, 1 for a fault while writing,
    130 for an interrupt (Ctrl-C or SIGTERM) while the command worked."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _os_error(path: Path, error: OSError) -> OutputError:
    if error.errno == errno.ENOSPC:
        return OutputError(f"{path}: no space left on the device; previous results, if any, are unchanged")
    return OutputError(f"{path}: cannot write ({error.strerror or error})")


def strict_json(value: Any) -> str:
    """Strict JSON text (numpy numbers as numbers, NaN and infinities as null, never ``Infinity``), indented."""
    return json.dumps(json_ready(value), indent=2, allow_nan=False) + "\n"


def for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy in which every text cell that a spreadsheet could run as a formula (beginning with ``=``, ``+``,
    ``-``, ``@``, tab or carriage return) starts with a single quote, as OWASP advises; numbers are untouched.
    The original text is the cell without its first character wherever a ``'`` precedes one of those."""
    frame = frame.copy()
    for column in [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]:
        frame[column] = frame[column].map(lambda v: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    frame.columns = [f"'{c}" if isinstance(c, str) and c.startswith(FORMULA_STARTS) else c for c in frame.columns]
    return frame


def _temporary(path: Path, keep_suffix: bool = False) -> Path:
    """A hidden name beside ``path`` that no ``*.csv`` or ``*.json`` pattern matches, unless ``keep_suffix`` (for
    writers such as matplotlib that go by the suffix)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix if keep_suffix else ''}")


#: The names ``_temporary`` gives.
TEMPORARY = re.compile(r"^\..+\.\d+\.tmp(\.[^.]*)?$")


def _write_file(path: Path, data: str | bytes) -> None:
    """``data`` into ``path``, flushed to the disk; the partial file is removed if writing fails."""
    try:
        with open(path, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` in one step: readers see the old file or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary(path)
        _write_file(temporary, data)
        os.replace(temporary, path)
    except OSError as error:
        raise _os_error(path, error) from None
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's completeness marker, or None if it has none (or an unreadable one)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("files"), dict) else None


def check_complete(folder: Path, needed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The marker of a folder whose files are the complete set a command finished writing; raises OutputError
    (code 2) naming what is wrong when there is no marker, a ``needed`` file is not in it, or a file differs.
    Only the ``needed`` files are compared when some are named (a reader need not hash a large lead log)."""
    marker = read_marker(folder)
    if marker is None:
        raise OutputError(f"{folder}: no {MARKER}: the command that wrote it did not finish (interrupted, failed, or an older salesops); run it again", 2)
    files = marker["files"]
    for name in needed:
        if name not in files:
            raise OutputError(f"{folder}: {name} is not part of the finished run recorded in {MARKER}; run it again", 2)
    for name, info in files.items():
        if needed and name not in needed:
            continue
        path = folder / name
        try:
            same = path.stat().st_size == info.get("bytes") and _sha256(path) == info.get("sha256")
        except OSError:
            same = False
        if not same:
            raise OutputError(f"{folder}: {name} is missing or differs from the run recorded in {MARKER}; run it again", 2)
    return marker


class RunFiles:
    """The files a command writes into its folder, staged as they come and published as one set by ``commit``.

    With ``extend``, the set adds to the folder's finished one (``report`` adding its pages to a simulation)."""

    def __init__(self, folder: Path, command: str, extend: bool = False):
        self.folder, self.command, self.extend = folder, command, extend
        self.staged: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        """Where ``name`` will be once committed."""
        return self.folder / name

    def stage(self, name: str, keep_suffix: bool = True) -> Path:
        """The temporary path to write ``name`` to, for writers that want a path (it keeps the suffix, which they
        may go by); published by ``commit``."""
        final = self.folder / name
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary(final, keep_suffix)
        self.staged[name] = temporary
        return temporary

    def write(self, name: str, data: str | bytes) -> Path:
        """Stage ``name`` with ``data``."""
        temporary = self.stage(name, keep_suffix=False)
        try:
            _write_file(temporary, data)
        except OSError as error:
            raise _os_error(self.path(name), error) from None
        return self.path(name)

    def csv(self, name: str, frame: pd.DataFrame, people: bool = False, **options: Any) -> Path:
        """Stage a CSV (``index=False`` unless ``options`` say otherwise); ``people``: formula cells neutralised."""
        options.setdefault("index", False)
        temporary = self.stage(name, keep_suffix=False)
        try:
            (for_people(frame) if people else frame).to_csv(temporary, **options)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise _os_error(self.path(name), error) from None
        return self.path(name)

    def json(self, name: str, value: Any) -> Path:
        """Stage strict JSON."""
        return self.write(name, strict_json(value))

    def yaml(self, name: str, value: Any) -> Path:
        """Stage YAML (safe_dump, keys in their order)."""
        return self.write(name, yaml.safe_dump(value, sort_keys=False, allow_unicode=True))

    def discard(self) -> None:
        """Remove what is staged and not committed."""
        for temporary in self.staged.values():
            temporary.unlink(missing_ok=True)
        self.staged.clear()

    def commit(self) -> list[Path]:
        """Publish the staged files as the folder's complete set (see the module); their paths."""
        previous = read_marker(self.folder) or {"files": {}}
        marker_path = self.folder / MARKER
        try:
            files = {name: {"bytes": t.stat().st_size, "sha256": _sha256(t)} for name, t in self.staged.items()}
            marker_path.unlink(missing_ok=True)
            for name, temporary in self.staged.items():
                os.replace(temporary, self.folder / name)
            finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            if self.extend:
                marker = previous | {"files": previous["files"] | files, f"{self.command}_finished": finished}
            else:
                for name in set(previous["files"]) - set(files):
                    stale = self.folder / name
                    if stale.resolve().is_relative_to(self.folder.resolve()):
                        stale.unlink(missing_ok=True)
                marker = {"command": self.command, "argv": sys.argv[1:], "finished": finished, "files": files}
            write_atomically(marker_path, json.dumps(marker, indent=2) + "\n")
        except OSError as error:
            raise _os_error(self.folder, error) from None
        paths = [self.folder / name for name in self.staged]
        self.staged.clear()
        return paths


@contextmanager
def output_folder(out: Path, command: str, extend: bool = False) -> Iterator[RunFiles]:
    """Claim ``out`` for ``command`` before any work: created, writable, locked against a second writer (each an
    OutputError in one line, code 2). Yields the command's RunFiles; what is not committed is discarded."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{out}: exists and is not a folder; give --out a folder", 2) from None
    except OSError as error:
        raise OutputError(f"{out}: cannot create the output folder ({error.strerror or error})", 2) from None
    if not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; give --out a folder", 2)
    try:
        handle = open(out / LOCK, "a+", encoding="utf-8")
    except OSError as error:
        raise OutputError(f"{out}: cannot write in this folder ({error.strerror or error})", 2) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise OutputError(f"{out}: another salesops command ({holder}) is writing this folder; wait for it or choose another --out", 2) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as error:
            raise OutputError(f"{out}: cannot write in this folder ({error.strerror or error})", 2) from None
        for leftover in [*out.glob(".*.tmp*"), *out.glob("*/.*.tmp*")]:  # staged by a writer killed outright
            if TEMPORARY.match(leftover.name):  # (holding the lock, no other writer is running)
                leftover.unlink(missing_ok=True)
        files = RunFiles(out, command, extend)
        try:
            yield files
        except KeyboardInterrupt:
            raise OutputError(f"{out}: interrupted; nothing new was published there (its previous complete results, if any, are unchanged)", 130) from None
        finally:
            files.discard()
    finally:
        handle.close()  # releases the lock


def simulation_files(files: RunFiles, results: Results, runs: list[ReplicationResult], scenario: Scenario, seed: int) -> None:
    """Stage a simulation's set: monthly.csv, bands.csv, states.csv, summary.json, scenario.yaml,
    replications.csv (and leads.csv when the lead log was kept)."""
    files.csv("monthly.csv", results.monthly)
    files.csv("bands.csv", results.bands)
    files.csv("states.csv", results.states, index_label="replication", index=True)
    summary = {
        "scenario": scenario.name,
        "seed": seed,
        "replications": len(results.states),
        "kpis": {kpi: dict(row.items()) for kpi, row in results.summary.to_dict(orient="index").items()},
    }
    files.json("summary.json", summary)
    if results.lead_log is not None:
        files.csv("leads.csv", results.lead_log)
    files.yaml("scenario.yaml", scenario.model_dump(mode="json"))
    files.csv("replications.csv", replications_frame(runs))


def replications_frame(runs: list[ReplicationResult]) -> pd.DataFrame:
    """One row per replication with its KPIs over the horizon, for paired comparisons."""
    frame = pd.DataFrame([run.totals for run in runs])
    frame.insert(0, "replication", range(len(runs)))
    return frame


def write_replications(runs: list[ReplicationResult], out: Path) -> Path:
    """replications.csv in ``out`` (a scratch folder: a tracked sweep cell's file), written atomically."""
    return write_atomically(out / "replications.csv", replications_frame(runs).to_csv(index=False))


def band_column(bands: pd.DataFrame, column: str, stat: str) -> str:
    """The bands column of a monthly column's statistic (``mean``, ``p10``, ``p50``, ``p90``)."""
    name = f"{column}_{stat}"
    if name not in bands.columns:
        raise KeyError(f"bands: no column {name}")
    return name
