"""Instructors' grading of submitted handouts: scored where the student's code cannot reach.

- :mod:`.submissions` reads notebooks (exercise cells by id, student names, retyped references);
- :mod:`.guard` and :mod:`.probes` score one exercise in a fresh sandboxed process
  (:mod:`labkit.sandbox`) with labkit's answer to it out of reach; the judgement is
  :func:`labkit.exercises.judge`, the same as the notebook's check;
- :mod:`.grader` grades one submission, :mod:`.kernel` runs it in a sandboxed kernel for
  feedback only;
- :mod:`.outputs` writes results atomically and merges them (grades.csv, feedback, summary);
- :func:`grade` runs every submission in a grader process of its own, ``jobs`` at a time, so
  one that dies costs only its own result. A class larger than one machine runs
  ``grade-one`` as a job array and ``grade-collect`` at the end (docs/grading-at-scale.md).

This package imports no notebook tooling at import time: ``python -m labkit`` works without
the ``grade`` extra, and the commands say which extra they need.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import sandbox
from .outputs import collect, load_results, write_result
from .submissions import discover, safe_name

def require_sandbox(sandboxed: bool) -> None:
    """Refuse, in one line, to grade without a sandbox unless the instructor asked for that."""
    if not sandboxed:
        return
    reason = sandbox.available()
    if reason:
        raise ValueError(f"no sandbox here ({reason}); a submission could then read the references and other "
                         f"students' results: grade on Linux with bubblewrap, or pass --no-sandbox to grade anyway")


def grade_one(notebook: str | Path, out: str | Path, *, student: str | None = None, sandboxed: bool = True,
              **kwargs: Any) -> Path:
    """Grade one notebook into out/results/<student>.json (and its feedback run into out/executed/)."""
    import nbformat

    from .grader import grade_notebook
    from .outputs import atomic_write

    require_sandbox(sandboxed)
    out = Path(out)
    student = student or Path(notebook).stem
    result = grade_notebook(notebook, student=student, sandboxed=sandboxed, **kwargs)
    executed = result.pop("executed", None)
    if executed is not None:
        name = f"executed/{safe_name(student)}.ipynb"
        atomic_write(out / name, nbformat.writes(executed))
        result["executed"] = name
    return write_result(result, out)


def _failed_result(name: str, path: Path, message: str, sandboxed: bool) -> dict:
    return {"student": name, "submission": str(path), "solution": None, "notes": [message], "exercises": [],
            "total": 0, "max_total": 0, "seconds": 0, "sandboxed": sandboxed,
            "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


#: seconds a grader process may run past its submission's time limit (start-up, the feedback run's end)
GRADER_GRACE = 300.0


def run_grader(command: list[str], timeout: float) -> str | None:
    """Run one grader process; None when it exits 0, else why it failed (exit status and stderr's end).

    Its output goes to files, not pipes: a process it left behind that still holds them cannot
    keep this waiting. Past ``timeout`` seconds its whole process group is killed.
    """
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # what it left running in its group goes with it
            proc.wait()
        if code is None:
            return f"the grader process ran over its time limit ({timeout:g} s) and was stopped"
        if code == 0:
            return None
        stderr.seek(0, os.SEEK_END)
        stderr.seek(max(0, stderr.tell() - 800))
        return f"exit status {code}: {stderr.read().decode('utf-8', 'replace')}"


def grade(submissions: list[str | Path], out: str | Path, jobs: int = 1, timeout: float = 120,
          notebook_timeout: float = 900, solution: str | Path | None = None, params: dict | None = None,
          sandboxed: bool = True, feedback_run: bool = True) -> list[dict]:
    """Grade every submission (``jobs`` grader processes at a time); write results, grades.csv, feedback, summary."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    require_sandbox(sandboxed)
    found = discover(submissions)
    out = Path(out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    from ..progress import progress

    def one(task: tuple[str, Path]) -> None:
        name, path = task
        command = [sys.executable, "-m", "labkit.grading", "grade-one", str(path), "--out", str(out),
                   "--student", name, "--timeout", str(timeout), "--notebook-timeout", str(notebook_timeout),
                   "--threads", str(threads)]
        command += ["--solution", str(solution)] if solution else []
        command += ["--params", json.dumps(params)] if params else []
        command += [] if sandboxed else ["--no-sandbox"]
        command += [] if feedback_run else ["--no-feedback"]
        started = time.time()
        failure = run_grader(command, timeout=notebook_timeout + GRADER_GRACE)
        target = out / "results" / f"{safe_name(name)}.json"
        if failure and not (target.is_file() and target.stat().st_mtime >= started):
            write_result(_failed_result(name, path, f"grading failed: {failure}", sandboxed), out)

    bar = progress(total=len(found), desc="grading", unit="notebook")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(one, found):
            bar.update(1)
    bar.close()
    collect(out)
    wanted = {safe_name(name) for name, _ in found}
    return [r for r in load_results(out) if safe_name(r["student"]) in wanted]


def add_commands(sub: Any) -> None:
    """Add ``grade``, ``grade-one`` and ``grade-collect`` to labkit's sub-command parser."""
    from .cli import add_commands as add

    add(sub)


__all__ = ["add_commands", "collect", "discover", "grade", "grade_one", "load_results",
           "require_sandbox", "run_grader", "write_result"]
