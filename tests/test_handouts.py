"""Handouts: solution regions become TODOs, answers become prompts, and notebooks/ never drifts."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from labkit import handouts

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"

GENERATOR_CELL = '''\
import torch
from torch import nn


def noise(n, nz):
    ### BEGIN SOLUTION
    ### HINT: draw n vectors from N(0, I)
    return torch.randn(n, nz)
    ### END SOLUTION


class Generator(nn.Module):
    def __init__(self, nz):
        super().__init__()
        self.nz = nz

    def forward(self, z):
        if z.ndim == 4:
            z = z.flatten(1)
        ### BEGIN SOLUTION
        h = z * 2
        return h.tanh()
        ### END SOLUTION
'''


def _solution_notebook() -> nbformat.NotebookNode:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (labkit)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cells = [
        v4.new_markdown_cell("# Lab 1: DCGAN"),
        v4.new_code_cell('import sys\nif "google.colab" in sys.modules:\n    %pip install -q labkit',
                         metadata={"tags": ["colab-setup"]}),
        v4.new_code_cell("epochs = 5", metadata={"tags": ["parameters"]}),
        v4.new_code_cell(GENERATOR_CELL, metadata={"labkit": {"exercise": "dcgan-generator", "points": 3}}),
        v4.new_markdown_cell("### Question 1 — why Tanh?"),
        v4.new_markdown_cell("Because the images are scaled to [-1, 1].",
                             metadata={"tags": ["solution"], "labkit": {"question": 1}}),
        v4.new_code_cell("assert Generator(8)(noise(2, 8)).shape == (2, 8)", metadata={"tags": ["solution-only"]}),
        v4.new_code_cell("print(epochs)"),
    ]
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    cells[7].outputs = [v4.new_output("stream", name="stdout", text="5\n")]
    cells[7].execution_count = 3
    cells[7].metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00"}
    nb.cells = cells
    return nb


def _python(source: str) -> str:
    """A code cell as the kernel runs it: IPython magics (% and !) turned into plain calls."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return re.sub(r"(?m)^(\s*)[%!].*$", r"\1pass", source)
    return TransformerManager().transform_cell(source)


def _namespace(source: str) -> dict:
    namespace: dict = {}
    exec(compile(_python(source), "<handout cell>", "exec"), namespace)
    return namespace


def test_regions_become_todo_and_raise_at_their_indentation():
    handout = handouts.make_handout(_solution_notebook())
    source = handout.cells[3].source
    assert "BEGIN SOLUTION" not in source and "END SOLUTION" not in source
    assert "torch.randn" not in source and "h.tanh()" not in source
    # the function body region, with its hint, at 4 spaces
    assert "    # TODO: draw n vectors from N(0, I)\n    raise NotImplementedError(" in source
    # the method region (no hint: the default), at 8 spaces, after the code the student keeps
    assert "            z = z.flatten(1)\n        # TODO: your code here\n        raise NotImplementedError(" in source
    assert source.count('raise NotImplementedError("exercise dcgan-generator: not done yet') == 2
    namespace = _namespace(source)  # the handout compiles and defines what the check cells need
    with pytest.raises(NotImplementedError, match="exercise dcgan-generator"):
        namespace["noise"](2, 8)
    with pytest.raises(NotImplementedError, match="exercise dcgan-generator"):
        namespace["Generator"](8)(namespace["torch"].zeros(2, 8))


def test_several_regions_and_fallback_id():
    cell = v4.new_code_cell("a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3\n"
                            "### BEGIN SOLUTION\n### HINT: first\n### HINT: then\nd = 4\n### END SOLUTION")
    nb = v4.new_notebook(cells=[cell])
    source = handouts.make_handout(nb).cells[0].source
    assert source.splitlines() == [
        "a = 1",
        "# TODO: your code here",
        'raise NotImplementedError("exercise this exercise: not done yet — replace this line with your code")',
        "c = 3",
        "# TODO: first",
        "#       then",
        'raise NotImplementedError("exercise this exercise: not done yet — replace this line with your code")',
    ]


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1\n", "has no '### END SOLUTION'"),
    ("x = 1\n### END SOLUTION\n", "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION", "nested"),
])
def test_unbalanced_or_nested_markers_name_notebook_and_cell(source, problem):
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# t"), v4.new_code_cell(source)])
    with pytest.raises(ValueError, match=rf"01_dcgan\.ipynb, cell 1: .*{problem}"):
        handouts.make_handout(nb, name="01_dcgan.ipynb")


def test_answer_cells_become_prompts_and_metadata_survives():
    solution = _solution_notebook()
    handout = handouts.make_handout(solution)
    answer = handout.cells[5]
    assert answer.source == "**Your answer (question 1, 3 points):** _write it here._"  # points: questions.py
    assert answer.metadata["tags"] == ["answer"] and answer.metadata["labkit"] == {"question": 1}
    assert handout.cells[3].metadata["labkit"] == {"exercise": "dcgan-generator", "points": 3}
    assert handout.cells[1].metadata["tags"] == ["colab-setup"]
    assert handout.cells[2].metadata["tags"] == ["parameters"]
    assert handout.metadata["kernelspec"]["name"] == "python3" and handout.metadata["language_info"]
    assert [c["id"] for c in handout.cells] == [f"cell-{i}" for i in (0, 1, 2, 3, 4, 5, 7)]
    # the source notebook is left as it was
    assert solution.cells[5].source.startswith("Because") and len(solution.cells) == 8


def test_outputs_stripped_and_solution_only_dropped():
    handout = handouts.make_handout(_solution_notebook())
    assert len(handout.cells) == 7
    assert not any("solution-only" in c.metadata.get("tags", []) for c in handout.cells)
    assert all(c.outputs == [] and c.execution_count is None for c in handout.cells if c.cell_type == "code")
    assert "widgets" not in handout.metadata
    assert "execution" not in handout.cells[6].metadata
    nbformat.validate(handout)


def test_strip_outputs_and_check_clean(tmp_path):
    dirty = _solution_notebook()
    path = tmp_path / "dirty.ipynb"
    nbformat.write(dirty, path)
    problems = handouts.check_clean(path)
    assert any("cell 7 has 1 output" in p for p in problems)
    assert any("cell 7 has execution_count 3" in p for p in problems)
    assert any("'widgets'" in p for p in problems) and any("'execution'" in p for p in problems)
    clean = handouts.strip_outputs(dirty)
    assert clean.cells[5].source.startswith("Because")  # answers stay: solutions are stripped too
    nbformat.write(clean, path)
    assert handouts.check_clean(path) == []


def test_deterministic_and_idempotent():
    first = handouts.dumps(handouts.make_handout(_solution_notebook()))
    second = handouts.dumps(handouts.make_handout(_solution_notebook()))
    assert first == second and first.endswith("}\n")
    again = handouts.dumps(handouts.make_handout(nbformat.reads(first, as_version=4)))
    assert again == first  # a handout is its own handout


def test_cells_without_ids_get_stable_ids():
    def build():
        nb = _solution_notebook()
        for cell in nb.cells:
            del cell["id"]
        return handouts.dumps(handouts.make_handout(nb))

    assert build() == build()
    assert len({c["id"] for c in nbformat.reads(build(), as_version=4).cells}) == 7


def test_write_then_check_reports_drift_missing_and_extra(tmp_path):
    solutions, out = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nbformat.write(_solution_notebook(), solutions / "01_dcgan.ipynb")
    nbformat.write(v4.new_notebook(cells=[v4.new_markdown_cell("# setup")]), solutions / "00_setup.ipynb")
    assert handouts.write_handouts(solutions, out, check=True) == [str(out / "00_setup.ipynb"),
                                                                   str(out / "01_dcgan.ipynb")]
    written = handouts.write_handouts(solutions, out)
    assert written == [str(out / "00_setup.ipynb"), str(out / "01_dcgan.ipynb")]
    assert handouts.write_handouts(solutions, out, check=True) == []
    assert handouts.check_clean(out / "01_dcgan.ipynb") == []

    # drift: someone edits the handout by hand; missing: a handout is deleted; extra: no solution
    drifted = out / "01_dcgan.ipynb"
    drifted.write_text(drifted.read_text().replace("your code here", "your code"))
    (out / "00_setup.ipynb").unlink()
    nbformat.write(v4.new_notebook(), out / "99_orphan.ipynb")
    before = drifted.read_text()
    assert handouts.write_handouts(solutions, out, check=True) == [
        str(out / "00_setup.ipynb"), str(drifted), str(out / "99_orphan.ipynb")]
    assert drifted.read_text() == before and not (out / "00_setup.ipynb").exists()  # check writes nothing
    assert handouts.main(check=True, solutions_dir=solutions, out_dir=out) == 1


def test_missing_solutions_dir_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="solutions_dir"):
        handouts.write_handouts(tmp_path / "nope", tmp_path / "out")


def _repo_solutions() -> list[Path]:
    found = sorted(SOLUTIONS.glob("*.ipynb"))
    if not found:
        pytest.skip("solutions/ holds no notebooks yet: nothing to generate handouts from")
    return found


def test_notebooks_match_solutions():
    _repo_solutions()
    drift = handouts.write_handouts(SOLUTIONS, NOTEBOOKS, check=True)
    assert drift == [], f"notebooks/ is out of date with solutions/: run `python -m labkit handouts` ({drift})"


def test_committed_notebooks_are_clean():
    problems = [p for path in _repo_solutions() + sorted(NOTEBOOKS.glob("*.ipynb")) for p in handouts.check_clean(path)]
    assert problems == []


def test_repo_handouts_are_valid_python():
    for path in _repo_solutions():
        handout = nbformat.reads(handouts.handout_text(path), as_version=4)
        # Markdown may explain the markers; no code cell may keep them (that would leak the solution).
        assert not any(handouts.BEGIN in c.source for c in handout.cells if c.cell_type == "code"), path
        for index, cell in enumerate(handout.cells):
            if cell.cell_type == "code":
                try:
                    compile(_python(cell.source), f"{path.name} cell {index}", "exec")
                except SyntaxError as exc:  # pragma: no cover - the message is the point
                    pytest.fail(f"handout of {path.name}, cell {index} is not valid Python: {exc}")


def test_colab_links_open_the_handout_not_the_solution():
    """A solution's "Open in Colab" link becomes the handout's: same repository, release and name, in notebooks/."""
    from labkit import colab

    nb = _solution_notebook()
    nb.cells[0].source = f"# Lab 1: DCGAN\n\n{colab.badge('solutions/01_dcgan.ipynb')}\n\nText naming solutions/x."
    out = handouts.make_handout(nb)
    assert out.cells[0].source == (f"# Lab 1: DCGAN\n\n{colab.badge('notebooks/01_dcgan.ipynb')}\n\n"
                                   "Text naming solutions/x.")
    assert nb.cells[0].source.count("/solutions/01_dcgan.ipynb") == 1  # the solution itself is unchanged
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "markdown" and colab.badge(f"notebooks/{path.name}") in first.source, path.name
