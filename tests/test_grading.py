"""labkit.grading: submissions built here from lab 1's solution and handout, graded in fresh kernels.

One class of eight submissions is graded once (``--jobs 2``, session fixture); a subset is
graded again with ``--jobs 1`` and must give the same grades.csv rows. Small unit tests cover
the probes' comparisons, id matching and re-grading without these kernels.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import nbformat
import pytest
import torch

from labkit import grading, handouts, losses

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "01_dcgan.ipynb"
FULL = 13.0
POINTS = {"dcgan-generator": 3, "dcgan-discriminator": 3, "dcgan-d-loss": 2, "dcgan-g-loss": 2, "dcgan-train-step": 3}
CELL_TIMEOUT = 25

pytestmark = pytest.mark.skipif(not SOLUTION.is_file(), reason="no lab 1 solution notebook")


def _solution() -> nbformat.NotebookNode:
    return nbformat.read(SOLUTION, as_version=4)


def _cell(nb, exercise):
    return next(c for c in nb.cells if grading._exercise_of(c) == exercise)


def _tamper_code(out: Path) -> str:
    fake = {"student": "tamper", "exercises": [], "total": 13, "max_total": 13, "notes": [], "solution": "x",
            "submission": "x", "seconds": 0, "graded_at": "x"}
    return f'''import pathlib as _p, labkit.checks as _c
for _n in dir(_c):
    if not _n.startswith("_") and callable(getattr(_c, _n)):
        setattr(_c, _n, lambda *a, **k: a[0] if a else None)
print("exercise dcgan-d-loss: passed. all tests passed")
_out = _p.Path({str(out)!r})
(_out / "results").mkdir(parents=True, exist_ok=True)
(_out / "results" / "tamper.json").write_text({json.dumps(fake)!r})
(_out / "grades.csv").write_text("student,total\\ntamper,13\\n")
'''


def build_submissions(folder: Path, out: Path) -> dict[str, Path]:
    sol = _solution()
    hand = handouts.make_handout(sol)
    subs: dict[str, nbformat.NotebookNode] = {"solution": sol, "handout": hand}

    nb = copy.deepcopy(sol)  # the discriminator loss with a flipped sign
    c = _cell(nb, "dcgan-d-loss")
    c.source = c.source.replace("return real_term + fake_term", "return -(real_term + fake_term)")
    assert "-(real_term" in c.source
    subs["wrong_dloss"] = nb

    nb = copy.deepcopy(sol)
    c = _cell(nb, "dcgan-g-loss")
    c.source = "while True:\n    pass\n" + c.source
    subs["infinite_loop"] = nb

    nb = copy.deepcopy(sol)  # a loop that ignores the interrupt: the kernel is restarted and rebuilt
    c = _cell(nb, "dcgan-d-loss")
    c.source = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n" + c.source
    subs["stubborn_loop"] = nb

    nb = copy.deepcopy(sol)
    c = _cell(nb, "dcgan-discriminator")
    c.source = c.source.replace("class Discriminator(nn.Module):", "class Discriminator(nn.Module)")
    subs["syntax_error"] = nb

    nb = copy.deepcopy(sol)  # exercise cells reversed, extra cells, the d-loss cell split in two
    ex_idx = [i for i, c in enumerate(nb.cells) if grading._exercise_of(c)]
    ex_cells = [nb.cells[i] for i in ex_idx]
    for i, c in zip(ex_idx, reversed(ex_cells)):
        nb.cells[i] = c
    d = _cell(nb, "dcgan-d-loss")
    first = copy.deepcopy(d)
    first.source = "import math  # first half of a split cell"
    nb.cells.insert(nb.cells.index(d), first)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("my notes"))
    nb.cells.insert(5, nbformat.v4.new_code_cell("scratch = 1 + 1\nprint(scratch)"))
    subs["reordered"] = nb

    nb = copy.deepcopy(sol)
    del _cell(nb, "dcgan-generator").metadata["labkit"]
    subs["missing_id"] = nb

    nb = copy.deepcopy(hand)
    for c in nb.cells:
        if grading._exercise_of(c):
            c.source = _tamper_code(out) + c.source
    nb.cells.insert(1, nbformat.v4.new_code_cell(_tamper_code(out)))
    subs["tamper"] = nb

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, nb in subs.items():
        nb = handouts.strip_outputs(nb) if name != "handout" else nb
        for i, c in enumerate(nb.cells):  # fresh cell ids, as a student's copy would have
            c["id"] = f"c{i}"
        paths[name] = folder / f"{name}.ipynb"
        nbformat.write(nb, paths[name])
    return paths


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grading")
    out = tmp / "out"
    subs = build_submissions(tmp / "subs", out)
    results = grading.grade(list(subs.values()), out, jobs=2, timeout=CELL_TIMEOUT, notebook_timeout=300)
    return tmp, out, subs, {r["student"]: r for r in results}


def outcomes(result) -> dict[str, str]:
    return {e["exercise"]: e["outcome"] for e in result["exercises"]}


def points(result) -> dict[str, float]:
    return {e["exercise"]: e["points"] for e in result["exercises"]}


def test_solution_gets_full_points(graded):
    r = graded[3]["solution"]
    assert r["total"] == r["max_total"] == FULL, r
    assert set(outcomes(r).values()) == {"passed"}


def test_untouched_handout_gets_zero_and_finishes(graded):
    r = graded[3]["handout"]
    assert r["total"] == 0
    assert set(outcomes(r).values()) == {"not attempted"}
    assert not r["notes"], r["notes"]


def test_flipped_d_loss_loses_only_its_points_and_says_why(graded):
    r = graded[3]["wrong_dloss"]
    assert outcomes(r)["dcgan-d-loss"] == "failed"
    assert r["total"] == FULL - POINTS["dcgan-d-loss"]
    msg = next(e["message"] for e in r["exercises"] if e["exercise"] == "dcgan-d-loss")
    assert "value on seeded logits: wrong" in msg and "expected" in msg and "got" in msg, msg


def test_infinite_loop_times_out_rest_graded(graded):
    r = graded[3]["infinite_loop"]
    assert outcomes(r)["dcgan-g-loss"] == "timed out"
    assert r["total"] == FULL - POINTS["dcgan-g-loss"]  # train-step (after it) still graded
    assert r["seconds"] < CELL_TIMEOUT + 120


def test_loop_ignoring_the_interrupt_restarts_the_kernel_rest_graded(graded):
    r = graded[3]["stubborn_loop"]
    assert outcomes(r)["dcgan-d-loss"] == "timed out"
    assert r["total"] == FULL - POINTS["dcgan-d-loss"], r
    assert any("restarted" in n for n in r["notes"])
    assert r["seconds"] < 2 * CELL_TIMEOUT + 150


def test_syntax_error_is_an_error_with_traceback(graded):
    r = graded[3]["syntax_error"]
    assert outcomes(r)["dcgan-discriminator"] == "error"
    msg = next(e["message"] for e in r["exercises"] if e["exercise"] == "dcgan-discriminator")
    assert "SyntaxError" in msg, msg
    assert r["total"] == FULL - POINTS["dcgan-discriminator"]


def test_reordered_split_and_extra_cells_are_graded_by_id(graded):
    r = graded[3]["reordered"]
    assert r["total"] == FULL, r
    assert any("dcgan-d-loss" in n and "2 cells" in n for n in r["notes"]), r["notes"]


def test_missing_id_is_reported_not_guessed(graded):
    r = graded[3]["missing_id"]
    assert outcomes(r)["dcgan-generator"] == "missing"
    assert r["total"] == FULL - POINTS["dcgan-generator"]


def test_tampering_gains_nothing(graded):
    tmp, out, subs, results = graded
    assert points(results["tamper"]) == points(results["handout"])
    assert set(outcomes(results["tamper"]).values()) == {"not attempted"}
    rows = {row["student"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    assert float(rows["tamper"]["total"]) == 0.0
    assert set(rows) == set(subs)  # the fake rows written by the submission are gone
    stored = json.loads((out / "results" / "tamper.json").read_text())
    assert stored["total"] == 0 and stored["exercises"]
    assert "grades.csv" in (out / "grading-log.txt").read_text()  # the instructor is told


def test_outputs_feedback_and_summary(graded):
    tmp, out, subs, results = graded
    header = next(csv.reader(open(out / "grades.csv")))
    assert header == ["student", *POINTS, "total", "max_total"]
    page = (out / "feedback" / "wrong_dloss.html").read_text()
    assert "dcgan-d-loss" in page and "failed" in page and "expected" in page
    assert (out / "summary.png").stat().st_size > 1000
    assert "summary.png" in (out / "summary.html").read_text()


def test_jobs_1_gives_the_same_grades_as_jobs_2(graded):
    tmp, out, subs, results = graded
    out1 = tmp / "out1"
    grading.grade([subs["solution"], subs["handout"], subs["wrong_dloss"]], out1, jobs=1, timeout=CELL_TIMEOUT)
    rows1 = list(csv.reader(open(out1 / "grades.csv")))
    rows2 = {row[0]: row for row in csv.reader(open(out / "grades.csv"))}
    assert rows1[0] == rows2["student"]
    for row in rows1[1:]:
        assert row == rows2[row[0]]


# --------------------------------------------------------------------------- fast unit tests (no kernel)


def test_probe_comparison_in_process():
    ns = grading.reference_namespace(_solution())
    ref = grading.run_probe_here("dcgan-d-loss", ns, 7)
    assert grading._judge("dcgan-d-loss", 2, {"status": "ok", "result": ref}, [ref]).outcome == "passed"
    flipped = dict(ns, d_loss=lambda r, f: -losses.d_loss_gan(r, f))
    got = grading.run_probe_here("dcgan-d-loss", flipped, 7)
    res = grading._judge("dcgan-d-loss", 2, {"status": "ok", "result": got}, [ref])
    assert res.outcome == "failed" and res.points == 0
    # a log(sigmoid) loss is right on ordinary logits but not on extreme ones: partial credit
    import torch

    naive = dict(ns, d_loss=lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean()))
    got = grading.run_probe_here("dcgan-d-loss", naive, 7)
    res = grading._judge("dcgan-d-loss", 2, {"status": "ok", "result": got}, [ref])
    assert res.outcome == "partial" and 0 < res.points < 2, res


def test_labkit_reference_used_as_answer_fails():
    res = grading._judge("dcgan-d-loss", 2, {"status": "ok", "result": {}, "modules": ["labkit.losses"]}, [{}])
    assert res.outcome == "failed" and "labkit" in res.message


def test_student_cells_joins_duplicates_and_find_solution():
    sol = _solution()
    code, notes = grading.student_cells(sol)
    assert list(code) == list(POINTS) and not notes
    assert grading.find_solution(handouts.make_handout(sol)).name == "01_dcgan.ipynb"
    with pytest.raises(ValueError, match="shares an exercise id"):
        grading.find_solution(nbformat.v4.new_notebook())


def test_frame_leaves_out_checks_and_stops_after_last_exercise():
    steps = grading.build_frame(_solution(), dict(grading.GRADING_PARAMS, data_root="d", run_dir="r"))
    assert [s.exercise for s in steps if s.kind == "exercise"] == list(POINTS)
    assert steps[-1].kind == "exercise"
    assert not any("checks.dcgan" in s.source for s in steps)
    assert any("epochs = 1" in s.source for s in steps)
    with pytest.raises(ValueError, match="params"):
        grading.build_frame(_solution(), {"not_a_parameter": 1})


def test_regrading_keeps_earlier_results(tmp_path, capsys):
    result = {"student": "ann", "submission": "a", "solution": "01_dcgan.ipynb", "graded_at": "t", "seconds": 1,
              "notes": [], "total": 2, "max_total": 2,
              "exercises": [{"exercise": "dcgan-d-loss", "outcome": "passed", "points": 2, "max_points": 2,
                             "message": "", "parts": []}]}
    grading.write_result(result, tmp_path)
    grading.collect(tmp_path)
    grading.write_result(dict(result, total=0), tmp_path)
    grading.collect(tmp_path)
    said = capsys.readouterr().out
    assert "kept the earlier result of ann" in said and "previous" in said
    assert len(list((tmp_path / "results" / "history").glob("ann.*.json"))) == 1
    assert len(list((tmp_path / "previous").glob("grades.*.csv"))) == 1
    assert grading.main_grade(["grade-collect", str(tmp_path)]) == 0


def test_grade_one_and_collect_from_the_command_line(graded):
    tmp, out, subs, results = graded
    one = tmp / "one"
    code = grading.main_grade(["grade-one", str(subs["handout"]), "--out", str(one), "--student", "bob",
                               "--timeout", str(CELL_TIMEOUT)])
    assert code == 0
    assert json.loads((one / "results" / "bob.json").read_text())["total"] == 0
    assert grading.main_grade(["grade-collect", str(one)]) == 0
    assert [row["student"] for row in csv.DictReader(open(one / "grades.csv"))] == ["bob"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        grading.grade([SOLUTION], tmp_path, jobs=0)
    with pytest.raises(ValueError, match="submissions"):
        grading.discover([tmp_path / "nope.ipynb"])


def test_student_names_come_from_files_and_folders(tmp_path):
    cls = tmp_path / "class"
    (cls / "dave").mkdir(parents=True)
    (cls / "erin").mkdir()
    for path in (cls / "alice.ipynb", cls / "bob.ipynb", cls / "dave" / "lab1.ipynb",
                 cls / "erin" / "part1.ipynb", cls / "erin" / "part2.ipynb"):
        path.write_text("{}")
    names = [name for name, _ in grading.discover([cls])]
    assert names == ["alice", "bob", "dave", "erin-part1", "erin-part2"]
    assert [name for name, _ in grading.discover([cls / "dave", cls / "alice.ipynb"])] == ["dave", "alice"]
    (cls / "dave" / "alice.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="alice"):  # dave-alice is fine, but a second alice is not
        grading.discover([cls / "alice.ipynb", tmp_path / "class" / "dave", cls / "dave" / "alice.ipynb"])


@pytest.mark.parametrize("name", ["01_dcgan", "02_cgan", "03_wgan_metrics"])
def test_every_exercise_has_a_probe_the_reference_passes(name):
    path = ROOT / "solutions" / f"{name}.ipynb"
    if not path.is_file():
        pytest.skip(f"no {name}")
    sol = nbformat.read(path, as_version=4)
    ns = grading.reference_namespace(sol)
    for ex, pts in grading.exercises_of(sol).items():
        assert ex in grading.PROBES, f"{ex} has no grader probe"
        ref = grading.run_probe_here(ex, ns, 3)
        again = grading.run_probe_here(ex, ns, 3)  # deterministic for a given seed
        assert grading._judge(ex, pts, {"status": "ok", "result": again}, [ref]).outcome == "passed", ex


def test_gradient_penalty_over_the_wrong_dimension_fails():
    path = ROOT / "solutions" / "03_wgan_metrics.ipynb"
    if not path.is_file():
        pytest.skip("no notebook 03")
    import torch

    def wrong_dim(critic, real, fake):
        eps = torch.rand(real.shape[0], 1, 1, 1)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.norm(2, dim=0) - 1) ** 2).mean()  # over the batch, not per sample

    ns = grading.reference_namespace(nbformat.read(path, as_version=4))
    ref = grading.run_probe_here("wgan-gradient-penalty", ns, 5)
    got = grading.run_probe_here("wgan-gradient-penalty", dict(ns, gradient_penalty=wrong_dim), 5)
    res = grading._judge("wgan-gradient-penalty", 3, {"status": "ok", "result": got}, [ref])
    assert res.outcome == "failed" and "per sample" in res.message, res.message


def test_train_step_reusing_the_fake_batch_earns_full_points_as_in_the_notebook_check():
    """The notebook's check accepts G's step on D's fake batch; grading must not take points for it."""
    from labkit.checks import dcgan

    sol = nbformat.read(ROOT / "solutions" / "01_dcgan.ipynb", as_version=4)
    ns = grading.reference_namespace(sol)
    refs = grading.reference_results("dcgan-train-step", ns, 3)
    reuse = grading.run_probe_here("dcgan-train-step", {"train_step": dcgan.reuse_fake_train_step}, 3)
    assert grading._judge("dcgan-train-step", 3, {"status": "ok", "result": reuse}, refs).outcome == "passed"
    assert grading._judge("dcgan-train-step", 3, {"status": "ok", "result": reuse}, refs[:1]).outcome != "passed"

    def no_zero_grad(G, D, real, opt_g, opt_d, gen):  # gradients pile up from step to step
        z = torch.randn(real.shape[0], G.nz, generator=gen)
        loss_d = losses.d_loss_gan(D(real), D(G(z).detach()))
        loss_d.backward()
        opt_d.step()
        loss_g = losses.g_loss_nonsaturating(D(G(torch.randn(real.shape[0], G.nz, generator=gen))))
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    wrong = grading.run_probe_here("dcgan-train-step", {"train_step": no_zero_grad}, 3)
    assert grading._judge("dcgan-train-step", 3, {"status": "ok", "result": wrong}, refs).outcome != "passed"
