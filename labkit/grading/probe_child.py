"""The process that scores one exercise: it runs inside the sandbox, from a guarded copy of labkit.

Protocol, one JSON object per line (the grader's side is :mod:`labkit.grading.probes`):

1. stdin: the job, ``{"exercise": id, "cells": [[label, source], ...], "bind": {name: "module:qualname"}}``.
   The exercise's preamble runs, names of earlier exercises that failed are bound to labkit's
   references, then the student's cells run. Reply ``{"status": "loaded"}`` or an error.
2. stdin: ``{"seed": n}``, drawn by the grader only now. Reply: the probe's result
   (:func:`labkit.exercises.run_probe`).

Replies go to a private copy of the original stdout; the student's own prints go to stderr.
"""

import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the guarded copy's folder comes first


def main() -> None:
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def reply(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    job = json.loads(sys.stdin.readline())
    from labkit import exercises

    exercise = exercises.get(job["exercise"])
    ns: dict = {"__name__": "__main__"}
    try:
        exec(compile(exercises.preamble(exercise.id), "<preamble>", "exec"), ns)
        for name, reference in job["bind"].items():
            ns[name] = exercises.resolve(reference)
        for label, source in job["cells"]:
            exec(compile(source, f"<{label}>", "exec"), ns)
    except BaseException as exc:  # a cell that fails to load: reported, like a failing call
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        reply({"status": "error", "message": "running your exercise cell failed: "
               + "".join(traceback.format_exception_only(type(exc), exc)).strip(), "traceback": "".join(lines[-6:])})
        return
    reply({"status": "loaded"})
    seed = int(json.loads(sys.stdin.readline())["seed"])
    reply(exercises.run_probe(exercise, ns.get(exercise.name), seed))


if __name__ == "__main__":
    main()
