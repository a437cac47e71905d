"""labkit.parallel: how many processes and threads, and jobs run in spawned workers."""

from __future__ import annotations

import os

import pytest

from labkit import parallel


def square_or_fail(job):
    """A job for the workers (top level, so a spawned process can import it)."""
    if job == "fail":
        raise ValueError("job failed on purpose")
    return job * job, os.getpid(), os.environ.get("LABKIT_PROGRESS")


def test_workers_follow_the_cores_the_jobs_and_the_override(monkeypatch):
    monkeypatch.delenv("LABKIT_WORKERS", raising=False)
    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    assert parallel.choose_workers(10, "cpu") == (2, 1)
    assert parallel.choose_workers(1, "cpu") == (1, 2)  # one job: all the cores as its threads
    monkeypatch.setattr(parallel, "available_cores", lambda: 16)
    assert parallel.choose_workers(10, "cpu") == (parallel.MAX_WORKERS, 16 // parallel.MAX_WORKERS)
    assert parallel.choose_workers(10, "cpu", workers=1) == (1, 16)
    monkeypatch.setenv("LABKIT_WORKERS", "3")
    assert parallel.choose_workers(10, "cpu") == (3, 5)
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("LABKIT_WORKERS", bad)
        with pytest.raises(ValueError, match="LABKIT_WORKERS must be a whole number"):
            parallel.choose_workers(10, "cpu")
    monkeypatch.delenv("LABKIT_WORKERS")
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be None"):
            parallel.choose_workers(10, "cpu", workers=bad)


def test_jobs_run_in_separate_quiet_processes_and_errors_reach_the_caller(capsys):
    jobs = [3, 1, 2, 5]
    out = dict(parallel.run_jobs(square_or_fail, jobs, workers=2, threads=1, desc="squares"))
    assert sorted(out) == [0, 1, 2, 3] and [out[i][0] for i in range(4)] == [9, 1, 4, 25]
    assert all(pid != os.getpid() for _, pid, _ in out.values())
    assert {mode for _, _, mode in out.values()} == {"off"}  # workers print no progress of their own
    assert "4 squares in 2 processes of 1 thread each" in capsys.readouterr().out
    with pytest.raises(ValueError, match="job failed on purpose"):
        list(parallel.run_jobs(square_or_fail, [1, "fail", 2], workers=2, threads=1))
    here = list(parallel.run_jobs(square_or_fail, [4], workers=1, threads=1))  # one worker: in this process
    assert here[0][0] == 0 and here[0][1][:2] == (16, os.getpid())
    with pytest.raises(ValueError, match="workers and threads"):
        list(parallel.run_jobs(square_or_fail, [1], workers=0, threads=1))
