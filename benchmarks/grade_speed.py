"""How long does grading one lab 1 submission take, and what does ``--jobs 2`` gain?

    python benchmarks/grade_speed.py [--n N] [--jobs 2]

Builds N submissions from solutions/01_dcgan.ipynb (alternately the solution itself and the
untouched handout: full marks and "not attempted" everywhere), grades them with ``jobs=1`` and
then with ``--jobs``, at the grading parameters (labkit.grading.GRADING_PARAMS), and prints the
wall time per submission and the speed-up. Target: under 60 s per submission on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import nbformat

from labkit import grading, handouts

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


def timed(paths: list[Path], out: Path, jobs: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    results = grading.grade(paths, out, jobs=jobs)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="submissions (half solutions, half handouts)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.n < 1 or args.jobs < 2:
        parser.error("--n must be >= 1 and --jobs >= 2")
    print(f"{os.cpu_count()} CPU cores; grading parameters {grading.GRADING_PARAMS}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_submissions(Path(tmp), args.n)
        one, results = timed(paths, Path(tmp) / "jobs1", 1)
        for r in results:
            print(f"  {r['student']}: {r['total']:g}/{r['max_total']:g} points, {r['seconds']:.1f} s in its kernel")
        many, _ = timed(paths, Path(tmp) / f"jobs{args.jobs}", args.jobs)
        same = (Path(tmp) / "jobs1" / "grades.csv").read_text() == (Path(tmp) / f"jobs{args.jobs}" / "grades.csv").read_text()
    print(f"jobs=1: {one:.1f} s for {args.n} submissions, {one / args.n:.1f} s per submission")
    print(f"jobs={args.jobs}: {many:.1f} s, {many / args.n:.1f} s per submission; speed-up {one / many:.2f}x")
    print(f"same grades.csv: {same}")


if __name__ == "__main__":
    main()
