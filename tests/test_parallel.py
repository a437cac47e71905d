"""labkit.parallel: how many processes and threads, and jobs run in spawned workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit import parallel


def square_or_fail(job):
    """A job for the workers (top level, so a spawned process can import it)."""
    if job == "fail":
        raise ValueError("job failed on purpose")
    return job * job, os.getpid(), os.environ.get("LABKIT_PROGRESS")


def write_pid_and_sleep(job):
    """A job that says which process runs it, then lasts far longer than the test waits."""
    path, seconds = job
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return job


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaped has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def test_workers_end_when_their_parent_is_killed(tmp_path):
    """A killed parent (a restarted kernel) cannot stop its pool: its workers must notice and stop by themselves."""
    tests = Path(__file__).resolve().parent
    parent = ("from labkit import parallel\nfrom test_parallel import write_pid_and_sleep\n"
              "if __name__ == '__main__':\n"
              f"    jobs = [({str(tmp_path / 'w0')!r}, 300), ({str(tmp_path / 'w1')!r}, 300)]\n"
              "    list(parallel.run_jobs(write_pid_and_sleep, jobs, workers=2, threads=1))\n")
    (tmp_path / "parent.py").write_text(parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], env=env, stdout=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline and proc.poll() is None:
            pids = [int(f.read_text()) for f in (tmp_path / "w0", tmp_path / "w1") if f.exists() and f.read_text()]
            time.sleep(0.2)
        assert len(pids) == 2, "the workers never started their jobs"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10 * parallel.PARENT_CHECK_SECONDS
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in pids), "a worker went on after its parent was killed"
    finally:
        proc.kill()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


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


def count_slowly(job):
    """A job with a progress bar of its own, long enough for its worker to report it a few times."""
    from labkit.progress import REPORT_SECONDS, progress

    bar = progress(total=4, desc=f"counting {job}", unit="step")
    for _ in range(4):
        time.sleep(REPORT_SECONDS * 0.75)
        bar.update(1)
    bar.close()
    return job


def test_the_parent_shows_where_each_workers_job_is(monkeypatch):
    shown = []

    class Recorder:
        def set_postfix(self, values=None, **kwargs):
            shown.append(dict(values or {}, **kwargs))

        def update(self, n=1):
            pass

        def close(self):
            pass

    monkeypatch.setattr(parallel, "progress", lambda **kwargs: Recorder())
    out = dict(parallel.run_jobs(count_slowly, ["a", "b"], workers=2, threads=1, name=lambda job: f"job {job}"))
    assert out == {0: "a", 1: "b"}
    now = [postfix["now"] for postfix in shown if "now" in postfix]
    assert any("job a: counting a" in line and "%" in line for line in now), shown
    assert any("job b: counting b" in line for line in now), shown
    assert "now" not in shown[-1] and shown[-1]["last"].startswith("job "), "finished jobs are no longer shown as running"
