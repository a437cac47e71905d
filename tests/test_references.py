"""Nothing in the repository points to a file or document that is not in it.

The prose of every tracked text file — Markdown outside code blocks, notebooks'
markdown cells and code comments, Python docstrings and comments, the comments
of the Makefile and the configuration files — is read for names like
``labkit/frontend.py``, ``docs/DESIGN.md`` or ``README.md``: each must be a file
of the repository (from its root, from the mentioning file's folder, or, for a
bare name, anywhere in it), unless the same text creates it (``> name``) or it
is one of the files the code writes as it runs. A GitHub or Colab address of
this repository must name a file that exists. Phrases that cite documents kept
elsewhere must not appear at all, code included.
"""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"(?<![\w./-])([\w./-]*\w\.(?:md|py|ipynb|txt|toml|yml|yaml|cfg))\b")
URL = re.compile(r"https?://[^\s)\"'<>\]`]+")
THIS_REPO = re.compile(r"(?:github\.com|colab\.research\.google\.com/github)/labkit-gan/labkit/(?:blob|tree)/[^/]+/"
                       r"([^\s#?]+)")
# Names that are not references: files the code writes as it runs, and examples of a user's files.
NOT_REFERENCES = {
    "report.md": "labkit/report.py writes it into a run folder",
    "metrics_on_known_failures.md": "notebook 03 writes it into run_dir",
    "quality.md": "benchmarks/quality.py writes it into the folder of its runs",
    "stem.md": "labkit.results.save writes <stem>.md",
    "alice.ipynb": "a student's submission, the example of labkit/grading/submissions.py",
}
# Phrases that cite documents kept outside the repository (built in pieces so this file does not match itself).
CITATIONS = ["LAB" + ".md", "the write" + "-ups", "steering " + "folder", "prototype of " + "this lab",
             "first version of " + "this lab", "first version of " + "the lab"]
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".txt", ".toml", ".yml", ".yaml", ".cfg", ".sh", ".sbatch", ""}


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [ROOT / p for p in listed.stdout.split("\0") if p]
    return [p for p in paths if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in ("Makefile", "LICENSE"))]


def _markdown_prose(text: str) -> str:
    """Markdown without its fenced code blocks (example commands name the files they make)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)


def _python_prose(text: str) -> str:
    """Comments and triple-quoted strings (docstrings) of Python source; its code names files it creates."""
    parts = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT or (tok.type == tokenize.STRING and tok.string.lstrip("rbuRBU")[:3]
                                                in ('"""', "'''")):
                parts.append(tok.string)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return _comments(text)
    return "\n".join(parts)


def _prose(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = nbformat.read(path, as_version=4).cells
        return "\n".join(_markdown_prose(c.source) if c.cell_type == "markdown" else _comments(c.source)
                         for c in cells)
    text = _text(path)
    if path.suffix == ".md":
        return _markdown_prose(text)
    if path.suffix == ".py":
        return _python_prose(text)
    return _comments(text)


def _text(path: Path) -> str:
    if path.suffix == ".ipynb":  # the cells' text, not its JSON escapes
        return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


FILES = _tracked() if (ROOT / ".git").exists() else []
BASENAMES = {p.name for p in FILES}


def _exists(name: str, mentioned_in: Path) -> bool:
    name = name.lstrip("./") if name.startswith("./") else name
    if (ROOT / name).exists() or (mentioned_in.parent / name).exists():
        return True
    return "/" not in name and name in BASENAMES


def _missing(path: Path) -> list[str]:
    text = _prose(path)
    problems = []
    for url in URL.findall(text):
        match = THIS_REPO.search(url)
        if match and not (ROOT / match.group(1).rstrip(".,;:")).exists():
            problems.append(f"{url} (no {match.group(1)} in the repository)")
    text = URL.sub(" ", text)
    created = set(re.findall(r">\s*([\w./-]+)", text))
    for name in NAME.findall(text):
        if name in NOT_REFERENCES or name in created or _exists(name, path):
            continue
        problems.append(name)
    return problems


@pytest.mark.skipif(not FILES, reason="not a git checkout")
def test_every_file_named_in_the_repository_exists():
    problems = {str(p.relative_to(ROOT)): m for p in FILES if (m := _missing(p))}
    assert not problems, f"names of files that are not in the repository: {problems}"


@pytest.mark.skipif(not FILES, reason="not a git checkout")
def test_no_text_cites_documents_kept_elsewhere():
    here = Path(__file__).resolve()
    found = {}
    for path in FILES:
        if path == here:
            continue
        text = _text(path)
        hits = [p for p in CITATIONS if p.lower() in text.lower()]
        hits += [m for m in re.findall(r"(?<![\w/])shared/", text)]
        hits += [m for m in re.findall(r"(?<![\w./-])([\w./-]*DESIGN\.md)", text) if m != "docs/DESIGN.md"
                 and not (path.parent.name == "docs" and m == "DESIGN.md")]
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert not found, f"text that cites documents not in the repository: {found}"


def test_the_checker_catches_what_it_should(tmp_path):
    doc = ROOT / "docs" / "nothing-here.md"  # not created: only its name is checked
    assert NAME.findall("see labkit/frontend.py and docs/NOPE.md, not v0.1.0 or 3.11.") == \
        ["labkit/frontend.py", "docs/NOPE.md"]
    assert _exists("labkit/frontend.py", doc) and _exists("frontend.py", doc) and _exists("README.md", doc)
    assert not _exists("docs/NOPE.md", doc) and not _exists("LAB" + ".md", doc)
    assert THIS_REPO.search("https://colab.research.google.com/github/labkit-gan/labkit/blob/v0.1.0/"
                            "notebooks/01_dcgan.ipynb").group(1) == "notebooks/01_dcgan.ipynb"
