"""labkit.grading end to end: each lab's solution, untouched handout and wrong answers, graded in sandboxes.

One class per lab (three submissions, ``--jobs 2``) is graded through ``python -m labkit`` grader
processes. The solution earns every point, the handout none, and each wrong answer loses points with
the very messages the notebook's own check prints for it. The attacks and the fan-out have their own
files (tests/test_grading_attacks.py, tests/test_grading_scale.py); the pieces without kernels are
tested at the end.
"""

from __future__ import annotations

import copy
import csv
import json
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from labkit import exercises, grading, handouts, sandbox
from labkit.grading import guard, outputs, submissions

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = {"01_dcgan": ROOT / "solutions" / "01_dcgan.ipynb", "02_cgan": ROOT / "solutions" / "02_cgan.ipynb",
             "03_wgan_metrics": ROOT / "solutions" / "03_wgan_metrics.ipynb"}
TIMEOUT = 40

#: one wrong answer per exercise: (text in the solution cell, what replaces it)
WRONG = {
    "dcgan-generator": ("nn.Tanh(),", ""),
    "dcgan-discriminator": ("return self.main(x).view(-1)", "return torch.sigmoid(self.main(x).view(-1))"),
    "dcgan-d-loss": ("return real_term + fake_term", "return -(real_term + fake_term)"),
    "dcgan-g-loss": ("torch.ones_like(fake_logits)", "torch.zeros_like(fake_logits)"),
    "dcgan-train-step": ("    opt_d.zero_grad()\n", ""),
    "cgan-generator": ("torch.cat([z.flatten(1), onehot], dim=1)", "torch.cat([z.flatten(1), 0 * onehot], dim=1)"),
    "cgan-discriminator": ("torch.cat([x, maps], dim=1)", "torch.cat([x, 0 * maps], dim=1)"),
    "cgan-d-loss": ("fake = G(z, y).detach()", "fake = G(z, y)"),
    "cgan-style-grid": ("    G.eval()\n", ""),
    "wgan-critic-loss": ("return fake_scores.mean() - real_scores.mean()", "return real_scores.mean() - fake_scores.mean()"),
    "wgan-clip": ("p.clamp_(-c, c)", "p.mul_(c / p.abs().max())"),
    "wgan-gradient-penalty": ("((norms - 1) ** 2).mean()", "(norms - 1).abs().mean()"),
}


def cell_of(nb, exercise: str):
    return next(c for c in nb.cells if submissions.exercise_of(c) == exercise)


def wrong_notebook(solution) -> nbformat.NotebookNode:
    """The solution with every exercise wrong in its own way (each scored on its own)."""
    nb = copy.deepcopy(solution)
    for ex in submissions.exercise_ids(nb):
        old, new = WRONG[ex]
        cell = cell_of(nb, ex)
        assert old in cell.source, (ex, old)
        cell.source = cell.source.replace(old, new)
    return nb


def write(nb, path: Path) -> Path:
    nb = handouts.strip_outputs(nb)
    for i, c in enumerate(nb.cells):  # fresh cell ids, as a student's copy would have
        c["id"] = f"c{i}"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module", params=list(SOLUTIONS))
def graded_lab(request, tmp_path_factory):
    lab = request.param
    tmp = tmp_path_factory.mktemp(f"grade-{lab}")
    sol = nbformat.read(SOLUTIONS[lab], as_version=4)
    subs = {"solution": write(sol, tmp / "solution.ipynb"),
            "handout": write(handouts.make_handout(sol), tmp / "handout.ipynb"),
            "wrong": write(wrong_notebook(sol), tmp / "wrong.ipynb")}
    out = tmp / "out"
    results = grading.grade(list(subs.values()), out, jobs=2, timeout=TIMEOUT, notebook_timeout=400)
    return lab, sol, out, {r["student"]: r for r in results}


def by_exercise(result) -> dict[str, dict]:
    return {e["exercise"]: e for e in result["exercises"]}


def test_solution_gets_every_point_and_its_checks_ran(graded_lab):
    lab, sol, _, results = graded_lab
    r = results["solution"]
    ids = submissions.exercise_ids(sol)
    assert r["total"] == r["max_total"] == sum(exercises.get(ex).points for ex in ids), r
    for ex, e in by_exercise(r).items():
        assert e["outcome"] == "passed", e
        assert f"exercise {ex}: passed" in e["notebook_output"], e  # the feedback run reached its check
    assert r["sandboxed"] is True


def test_untouched_handout_gets_nothing(graded_lab):
    _, _, _, results = graded_lab
    r = results["handout"]
    assert r["total"] == 0
    for e in r["exercises"]:
        assert e["outcome"] == "not attempted", e
        assert "not done yet" in e["notebook_output"], e


def test_each_wrong_answer_loses_points_with_the_checks_own_message(graded_lab):
    """The grader and the notebook's check agree: same failing parts, same messages."""
    _, sol, _, results = graded_lab
    wrong = wrong_notebook(sol)
    for ex, e in by_exercise(results["wrong"]).items():
        assert e["outcome"] in ("failed", "partial") and e["points"] < e["max_points"], e
        exercise = exercises.get(ex)
        ns: dict = {}
        exec(exercises.preamble(ex), ns)
        for dep in exercise.uses:  # as in the grader: an earlier exercise lost is labkit's reference
            ns[exercises.get(dep).name] = exercises.resolve(exercises.get(dep).reference)
        exec(cell_of(wrong, ex).source, ns)
        with pytest.raises(exercises.ExerciseError) as raised:
            exercises.check(exercise, ns[exercise.name])
        failing = [line.split(": wrong.")[0] for line in e["message"].splitlines() if ": wrong." in line]
        assert failing, e
        for check_name in failing:
            assert f"{check_name}: wrong." in str(raised.value), (ex, check_name, str(raised.value))
        assert e["notebook_output"].startswith("ExerciseError"), e  # what the student saw in the feedback run


def test_outputs_of_a_graded_class(graded_lab):
    _, sol, out, results = graded_lab
    with open(out / "grades.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"solution", "handout", "wrong"}
    assert float(rows["solution"]["total"]) == results["solution"]["max_total"]
    assert "solution notebook's cell" in rows["solution"]["flags"]  # the solution is, by definition, a copy
    assert rows["wrong"]["flags"] == "" and rows["handout"]["flags"] == ""
    for name in rows:
        page = (out / "feedback" / f"{name}.html").read_text()
        assert f"Feedback for {name}" in page
        assert (out / "executed" / f"{name}.ipynb").is_file()
    assert "Graded without the sandbox" not in (out / "summary.html").read_text()


# --------------------------------------------------------------------------- without kernels


def test_refuses_without_a_sandbox_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "available", lambda: "bwrap is not installed")
    with pytest.raises(ValueError) as raised:
        grading.grade([SOLUTIONS["01_dcgan"]], tmp_path / "out")
    message = str(raised.value)
    assert "\n" not in message and "bwrap is not installed" in message and "--no-sandbox" in message
    assert not (tmp_path / "out").exists()


def test_summary_says_when_graded_without_the_sandbox(tmp_path):
    result = {"student": "mac-user", "submission": "x", "solution": "01_dcgan.ipynb", "notes": [], "seconds": 1,
              "graded_at": "x", "sandboxed": False, "total": 0, "max_total": 2,
              "exercises": [{"exercise": "dcgan-d-loss", "outcome": "failed", "points": 0, "max_points": 2,
                             "message": "m", "parts": [], "summary": "", "title": "t", "flag": "",
                             "notebook_output": ""}]}
    outputs.write_result(result, tmp_path)
    outputs.collect(tmp_path)
    assert "Graded without the sandbox" in (tmp_path / "summary.html").read_text()
    assert "Graded without the sandbox" in (tmp_path / "feedback" / "mac-user.html").read_text()


def test_results_are_written_whole_and_earlier_ones_kept(tmp_path):
    result = {"student": "al/ice", "total": 1}
    first = outputs.write_result(result, tmp_path)
    assert first.name == "al_ice.json"
    outputs.write_result({**result, "total": 2}, tmp_path)
    assert json.loads(first.read_text())["total"] == 2
    kept = list((tmp_path / "results" / "history").glob("al_ice.*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["total"] == 1
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.endswith(".tmp")]


def test_retyped_reference_is_flagged_and_own_code_is_not():
    sol = nbformat.read(SOLUTIONS["01_dcgan"], as_version=4)
    source = cell_of(sol, "dcgan-d-loss").source
    retyped = (source.replace("real_term", "a").replace("fake_term", "b").replace("real_logits", "r")
               .replace("fake_logits", "f") + "\n# my own work\n")
    assert submissions.same_as_reference(retyped, "dcgan-d-loss", source) == "the solution notebook's cell"
    own = "def d_loss(r, f):\n    return F.softplus(-r).mean() + F.softplus(f).mean()\n"
    assert submissions.same_as_reference(own, "dcgan-d-loss", source) is None


def test_exercise_ids_not_positions(tmp_path):
    sol = nbformat.read(SOLUTIONS["01_dcgan"], as_version=4)
    nb = copy.deepcopy(sol)
    cells = [c for c in nb.cells if submissions.exercise_of(c)]
    positions = [nb.cells.index(c) for c in cells]
    for i, c in zip(positions, reversed(cells)):
        nb.cells[i] = c
    split = copy.deepcopy(cell_of(nb, "dcgan-d-loss"))
    split.source = "import math  # first half of a split cell"
    nb.cells.insert(nb.cells.index(cell_of(nb, "dcgan-d-loss")), split)
    code, notes = submissions.student_cells(nb)
    assert code["dcgan-d-loss"].startswith("import math")
    assert any("2 cells" in n for n in notes)
    assert submissions.find_solution(nb) == SOLUTIONS["01_dcgan"]


def test_guarded_copy_stubs_every_answer_of_its_exercise_only(tmp_path):
    for ex in exercises.EXERCISES.values():
        copy_dir = guard.guarded_copy(ex, tmp_path / ex.id)
        for name in ex.guarded:
            module, _, qualname = name.partition(":")
            text = copy_dir.joinpath(*module.split(".")[1:]).with_suffix(".py").read_text()
            assert guard.stub_message(ex) in text, name


def test_a_feedback_run_that_never_ends_costs_its_printouts_not_the_points(monkeypatch, tmp_path):
    from labkit.grading import grader, kernel

    never = threading.Event()
    monkeypatch.setattr(kernel, "feedback_run", lambda *a, **k: never.wait())  # e.g. a kernel that stopped replying
    monkeypatch.setattr(grader, "FEEDBACK_GRACE", 1.0)
    sol = nbformat.read(SOLUTIONS["01_dcgan"], as_version=4)
    path = write(sol, tmp_path / "solution.ipynb")
    started = time.monotonic()
    result = grader.grade_notebook(path, cell_timeout=20, notebook_timeout=30, sandboxed=False)
    seconds = time.monotonic() - started
    assert seconds < 30 + 20 + 1 + 10, seconds  # the deadline, the last cell's limit and the grace, not forever
    assert result["total"] == result["max_total"] == 13  # every probe's verdict kept
    assert any("did not end within the submission's time limit (30 s)" in n for n in result["notes"]), result["notes"]
    assert result["executed"] is None


def test_a_grader_process_is_waited_for_not_what_it_left_running(tmp_path):
    # exits at once, leaving a child in its group that holds its stdout and stderr for a minute
    leaves = [sys.executable, "-c", "import subprocess, sys; subprocess.Popen(['sleep', '60']); sys.exit(0)"]
    started = time.monotonic()
    assert grading.run_grader(leaves, timeout=30) is None
    assert time.monotonic() - started < 10
    stuck = [sys.executable, "-c", "import sys, time; sys.stderr.write('still here'); sys.stderr.flush(); time.sleep(60)"]
    started = time.monotonic()
    why = grading.run_grader(stuck, timeout=3)
    assert time.monotonic() - started < 10
    assert why == "the grader process ran over its time limit (3 s) and was stopped"
    assert grading.run_grader([sys.executable, "-c", "import sys; sys.exit('broken: 42')"], timeout=30) \
        == "exit status 1: broken: 42\n"
