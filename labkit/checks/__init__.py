"""Immediate feedback on students' exercise code in the lab notebooks.

After each exercise cell a notebook calls one check, e.g.
``Generator = checks.dcgan_generator(Generator)``. The check runs the student's code on
small known inputs and returns what the rest of the notebook should use:

- the student's object, when every test passes (with a one-line summary);
- labkit's reference, when the student's code still raises ``NotImplementedError``
  (an untouched handout), with a message saying so: the notebook runs on;
- nothing: it raises :class:`ExerciseError` (an ``AssertionError``) naming the problem,
  what was expected, what came back, and a hint.

A student who is stuck can continue with the reference by writing, for example,
``Generator = models.DCGANGenerator`` in place of the check (``EXERCISES`` lists the
reference of every exercise).
"""

from __future__ import annotations

from .. import losses, models
from ._core import ExerciseError
from .cgan import (
    cgan_d_loss,
    cgan_discriminator,
    cgan_generator,
    cgan_style_grid,
    reference_cgan_d_loss,
    reference_style_grid,
)
from .dcgan import (
    dcgan_d_loss,
    dcgan_discriminator,
    dcgan_g_loss,
    dcgan_generator,
    dcgan_train_step,
    reference_train_step,
)

#: exercise id -> (check function, labkit's reference the check falls back on)
EXERCISES = {
    "dcgan-generator": (dcgan_generator, models.DCGANGenerator),
    "dcgan-discriminator": (dcgan_discriminator, models.DCGANDiscriminator),
    "dcgan-d-loss": (dcgan_d_loss, losses.d_loss_gan),
    "dcgan-g-loss": (dcgan_g_loss, losses.g_loss_nonsaturating),
    "dcgan-train-step": (dcgan_train_step, reference_train_step),
    "cgan-generator": (cgan_generator, models.DCGANGenerator),
    "cgan-discriminator": (cgan_discriminator, models.DCGANDiscriminator),
    "cgan-d-loss": (cgan_d_loss, reference_cgan_d_loss),
    "cgan-style-grid": (cgan_style_grid, reference_style_grid),
}

__all__ = [
    "EXERCISES",
    "ExerciseError",
    "cgan_d_loss",
    "cgan_discriminator",
    "cgan_generator",
    "cgan_style_grid",
    "dcgan_d_loss",
    "dcgan_discriminator",
    "dcgan_g_loss",
    "dcgan_generator",
    "dcgan_train_step",
    "reference_cgan_d_loss",
    "reference_style_grid",
    "reference_train_step",
]
