"""Immediate feedback on students' exercise code in the lab notebooks.

After each exercise cell a notebook calls one check, e.g.
``Generator = checks.dcgan_generator(Generator)``. The check runs the exercise's judgement
(:mod:`labkit.exercises`, the very one the grader applies) on public inputs and returns what
the rest of the notebook should use:

- the student's object, when every part passes (with a one-line summary);
- labkit's reference, when the student's code still raises ``NotImplementedError``
  (an untouched handout), with a message saying so: the notebook runs on;
- nothing: it raises :class:`ExerciseError` (an ``AssertionError``) naming each part that
  is wrong, what was expected, what came back and what usually causes it.

A student who is stuck can continue with the reference by writing, for example,
``Generator = models.DCGANGenerator`` in place of the check (``EXERCISES`` lists the
reference of every exercise).
"""

from __future__ import annotations

from typing import Any, Callable

from .. import exercises
from ..exercises import ExerciseError
from ..exercises.cgan import reference_cgan_d_loss, reference_style_grid
from ..exercises.dcgan import reference_train_step
from ..exercises.wgan import reference_clip_weights, reference_gradient_penalty


def _checker(exercise_id: str) -> Callable[..., Any]:
    exercise = exercises.get(exercise_id)

    def check(obj: Any, **lab_sizes: Any) -> Any:
        return exercises.check(exercise, obj)

    check.__name__ = exercise_id.replace("-", "_")
    check.__doc__ = (f"Check exercise ``{exercise_id}`` ({exercise.title}): the student's ``{exercise.name}``.\n\n"
                     f"Returns it when every part of the judgement passes, labkit's reference "
                     f"(``{exercise.reference.replace(':', '.')}``) when it is not written yet; raises "
                     f"ExerciseError otherwise. Keyword arguments (the lab's sizes) are accepted and unused.")
    return check


dcgan_generator = _checker("dcgan-generator")
dcgan_discriminator = _checker("dcgan-discriminator")
dcgan_d_loss = _checker("dcgan-d-loss")
dcgan_g_loss = _checker("dcgan-g-loss")
dcgan_train_step = _checker("dcgan-train-step")
cgan_generator = _checker("cgan-generator")
cgan_discriminator = _checker("cgan-discriminator")
cgan_d_loss = _checker("cgan-d-loss")
cgan_style_grid = _checker("cgan-style-grid")

#: exercise id -> (check function, labkit's reference the check falls back on), labs 1 and 2
EXERCISES = {ex_id: (globals()[ex_id.replace("-", "_")], exercises.get(ex_id).references()[0])
             for ex_id in exercises.EXERCISES if not ex_id.startswith("wgan")}

__all__ = ["EXERCISES", "ExerciseError", "cgan_d_loss", "cgan_discriminator", "cgan_generator", "cgan_style_grid",
           "dcgan_d_loss", "dcgan_discriminator", "dcgan_g_loss", "dcgan_generator", "dcgan_train_step",
           "reference_cgan_d_loss", "reference_clip_weights", "reference_gradient_penalty", "reference_style_grid",
           "reference_train_step"]
