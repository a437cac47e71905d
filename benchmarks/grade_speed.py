"""How long does grading one lab 1 submission take, sandbox included, and what does it cost?

    python benchmarks/grade_speed.py [--n N] [--jobs 2]

1. The sandbox's own overhead per process: ``python -c pass`` and ``import torch`` bare and in
   bubblewrap (median of 5).
2. N submissions built from solutions/01_dcgan.ipynb (alternately the solution and the untouched
   handout) graded with ``jobs=1`` and then with ``--jobs``: wall time per submission, and the
   probes' and the feedback run's share. Target: under 60 s per submission on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from labkit import grading, handouts, sandbox

ROOT = Path(__file__).resolve().parents[1]


def make_submissions(folder: Path, n: int) -> list[Path]:
    sol = nbformat.read(ROOT / "solutions" / "01_dcgan.ipynb", as_version=4)
    hand = handouts.make_handout(sol)
    paths = []
    for i in range(n):
        path = folder / f"student{i:02d}.ipynb"
        nbformat.write(sol if i % 2 == 0 else hand, path)
        paths.append(path)
    return paths


def process_overhead(code: str, repeats: int = 5) -> tuple[float, float]:
    """Median seconds of ``python -c code``, bare and in the sandbox."""
    with tempfile.TemporaryDirectory() as tmp:
        box = sandbox.Sandbox(Path(tmp) / "work")
        bare, boxed = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            done = box.run([sys.executable, "-c", code], timeout=120)
            assert done.returncode == 0, done
            boxed.append(time.perf_counter() - start)
    return statistics.median(bare), statistics.median(boxed)


def timed(paths: list[Path], out: Path, jobs: int, feedback: bool = True) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    results = grading.grade(paths, out, jobs=jobs, feedback_run=feedback)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="submissions (half solutions, half handouts)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.n < 1 or args.jobs < 2:
        parser.error("--n must be >= 1 and --jobs >= 2")
    print(f"{os.cpu_count()} CPU cores; sandbox: {sandbox.available() or 'bubblewrap'}")
    for code in ("pass", "import torch"):
        bare, boxed = process_overhead(code)
        print(f"python -c {code!r}: {bare * 1000:.0f} ms bare, {boxed * 1000:.0f} ms sandboxed "
              f"({(boxed - bare) * 1000:+.0f} ms)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_submissions(Path(tmp), args.n)
        probes_only, _ = timed(paths, Path(tmp) / "probes", 1, feedback=False)
        one, results = timed(paths, Path(tmp) / "jobs1", 1)
        for r in results:
            print(f"  {r['student']}: {r['total']:g}/{r['max_total']:g} points in {r['seconds']:.1f} s")
        many, _ = timed(paths, Path(tmp) / f"jobs{args.jobs}", args.jobs)
        same = [line.split(",")[:-1] for line in (Path(tmp) / "jobs1" / "grades.csv").read_text().splitlines()] == \
            [line.split(",")[:-1] for line in (Path(tmp) / f"jobs{args.jobs}" / "grades.csv").read_text().splitlines()]
    print(f"jobs=1, probes only (--no-feedback): {probes_only / args.n:.1f} s per submission")
    print(f"jobs=1: {one:.1f} s for {args.n} submissions, {one / args.n:.1f} s per submission (target < 60 s)")
    print(f"jobs={args.jobs}: {many:.1f} s, {many / args.n:.1f} s per submission; speed-up {one / many:.2f}x")
    print(f"same points with jobs=1 and jobs={args.jobs}: {same}")


if __name__ == "__main__":
    main()
