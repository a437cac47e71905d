"""Lab 2, notebook 03 (WGAN, WGAN-GP): the critic's loss, weight clipping, the gradient penalty.

Every exercise of the notebook is declared in :data:`EXERCISES` at the end of this module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import losses, models
from ._core import Exercise, Part, close, describe, part, tensor_facts

LAB = "03_wgan_metrics"
PREAMBLE = """import math
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from labkit import losses, models
"""

# --------------------------------------------------------------------------- references


@torch.no_grad()
def reference_clip_weights(critic: nn.Module, c: float) -> None:
    """WGAN's weight clipping, labkit's answer: clamp every parameter of ``critic`` to [-c, c], in place.

    In place, so the optimiser keeps updating the very same tensors; under ``no_grad``,
    because an in-place change of a leaf that requires grad is not allowed. Buffers
    (BatchNorm's running statistics) are not weights: left alone.
    """
    for p in critic.parameters():
        p.clamp_(-c, c)


def reference_gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty, labkit's answer: mean over the batch of (||grad f(x_hat)||_2 - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample; the norm is per
    sample over all of its dimensions (``labkit.losses.gradient_penalty`` also returns the mean norm).
    """
    penalty, _ = losses.gradient_penalty(critic, real, fake)
    return penalty


# --------------------------------------------------------------------------- probes


def probe_critic_loss(fn: Any, seed: int) -> dict:
    """The loss on grader-drawn scores: batches of equal and of different sizes, and its gradient."""
    g = torch.Generator().manual_seed(seed)
    real, fake = (torch.randn(7, generator=g) * 2).requires_grad_(True), (torch.randn(7, generator=g) * 2 + 1).requires_grad_(True)
    value = fn(real, fake)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise TypeError(f"the loss must be a 0-dim tensor, got {describe(tensor_facts(value))}")
    grads = torch.autograd.grad(value, [real, fake], allow_unused=True)
    # far-out scores too: a critic's raw scores are unbounded, and the loss must not clamp or squash them
    uneven = fn(torch.randn(6, generator=g) * 40 + 20, torch.randn(3, generator=g) * 40 - 20)
    return {"value": float(value.detach()), "grad": [tensor_facts(gr if gr is not None else torch.zeros(7)) for gr in grads],
            "uneven": float(uneven), "swapped": float(fn(fake.detach(), real.detach()))}


def compare_critic_loss(got: dict, ref: dict) -> list[Part]:
    hint = "the critic's loss to minimise: mean score of the fakes minus mean score of the real images (no sigmoid, no log)"
    if close(got.get("value"), ref.get("swapped")):
        hint = "the sign is flipped: minimising E[f(G(z))] - E[f(x)] raises the real scores"
    return [part("value on the grader's scores", got, ref, ("value",), hint),
            part("gradient with respect to the scores", got, ref, ("grad",), "a mean over each batch: 1/B per score"),
            part("batches of different sizes, far-out scores", got, ref, ("uneven",),
                 "take each batch's own mean of the raw scores (no clamp, no sigmoid), then the difference")]


def _clip_critic(g: torch.Generator) -> nn.Module:
    """A small MLP critic with BatchNorm (so it has buffers); weights spread well beyond +-c."""
    critic = models.MLPDiscriminator(hidden=(16, 8), norm="batch")
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        for b in critic.buffers():
            if b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return critic


def probe_clip(fn: Any, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    critic = _clip_critic(g)
    c = float(0.01 + 0.04 * torch.rand((), generator=g))
    before = list(critic.parameters())
    result = fn(critic, c)
    flat = lambda ts: tensor_facts(torch.cat([t.detach().flatten() for t in ts]))
    return {"params": flat(critic.parameters()), "buffers": flat(b for b in critic.buffers() if b.is_floating_point()),
            "in_place": all(a is b for a, b in zip(before, critic.parameters())), "c": c}


def compare_clip(got: dict, ref: dict) -> list[Part]:
    values = part("every weight and bias clamped into [-c, c]", got, ref, ("params",),
                  "clamp each parameter (do not rescale it): values inside [-c, c] stay as they are")
    kept = part("buffers (BatchNorm's running statistics) left alone", got, ref, ("buffers",),
                "clip critic.parameters() only, not the buffers")
    in_place = got.get("in_place") is True and values.passed
    return [values, kept,
            Part("in place: the optimiser's own parameter tensors", in_place,
                 "" if in_place else "with torch.no_grad(): p.clamp_(-c, c) for each p in critic.parameters()")]


class _SegmentCritic(nn.Module):
    """f(x) = w ||x|| + c relu(v . (end - x)) per sample, v the unit vector from 0 towards ``end``.

    For batches whose every sample has one end at 0 (real or fake) and the other at ``end``:
    at any point strictly between them the gradient is (w - c) v, whatever eps is; at 0 it is
    -c v, at ``end`` w v, and off the segment (an eps per pixel, or eps outside [0, 1]) it has
    yet another norm. So the penalty is known without knowing the student's eps.
    """

    def __init__(self, end: torch.Tensor) -> None:
        super().__init__()
        self.w, self.c = nn.Parameter(torch.tensor(1.7)), nn.Parameter(torch.tensor(1.0))
        self.register_buffer("end", end.flatten(1).clone())
        self.register_buffer("v", self.end / self.end.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return self.w * flat.norm(dim=1) + self.c * torch.relu(((self.end - flat) * self.v).sum(dim=1))


def probe_gradient_penalty(fn: Any, seed: int) -> dict:
    """Cases whose answer does not depend on the student's random eps.

    real == fake; a linear critic; and a critic whose gradient is the same at every point
    strictly between a real sample and its fake, different at either end or off the segment.
    """
    g = torch.Generator().manual_seed(seed)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(1024, 16), nn.Tanh(), nn.Linear(16, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    real = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    value = fn(critic, real, real.clone())
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise TypeError(f"the penalty must be a 0-dim tensor, got {describe(tensor_facts(value))}")
    value.backward()
    facts = {"same_value": float(value.detach()),
             "critic_grad": tensor_facts(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                                   for p in critic.parameters()]))}
    lin = nn.Sequential(nn.Flatten(), nn.Linear(1024, 1))
    with torch.no_grad():
        for p in lin.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    fake = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    facts["linear_value"] = float(fn(lin, real, fake).detach())
    ends = torch.rand(16, 1, 32, 32, generator=g) * 2 - 1
    real_first = (torch.arange(16) < 8).view(16, 1, 1, 1)  # half the samples with fake = 0, half with real = 0
    zero = torch.zeros_like(ends)
    facts["segment_value"] = float(fn(_SegmentCritic(ends), torch.where(real_first, ends, zero),
                                      torch.where(real_first, zero, ends)).detach())
    return facts


def compare_gradient_penalty(got: dict, ref: dict) -> list[Part]:
    return [part("penalty where every interpolate is known (real == fake)", got, ref, ("same_value",),
                 "one L2 norm per sample over all its dimensions: grad.flatten(1).norm(2, dim=1)"),
            part("penalty of a linear critic (its gradient is its weight everywhere)", got, ref, ("linear_value",),
                 "the mean over the batch of (norm - 1) ** 2"),
            part("penalty at points strictly between each real sample and its fake", got, ref, ("segment_value",),
                 "x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1) per sample, the same for all of its "
                 "pixels: eps = torch.rand(B, 1, 1, 1); the gradient is taken at x_hat, not at real or fake"),
            part("differentiable with respect to the critic (create_graph=True)", got, ref, ("critic_grad",),
                 "torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True): the penalty must train the critic")]


def _summary(text: str):
    return lambda facts: text


EXERCISES = (
    Exercise("wgan-critic-loss", LAB, "the critic's Wasserstein loss", 2, "critic_loss", "labkit.losses:d_loss_wgan",
             probe_critic_loss, compare_critic_loss,
             lambda f: f"same value ({f['value']:.4f}) and gradient as labkit's, batches of any size.",
             hidden=("labkit.losses:g_loss_wgan",)),
    Exercise("wgan-clip", LAB, "weight clipping", 2, "clip_weights", "labkit.exercises.wgan:reference_clip_weights",
             probe_clip, compare_clip, _summary("every parameter clamped into [-c, c] in place; buffers untouched.")),
    Exercise("wgan-gradient-penalty", LAB, "the gradient penalty", 3, "gradient_penalty",
             "labkit.exercises.wgan:reference_gradient_penalty", probe_gradient_penalty, compare_gradient_penalty,
             _summary("right on known interpolates, a linear critic and points between real and fake, "
                      "and differentiable w.r.t. the critic."),
             hidden=("labkit.losses:gradient_penalty",)),
)
