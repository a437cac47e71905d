"""The handouts give no written answer away.

Each written answer lives in its solution notebook's answer cell (tag ``solution``, metadata
``{"labkit": {"question": n}}``), which the handout replaces by an empty prompt. The teaching
text around it may set a question up, but if it says what the answer says, a student reads the
answer before being asked. This test looks for that mechanically: no run of ``RUN`` consecutive
words of an answer cell may appear in any cell of the handout generated from the same solution
(markdown and code, the answer prompts included), after both are normalised by :func:`normalise`.
A second test does the same across notebooks, since students hold all three handouts at once.

Runs are counted within one cell (a run spanning two cells is not looked for): the point is to
name the cell a leak sits in.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from labkit import handouts

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
RUN = 6  # words in a run

# Words an answer may share with the handouts, each with the reason it cannot be avoided. Keys are
# (question, a phrase as normalise() returns it, RUN words or more); every run of RUN words inside
# the phrase is allowed for that question. Keep this short: rewriting the teaching text is the fix.
ALLOWED: dict[tuple[int, str], str] = {
    (2, "p data x p data x p g x"):
        "the optimal discriminator D*(x) = p_data(x) / (p_data(x) + p_g(x)), a standard result that 01's section 2 "
        "states to set the game up; the answer evaluates it at the equilibrium, which the handout does not",
    (3, "e z log 1 d g z"):
        "the term E_z[log(1 - D(G(z)))] of game (5) and of D's objective (7), which 01's section 2 must display; "
        "the answer's part is saying that G minimises it, which the handout leaves to the student",
    (10, "e f x e f g z"):
        "the critic's estimate E f(x) - E f(G(z)) of W as 03 defines it; the code of section 5 prints and plots "
        "it under that name and the answer names the critic's loss by it",
    (13, "lvert mu r mu g rvert 2 tr sigma r sigma g 2 sigma r sigma g 1 2"):
        "FID's formula, defined in 03's section 2; the answer restates it before taking it apart",
}

# LaTeX commands that only lay out or style a formula: dropped. Every other command becomes
# its name as a word (\log -> log, \frac -> frac, \sigma -> sigma).
_LAYOUT = {"big", "bigl", "bigr", "bigg", "biggl", "biggr", "Big", "Bigl", "Bigr", "Bigg", "Biggl", "Biggr",
           "left", "right", "middle", "mathrm", "mathbf", "mathit", "mathsf", "mathcal", "mathbb", "text",
           "textbf", "textit", "operatorname", "displaystyle", "quad", "qquad", "dfrac", "tfrac"}
_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.S)
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_NOT_WORD = re.compile(r"[\W_]+")  # anything but a letter or a digit (Unicode-aware)


def _math_words(formula: str) -> str:
    def command(match: re.Match) -> str:
        name = match.group(1)
        if name in ("dfrac", "tfrac"):
            return " frac "
        return " " if name in _LAYOUT else f" {name} "

    return _COMMAND.sub(command, formula)


def normalise(text: str) -> list[str]:
    """The words of a cell: lower case, LaTeX reduced to words, punctuation and markup removed.

    - ``$...$`` and ``$$...$$`` math keeps its letters and digits: ``$D^*(x) = 1/2$`` -> d x 1 2;
      a command becomes its name as a word (``\\log`` -> log, ``\\frac``/``\\dfrac`` -> frac), except
      layout-only ones (``\\big``, ``\\left``, ``\\mathrm``, ``\\text``, ``\\mathbb``, ``\\quad``, ...),
      which are dropped: ``$\\mathrm{JS}$`` and JS read the same;
    - everything that is not a letter or a digit (punctuation, Markdown and code markup, the
      backslash of a command outside math, underscores) separates words: ``1.386`` -> 1 386,
      ``D's`` -> d s, ``non-saturating`` -> non saturating;
    - lower case, whitespace collapsed.
    """
    text = _MATH.sub(lambda m: f" {_math_words(m.group(1) or m.group(2))} ", text)
    text = _COMMAND.sub(lambda m: f" {m.group(1)} ", text)
    return _NOT_WORD.sub(" ", text).lower().split()


def runs(words: list[str], n: int = RUN) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Leak:
    question: object
    words: str
    cell: int

    def __str__(self) -> str:
        return f"question {self.question}: {self.words!r} in handout cell {self.cell}"


def answers(solution: nbformat.NotebookNode) -> dict[object, str]:
    """question id -> the text of its answer cell(s) in a solution notebook.

    An answer is its ``solution`` cell plus any continuation cells (tag ``solution-only``, the
    same question id) that split a long answer into steps; the handout drops those.
    """
    found: dict[object, str] = {}
    for cell in solution.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        question = cell.get("metadata", {}).get("labkit", {}).get("question")
        continuation = handouts.SOLUTION_ONLY_TAG in tags and question is not None
        if cell.cell_type == "markdown" and (handouts.SOLUTION_TAG in tags or continuation):
            found[question] = (found.get(question, "") + "\n\n" + cell.source).strip()
    return found


def _allowed(question: object, run: tuple[str, ...], allowed: dict[tuple[int, str], str]) -> bool:
    text = " " + " ".join(run) + " "
    return any(q == question and text in f" {phrase} " for q, phrase in allowed)


def find_leaks(solution: nbformat.NotebookNode, handout: nbformat.NotebookNode,
               allowed: dict[tuple[int, str], str] = ALLOWED) -> list[Leak]:
    """Every run of RUN words of an answer of ``solution`` found in a cell of ``handout``, one per (question, cell)."""
    cells = [runs(normalise(cell.source)) for cell in handout.cells]
    leaks = []
    for question, text in answers(solution).items():
        words = normalise(text)
        for index, cell_runs in enumerate(cells):
            # the first shared run in the answer's order, so the message quotes the answer's words
            for i in range(len(words) - RUN + 1):
                run = tuple(words[i:i + RUN])
                if run in cell_runs and not _allowed(question, run, allowed):
                    leaks.append(Leak(question, " ".join(run), index))
                    break
    return leaks


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _report(leaks: list[Leak], where: str) -> str:
    return (f"{where}: the handout shows {len(leaks)} run(s) of {RUN} words of a written answer; move the "
            "sentence into the answer cell or rewrite the teaching text so the student has to find it:\n  "
            + "\n  ".join(map(str, leaks)))


# ------------------------------------------------------------------------- the normaliser

@pytest.mark.parametrize("text, words", [
    ("There $D^*(x) = 1/2$ for every $x$.", "there d x 1 2 for every x"),
    (r"D's loss is $2\log 2 \approx 1.386$!", "d s loss is 2 log 2 approx 1 386"),
    (r"$\dfrac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}$", "frac p data x p data x p g x"),
    (r"$$\min_G \max_D \; V(D, G) \qquad (5)$$", "min g max d v d g 5"),
    (r"$\mathrm{JS}(p \,\|\, q)$ and $\big(\lVert \mu_r - \mu_g \rVert^2\big)$",
     "js p q and lvert mu r mu g rvert 2"),
    ("**Non-saturating**  `F.binary_cross_entropy_with_logits`\n\n- *Kynkäänniemi*, 2019",
     "non saturating f binary cross entropy with logits kynkäänniemi 2019"),
    ("UPPER  and\tlower\n\n  case", "upper and lower case"),
    ("", ""),
])
def test_normalise(text, words):
    assert normalise(text) == words.split()


def test_prose_and_math_normalise_alike():
    assert normalise(r"D's loss is $2 \log 2$") == normalise("D's loss is 2 log 2")
    assert normalise(r"$\mathcal N(0, I)$") == normalise("N(0, I)")


# ------------------------------------------------------------------------- the checker itself

def _leaky_copy(solution: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, object, str, int]:
    """A handout with one sentence of an answer pasted into a markdown cell (not an answer prompt)."""
    handout = handouts.make_handout(copy.deepcopy(solution))
    question, text = next(iter(answers(solution).items()))
    sentence = max(re.split(r"(?<=[.!?])\s+", text), key=lambda s: len(normalise(s)))
    index = next(i for i, c in enumerate(handout.cells)
                 if c.cell_type == "markdown" and handouts.ANSWER_TAG not in c.metadata.get("tags", []))
    handout.cells[index].source += "\n\n" + sentence
    return handout, question, sentence, index


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_a_planted_leak_is_found_and_named(path):
    solution = _read(path)
    handout, question, sentence, index = _leaky_copy(solution)
    leaks = find_leaks(solution, handout)
    planted = [leak for leak in leaks if leak.cell == index and leak.question == question]
    assert planted, f"a sentence of question {question}'s answer pasted into cell {index} went unnoticed"
    leak = planted[0]
    assert leak.words in " ".join(normalise(sentence)) and len(leak.words.split()) == RUN
    message = _report(planted, path.name)
    assert f"question {question}" in message and f"handout cell {index}" in message and leak.words in message


def test_checker_on_a_small_notebook():
    v4 = nbformat.v4
    solution = v4.new_notebook(cells=[
        v4.new_markdown_cell("We train $G$ and look at its samples."),
        v4.new_markdown_cell("### Question 1 — what does D output at the equilibrium?"),
        v4.new_markdown_cell(r"There $D^*(x) = 1/2$ for every $x$: a coin toss.",
                             metadata={"tags": ["solution"], "labkit": {"question": 1}}),
    ])
    assert find_leaks(solution, handouts.make_handout(solution)) == []  # the prompt replaces the answer
    leaky = copy.deepcopy(solution)
    leaky.cells[0].source += r" **There**, $D^{*}(x)=1/2$ for *every* x!"  # other markup, the same words
    leaks = find_leaks(leaky, handouts.make_handout(leaky))
    assert leaks == [Leak(1, "there d x 1 2 for", 0)]
    # five words in common are not a leak
    short = copy.deepcopy(solution)
    short.cells[0].source += r" There $D^*(x) = 1/2$ everywhere."
    assert find_leaks(short, handouts.make_handout(short)) == []
    # the allow-list lets named runs through, and only those
    pasted = runs(normalise("there d x 1 2 for every x"))
    assert len(pasted) == 3
    allowed = {(1, " ".join(run)): "test" for run in pasted}
    assert find_leaks(leaky, handouts.make_handout(leaky), allowed=allowed) == []
    del allowed[(1, "x 1 2 for every x")]
    assert find_leaks(leaky, handouts.make_handout(leaky), allowed=allowed) == [Leak(1, "x 1 2 for every x", 0)]


# ------------------------------------------------------------------------- the repository's handouts

needs_solutions = pytest.mark.skipif(not SOLUTIONS, reason="no solution notebooks yet")


@needs_solutions
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_handout_gives_no_answer_away(path):
    solution = _read(path)
    assert answers(solution), f"{path.name} has no answer cells"
    leaks = find_leaks(solution, handouts.make_handout(solution, name=path.name))
    assert not leaks, _report(leaks, path.name)


@needs_solutions
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_other_handouts_give_no_answer_away(path):
    """Students hold every handout: notebook 01 must not answer notebook 02's questions either."""
    solution = _read(path)
    found = []
    for other in SOLUTIONS:
        if other != path:
            handout = handouts.make_handout(_read(other), name=other.name)
            found += [f"{other.name}: {leak}" for leak in find_leaks(solution, handout)]
    assert not found, f"answers of {path.name} shown in other handouts:\n  " + "\n  ".join(found)


def test_allow_list_entries_are_normalised_phrases_with_reasons_and_still_needed():
    solutions = {path: _read(path) for path in SOLUTIONS}
    handout_runs = set().union(*(runs(normalise(c.source)) for nb in solutions.values()
                                 for c in handouts.make_handout(nb).cells)) if solutions else set()
    for (question, phrase), reason in ALLOWED.items():
        assert isinstance(question, int) and len(phrase.split()) >= RUN and phrase == " ".join(normalise(phrase))
        assert len(reason) > 40, f"allow-list entry {phrase!r} of question {question} needs a reason"
        if solutions:  # an entry no handout needs any more goes
            assert runs(phrase.split()) & handout_runs, f"allow-list entry {phrase!r} matches no handout: remove it"
