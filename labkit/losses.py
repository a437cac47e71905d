"""GAN losses on raw discriminator outputs: the BCE game, its two generator objectives,
the Wasserstein losses and the WGAN-GP gradient penalty.

Every function takes logits (GAN) or scores (WGAN critic), never probabilities, and
returns a scalar tensor averaged over the batch, to be *minimised*. With
D(x) = sigmoid(l), the log-probabilities are written with softplus, which stays finite
for any logit: log D = -softplus(-l) and log(1 - D) = -softplus(l).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("gan", "gan-minimax", "wgan", "wgan-gp")


def _check_scores(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of logits/scores, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty (a batch of B >= 1 scores), got shape {tuple(t.shape)}")
    return t


def d_loss_gan(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's BCE loss, real -> 1 and fake -> 0: -mean log D(x) - mean log(1 - D(G(z))).

    This is objective (7) negated, so minimising it is D's maximisation. At D = 1/2
    everywhere (logits 0, the equilibrium) it equals 2 log 2.
    """
    real_logits = _check_scores("real_logits", real_logits)
    fake_logits = _check_scores("fake_logits", fake_logits)
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss, objective (6): -mean log D(G(z)) = mean softplus(-l).

    Its gradient w.r.t. a logit is -(1 - D(G(z))): close to -1 while D rejects the fakes,
    which is exactly when G most needs a signal.
    """
    fake_logits = _check_scores("fake_logits", fake_logits)
    return F.softplus(-fake_logits).mean()


def g_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss from the minimax game (5): mean log(1 - D(G(z))) = -mean softplus(l), minimised by G.

    Its gradient w.r.t. a logit is -D(G(z)): it vanishes when D confidently rejects the
    fakes (D(G(z)) -> 0, early in training), the saturation that (6) avoids.
    """
    fake_logits = _check_scores("fake_logits", fake_logits)
    return -F.softplus(fake_logits).mean()


def d_loss_wgan(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's Wasserstein loss: mean f(G(z)) - mean f(x) (minimising it widens the gap)."""
    real_scores = _check_scores("real_scores", real_scores)
    fake_scores = _check_scores("fake_scores", fake_scores)
    return fake_scores.mean() - real_scores.mean()


def g_loss_wgan(fake_scores: torch.Tensor) -> torch.Tensor:
    """G's Wasserstein loss: -mean f(G(z)) (G raises the critic's score of its samples)."""
    fake_scores = _check_scores("fake_scores", fake_scores)
    return -fake_scores.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     y: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP's penalty (Gulrajani et al. 2017) on random points between real and fake samples.

    x_hat = eps * real + (1 - eps) * fake with eps ~ U[0, 1] drawn once per sample, and the
    penalty is mean((||grad_x f(x_hat)||_2 - 1)^2), the norm taken per sample over *all* of
    its dimensions (grad.flatten(1).norm(dim=1); a norm over one axis is a known bug of
    public code). The graph is kept (create_graph=True) so the penalty trains the critic;
    ``fake`` is detached, so it does not train G. ``y`` is passed to a conditional critic;
    ``generator`` (a torch.Generator) makes eps repeatable.

    Returns (penalty, mean gradient norm); the second is detached, for logging.
    Multiply the penalty by lambda (10 in the paper) in the training loop.
    """
    if not isinstance(real, torch.Tensor) or not isinstance(fake, torch.Tensor):
        raise ValueError("real and fake must be torch tensors of samples with the same shape (B, ...)")
    if real.shape != fake.shape or real.dim() < 2 or real.shape[0] == 0:
        raise ValueError(f"real and fake must have the same shape (B, ...) with B >= 1, "
                         f"got {tuple(real.shape)} and {tuple(fake.shape)}")
    if not real.dtype.is_floating_point:
        raise ValueError(f"real must be a floating-point tensor, got {real.dtype}")
    batch = real.shape[0]
    shape = (batch,) + (1,) * (real.dim() - 1)  # (B, 1, 1, 1) for images: one eps per sample
    gen_device = generator.device if generator is not None else real.device
    eps = torch.rand(shape, generator=generator, device=gen_device, dtype=real.dtype).to(real.device)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach().to(real.dtype)).requires_grad_(True)
    scores = critic(x_hat) if y is None else critic(x_hat, y)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)  # (B,): one norm per sample, over C x H x W
    penalty = ((norms - 1) ** 2).mean()
    return penalty, norms.mean().detach()
