"""Every solution notebook runs headless on small parameters; nbval re-runs it; handouts run too.

The solutions are executed once per session with papermill into a temporary
folder; the handouts then run on the same run folder (its trained runs are
reused, so they take seconds), and nbval re-executes the papermill outputs to
check that the cells marked ``# NBVAL_CHECK_OUTPUT`` give the same outputs for
the same seed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
DATA = Path(os.environ.get("LABKIT_DATA", ROOT / "data")).resolve()
# Small values for every parameter a notebook may declare; each notebook gets those it declares.
SMALL = dict(epochs=1, n_train=512, n_eval=500, ablation_images=512, batch_size=64, data_root=str(DATA))
QUESTIONS = {"01_dcgan": range(1, 6), "02_cgan": range(6, 10), "03_wgan_metrics": range(10, 14)}

pytestmark = pytest.mark.skipif(not SOLUTIONS, reason="no solution notebooks yet")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


def small_parameters(path: Path, workdir: Path) -> dict:
    declared = papermill.inspect_notebook(str(path))
    params = {k: v for k, v in SMALL.items() if k in declared}
    params["run_dir"] = str(workdir / "runs")
    return params


def execute(path: Path, out: Path, workdir: Path) -> nbformat.NotebookNode:
    papermill.execute_notebook(str(path), str(out), parameters=small_parameters(path, workdir),
                               kernel_name="python3", cwd=str(workdir), progress_bar=False)
    return nbformat.read(out, as_version=4)


_executed: dict[str, Path] = {}


def executed_solution(path: Path, workdir: Path) -> Path:
    if path.stem not in _executed:
        out = workdir / f"{path.stem}.solution.ipynb"
        execute(path, out, workdir)
        _executed[path.stem] = out
    return _executed[path.stem]


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs_and_answers_every_question(path, workdir):
    nb = nbformat.read(executed_solution(path, workdir), as_version=4)
    assert not error_outputs(nb)
    answers = {c.metadata.get("labkit", {}).get("question"): c.source.strip() for c in nb.cells
               if "solution" in c.metadata.get("tags", [])}
    for q in QUESTIONS.get(path.stem, []):
        assert len(answers.get(q, "")) > 200, f"question {q} has no real answer"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "the executed notebook should show its figures"
    runs = workdir / "runs"
    assert list(runs.rglob("*.png")), "figures are saved into the run folder for reports"
    assert list(runs.rglob("*.json")), "metrics and histories are saved into the run folder"


def output_texts(nb: nbformat.NotebookNode) -> list[str]:
    """Every text a code cell showed: streams, and the plain-text and Markdown forms of displays."""
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream":
                texts.append(out.get("text", ""))
            for kind in ("text/plain", "text/markdown"):
                if kind in out.get("data", {}):
                    value = out["data"][kind]
                    texts.append("".join(value) if isinstance(value, list) else value)
    return texts


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_answer_is_checked_on_the_run_even_a_tiny_one(path, workdir):
    """Each question shows its evidence and its claims, marked; a tiny run says a ✗ may be its budget's."""
    texts = output_texts(nbformat.read(executed_solution(path, workdir), as_version=4))
    for q in QUESTIONS.get(path.stem, []):
        evidence = [t for t in texts if f"Evidence for question {q}" in t]
        claims = [t for t in texts if re.search(rf"Claims of question {q}\b", t)]
        assert evidence, f"question {q}: no evidence table in the executed solution"
        assert claims, f"question {q}: no claims printed in the executed solution"
        assert all(re.search(r"[✓✗–] ", t) for t in claims), f"question {q}: a claims table without marks"
        assert any("smaller than the full profile" in t for t in claims), (
            f"question {q}: the tiny run's claims do not say that a ✗ may be the budget's")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_nbval_reruns_give_the_same_checked_outputs(path, workdir):
    executed = executed_solution(path, workdir)
    nb = nbformat.read(executed, as_version=4)
    assert any(c.source.startswith("# NBVAL_CHECK_OUTPUT") for c in nb.cells if c.cell_type == "code")
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                             "--nbval-current-env", str(executed)],
                            cwd=workdir, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_handout_runs_end_to_end_on_labkit_reference(path, workdir):
    executed_solution(path, workdir)  # trains the runs the handout then reuses
    handout = ROOT / "notebooks" / path.name
    nb = execute(handout, workdir / f"{path.stem}.handout.ipynb", workdir)
    assert not error_outputs(nb)
    text = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    exercises = [c for c in nb.cells if c.metadata.get("labkit", {}).get("exercise")]
    assert exercises and "not done yet" in text, "an untouched handout should say each exercise is not done yet"
    for cell in exercises:
        assert "### BEGIN SOLUTION" not in cell.source and "NotImplementedError" in cell.source
    prompts = {c.metadata.get("labkit", {}).get("question") for c in nb.cells if "answer" in c.metadata.get("tags", [])}
    assert set(QUESTIONS.get(path.stem, [])) <= prompts
    texts = output_texts(nb)
    assert not [t for t in texts if "Claims of question" in t], "the handout shows the solution's claims"
    for q in QUESTIONS.get(path.stem, []):  # the measurements stay: students answer from them
        assert [t for t in texts if f"Evidence for question {q}" in t], f"question {q}: the handout lost its evidence"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_labs_module_names_the_runs_the_notebook_trains(path, workdir):
    """labkit.labs (what the quality benchmark trains) builds the very configs the notebook trained with."""
    from labkit import labs, train

    executed_solution(path, workdir)
    expected = labs.configs(path.stem, **small_parameters(path, workdir))
    assert expected, f"labkit.labs has no runs for {path.stem}"
    for name, config in expected.items():
        folder = train.run_folder(workdir / "runs", name, config)
        assert (folder / train.CHECKPOINT).is_file(), (
            f"{path.stem} trained no run {folder.name}: labkit.labs.{name} no longer matches the notebook's config")
