"""Scoring one exercise in a fresh, sandboxed process (the grader's side of :mod:`.probe_child`).

The process gets a guarded copy of labkit (:mod:`.guard`) mounted over the installed one, the
exercise's preamble, the student's cells for it, and, for names of earlier exercises the
student lost, labkit's reference of those. Only once the cells have loaded does it receive
the seed the grader drew; it returns the probe's facts, which the grader judges against the
references it probes itself, in its own process.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import sandbox
from ..exercises import Exercise
from . import guard

#: what a probe process may use: enough for torch and a small model, not enough to hurt the machine
PROBE_LIMITS = sandbox.Limits(address_space=6 << 30, processes=128, cpu_seconds=300, file_size=64 << 20, open_files=256)


class ProbeFailed(Exception):
    """The probe process ended without a result (time limit, crash, or a broken reply)."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class _Replies:
    """Reads the child's replies, one JSON line each, keeping what arrived beyond the current line."""

    def __init__(self, proc: subprocess.Popen, deadline: float, timeout: float) -> None:
        self.proc, self.deadline, self.timeout, self.buffer = proc, deadline, timeout, b""

    def next(self) -> dict:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = self.deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise ProbeFailed("timed out", f"your code ran longer than the limit of {self.timeout:g} s "
                                                   "and was stopped")
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise ProbeFailed("error", "the process running your code ended without a result "
                                               "(it exited, was killed, or ran out of memory)")
                self.buffer += chunk
                if len(self.buffer) > 64 << 20:
                    raise ProbeFailed("error", "the process running your code sent an oversized reply")
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except ValueError:
            raise ProbeFailed("error", "the process running your code sent a broken reply") from None
        if not isinstance(reply, dict):
            raise ProbeFailed("error", "the process running your code sent a broken reply")
        return reply


def _stderr_tail(path: Path, limit: int = 1500) -> str:
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


def probe_submission(exercise: Exercise, cells: list[tuple[str, str]], bind: dict[str, str], seed: int, *,
                     timeout: float, sandboxed: bool = True, limits: sandbox.Limits | None = None) -> dict:
    """Run ``exercise``'s probe on the student's ``cells`` in a fresh sandboxed process.

    Returns the probe's status dict (see :func:`labkit.exercises.run_probe`), or a
    ``{"status": "timed out" | "error", ...}`` of this side's own when the process fails.
    """
    with tempfile.TemporaryDirectory(prefix="labkit-probe-") as tmp:
        job_dir, work = Path(tmp) / "job", Path(tmp) / "work"
        job_dir.mkdir()
        work.mkdir()
        copy = guard.guarded_copy(exercise, job_dir)
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "LABKIT_FRONTEND": "headless"}
        box = sandbox.Sandbox(work, ro_binds=[job_dir, (copy, guard.PACKAGE)], limits=limits or PROBE_LIMITS,
                              env=env, enabled=sandboxed)
        err_path = Path(tmp) / "stderr"
        deadline = time.monotonic() + timeout
        with open(err_path, "wb") as err:
            proc = box.popen([sys.executable, "-I", str(copy / "grading" / "probe_child.py")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        try:
            proc.stdin.write((json.dumps({"exercise": exercise.id, "cells": cells, "bind": bind}) + "\n").encode())
            proc.stdin.flush()
            replies = _Replies(proc, deadline, timeout)
            loaded = replies.next()
            if loaded.get("status") != "loaded":
                return loaded if loaded.get("status") == "error" else {"status": "error", "message": "broken reply"}
            proc.stdin.write((json.dumps({"seed": seed}) + "\n").encode())
            proc.stdin.close()
            result = replies.next()
            if result.get("status") not in ("ok", "not attempted", "error"):
                return {"status": "error", "message": "the process running your code sent a broken reply"}
            return result
        except ProbeFailed as exc:
            tail = _stderr_tail(err_path)
            return {"status": exc.outcome, "message": str(exc) + (f"\nits last output:\n{tail}" if tail else "")}
        except (BrokenPipeError, OSError) as exc:
            return {"status": "error", "message": f"the process running your code ended early ({exc})"}
        finally:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream and not stream.closed:
                    stream.close()
