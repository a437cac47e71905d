"""A class graded as a job array: the Slurm script's per-task command for three task ids at once, then collect.

The three ``grade-one`` processes share one output folder and run at the same time; every result
must be there, whole, and ``grade-collect`` must merge them.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from labkit import handouts

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "slurm" / "grade-array.sbatch"


def test_array_tasks_share_one_output_folder_and_lose_nothing(tmp_path):
    sol = nbformat.read(ROOT / "solutions" / "03_wgan_metrics.ipynb", as_version=4)
    hand = handouts.make_handout(sol)
    lines = []
    for i, nb in enumerate((sol, hand, sol)):
        path = tmp_path / f"sub{i}.ipynb"
        nbformat.write(nb, path)
        lines.append(f"{path} student-{i}")
    listing = tmp_path / "class.txt"
    listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "grades"
    env = {**os.environ, "LABKIT_PYTHON": sys.executable, "LABKIT_GRADE_ARGS": "--no-feedback --timeout 60"}
    tasks = [subprocess.Popen(["bash", str(SCRIPT), str(listing), str(out)], env={**env, "SLURM_ARRAY_TASK_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for task in tasks:
        stdout, stderr = task.communicate(timeout=300)
        assert task.returncode == 0, stderr[-2000:]
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    assert sorted(results) == ["student-0", "student-1", "student-2"]
    assert [results[f"student-{i}"]["total"] for i in range(3)] == [7, 0, 7]
    done = subprocess.run([sys.executable, "-m", "labkit", "grade-collect", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(out / "grades.csv") as f:
        rows = {row["student"]: float(row["total"]) for row in csv.DictReader(f)}
    assert rows == {"student-0": 7.0, "student-1": 0.0, "student-2": 7.0}


def test_a_task_without_its_line_says_so(tmp_path):
    listing = tmp_path / "class.txt"
    listing.write_text("only-one.ipynb\n")
    done = subprocess.run(["bash", str(SCRIPT), str(listing), str(tmp_path / "out")], capture_output=True, text=True,
                          env={**os.environ, "SLURM_ARRAY_TASK_ID": "5"})
    assert done.returncode == 2 and "has no line 6" in done.stderr
