"""Static text holds no measured number: measured numbers reach the reader only through a run's output.

A number typed into a notebook's markdown was measured once, on one machine; the next run, on
another host or a GPU, prints different ones above it. So the markdown of the solution notebooks
(answers, their instructor-only continuations and the teaching text alike) may hold definitions and
settings but no measurement: no decimal number or percentage outside :data:`ALLOWED_DECIMALS` /
:data:`ALLOWED_PERCENTAGES`, and no number right after a metric's name. The answers get their numbers
from the evidence tables and rendered cells of :mod:`labkit.claims`.

The one measured figure typed by hand, each notebook's run time in its introduction, must be the
README's measured figure for that notebook.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))

# Decimals that are definitions or settings, each with what it is.
ALLOWED_DECIMALS = {
    "0.02": "DCGAN's initialisation, N(0, 0.02)",
    "0.5": "Adam's beta1 in DCGAN; D = 1/2",
    "0.9": "Adam's beta1 ablation and WGAN-GP's beta2",
    "0.999": "Adam's default beta2",
    "0.1": "chance for ten classes, the uniform share",
    "0.2": "LeakyReLU's negative slope",
    "0.01": "WGAN's clipping constant c",
    "1.386": "2 log 2, D's loss at D = 1/2",
    "1.39": "2 log 2, rounded",
    "0.693": "log 2, G's loss at D = 1/2",
}
ALLOWED_PERCENTAGES = {
    "5": "the share from which a class counts as covered",
    "10": "each digit's share of MNIST, the uniform share",
}
METRICS = r"FID|precision|recall|density|coverage|accuracy"
_DECIMAL = re.compile(r"(?<![\w.])(\d*\.\d+)(?![\w.])")
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:%|\\%|percent\b)")
_METRIC_NUMBER = re.compile(rf"\b(?:{METRICS})\b(?:\s+(?:of|is|was|=|≈|at|to|about))?\s*\(?\$?\s*(\d)", re.I)
_CODE = re.compile(r"`[^`]*`")  # code spans name settings and identifiers (`lr=2e-4`), not results


def measured_numbers(text: str) -> list[str]:
    """The numbers in markdown ``text`` that look measured, each with a few words around it."""
    prose = _CODE.sub(" ", text)
    found: dict[int, str] = {}  # by where the number starts: "FID 4.4" is one finding, not two

    def note(match: re.Match) -> None:
        found.setdefault(match.start(1), prose[max(0, match.start(1) - 30):match.end() + 10].replace("\n", " "))

    for pattern, allowed in ((_DECIMAL, ALLOWED_DECIMALS), (_PERCENT, ALLOWED_PERCENTAGES)):
        for match in pattern.finditer(prose):
            if match.group(1) not in allowed:
                note(match)
    for match in _METRIC_NUMBER.finditer(prose):
        note(match)
    return [found[start] for start in sorted(found)]


@pytest.mark.parametrize("text, found", [
    ("FID 4.4 against 0.14", 2),
    ("precision 0.35", 1),
    ("a share of 83 % of the samples", 1),
    ("the default's FID was 99", 1),
    ("recall of 0.85 (floor)", 1),
    ("Adam with β1 = 0.5, weights from N(0, 0.02), chance 0.1 and 10 % per class; nz = 10000, 200 steps", 0),
    ("D's loss is $2\\log 2 \\approx 1.386$; set `lr=2e-4` or `ratio < 0.35`", 0),
    ("version 2.14.1 of torch", 0),
])
def test_the_checker_finds_measurements_and_spares_definitions(text, found):
    assert len(measured_numbers(text)) == found, measured_numbers(text)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_no_measured_number_is_typed_into_a_notebook(path):
    nb = nbformat.read(path, as_version=4)
    problems = [f"cell {i}: …{snippet}…" for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
                for snippet in measured_numbers(cell.source)]
    assert not problems, (f"{path.name} types measured numbers into markdown; print them from the run "
                          "(labkit.claims.Evidence, or a rendered cell) instead:\n  " + "\n  ".join(problems))


def readme_minutes() -> dict[str, list[int]]:
    """notebook -> the full-run times its row of the README's notebook table states, in minutes rounded half
    up ("25 min 47 s" -> 26, "42 min 30 s" -> 43); the first is the row's lead figure."""
    found = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        row = re.match(r"\|\s*`(\d\d_\w+)`\s*\|.*\|([^|]*\bmin\b[^|]*)\|\s*$", line)
        if row:
            times = re.findall(r"(?<![\d.])(\d+)\s*min\b(?:\s*(\d+)\s*s\b)?", row.group(2))
            found[row.group(1)] = [(120 * int(m) + 2 * int(s or 0) + 60) // 120 for m, s in times]
    return found


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_the_introduction_gives_the_readmes_measured_time(path):
    """The introduction's "N minutes" is the README's lead time; "A to B minutes" (over the host kinds) has
    both ends among the times the README's row states and the lead time between them."""
    minutes = readme_minutes()
    assert minutes.get(path.stem), f"README.md's notebook table has no time for {path.stem}"
    lead, stated_in_readme = minutes[path.stem][0], minutes[path.stem]
    intro = nbformat.read(path, as_version=4).cells[0].source
    paragraph = next((p for p in intro.split("\n\n") if p.startswith("**Time.**")), "")
    stated = re.search(r"(?:(\d+) to )?(\d+) minutes", paragraph)
    assert stated, f"{path.name}'s introduction has no '**Time.** ... N minutes' paragraph"
    low, high = int(stated.group(1) or stated.group(2)), int(stated.group(2))
    assert low in stated_in_readme and high in stated_in_readme and low <= lead <= high, (
        f"{path.name}'s introduction says {stated.group(0)}, README.md's row {stated_in_readme} min "
        f"(lead {lead})")
