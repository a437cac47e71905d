"""Reading what students hand in: notebooks, their exercise cells by id, the class's names.

Exercise cells are found by the id in their metadata (``{"labkit": {"exercise": id}}``),
never by position: moved, split or duplicated cells are fine (cells sharing an id are
joined in notebook order). Nothing here runs student code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from .. import exercises

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = ROOT / "solutions"


def exercise_of(cell: Any) -> str | None:
    """The exercise id a cell carries in its metadata, or None."""
    labkit = cell.get("metadata", {}).get("labkit", {})
    ex = labkit.get("exercise") if isinstance(labkit, dict) else None
    return str(ex) if ex is not None else None


def exercise_ids(nb: Any) -> list[str]:
    """The exercise ids of a notebook's code cells, in notebook order, each once."""
    ids: list[str] = []
    for cell in nb.cells:
        ex = exercise_of(cell)
        if ex is not None and cell.cell_type == "code" and ex not in ids:
            ids.append(ex)
    return ids


def student_cells(nb: Any) -> tuple[dict[str, str], list[str]]:
    """exercise id -> the student's code (cells with that id joined in order), and notes to report."""
    found: dict[str, list[str]] = {}
    for cell in nb.cells:
        ex = exercise_of(cell)
        if ex is not None and cell.cell_type == "code":
            found.setdefault(ex, []).append(cell.source)
    notes = [f"exercise {ex}: found in {len(srcs)} cells; they were joined in notebook order and graded together"
             for ex, srcs in found.items() if len(srcs) > 1]
    return {ex: "\n\n".join(srcs) for ex, srcs in found.items()}, notes


def find_solution(nb: Any, solutions_dir: Path = SOLUTIONS_DIR) -> Path:
    """The solution notebook sharing most exercise ids with the submission (never matched by position)."""
    import nbformat

    ids = set(student_cells(nb)[0])
    best, score = None, 0
    for path in sorted(Path(solutions_dir).glob("*.ipynb")):
        common = len(ids & set(exercise_ids(nbformat.read(path, as_version=4))))
        if common > score:
            best, score = path, common
    if best is None:
        raise ValueError(f"no solution notebook in {solutions_dir} shares an exercise id with the submission "
                         f"(ids found: {sorted(ids) or 'none'}); pass solution=... explicitly")
    return best


def discover(submissions: list[str | Path]) -> list[tuple[str, Path]]:
    """(student name, notebook) for the notebooks and folders given.

    A notebook file is named by its stem (``alice.ipynb`` -> alice). A folder is either one
    student's folder (a single notebook directly inside: named by the folder) or a class
    folder: each notebook directly inside is a student named by its stem, and each
    sub-folder holding notebooks is a student named by the sub-folder (``name-stem`` when it
    holds several notebooks).
    """
    found: list[tuple[str, Path]] = []

    def student_folder(folder: Path, notebooks: list[Path]) -> None:
        for nb in notebooks:
            found.append((folder.name if len(notebooks) == 1 else f"{folder.name}-{nb.stem}", nb))

    for item in map(Path, submissions):
        if item.is_file():
            if item.suffix != ".ipynb":
                raise ValueError(f"submissions: {item} is not a .ipynb notebook")
            found.append((item.stem, item))
        elif item.is_dir():
            notebooks = sorted(item.glob("*.ipynb"))
            folders = [(sub, sorted(sub.glob("*.ipynb"))) for sub in sorted(p for p in item.iterdir() if p.is_dir())]
            folders = [(sub, nbs) for sub, nbs in folders if nbs]
            if not notebooks and not folders:
                raise ValueError(f"submissions: folder {item} holds no .ipynb notebook (nor sub-folders with one)")
            if len(notebooks) == 1 and not folders:
                student_folder(item, notebooks)
                continue
            found.extend((nb.stem, nb) for nb in notebooks)
            for sub, nbs in folders:
                student_folder(sub, nbs)
        else:
            raise ValueError(f"submissions: {item} is neither a notebook file nor a folder")
    names = [n for n, _ in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"submissions: several submissions share the student name(s) {dupes}")
    return found


def safe_name(name: str) -> str:
    """A student name as a file name: anything but letters, digits, '.', '-' and '_' becomes '_'."""
    return re.sub(r"[^\w.-]", "_", name).lstrip(".") or "_"


# --------------------------------------------------------------------------- the same code, retyped


class _Normalise(ast.NodeTransformer):
    """Docstrings dropped, every name the code binds or reads renamed in order of appearance."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def _drop_docstring(self, node: Any) -> Any:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node.name = self._rename(node.name)
        node.decorator_list = []
        node.returns = None
        return self.generic_visit(self._drop_docstring(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        node.name = self._rename(node.name)
        return self.generic_visit(self._drop_docstring(node))

    def visit_Module(self, node: ast.Module) -> Any:
        return self.generic_visit(self._drop_docstring(node))

    def visit_arg(self, node: ast.arg) -> Any:
        node.arg, node.annotation = self._rename(node.arg), None
        return node

    def visit_Name(self, node: ast.Name) -> Any:
        node.id = self._rename(node.id)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        node.annotation = ast.Constant(None)
        return self.generic_visit(node)


def fingerprint(source: str) -> str | None:
    """The code's shape after normalisation (comments, docstrings, names); None when it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return ast.dump(_Normalise().visit(tree), annotate_fields=False)


def same_as_reference(student: str, exercise_id: str, solution_source: str | None) -> str | None:
    """What the student's code is identical to after normalisation (the solution cell, labkit's
    reference), or None. A flag for the instructor, not a verdict."""
    import inspect

    mine = fingerprint(student)
    if mine is None:
        return None
    if solution_source and fingerprint(solution_source) == mine:
        return "the solution notebook's cell"
    exercise = exercises.get(exercise_id)
    for name in (exercise.reference, *exercise.variants):
        try:
            ref_source = inspect.getsource(exercises.resolve(name))
        except (OSError, TypeError):
            continue
        if fingerprint(ref_source) == fingerprint(_body_of(student, ref_source)):
            return f"labkit's {name.replace(':', '.')}"
    return None


def _body_of(student: str, reference: str) -> str:
    """The student's top-level definition shaped like the reference (one def or class), else the whole cell."""
    try:
        tree, ref = ast.parse(student), ast.parse(reference)
    except SyntaxError:
        return student
    kind = type(ref.body[0]) if ref.body else None
    defs = [node for node in tree.body if type(node) is kind]
    return ast.unparse(defs[-1]) if len(defs) >= 1 else student
