"""A copy of labkit in which one exercise's answers cannot be reached.

The process that scores an exercise imports labkit from this copy, and the sandbox mounts it
over the installed package too, so the reference of the exercise being scored (its accepted
variants and the helpers that would answer it) is a stub that fails: through the module, an
alias captured at import, ``importlib.reload`` and the source file alike. Everything else in
labkit (the other exercises' references included) works as usual.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from ..exercises import Exercise

PACKAGE = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "assets")


def stub_message(exercise: Exercise) -> str:
    return (f"labkit's reference for exercise {exercise.id} is not available while that exercise is graded: "
            f"write your own")


def _stub(name: str, kind: type, message: str) -> ast.stmt:
    if kind is ast.ClassDef:
        source = (f"class {name}:\n    def __init__(self, *args, **kwargs):\n        raise RuntimeError({message!r})\n"
                  f"    def __init_subclass__(cls, **kwargs):\n        pass\n")
    else:
        source = f"def {name}(*args, **kwargs):\n    raise RuntimeError({message!r})\n"
    return ast.parse(source).body[0]


def _replace(body: list[ast.stmt], path: list[str], message: str) -> bool:
    for i, node in enumerate(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == path[0]:
            if len(path) == 1:
                body[i] = _stub(node.name, type(node), message)
                return True
            return isinstance(node, ast.ClassDef) and _replace(node.body, path[1:], message)
    return False


def stub_out(package_dir: Path, name: str, message: str) -> None:
    """Replace ``labkit.module:Qual.name`` in the copy at ``package_dir`` by a stub raising ``message``."""
    module, _, qualname = name.partition(":")
    parts = module.split(".")
    if parts[0] != "labkit":
        raise ValueError(f"guarded name {name!r} is not a labkit name")
    file = package_dir.joinpath(*parts[1:]).with_suffix(".py")
    if not file.is_file():
        file = package_dir.joinpath(*parts[1:], "__init__.py")
    tree = ast.parse(file.read_text())
    if not _replace(tree.body, qualname.split("."), message):
        raise ValueError(f"guarded name {name!r}: no such definition in {file}")
    file.write_text(ast.unparse(tree) + "\n")


def guarded_copy(exercise: Exercise, dest: Path) -> Path:
    """Write ``dest/labkit``, labkit with ``exercise``'s answers stubbed out; return that folder."""
    target = Path(dest) / "labkit"
    shutil.copytree(PACKAGE, target, ignore=_IGNORE)
    for name in exercise.guarded:
        stub_out(target, name, stub_message(exercise))
    return target
