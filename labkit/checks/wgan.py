"""Checks for notebook 03 (WGAN, WGAN-GP): the critic's loss, weight clipping, the gradient penalty.

Each ``wgan_*`` function takes the student's function, tests it on small known inputs and
returns what the notebook should use next (see :mod:`labkit.checks`). The tests use cases
whose answer is known exactly, whatever random numbers the student's code draws:

- the critic's loss on scores with known means (and batches of different sizes);
- clipping on a small critic whose weights are partly inside and partly outside [-c, c];
- the penalty of a *linear* critic f(x) = <w, x>, whose gradient is w at every point, so
  the penalty is (||w|| - 1)^2 for any interpolation: 0 when ||w|| = 1 (a 1-Lipschitz
  critic has nothing to pay), 4 when ||w|| = 3. A norm over the wrong dimension gives
  other numbers, which the check recognises and names.

References: ``losses.d_loss_wgan``, :func:`reference_clip_weights` (what
``labkit.train.fit`` does after each critic step with ``loss="wgan"``) and
:func:`reference_gradient_penalty` (``losses.gradient_penalty`` without its logging output).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import losses, models
from ._core import ExerciseError, call, require_tensor, run_check, sandbox, shape

IMAGE = (1, 32, 32)  # MNIST-sized samples: the penalty's norm runs over all of these dimensions


# =========================================================================== references


@torch.no_grad()
def reference_clip_weights(critic: nn.Module, c: float) -> None:
    """WGAN's weight clipping, labkit's answer: clamp every parameter of ``critic`` to [-c, c], in place.

    In place, so the optimiser keeps updating the very same tensors; under ``no_grad``,
    because an in-place change of a leaf that requires grad is not allowed (and is not a step
    to differentiate). Buffers (BatchNorm's running statistics) are not weights: left alone.
    """
    for p in critic.parameters():
        p.clamp_(-c, c)


def reference_gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty, labkit's answer: mean over the batch of (||grad f(x_hat)||_2 - 1)^2.

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample; the norm is per
    sample over all of its dimensions. Returns the penalty alone (multiply by lambda in the
    training loop); see ``labkit.losses.gradient_penalty``, which also returns the mean norm.
    """
    penalty, _ = losses.gradient_penalty(critic, real, fake)
    return penalty


# =========================================================================== helpers


def _scalar(ex: str, what: str, value: Any) -> torch.Tensor:
    value = require_tensor(ex, what, value, "a single number: a 0-dim tensor (the batch mean)")
    if value.numel() != 1:
        raise ExerciseError(ex, f"{what} must return one number", expected="a 0-dim tensor (an average over the batch)",
                            got=shape(value), hint="finish with .mean()")
    return value.reshape(())


def _finite(ex: str, what: str, value: torch.Tensor, hint: str) -> float:
    v = float(value.detach())
    if not math.isfinite(v):
        raise ExerciseError(ex, f"{what} is not finite", expected="a finite number", got=f"{v}", hint=hint)
    return v


def _close(a: float, b: float, rel: float = 1e-4, abs_: float = 1e-5) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# =========================================================================== critic loss

# known scores: means 2.0 (real) and 0.5 (fake); the loss to minimise is 0.5 - 2.0 = -1.5
_REAL = (3.0, 1.0, 2.5, 1.5, 2.0, 2.0)
_FAKE = (-0.5, 1.0, 1.0)


def _critic_loss_hint(got: float, real: torch.Tensor, fake: torch.Tensor) -> str:
    """Recognise the usual wrong answers from the value they give on the known scores."""
    want = float(fake.mean() - real.mean())
    known = {
        -want: "the sign is flipped: the critic *maximises* E[f(x)] - E[f(G(z))]; the loss it minimises is "
               "E[f(G(z))] - E[f(x)] = fake_scores.mean() - real_scores.mean()",
        float(-fake.mean()): "this is G's loss, -E[f(G(z))]; the critic's loss uses both batches",
        float(fake.sum() - real.sum()): "you sum over the batch; average each batch instead (.mean())",
        float(losses.d_loss_gan(real, fake)): "this is the GAN's cross-entropy: a WGAN critic has no sigmoid and no "
                                              "log, its loss is the plain difference of mean scores",
        float(fake.mean() + real.mean()): "the real term needs a minus sign: E[f(G(z))] - E[f(x)]",
    }
    for value, hint in known.items():
        if _close(got, value):
            return hint
    return "loss = fake_scores.mean() - real_scores.mean()"


def _check_critic_loss(critic_loss: Any) -> str:
    ex = "wgan-critic-loss"
    real, fake = torch.tensor(_REAL), torch.tensor(_FAKE)
    what = f"critic_loss(real_scores of {len(_REAL)}, fake_scores of {len(_FAKE)})"
    try:
        out = call(ex, what, critic_loss, real.clone(), fake.clone())
    except ExerciseError as exc:
        if "size of tensor" in str(exc) or "must match" in str(exc):
            raise ExerciseError(ex, f"{what} fails on batches of different sizes",
                                expected="E[f(G(z))] - E[f(x)]: two separate means, any batch sizes",
                                got=exc.problem,
                                hint="(fake - real).mean() pairs the samples; compute the two means separately: "
                                     "fake_scores.mean() - real_scores.mean()") from exc
        raise
    value = _finite(ex, what, _scalar(ex, what, out),
                    "the inputs are raw critic scores (any real number): no log, no sigmoid")
    want = float(fake.mean() - real.mean())
    if not _close(value, want):
        raise ExerciseError(ex, "wrong value on known scores (real mean 2.0, fake mean 0.5)",
                            expected=f"{want:.4f} = 0.5 - 2.0", got=f"{value:.4f}",
                            hint=_critic_loss_hint(value, real, fake))

    # gradient: -1/B on each real score, +1/B on each fake score, whatever the scores
    with sandbox(2):
        r = (torch.randn(8) * 5).requires_grad_(True)
        f = (torch.randn(8) * 5).requires_grad_(True)
    loss = _scalar(ex, "critic_loss(random scores)", call(ex, "critic_loss(random scores)", critic_loss, r, f))
    if not loss.requires_grad:
        raise ExerciseError(ex, "the loss is not connected to the scores", expected="a tensor with a gradient",
                            got="a tensor without one", hint="stay in torch: no .item(), numpy or float() on the scores")
    call(ex, "backward() of your loss", loss.backward)
    if r.grad is None or f.grad is None or not (torch.allclose(r.grad, torch.full((8,), -1 / 8), atol=1e-6)
                                                 and torch.allclose(f.grad, torch.full((8,), 1 / 8), atol=1e-6)):
        raise ExerciseError(ex, "wrong gradient with respect to the scores",
                            expected="-1/B for every real score and +1/B for every fake score (B = 8): -0.125 and +0.125",
                            got=(f"{r.grad[:3].tolist()} ... and {f.grad[:3].tolist()} ..."
                                 if r.grad is not None and f.grad is not None else "no gradient"),
                            hint="the loss is linear in the scores: no clamp, no abs, no log")
    twice = float(_scalar(ex, what, call(ex, what, critic_loss, torch.cat([real, real]), torch.cat([fake, fake]))).detach())
    if not _close(twice, want):
        raise ExerciseError(ex, "the loss must not grow with the batch size",
                            expected=f"the same value for every batch repeated twice ({want:.4f})", got=f"{twice:.4f}",
                            hint="average over the batch (.mean()), do not sum")
    return (f"critic_loss = {value:.4f} for real scores of mean 2.0 and fake scores of mean 0.5, on batches of "
            f"{len(_REAL)} and {len(_FAKE)}; its gradient is -1/B on every real score and +1/B on every fake one, "
            f"whatever the scores: unlike the GAN's cross-entropy it never saturates. Matches labkit.losses.d_loss_wgan.")


def wgan_critic_loss(critic_loss: Any) -> Any:
    """Check exercise ``wgan-critic-loss``: ``critic_loss(real_scores, fake_scores)`` = E[f(G(z))] - E[f(x)].

    Tests: the value on known scores (batches of different sizes), the usual mistakes named
    (flipped sign, G's loss, a sum, the GAN's cross-entropy), the gradient ±1/B and the
    batch mean. Returns the function, or ``losses.d_loss_wgan``.
    """
    return run_check("wgan-critic-loss", critic_loss, losses.d_loss_wgan, _check_critic_loss)


# =========================================================================== clipping


def _clip_critic() -> nn.Module:
    """A small MLP critic with BatchNorm (so it has buffers), weights spread around +-0.01 and +-0.05."""
    with sandbox(3):
        critic = models.MLPDiscriminator(hidden=(16, 8), norm="batch")
        with torch.no_grad():
            for p in critic.parameters():
                p.copy_(torch.randn_like(p) * 0.04)
            for name, b in critic.named_buffers():
                if b.is_floating_point():
                    b.copy_(torch.rand_like(b) + 0.5)  # running statistics in [0.5, 1.5]
    return critic


def _clip_call(ex: str, clip_weights: Callable, critic: nn.Module, c: float) -> None:
    what = f"clip_weights(critic, c={c})"
    try:
        call(ex, what, clip_weights, critic, c)
    except ExerciseError as exc:
        if "leaf Variable" in str(exc) or "in-place operation" in str(exc):
            raise ExerciseError(ex, f"{what} changes a parameter in place while autograd is watching",
                                expected="the clamp done under torch.no_grad()", got=exc.problem,
                                hint="with torch.no_grad(): for p in critic.parameters(): p.clamp_(-c, c)") from exc
        raise


def _check_clip_once(ex: str, clip_weights: Callable, c: float) -> tuple[int, int]:
    critic = _clip_critic()
    params = dict(critic.named_parameters())
    before = {name: p.detach().clone() for name, p in params.items()}
    buffers = {name: b.clone() for name, b in critic.named_buffers()}
    optimiser_view = [id(p) for p in critic.parameters()]
    _clip_call(ex, clip_weights, critic, c)

    after = dict(critic.named_parameters())
    if [id(p) for p in critic.parameters()] != optimiser_view:
        replaced = [name for name in params if after.get(name) is not params[name]]
        raise ExerciseError(ex, "clipping replaced the critic's parameters by new tensors",
                            expected="the same parameter objects, changed in place (the optimiser holds them)",
                            got=f"new objects for {', '.join(replaced[:4]) or 'some parameters'}",
                            hint="clamp in place: p.clamp_(-c, c) under torch.no_grad(), not module.weight = nn.Parameter(...)")
    for name, p in after.items():
        if not p.requires_grad or not p.is_leaf:
            raise ExerciseError(ex, f"parameter {name} no longer trains after clipping",
                                expected="leaf tensors that still require grad", got=f"requires_grad={p.requires_grad}, leaf={p.is_leaf}",
                                hint="clamp under torch.no_grad() instead of detaching or turning off requires_grad")
    changed = [name for name in params if not torch.equal(after[name].detach(), before[name])]
    if not changed:
        raise ExerciseError(ex, f"clip_weights(critic, c={c}) changed nothing",
                            expected=f"every weight outside [-{c}, {c}] set to -{c} or {c}", got="all weights as they were",
                            hint="p = p.clamp(-c, c) only rebinds the loop variable; use the in-place p.clamp_(-c, c)")
    outside = [name for name, p in after.items() if float(p.detach().abs().max()) > c * (1 + 1e-6)]
    if outside:
        kinds = {n.rsplit(".", 1)[-1] for n in outside}
        hint = "clip every parameter the critic has: for p in critic.parameters()"
        if kinds <= {"bias"}:
            hint = "the biases were left out: WGAN clips every parameter of the critic, biases included"
        elif any(n.startswith("main.") and isinstance(critic.main[int(n.split(".")[1])], nn.BatchNorm1d)
                 for n in outside):
            hint = "the normalisation layers' weights were left out: WGAN clips every parameter (critic.parameters())"
        biggest = max(float(after[n].detach().abs().max()) for n in outside)
        raise ExerciseError(ex, f"some weights are still outside [-{c}, {c}]",
                            expected=f"every parameter in [-{c}, {c}]",
                            got=f"values up to {biggest:.4f} in {', '.join(outside[:4])}", hint=hint)
    n_inside = n_clipped = 0
    for name, old in before.items():
        new = after[name].detach()
        inside = old.abs() <= c
        n_inside += int(inside.sum())
        n_clipped += int((~inside).sum())
        if not torch.equal(new[inside], old[inside]):
            raise ExerciseError(ex, f"weights already inside [-{c}, {c}] were changed (in {name})",
                                expected="weights inside the interval left exactly as they were",
                                got="they changed: the weights were rescaled or shifted, not clamped",
                                hint="clamping only moves the weights that are outside: p.clamp_(-c, c)")
        if not torch.equal(new[~inside], torch.sign(old[~inside]) * c):
            raise ExerciseError(ex, f"weights outside [-{c}, {c}] must land on the nearest end (in {name})",
                                expected=f"w > {c} becomes {c} and w < -{c} becomes -{c}",
                                got="other values (zeroed, or sent to the wrong end)",
                                hint="p.clamp_(-c, c) (or torch.clamp(p, min=-c, max=c) copied back in place)")
    for name, b in critic.named_buffers():
        if not torch.equal(b, buffers[name]):
            raise ExerciseError(ex, f"the buffer {name} was changed",
                                expected="BatchNorm's running statistics left alone: they are not weights",
                                got="a clipped buffer",
                                hint="loop over critic.parameters(), not critic.state_dict() (which also holds buffers)")
    return n_clipped, n_inside


def _check_clip(clip_weights: Any) -> str:
    ex = "wgan-clip"
    clipped, inside = _check_clip_once(ex, clip_weights, 0.01)
    _check_clip_once(ex, clip_weights, 0.05)  # c is an argument, not a constant
    return (f"On a small critic with c = 0.01, {clipped} weights outside [-c, c] were set to +-c and the "
            f"{inside} inside were left alone, in place (same tensors, still trainable); biases and normalisation "
            f"weights are clipped too, BatchNorm's running statistics are not; c = 0.05 works as well.")


def wgan_clip(clip_weights: Any) -> Any:
    """Check exercise ``wgan-clip``: ``clip_weights(critic, c)`` clamps every parameter to [-c, c] in place.

    Tests on a small MLP critic: everything ends in [-c, c], weights inside are untouched and
    those outside land on +-c, biases and norm weights included, the parameter objects stay
    the same and trainable, buffers are left alone, and ``c`` is honoured (0.01 and 0.05).
    Returns the function, or :func:`reference_clip_weights`.
    """
    return run_check("wgan-clip", clip_weights, reference_clip_weights, _check_clip)


# =========================================================================== gradient penalty


class _LinearCritic(nn.Module):
    """f(x) = <w, x> + b: its gradient with respect to x is w at every point, so ||grad f|| = ||w||."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.zeros(()))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return (x * self.w).flatten(1).sum(1) + self.b  # (B,)


class _Recorder(nn.Module):
    """Wraps a critic and keeps the inputs it was called with."""

    def __init__(self, critic: nn.Module) -> None:
        super().__init__()
        self.critic = critic
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.critic(x)


def _direction() -> torch.Tensor:
    """A fixed random unit vector of shape IMAGE (norm 1 over all of its dimensions).

    Its rows are scaled unevenly (row h by 0.1 + h / 8), so the norms over the rows (dim 2) and
    over the columns (dim 3) differ and a norm over either one is recognised by its value.
    """
    with sandbox(4):
        w = torch.randn(IMAGE) * (0.1 + torch.arange(IMAGE[1]) / 8.0)[:, None]
    return w / w.norm()


def _wrong_norms(w: torch.Tensor, batch: int, lam: float = 10.0) -> dict[str, float]:
    """The penalty a common mistake gives for a linear critic with weights w (gradient w for every sample)."""
    g = w.expand(batch, *w.shape)  # the gradient of every sample
    full = float(w.norm())

    def mean_sq(norms: torch.Tensor) -> float:
        return float(((norms - 1) ** 2).mean())

    return {
        "the norm over dim 1 only (the channels)": mean_sq(g.norm(2, dim=1)),
        "the norm over dim 2 only (the image height)": mean_sq(g.norm(2, dim=2)),
        "the norm over dim 3 only (the image width)": mean_sq(g.norm(2, dim=3)),
        "one norm over the whole batch (grad.norm())": (math.sqrt(batch) * full - 1) ** 2,
        "the squared norm, (||g||^2 - 1)^2": (full ** 2 - 1) ** 2,
        "||g||^2 without the '- 1'": full ** 2,
        "|(||g|| - 1)| without the square": abs(full - 1),
        "the one-sided penalty max(0, ||g|| - 1)^2": max(0.0, full - 1) ** 2,
        "a sum over the batch instead of the mean": batch * (full - 1) ** 2,
        f"the penalty already multiplied by lambda = {lam:g}": lam * (full - 1) ** 2,
    }


_GP_HINT = ("grad = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]; "
            "norms = grad.flatten(1).norm(2, dim=1); return ((norms - 1) ** 2).mean()")


def _penalty(ex: str, gradient_penalty: Callable, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
             what: str) -> torch.Tensor:
    try:
        out = call(ex, what, gradient_penalty, critic, real, fake)
    except ExerciseError as exc:
        text = str(exc)
        if "does not require grad" in text or "does not have a grad_fn" in text:
            raise ExerciseError(ex, f"{what}: the gradient with respect to x_hat cannot be taken",
                                expected="x_hat created with requires_grad", got=exc.problem,
                                hint="x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True), then "
                                     "torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)") from exc
        raise
    value = _scalar(ex, what, out)
    _finite(ex, what, value, "the norm of a zero gradient is fine; check for divisions and logs")
    return value


def _check_linear(ex: str, gradient_penalty: Callable, scale: float, batch: int
                  ) -> tuple[float, _LinearCritic, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Penalty of f(x) = <w, x> with ||w|| = scale: exactly (scale - 1)^2 for any interpolation.

    Returns (value, critic, real, fake, the penalty tensor) so later tests can reuse the call.
    """
    w = _direction() * scale
    critic = _LinearCritic(w)
    with sandbox(5):
        real = torch.rand(batch, *IMAGE) * 0.5 + 0.5  # in [0.5, 1]
        fake = -torch.rand(batch, *IMAGE) * 0.5 - 0.5  # in [-1, -0.5]: every pixel differs from real
    with sandbox(6):
        value = _penalty(ex, gradient_penalty, critic, real, fake,
                         f"gradient_penalty(linear critic with ||w|| = {scale:g}, real, fake)")
    got, want = float(value.detach()), (scale - 1) ** 2
    if not _close(got, want, rel=1e-3, abs_=1e-5):
        named = [name for name, v in _wrong_norms(w, batch).items() if _close(got, v, rel=1e-3, abs_=1e-5)]
        problem = (f"wrong penalty for a linear critic f(x) = <w, x> with ||w|| = {scale:g} over all "
                   f"{'x'.join(map(str, IMAGE))} dimensions (its gradient is w everywhere)")
        if named:
            hint = (f"your value matches {named[0]}. The norm of the gradient is taken per sample over all of its "
                    f"dimensions: grad.flatten(1).norm(2, dim=1), shape (B,); then ((norms - 1) ** 2).mean()")
        else:
            hint = _GP_HINT
        raise ExerciseError(ex, problem, expected=f"(||w|| - 1)^2 = {want:.4f}", got=f"{got:.4f}", hint=hint)
    return got, critic, real, fake, value


def _check_interpolates(ex: str, inputs: list[torch.Tensor], real: torch.Tensor, fake: torch.Tensor) -> float:
    """x_hat must lie between real_i and fake_i, one eps ~ U[0, 1] per sample. Returns the spread of eps."""
    candidates = [x for x in inputs if x.shape == real.shape and not torch.equal(x, real) and not torch.equal(x, fake)]
    if not candidates:
        raise ExerciseError(ex, "the critic was never called on interpolates",
                            expected="critic(x_hat) with x_hat = eps * real + (1 - eps) * fake, same shape as real",
                            got=f"calls on {[tuple(x.shape) for x in inputs] or 'nothing'}"
                                + (" (only the real or the fake batch itself)" if inputs else ""),
                            hint="the penalty is measured between the two distributions, on x_hat, not on real or fake")
    x_hat = candidates[-1]
    eps = (x_hat - fake) / (real - fake)  # real - fake < -1 nowhere, >= 1 everywhere: safe
    per_sample = eps.flatten(1)
    spread_within = float((per_sample.amax(1) - per_sample.amin(1)).max())
    if spread_within > 1e-4:
        raise ExerciseError(ex, "eps differs from pixel to pixel of one sample",
                            expected="one eps per sample, shape (B, 1, 1, 1), so x_hat lies on the segment from fake to real",
                            got="a different eps for each pixel (e.g. torch.rand_like(real))",
                            hint="eps = torch.rand(B, 1, 1, 1, device=real.device)")
    e = per_sample[:, 0]
    if float(e.min()) < -1e-5 or float(e.max()) > 1 + 1e-5:
        raise ExerciseError(ex, "x_hat is not between real and fake",
                            expected="eps in [0, 1]: x_hat = eps * real + (1 - eps) * fake",
                            got=f"eps from {float(e.min()):.3f} to {float(e.max()):.3f}",
                            hint="draw eps uniformly with torch.rand (not torch.randn)")
    if float(e.std()) < 1e-3:
        raise ExerciseError(ex, "every sample uses the same eps",
                            expected="a fresh eps ~ U[0, 1] for each sample of the batch",
                            got=f"eps = {float(e.mean()):.3f} for all {len(e)} samples",
                            hint="eps = torch.rand(B, 1, 1, 1): B numbers, not one")
    if not 0.4 < float(e.mean()) < 0.6 or not 0.2 < float(e.std()) < 0.38:
        raise ExerciseError(ex, "eps does not look uniform on [0, 1]",
                            expected=f"mean about 0.5 and standard deviation about 0.29 over {len(e)} samples",
                            got=f"mean {float(e.mean()):.3f}, standard deviation {float(e.std()):.3f}",
                            hint="eps = torch.rand(B, 1, 1, 1)")
    return float(e.std())


def _check_gradient_penalty(gradient_penalty: Any) -> str:
    ex = "wgan-gradient-penalty"
    batch = 256
    unit, critic, real, fake, _ = _check_linear(ex, gradient_penalty, 1.0, batch)
    _check_interpolates(ex, critic.inputs, real, fake)
    half, *_ = _check_linear(ex, gradient_penalty, 0.5, batch)
    steep, critic, real, fake, value = _check_linear(ex, gradient_penalty, 3.0, batch)

    # the penalty must train the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    if not value.requires_grad:
        raise ExerciseError(ex, "the penalty is not connected to the critic's weights",
                            expected="a penalty that backpropagates into the critic (it is part of the critic's loss)",
                            got="a tensor without a gradient",
                            hint="torch.autograd.grad(..., create_graph=True): without it the gradient is a constant "
                                 "and the penalty cannot change the critic")
    call(ex, "backward() of your penalty", value.backward)
    expected = 2 * (3.0 - 1) * critic.w.detach() / 3.0
    if critic.w.grad is None or not torch.allclose(critic.w.grad, expected, rtol=1e-3, atol=1e-7):
        raise ExerciseError(ex, "the penalty gives the critic's weights the wrong gradient",
                            expected="d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||",
                            got="no gradient" if critic.w.grad is None else "another gradient",
                            hint="torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)")

    # a non-linear critic: compare with the penalty recomputed on the student's own interpolates
    with sandbox(7):
        mlp = models.MLPDiscriminator(hidden=(32, 16), norm="none", init="default")
        real2, fake2 = torch.rand(16, *IMAGE) * 2 - 1, torch.rand(16, *IMAGE) * 2 - 1
    recorder = _Recorder(mlp)
    with sandbox(8):
        got = float(_penalty(ex, gradient_penalty, recorder, real2, fake2,
                             "gradient_penalty(small MLP critic, real, fake)").detach())
    inputs = [x for x in recorder.inputs if x.shape == real2.shape and not torch.equal(x, real2) and not torch.equal(x, fake2)]
    x_hat = inputs[-1].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mlp(x_hat).sum(), x_hat)
    want = float(((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean())
    if not _close(got, want, rel=1e-3, abs_=1e-6):
        raise ExerciseError(ex, "wrong penalty for a small MLP critic (recomputed on your own x_hat)",
                            expected=f"{want:.6f}", got=f"{got:.6f}", hint=_GP_HINT)
    return (f"For a linear critic f(x) = <w, x>, whose gradient is w everywhere, the penalty is {unit:.4f} when "
            f"||w|| = 1 (a 1-Lipschitz critic pays nothing), {half:.4f} when ||w|| = 0.5 and {steep:.4f} when "
            f"||w|| = 3: (||w|| - 1)^2, the norm taken per sample over all 1x32x32 dimensions. One eps ~ U[0, 1] per "
            f"sample, and the penalty trains the critic (create_graph=True). A small MLP critic agrees too.")


def wgan_gradient_penalty(gradient_penalty: Any) -> Any:
    """Check exercise ``wgan-gradient-penalty``: ``gradient_penalty(critic, real, fake)`` -> the penalty.

    Tests with linear critics (gradient w everywhere, so the penalty is (||w|| - 1)^2 for any
    eps): 0 for ||w|| = 1, 0.25 for 0.5, 4 for 3; a norm over the wrong dimension (or the
    whole batch, a squared norm, a missing square, the one-sided form, a sum, lambda
    included) is recognised and named. Then: x_hat on the segment between real_i and fake_i
    with one eps ~ U[0, 1] per sample, the penalty's gradient reaches the critic's weights,
    and a small MLP critic gives the value recomputed on the student's own x_hat.
    Returns the function, or :func:`reference_gradient_penalty`.
    """
    return run_check("wgan-gradient-penalty", gradient_penalty, reference_gradient_penalty, _check_gradient_penalty)


__all__ = [
    "reference_clip_weights",
    "reference_gradient_penalty",
    "wgan_clip",
    "wgan_critic_loss",
    "wgan_gradient_penalty",
]
