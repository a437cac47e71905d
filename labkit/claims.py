"""Answers tied to the run they sit in: evidence tables and checkable claims.

A solution's written answer states no measured number in its own text. The
numbers it uses are printed just above it by an :class:`Evidence` table, and
every qualitative statement it makes ("the minimax loss's gradient vanishes",
"WGAN-GP's FID is the lowest") is stated once more as a :class:`Claims` entry,
checked on this run's numbers and printed with a mark:

- ✓ the run agrees with the answer;
- ✗ it does not: the line names the answer's sentence it contradicts;
- – the run did not measure it (a part was skipped, or a number is missing).

Claims are written for the full profile (the notebook's default parameters).
A smaller run (``make run PROFILE=quick``, the tests' tiny runs) still checks
and prints every claim, says that a ✗ may be the budget's, and never stops the
notebook. Both objects display as a Markdown table in Jupyter and as plain
text in a terminal or a text-only output.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HOLDS, FAILS, UNMEASURED = "✓", "✗", "–"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, numbers.Real) and math.isnan(float(value)))


def _escape(text: str) -> str:
    """Text for a Markdown table cell: a ``|`` would end the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Spread:
    """A number measured once per seed: the mean, and the lowest and highest value.

    It prints as ``mean (lowest–highest)`` in an evidence table. :meth:`above` and
    :meth:`below` compare two settings beyond their seeds' spread: their ranges must not
    overlap, so a difference the seeds alone could make never counts.
    """

    mean: float
    lo: float
    hi: float

    def __post_init__(self):
        if not self.lo <= self.mean <= self.hi:
            raise ValueError(f"a spread needs lo <= mean <= hi, got mean {self.mean}, range {self.lo}..{self.hi}")

    @classmethod
    def of(cls, values: Any) -> Spread:
        """The spread of a list of per-seed values (at least one)."""
        values = [float(v) for v in values]
        if not values:
            raise ValueError("a spread needs at least one value")
        return cls(sum(values) / len(values), min(values), max(values))

    def above(self, other: Spread | float) -> bool:
        """Every seed of this setting is above every seed of ``other`` (a plain number: a single value)."""
        return self.lo > (other.hi if isinstance(other, Spread) else float(other))

    def below(self, other: Spread | float) -> bool:
        """Every seed of this setting is below every seed of ``other``."""
        return self.hi < (other.lo if isinstance(other, Spread) else float(other))

    def scaled(self, factor: float) -> Spread:
        """The same spread times a positive ``factor`` (e.g. "below half the default's": ``b.below(a.scaled(0.5))``)."""
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        return Spread(self.mean * factor, self.lo * factor, self.hi * factor)

    def format(self, fmt: str) -> str:
        """``mean (lowest–highest)``; the mean alone when the two ends print alike."""
        lo, hi = fmt.format(self.lo), fmt.format(self.hi)
        return fmt.format(self.mean) + ("" if lo == hi else f" ({lo}–{hi})")


@dataclass(frozen=True)
class Measurement:
    """One number of an evidence table: what it is, its value, how it prints and where it comes from."""

    name: str
    value: Any
    fmt: str = "{:.3g}"
    source: str = ""

    @property
    def text(self) -> str:
        if _is_missing(self.value):
            return "not measured"
        try:
            if isinstance(self.value, Spread):
                return self.value.format(self.fmt)
            return self.fmt.format(self.value)
        except (ValueError, TypeError):
            return str(self.value)


class Evidence:
    """The numbers an answer uses, measured by this run and printed in one small table.

    ``ev = Evidence("question 3"); ev.add("minimax: mean gradient norm, last 150 steps", x)``;
    ``ev["minimax: mean gradient norm, last 150 steps"]`` gives the value back, for claims and
    rendered answers. Names are unique within a table.
    """

    def __init__(self, title: str):
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"title must be a non-empty string naming what the numbers are for, got {title!r}")
        self.title = title
        self._rows: dict[str, Measurement] = {}

    def add(self, name: str, value: Any, fmt: str = "{:.3g}", source: str = "") -> Any:
        """Record one measured number (``None`` or NaN: not measured) and return it."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name in self._rows:
            raise ValueError(f"name {name!r} is already in the evidence for {self.title}; each number is added once")
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()  # a 0-d tensor or numpy scalar prints and compares as a Python number
        self._rows[name] = Measurement(name, value, fmt, source)
        return value

    def __getitem__(self, name: str) -> Any:
        try:
            return self._rows[name].value
        except KeyError:
            raise KeyError(f"{name!r} is not in the evidence for {self.title}; it has {list(self._rows)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __iter__(self) -> Iterator[Measurement]:
        return iter(self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)

    def text(self, name: str) -> str:
        """The number as the table prints it (for an answer rendered from this run)."""
        self[name]  # a name that is not in the table raises, listing the names that are
        return self._rows[name].text

    def _rows_out(self) -> list[tuple[str, ...]]:
        with_source = any(m.source for m in self)
        return [(m.name, m.text, m.source) if with_source else (m.name, m.text) for m in self]

    def _header(self) -> tuple[str, ...]:
        return ("measured in this run", "value", "from") if any(m.source for m in self) else (
            "measured in this run", "value")

    def _repr_markdown_(self) -> str:
        return f"**Evidence for {self.title}**\n\n" + _table(self._header(), self._rows_out())

    def __str__(self) -> str:
        width = max((len(m.name) for m in self), default=0)
        lines = [f"Evidence for {self.title}"]
        lines += [f"  {m.name:<{width}}  {m.text}" + (f"   ({m.source})" if m.source else "") for m in self]
        return "\n".join(lines)

    __repr__ = __str__


@dataclass(frozen=True)
class Claim:
    """One qualitative statement of an answer, checked on the run.

    ``holds`` is True or False when measured, None when the run did not measure it;
    ``evidence`` is the numbers it was decided on; ``sentence`` is the answer's words
    that make the claim (quoted when it fails).
    """

    statement: str
    holds: bool | None
    evidence: str
    sentence: str = ""

    @property
    def mark(self) -> str:
        return {True: HOLDS, False: FAILS, None: UNMEASURED}[self.holds]


class Claims:
    """The checkable claims of one answer (or one question), with their marks.

    ``full_budget`` says whether this run has the budget the claims were written
    for (the notebook's defaults). Checking never raises on a failing claim: a
    notebook run always finishes, and its output says what did not hold.
    """

    def __init__(self, title: str, full_budget: bool = True, budget: str = ""):
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"title must be a non-empty string naming the answer, got {title!r}")
        if not isinstance(full_budget, bool):
            raise ValueError(f"full_budget must be True or False, got {full_budget!r}")
        self.title = title
        self.full_budget = full_budget
        self.budget = budget
        self.claims: list[Claim] = []

    def check(self, statement: str, holds: Any, evidence: str = "", sentence: str = "") -> Claim:
        """Record a claim. ``holds``: a truth value, or None when not measured; NaN counts as not measured."""
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError(f"statement must be a non-empty string, got {statement!r}")
        if _is_missing(holds):
            verdict = None
        elif isinstance(holds, (bool, numbers.Integral)) or hasattr(holds, "item"):
            verdict = bool(holds)
        else:
            raise ValueError(f"holds must be True, False or None (not measured), got {holds!r} for {statement!r}")
        claim = Claim(statement, verdict, str(evidence), sentence)
        self.claims.append(claim)
        return claim

    @property
    def failed(self) -> list[Claim]:
        return [c for c in self.claims if c.holds is False]

    @property
    def all_hold(self) -> bool:
        """True when every measured claim holds (unmeasured ones do not count against)."""
        return not self.failed

    def _note(self) -> str:
        if self.full_budget:
            if self.failed:
                return ("At the full budget a ✗ means this run contradicts the answer below it: "
                        "read the answer's quoted sentence against this run's figures.")
            return ""
        what = f" ({self.budget})" if self.budget else ""
        return (f"This run is smaller than the full profile{what}. The claims were written for the full run: "
                "a ✗ here may be the budget's, not the answer's.")

    def _reason(self, claim: Claim) -> str:
        if claim.holds is False and claim.sentence:
            return f"contradicts the answer's sentence: “{claim.sentence}”"
        if claim.holds is None:
            return "not measured in this run"
        return ""

    def _repr_markdown_(self) -> str:
        rows = [(c.mark, c.statement, c.evidence, self._reason(c)) for c in self.claims]
        held = sum(c.holds is True for c in self.claims)
        head = f"**Claims of {self.title}: {held} of {len(self.claims)} hold in this run**"
        note = self._note()
        return head + ("\n\n" + note if note else "") + "\n\n" + _table(("", "claim", "measured", ""), rows)

    def __str__(self) -> str:
        held = sum(c.holds is True for c in self.claims)
        lines = [f"Claims of {self.title}: {held} of {len(self.claims)} hold in this run"]
        note = self._note()
        if note:
            lines.append(note)
        for c in self.claims:
            reason = self._reason(c)
            lines.append(f"  {c.mark} {c.statement}" + (f"  [{c.evidence}]" if c.evidence else "")
                         + (f"  {reason}" if reason else ""))
        return "\n".join(lines)

    __repr__ = __str__
