"""Grading one submission: every exercise scored in its own sandboxed process, the feedback run beside them.

How one submission is graded (:func:`grade_notebook`):

1. Its exercise cells are found by metadata id, never by position (:mod:`.submissions`).
   The exercises, their order and their points come from their declarations
   (:mod:`labkit.exercises`) for the solution notebook the submission matches.
2. Each exercise is scored in a fresh sandboxed process (:mod:`.probes`) that loads only
   that exercise's cells on a fixed preamble, with labkit's answers to it out of reach, and
   receives a seed drawn here, only once the cells have loaded. The references are probed
   here, in the grader's own process, and :func:`labkit.exercises.judge` compares: the very
   judgement the notebook's check applies. An earlier exercise the student lost is replaced,
   in later probes, by labkit's reference of it.
3. Beside the scoring, the submission runs in a sandboxed notebook kernel (:mod:`.kernel`),
   inside the solution's frame with small parameters, for feedback only: what its own checks
   printed. Nothing it does changes a point, and a run that does not end by the
   submission's time limit (plus a grace) is left behind with a note.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from .. import exercises
from ..exercises import Verdict
from . import answers, probes, submissions

#: the notebooks' smallest useful parameters for the feedback run; each notebook gets those it declares
GRADING_PARAMS: dict[str, Any] = dict(epochs=1, n_train=512, n_eval=500, ablation_images=512, batch_size=64,
                                      ablations=False)


#: seconds the feedback run may take past the submission's deadline and its last cell's limit
FEEDBACK_GRACE = 30.0


class _Beside:
    """``fn(*args, **kwargs)`` in a daemon thread: a run that never returns cannot hold the grader's exit."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._done = threading.Event()
        self._outcome: tuple[bool, Any] = (False, None)

        def run() -> None:
            try:
                self._outcome = (True, fn(*args, **kwargs))
            except BaseException as exc:  # re-raised in result(), in the caller's thread
                self._outcome = (False, exc)
            finally:
                self._done.set()

        threading.Thread(target=run, name=f"beside-{getattr(fn, '__name__', 'run')}", daemon=True).start()

    def wait(self, timeout: float) -> bool:
        """True once the call has returned or raised, False if ``timeout`` seconds passed first."""
        return self._done.wait(timeout)

    def result(self) -> Any:
        """The call's return value (it must have finished); its exception is raised here."""
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def _read(path: Path) -> tuple[Any, list[str]]:
    import nbformat

    try:
        return nbformat.read(path, as_version=4), []
    except Exception as exc:  # unreadable file: every exercise gets zero, with the reason
        return nbformat.v4.new_notebook(), [f"the submission could not be read as a notebook: "
                                            f"{type(exc).__name__}: {exc}"]


def _dependencies(exercise: exercises.Exercise, code: dict[str, str],
                  verdicts: dict[str, Verdict]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Cells of earlier exercises this one calls (the student's, when they passed) and names bound to references."""
    cells, bind = [], {}
    for dep_id in exercise.uses:
        dep = exercises.get(dep_id)
        if dep_id in code and verdicts.get(dep_id) and verdicts[dep_id].outcome == "passed":
            cells.append((dep_id, code[dep_id]))
        else:
            bind[dep.name] = dep.reference
    return cells, bind


def score_exercise(exercise: exercises.Exercise, code: dict[str, str], verdicts: dict[str, Verdict], seed: int, *,
                   timeout: float, sandboxed: bool) -> Verdict:
    """The verdict on one exercise of a submission (probe in a sandbox, judgement here)."""
    if exercise.id not in code:
        return Verdict(exercise.id, "missing", 0, exercise.points,
                       f"no cell of the submission carries exercise id {exercise.id!r} (cell metadata labkit.exercise)")
    cells, bind = _dependencies(exercise, code, verdicts)
    raw = probes.probe_submission(exercise, [*cells, (exercise.id, code[exercise.id])], bind, seed,
                                  timeout=timeout, sandboxed=sandboxed)
    if raw.get("status") == "timed out":
        return Verdict(exercise.id, "timed out", 0, exercise.points, raw.get("message", ""))
    refs = [exercises.run_probe(exercise, ref, seed) for ref in exercise.references()]
    return exercises.judge(exercise, raw, refs)


def score_all(ids: list[str], code: dict[str, str], seed: int, *, deadline: float, cell_timeout: float,
              sandboxed: bool, workers: int | None = None) -> dict[str, Verdict]:
    """Verdicts on every exercise; those whose earlier exercises are judged run ``workers`` at a time."""
    workers = workers or min(2, os.cpu_count() or 1)
    verdicts: dict[str, Verdict] = {}
    waiting = list(ids)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads outlive each sandboxed process they start
        while waiting:
            ready = [ex for ex in waiting if all(dep in verdicts or dep not in ids for dep in exercises.get(ex).uses)]
            futures = {}
            for ex_id in ready:
                exercise = exercises.get(ex_id)
                left = deadline - time.monotonic()
                if left <= 1:
                    verdicts[ex_id] = Verdict(ex_id, "timed out", 0, exercise.points,
                                              "not reached within the submission's time limit")
                    continue
                futures[ex_id] = pool.submit(score_exercise, exercise, code, dict(verdicts), seed,
                                             timeout=min(cell_timeout, left), sandboxed=sandboxed)
            for ex_id, future in futures.items():
                verdicts[ex_id] = future.result()
            waiting = [ex for ex in waiting if ex not in verdicts]
    return verdicts


def grade_notebook(path: str | Path, student: str | None = None, solution: str | Path | None = None,
                   params: dict[str, Any] | None = None, cell_timeout: float = 120, notebook_timeout: float = 900,
                   data_root: str | None = None, seed: int | None = None, kernel_threads: int | None = None,
                   sandboxed: bool = True, feedback_run: bool = True, probe_workers: int | None = None) -> dict:
    """Grade one submitted notebook; returns its result (a JSON-ready dict).

    ``cell_timeout`` bounds each probe and each cell of the feedback run (seconds),
    ``notebook_timeout`` the whole submission. ``seed`` is the probes' secret seed (random
    when None). ``sandboxed=False`` runs without bubblewrap (the result says so).
    ``probe_workers`` exercises are scored at once (default: 2, or 1 on a single core); the
    feedback run goes on beside them.
    """
    import nbformat

    if cell_timeout <= 0 or notebook_timeout <= 0:
        raise ValueError(f"cell_timeout and notebook_timeout must be > 0 seconds, got {cell_timeout}, {notebook_timeout}")
    path = Path(path)
    student = student or path.stem
    started = time.monotonic()
    sub, notes = _read(path)
    sol_path = Path(solution) if solution else submissions.find_solution(sub)
    sol = nbformat.read(sol_path, as_version=4)
    ids = [ex for ex in submissions.exercise_ids(sol) if ex in exercises.EXERCISES]
    code, more = submissions.student_cells(sub)
    notes += more
    notes += [f"a cell carries exercise id {ex!r}, which {sol_path.name} does not have: not graded"
              for ex in code if ex not in ids]
    written, more = answers.collect(sub, sol)  # the written answers, read from the file (marked by hand)
    notes += more
    solution_code, _ = submissions.student_cells(sol)
    seed = secrets.randbelow(2**31 - 1000) if seed is None else seed
    deadline = started + notebook_timeout
    feedback = None
    if feedback_run:
        from . import kernel

        run_params = {**GRADING_PARAMS, **(params or {})}
        run_params["data_root"] = str(Path(data_root or os.environ.get("LABKIT_DATA", submissions.ROOT / "data"))
                                      .resolve())
        feedback = _Beside(kernel.feedback_run, sol, code, run_params, cell_timeout=cell_timeout,
                           time_limit=notebook_timeout, sandboxed=sandboxed, threads=kernel_threads)
    verdicts = score_all(ids, code, seed, deadline=deadline, cell_timeout=cell_timeout, sandboxed=sandboxed,
                         workers=probe_workers)
    printed, run_notes, executed = {}, [], None
    if feedback:
        # the run checks its time limit between cells, each bounded by cell_timeout; the grace covers the
        # last cell and the kernel's shutdown. Past it, the points stand without the run's printouts.
        finished = feedback.wait(max(0.0, deadline - time.monotonic()) + cell_timeout + FEEDBACK_GRACE)
        if finished:
            printed, run_notes, executed = feedback.result()
        else:
            run_notes = [f"the feedback run did not end within the submission's time limit "
                         f"({notebook_timeout:g} s): its printouts are missing, the points are not affected"]
    notes += run_notes
    flags = {}
    for ex_id in ids:
        same = submissions.same_as_reference(code[ex_id], ex_id, solution_code.get(ex_id)) if ex_id in code else None
        if same:
            flags[ex_id] = f"identical to {same} after normalisation (names, comments, docstrings)"
    rows = []
    for ex_id in ids:
        row = vars(verdicts[ex_id]).copy()
        row.update(title=exercises.get(ex_id).title, flag=flags.get(ex_id, ""), notebook_output=printed.get(ex_id, ""))
        rows.append(row)
    return {
        "student": student, "submission": str(path), "solution": sol_path.name,
        "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1), "notes": notes, "sandboxed": sandboxed,
        "exercises": rows, "total": round(sum(v.points for v in verdicts.values()), 2),
        "max_total": sum(v.max_points for v in verdicts.values()), "answers": written, "executed": executed,
    }
