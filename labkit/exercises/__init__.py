"""The lab's exercises, each declared once: what the notebook checks, the grader scores and the handout shows.

One module per lab notebook holds its exercises (``dcgan``, ``cgan``, ``wgan``), each an
:class:`Exercise` with its id, title, points, labkit's reference, a probe and a comparison;
``_core`` holds what they share, and the one judgement (:func:`judge`) that both the
notebook's check and the grader apply.
"""

from __future__ import annotations

from . import cgan, dcgan, wgan
from ._core import OUTCOMES, Exercise, ExerciseError, Part, Verdict, check, judge, resolve, run_probe

LABS = {module.LAB: module for module in (dcgan, cgan, wgan)}

#: exercise id -> declaration, every lab's, in notebook order
EXERCISES: dict[str, Exercise] = {ex.id: ex for module in LABS.values() for ex in module.EXERCISES}


def get(exercise_id: str) -> Exercise:
    """The declaration of ``exercise_id``; a clear error for an unknown id."""
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise ValueError(f"exercise: unknown id {exercise_id!r}; known: {', '.join(EXERCISES)}") from None


def preamble(exercise_id: str) -> str:
    """The imports every exercise cell of that exercise's notebook may use without defining them."""
    return LABS[get(exercise_id).lab].PREAMBLE


__all__ = ["EXERCISES", "LABS", "OUTCOMES", "Exercise", "ExerciseError", "Part", "Verdict", "check", "get", "judge",
           "preamble", "resolve", "run_probe"]
