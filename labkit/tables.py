"""The results tables' common parts: which metrics a row carries, how a cell prints, Markdown.

Three tables use them: lab 1's ablations (:mod:`labkit.compare`), lab 2's results
(:mod:`labkit.results`) and ``make run``'s report (:mod:`labkit.report`). Each
keeps its own columns — they answer different questions — as
``(key, header, format)`` triples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: What :func:`labkit.metrics.evaluate` returns that a table row keeps.
METRIC_KEYS = ("fid", "precision", "recall", "density", "coverage", "classes_covered", "class_min_share",
               "class_max_share", "label_accuracy")

Column = tuple[str, str, str]  # key, header, format


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1, for titles and log lines: ``count(1, "epoch")`` is "1 epoch"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cell(value: Any, fmt: str) -> str:
    """``value`` formatted with ``fmt``; a dash when missing or NaN; ``str(value)`` when the format does not fit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def grid(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], floor: Mapping[str, Any] | None = None,
         floor_label: str = "real MNIST (floor)") -> list[list[str]]:
    """Header, one line of cells per row, and the real-vs-real floor last (its metric columns only).

    The floor's label goes in the first column.
    """
    out = [[header for _, header, _ in columns]]
    out += [[cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    if floor is not None:
        real = {columns[0][0]: floor_label, **{k: floor.get(k) for k in METRIC_KEYS}}
        out.append([cell(real.get(key), fmt) for key, _, fmt in columns])
    return out


def markdown(cells: Sequence[Sequence[str]]) -> str:
    """A Markdown table from a :func:`grid` (first line: the header)."""
    header, *body = cells
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines)
