"""Checks for notebook 03 (WGAN, WGAN-GP): the critic's loss, weight clipping, the gradient penalty.

Each runs the exercise's judgement from :mod:`labkit.exercises.wgan` (see :mod:`labkit.checks`).
"""

from __future__ import annotations

from . import _checker
from ..exercises.wgan import reference_clip_weights, reference_gradient_penalty

wgan_critic_loss = _checker("wgan-critic-loss")
wgan_clip = _checker("wgan-clip")
wgan_gradient_penalty = _checker("wgan-gradient-penalty")

__all__ = ["reference_clip_weights", "reference_gradient_penalty", "wgan_clip", "wgan_critic_loss",
           "wgan_gradient_penalty"]
