"""Student notebooks (``notebooks/``) generated from the solution notebooks (``solutions/``).

The solution notebook is the single source. In its exercise code cells the
student's part sits between two marker lines::

    def forward(self, z):
        ### BEGIN SOLUTION
        ### HINT: project z, then three transposed convolutions
        h = self.project(z)
        ...
        ### END SOLUTION

and the handout keeps the surrounding code but replaces the region by a TODO
and a ``raise NotImplementedError(...)`` at the marker's indentation, so the
handout still compiles and the notebook's checks can fall back to labkit's
reference. Written answers (markdown cells tagged ``solution``) become empty
answer prompts, instructor-only cells (tag ``solution-only``) are dropped,
"Open in Colab" links to ``solutions/<name>.ipynb`` point to ``notebooks/<name>.ipynb``, and
every output is stripped. The transform is pure nbformat (no nbgrader) and
deterministic, so ``write_handouts(check=True)`` can fail a test whenever
``notebooks/`` drifts from ``solutions/``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import nbformat

from . import colab

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT:"
DEFAULT_HINT = "your code here"
SOLUTION_TAG = "solution"
ANSWER_TAG = "answer"
SOLUTION_ONLY_TAG = "solution-only"

# Metadata that records a run rather than the notebook: dropped by strip_outputs.
_RUN_CELL_METADATA = ("execution", "papermill")
_RUN_NOTEBOOK_METADATA = ("widgets", "papermill")


def _marker(line: str) -> str | None:
    """"begin", "end" or None for one source line (markers may carry trailing spaces)."""
    text = line.strip()
    if text == BEGIN:
        return "begin"
    if text == END:
        return "end"
    return None


def _exercise_id(cell) -> str:
    labkit = cell.get("metadata", {}).get("labkit", {})
    return str(labkit.get("exercise", "this exercise"))


def _replace_regions(source: str, exercise: str, where: str) -> str:
    """Replace every BEGIN/END SOLUTION region of one code cell's source; ``where`` names the cell in errors."""
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        kind = _marker(lines[i])
        if kind == "end":
            raise ValueError(f"{where}: '{END}' on line {i + 1} without a '{BEGIN}' before it")
        if kind is None:
            out.append(lines[i])
            i += 1
            continue
        begin = i
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        hints = []
        i += 1
        while i < len(lines) and lines[i].strip().startswith(HINT):
            hints.append(lines[i].strip()[len(HINT):].strip())
            i += 1
        while i < len(lines) and _marker(lines[i]) is None:
            i += 1
        if i == len(lines):
            raise ValueError(f"{where}: '{BEGIN}' on line {begin + 1} has no '{END}'")
        if _marker(lines[i]) == "begin":
            raise ValueError(f"{where}: '{BEGIN}' on line {i + 1} is nested inside the region opened "
                             f"on line {begin + 1}; close it with '{END}' first")
        hints = [h for h in hints if h] or [DEFAULT_HINT]
        out.append(f"{indent}# TODO: {hints[0]}")
        out.extend(f"{indent}#       {h}" for h in hints[1:])
        message = f"exercise {exercise}: not done yet — replace this line with your code"
        # A JSON string is a valid Python string literal, whatever the exercise id holds.
        out.append(f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})")
        i += 1  # past END
    return "\n".join(out)


def _answer_prompt(cell) -> str:
    """The handout's answer prompt: the question's number and its points, declared once in questions.py."""
    question = cell.get("metadata", {}).get("labkit", {}).get("question")
    if question is None:
        return "**Your answer:** _write it here._"
    from .exercises import questions  # here, not at the top: only answer cells need the declarations

    points = questions.get(question).points
    return f"**Your answer (question {question}, {points:g} point{'' if points == 1 else 's'}):** _write it here._"


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _stable_id(index: int, cell) -> str:
    """A cell id derived from the cell itself, for solutions saved without ids (never random)."""
    digest = hashlib.sha1(f"{index}\0{cell.cell_type}\0{cell.source}".encode()).hexdigest()
    return digest[:8]


def _link_to_handout(cell) -> None:
    """A markdown cell's "Open in Colab" links open the handout, not the solution it is generated from."""
    if cell.cell_type == "markdown":
        cell.source = colab.handout_link(cell.source)


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without what a run leaves behind.

    Outputs and execution counts of code cells, per-cell ``execution``/``papermill``
    metadata, and notebook-level ``widgets`` (saved widget state) and ``papermill``
    metadata go; kernelspec, language_info and every other metadata stay.
    Committed notebooks (solutions and handouts alike) are stored this way.
    """
    nb = copy.deepcopy(nb)
    for key in _RUN_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in _RUN_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def make_handout(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student's version of a solution notebook (a new notebook; ``nb`` is not changed).

    ``name`` only labels error messages (e.g. the file name). Raises ValueError for
    unbalanced or nested solution markers, naming the notebook and the cell index.
    """
    nb = strip_outputs(nb)
    cells = []
    for index, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if SOLUTION_ONLY_TAG in tags:
            continue
        if nb.nbformat_minor >= 5 and not cell.get("id"):
            cell["id"] = _stable_id(index, cell)
        if cell.cell_type == "code":
            cell.source = _replace_regions(cell.source, _exercise_id(cell), f"{name}, cell {index}")
        elif cell.cell_type == "markdown" and SOLUTION_TAG in tags:
            cell.source = _answer_prompt(cell)
            new_tags: list[str] = []
            for tag in tags:
                tag = ANSWER_TAG if tag == SOLUTION_TAG else tag
                if tag not in new_tags:
                    new_tags.append(tag)
            cell.metadata["tags"] = new_tags
        _link_to_handout(cell)
        cells.append(cell)
    nb.cells = cells
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    """The notebook's file text: nbformat's JSON (indent 1, sorted keys) plus a final newline."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def handout_text(solution_path: str | Path) -> str:
    """The file text of the handout generated from one solution notebook."""
    path = Path(solution_path)
    nb = nbformat.read(path, as_version=4)
    return dumps(make_handout(nb, name=str(path)))


def write_handouts(solutions_dir: str | Path = "solutions", out_dir: str | Path = "notebooks",
                   check: bool = False) -> list[str]:
    """Generate ``out_dir/<name>.ipynb`` for every ``solutions_dir/*.ipynb``.

    Writing (``check=False``): returns the handout paths; a file is only rewritten
    when its text changes. Checking (``check=True``): writes nothing and returns the
    handouts that are missing or differ from what would be written, plus any
    ``.ipynb`` in ``out_dir`` that has no solution — an empty list means up to date.
    """
    solutions_dir, out_dir = Path(solutions_dir), Path(out_dir)
    if not solutions_dir.is_dir():
        raise ValueError(f"solutions_dir must be a folder of solution notebooks, got {str(solutions_dir)!r}")
    sources = sorted(solutions_dir.glob("*.ipynb"))
    texts = {out_dir / src.name: handout_text(src) for src in sources}  # every notebook parses before any write
    reported: list[str] = []
    for target, text in texts.items():
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if check:
            if current != text:
                reported.append(str(target))
            continue
        if current != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        reported.append(str(target))
    if check and out_dir.is_dir():
        expected = {target.name for target in texts}
        reported += [str(p) for p in sorted(out_dir.glob("*.ipynb")) if p.name not in expected]
    return reported


def check_clean(path: str | Path) -> list[str]:
    """What keeps a committed notebook from being clean: outputs, execution counts, run metadata."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    problems = []
    for key in _RUN_NOTEBOOK_METADATA:
        if key in nb.metadata:
            problems.append(f"{path}: notebook metadata holds {key!r} (state of a run)")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            if cell.get("outputs"):
                problems.append(f"{path}: cell {index} has {len(cell.outputs)} output(s)")
            if cell.get("execution_count") is not None:
                problems.append(f"{path}: cell {index} has execution_count {cell.execution_count}")
        for key in _RUN_CELL_METADATA:
            if key in cell.get("metadata", {}):
                problems.append(f"{path}: cell {index} metadata holds {key!r} (state of a run)")
    return problems


def main(check: bool = False, solutions_dir: str | Path = "solutions", out_dir: str | Path = "notebooks") -> int:
    """What ``python -m labkit handouts [--check]`` does: report, and return the exit code."""
    files = write_handouts(solutions_dir, out_dir, check=check)
    if check:
        if files:
            print(f"handouts in {out_dir} are out of date with {solutions_dir}:")
            for file in files:
                if not (Path(solutions_dir) / Path(file).name).is_file():
                    print(f"  {file}: no solution notebook of that name (delete it or add the solution)")
                elif not Path(file).is_file():
                    print(f"  {file}: missing")
                else:
                    print(f"  {file}: differs from the handout generated from the solution")
            print("run `python -m labkit handouts` to regenerate them")
            return 1
        print(f"handouts in {out_dir} match {solutions_dir}")
        return 0
    print(f"wrote {len(files)} handout(s): {', '.join(files) if files else '(no solutions)'}")
    return 0
