"""Independent training runs side by side on a CPU's cores.

Small GANs use several cores poorly: one process with two threads trains lab 1's default
DCGAN well under twice as fast as one with one thread. Runs that do not depend on each
other (question 5's ablations, every seed) therefore finish sooner as separate processes
with one or two threads each. :func:`choose_workers` sizes the pool, :func:`run_jobs`
runs a top-level function on each job in ``spawn``-started processes (safe in Jupyter,
Colab and on macOS/Windows, where ``fork`` is unsafe or missing) and reports progress:
runs finished, and where each running one is (its worker's own progress bars, sent back).

On a GPU (CUDA, MPS) the runs stay in one process: the device is already busy.
Set ``LABKIT_WORKERS`` (or pass ``workers``) to override the choice; 1 runs in-process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import progress as _progress
from .device import resolve_device
from .progress import progress
from .tables import count

MAX_WORKERS = 4  # beyond this, memory (a copy of MNIST and the feature network each) outgrows the gain


def available_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def choose_workers(n_jobs: int, device: str = "auto", workers: int | None = None) -> tuple[int, int]:
    """``(processes, threads per process)`` for ``n_jobs`` independent runs on ``device``.

    ``workers`` (or the environment's ``LABKIT_WORKERS``) overrides the number of processes;
    otherwise a CPU gets one process per core up to :data:`MAX_WORKERS` and never more than
    the jobs, and an accelerator gets one. The cores are shared out as threads.
    """
    if workers is None and os.environ.get("LABKIT_WORKERS", "").strip():
        text = os.environ["LABKIT_WORKERS"].strip()
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"LABKIT_WORKERS must be a whole number >= 1, got {text!r}")
        workers = int(text)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be None (automatic) or a whole number >= 1, got {workers!r}")
    cores = available_cores()
    if workers is None:
        workers = 1 if resolve_device(device).type != "cpu" else min(cores, MAX_WORKERS)
    workers = max(1, min(workers, n_jobs))
    return workers, max(1, cores // workers)


PARENT_CHECK_SECONDS = 1.0


def _exit_with_parent(parent: int) -> None:
    """End this worker as soon as the process that started it is gone.

    A parent stopped by Ctrl-C or an exception terminates its pool; one that is killed
    outright (a restarted Jupyter kernel, ``kill`` on a script) cannot, and its workers would
    go on training for minutes and write into run folders that the next attempt resumes.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)  # no cleanup: the run folder keeps its last finished epoch

    threading.Thread(target=watch, name="labkit-parent-watch", daemon=True).start()


_job_index: int | None = None  # in a worker: the job it is running


def _start_worker(threads: int, parent: int | None = None, reports: Any = None) -> None:
    """Each worker: its share of the cores, no output of its own (its progress bars go to
    ``reports``, a queue the parent reads), and no life after its parent."""
    import torch

    torch.set_num_threads(threads)
    os.environ["LABKIT_PROGRESS"] = "off"
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    if reports is not None:
        _progress.report_to(lambda desc, n, total: reports.put((_job_index, desc, n, total)))
    if parent is not None:
        _exit_with_parent(parent)


def _timed(call: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any, float]:
    global _job_index
    fn, index, job = call
    _job_index = index
    start = time.perf_counter()
    return index, fn(job), time.perf_counter() - start


POLL_SECONDS = 1.0


def _status(desc: str, n: int, total: int | None) -> str:
    """A worker's bar in a few characters: ``epoch 2/5 40%``."""
    return f"{desc} {100 * n / total:.0f}%" if total else f"{desc} {n}"


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, threads: int,
             desc: str = "runs", name: Callable[[Any], str] = str) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(job))`` for every job as it finishes, in ``workers`` processes.

    ``fn`` must be importable (a module's top-level function) and its jobs and results
    picklable. One worker runs the jobs here, in order. A worker's exception is raised here;
    on any exception (an interrupt included) the other workers are stopped.
    """
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be >= 1, got {workers} and {threads}")
    if workers == 1:
        for index, job in enumerate(jobs):
            yield index, fn(job)
        return
    print(f"{len(jobs)} {desc} in {workers} processes of {count(threads, 'thread')} each", flush=True)
    context = multiprocessing.get_context("spawn")
    bar = progress(total=len(jobs), desc=desc, unit="run")
    reports = context.Queue()
    pool = context.Pool(workers, initializer=_start_worker, initargs=(threads, os.getpid(), reports))
    running: dict[int, str] = {}  # job index -> its worker's latest report
    finished: set[int] = set()
    last = ""

    def show(done: int) -> None:
        while True:
            try:
                i, what, n, total = reports.get_nowait()
            except queue.Empty:
                break
            if i is not None and i not in finished:  # a finished job's last report may arrive after its result
                running[i] = _status(what, n, total)
        now = "; ".join(f"{name(jobs[i])}: {status}" for i, status in sorted(running.items()))
        bar.set_postfix({**({"now": now} if now else {}), **({"last": last} if last else {})})
        bar.update(done)  # update(0) redraws a bar, or prints a line once its interval has passed

    with contextlib.closing(bar), contextlib.closing(reports), pool:
        # `with Pool` terminates the workers on the way out, an exception included
        results = pool.imap_unordered(_timed, [(fn, i, job) for i, job in enumerate(jobs)])
        while True:
            try:
                index, result, seconds = results.next(timeout=POLL_SECONDS)
            except multiprocessing.TimeoutError:
                show(0)
                continue
            except StopIteration:
                break
            finished.add(index)
            running.pop(index, None)
            last = f"{name(jobs[index])} {seconds:.0f}s"
            show(1)
            yield index, result
