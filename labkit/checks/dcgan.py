"""Checks for notebook 01 (DCGAN): the generator, the discriminator, the two losses, one step.

Each ``dcgan_*`` function takes the student's class or function, tests it on small
known inputs, and returns what the notebook should use next (see :mod:`labkit.checks`).
The references they fall back on are labkit's own: ``models.DCGANGenerator``,
``models.DCGANDiscriminator``, ``losses.d_loss_gan``, ``losses.g_loss_nonsaturating`` and
:func:`reference_train_step`, which performs exactly the updates of ``labkit.train.fit``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import losses, models
from ._core import (
    LEAKY,
    NORMS,
    POOLING,
    RELU,
    UPSAMPLING,
    ExerciseError,
    call,
    count,
    params_without_grad,
    require_module,
    require_tensor,
    run_check,
    sandbox,
    shape,
    traced,
)

LOG2 = math.log(2.0)
SMALL_NZ, SMALL_NGF, SMALL_NDF = 16, 8, 8  # the architecture is the same at any width: test it small


def _ops(trace) -> str:
    """The layer sequence of a trace, e.g. 'linear > batch_norm > relu > ... > tanh'."""
    return " > ".join(trace.layer_ops())


def _dcgan_init_note(module: nn.Module) -> str:
    """A note when conv weights do not look like DCGAN's N(0, 0.02) (not an error: an ablation uses that)."""
    stds = [float(m.weight.detach().std()) for m in module.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() > 100]
    if stds and not all(0.012 < s < 0.028 for s in stds):
        return (" Note: the conv weights are not initialised as DCGAN's N(0, 0.02) "
                "(keep the line models.init_weights(self) at the end of __init__).")
    return ""


# =========================================================================== generator


def _check_generator(Generator: Any, nz: int, ngf: int) -> str:
    ex = "dcgan-generator"
    what = f"Generator(nz={SMALL_NZ}, ngf={SMALL_NGF}, nc=1)"
    with sandbox(0):
        G = require_module(ex, call(ex, what, Generator, nz=SMALL_NZ, ngf=SMALL_NGF, nc=1), what)
        if getattr(G, "nz", None) != SMALL_NZ:
            raise ExerciseError(ex, "G.nz must hold the size of z", expected=f"G.nz == {SMALL_NZ} for {what}",
                                got=repr(getattr(G, "nz", "no attribute nz")),
                                hint="keep the line self.nz = nz: labkit's training, metrics and widgets read G.nz")
        G.train()
        z = torch.randn(4, SMALL_NZ)
        out, trace = traced(ex, f"G(z) with z of shape (4, {SMALL_NZ})", G, z)
        out = require_tensor(ex, "G(z)", out, "a batch of images of shape (4, 1, 32, 32)")
        if tuple(out.shape) != (4, 1, 32, 32):
            side = out.shape[-1] if out.ndim == 4 else None
            hint = "start from a 4x4 map (ngf*4 channels) and double the size three times: 4 > 8 > 16 > 32"
            if side == 64:
                hint = "one upsampling layer too many: three ConvTranspose2d(..., 4, 2, 1) take 4x4 to 32x32"
            elif side == 16:
                hint = "one upsampling layer too few: three ConvTranspose2d(..., 4, 2, 1) take 4x4 to 32x32"
            elif out.ndim == 4 and out.shape[1] != 1 and side == 32:
                hint = "the last layer must output nc channels (1 for MNIST)"
            raise ExerciseError(ex, "wrong output shape", expected="(4, 1, 32, 32): one 1x32x32 image per z",
                                got=shape(out), hint=hint)

        pools = trace.used(POOLING)
        if pools:
            raise ExerciseError(ex, "the generator uses pooling", expected="no pooling layers (DCGAN rule)",
                                got=", ".join(pools), hint="DCGAN replaces pooling by strided (transposed) convolutions")
        ups = trace.used(UPSAMPLING)
        if ups or "conv_transpose2d" not in trace.names:
            raise ExerciseError(ex, "the generator must upsample with transposed convolutions",
                                expected="nn.ConvTranspose2d(c_in, c_out, 4, 2, 1) layers (fractionally-strided)",
                                got=", ".join(ups) if ups else f"no ConvTranspose2d; layers seen: {_ops(trace)}")
        if "batch_norm" not in trace.names:
            others = trace.used(NORMS)
            raise ExerciseError(ex, "the generator must use BatchNorm in its hidden layers",
                                expected="nn.BatchNorm2d after each hidden transposed convolution",
                                got=f"{', '.join(others)} instead" if others else f"no normalisation; layers: {_ops(trace)}")
        if not trace.used(RELU):
            got = "LeakyReLU (that is the discriminator's activation)" if trace.used(LEAKY) else f"layers: {_ops(trace)}"
            raise ExerciseError(ex, "the generator's hidden layers must use ReLU", expected="nn.ReLU(True) after each BatchNorm",
                                got=got)
        ops = trace.layer_ops()
        if not ops or ops[-1] != "tanh":
            raise ExerciseError(ex, "the output layer must end with Tanh", expected="... > conv_transpose2d > tanh",
                                got=_ops(trace),
                                hint="images are scaled to [-1, 1], Tanh's range; no activation or norm after it")
        last_layer = max(i for i, name in enumerate(ops) if name in ("conv_transpose2d", "conv2d", "linear"))
        if any(name in NORMS for name in ops[last_layer + 1:]):
            raise ExerciseError(ex, "no BatchNorm on the output layer (DCGAN rule)",
                                expected="last ConvTranspose2d > Tanh", got=" > ".join(ops[last_layer:]))
        lo, hi = float(out.detach().min()), float(out.detach().max())
        if lo < -1 - 1e-6 or hi > 1 + 1e-6:
            raise ExerciseError(ex, "output outside [-1, 1]", expected="values in [-1, 1] (Tanh)",
                                got=f"values in [{lo:.3f}, {hi:.3f}]")

        (out * torch.randn_like(out)).sum().backward()
        missing = params_without_grad(G)
        if missing:
            raise ExerciseError(ex, "some parameters get no gradient", expected="every layer built in __init__ used in forward",
                                got=f"no gradient for {', '.join(missing[:6])}")

        G.eval()
        with torch.no_grad():
            a, b = G(z[:2]), G(torch.randn(2, SMALL_NZ))
            single = G(z[:1])
        if torch.equal(a, b):
            raise ExerciseError(ex, "the output does not depend on z", expected="different images for different z",
                                got="identical images")
        if tuple(single.shape) != (1, 1, 32, 32):
            raise ExerciseError(ex, "a batch of one z fails in eval mode", expected="(1, 1, 32, 32)", got=shape(single))

        what3 = f"Generator(nz={SMALL_NZ}, ngf={SMALL_NGF}, nc=3)"
        G3 = require_module(ex, call(ex, what3, Generator, nz=SMALL_NZ, ngf=SMALL_NGF, nc=3), what3)
        out3 = call(ex, f"{what3}(z)", G3, torch.randn(2, SMALL_NZ))
        if not isinstance(out3, torch.Tensor) or tuple(out3.shape) != (2, 3, 32, 32):
            raise ExerciseError(ex, "nc must set the number of output channels", expected=f"{what3} gives (2, 3, 32, 32)",
                                got=shape(out3), hint="the last ConvTranspose2d outputs nc channels")

    with sandbox(0):
        what_lab = f"Generator(nz={nz}, ngf={ngf}, nc=1)"
        G_lab = require_module(ex, call(ex, what_lab, Generator, nz=nz, ngf=ngf, nc=1), what_lab)
        G_lab.eval()
        with torch.no_grad():
            out_lab = call(ex, f"{what_lab}(z)", G_lab, torch.randn(2, nz))
        if not isinstance(out_lab, torch.Tensor) or tuple(out_lab.shape) != (2, 1, 32, 32):
            raise ExerciseError(ex, "wrong output shape at the lab's sizes", expected="(2, 1, 32, 32)", got=shape(out_lab))
        reference = models.DCGANGenerator(nz=nz, ngf=ngf, nc=1)
    return (f"G maps z (B, {nz}) to images (B, 1, 32, 32) in [-1, 1]; layers: {_ops(trace)}. "
            f"{count(G_lab):,} parameters at nz={nz}, ngf={ngf} (labkit's reference: {count(reference):,})."
            + _dcgan_init_note(G_lab))


def dcgan_generator(Generator: Any, nz: int = 100, ngf: int = 32) -> Any:
    """Check exercise ``dcgan-generator``: the student's ``Generator`` class (nz, ngf, nc).

    Tests: output (B, 1, 32, 32) in [-1, 1]; transposed convolutions, BatchNorm, ReLU, a
    Tanh output without BatchNorm before it, no pooling; every parameter trained; the
    image depends on z; ``nc`` channels. Returns the class, or ``models.DCGANGenerator``.
    """
    return run_check("dcgan-generator", Generator, models.DCGANGenerator, lambda g: _check_generator(g, nz, ngf))


# =========================================================================== discriminator


def _check_discriminator(Discriminator: Any, ndf: int) -> str:
    ex = "dcgan-discriminator"
    what = f"Discriminator(ndf={SMALL_NDF}, nc=1)"
    with sandbox(0):
        D = require_module(ex, call(ex, what, Discriminator, ndf=SMALL_NDF, nc=1), what)
        D.train()
        x = (torch.rand(4, 1, 32, 32) * 2 - 1).requires_grad_(True)
        out, trace = traced(ex, "D(x) with x of shape (4, 1, 32, 32)", D, x)
        out = require_tensor(ex, "D(x)", out, "one logit per image, shape (4,)")
        if tuple(out.shape) != (4,):
            hint = ("flatten the last convolution's (B, 1, 1, 1) output: return self.main(x).view(-1)"
                    if out.numel() == 4 else "the last Conv2d(ndf*4, 1, 4, 1, 0) turns the 4x4 map into one number per image")
            raise ExerciseError(ex, "wrong output shape", expected="(4,): one raw logit per image", got=shape(out),
                                hint=hint + "; labkit's losses and training loop expect shape (B,)")
        ops = trace.layer_ops()
        if ops and ops[-1] == "sigmoid":
            raise ExerciseError(ex, "D must return raw logits, not probabilities",
                                expected="no Sigmoid at the end", got=_ops(trace),
                                hint="the losses apply the sigmoid themselves (BCE with logits), which is numerically stable")
        pools = trace.used(POOLING)
        if pools:
            raise ExerciseError(ex, "the discriminator uses pooling", expected="no pooling layers (DCGAN rule)",
                                got=", ".join(pools), hint="downsample with Conv2d(c_in, c_out, 4, 2, 1) (stride 2) instead")
        strides = trace.conv_strides("conv2d")
        if 2 not in strides:
            raise ExerciseError(ex, "D must downsample with strided convolutions",
                                expected="Conv2d(c_in, c_out, 4, 2, 1) layers (stride 2)",
                                got=f"conv strides {strides}" if strides else f"no Conv2d; layers: {_ops(trace)}")
        if not trace.used(LEAKY):
            got = "ReLU (the generator's activation)" if trace.used(RELU) else f"layers: {_ops(trace)}"
            raise ExerciseError(ex, "the discriminator must use LeakyReLU", expected="nn.LeakyReLU(0.2, inplace=True)",
                                got=got)
        if "batch_norm" not in trace.names:
            raise ExerciseError(ex, "the discriminator must use BatchNorm in its hidden layers",
                                expected="nn.BatchNorm2d after the second and third convolutions",
                                got=f"layers: {_ops(trace)}")
        convs = [i for i, name in enumerate(ops) if name == "conv2d"]
        if len(convs) >= 2 and any(name in NORMS for name in ops[convs[0] + 1:convs[1]]):
            raise ExerciseError(ex, "no BatchNorm on D's input layer (DCGAN rule)",
                                expected="conv2d > leaky_relu > conv2d > batch_norm > ...",
                                got=" > ".join(ops[:convs[1] + 1]) + " > ...")

        (out * torch.randn_like(out)).sum().backward()
        missing = params_without_grad(D)
        if missing:
            raise ExerciseError(ex, "some parameters get no gradient", expected="every layer built in __init__ used in forward",
                                got=f"no gradient for {', '.join(missing[:6])}")
        if x.grad is None or not bool(x.grad.abs().sum() > 0):
            raise ExerciseError(ex, "D's output must be differentiable with respect to the image",
                                expected="a gradient flowing back to x", got="none",
                                hint="G learns only through D's gradient: do not detach x or use .data inside forward")

        D.eval()
        with torch.no_grad():
            a = D(x[:2].detach())
            b = D(torch.rand(2, 1, 32, 32) * 2 - 1)
            single = D(x[:1].detach())
        if torch.equal(a, b):
            raise ExerciseError(ex, "the output does not depend on the image", expected="different logits for different images",
                                got="identical logits")
        if tuple(single.shape) != (1,):
            raise ExerciseError(ex, "a batch of one image fails in eval mode", expected="(1,)", got=shape(single))

        what3 = f"Discriminator(ndf={SMALL_NDF}, nc=3)"
        D3 = require_module(ex, call(ex, what3, Discriminator, ndf=SMALL_NDF, nc=3), what3)
        out3 = call(ex, f"{what3}(x)", D3, torch.rand(2, 3, 32, 32) * 2 - 1)
        if not isinstance(out3, torch.Tensor) or tuple(out3.shape) != (2,):
            raise ExerciseError(ex, "nc must set the number of input channels", expected=f"{what3} maps (2, 3, 32, 32) to (2,)",
                                got=shape(out3), hint="the first Conv2d reads nc channels")

    with sandbox(0):
        what_lab = f"Discriminator(ndf={ndf}, nc=1)"
        D_lab = require_module(ex, call(ex, what_lab, Discriminator, ndf=ndf, nc=1), what_lab)
        reference = models.DCGANDiscriminator(ndf=ndf, nc=1)
    return (f"D maps images (B, 1, 32, 32) to logits (B,); layers: {_ops(trace)}. "
            f"{count(D_lab):,} parameters at ndf={ndf} (labkit's reference: {count(reference):,})."
            + _dcgan_init_note(D_lab))


def dcgan_discriminator(Discriminator: Any, ndf: int = 32) -> Any:
    """Check exercise ``dcgan-discriminator``: the student's ``Discriminator`` class (ndf, nc).

    Tests: logits of shape (B,) without a final sigmoid; stride-2 convolutions, LeakyReLU,
    BatchNorm but not on the input layer, no pooling; gradients to every parameter and to
    the image. Returns the class, or ``models.DCGANDiscriminator``.
    """
    return run_check("dcgan-discriminator", Discriminator, models.DCGANDiscriminator,
                     lambda d: _check_discriminator(d, ndf))


# =========================================================================== losses


def _scalar(ex: str, what: str, value: Any) -> torch.Tensor:
    value = require_tensor(ex, what, value, "a single number: a 0-dim tensor (the batch mean)")
    if value.numel() != 1:
        raise ExerciseError(ex, f"{what} must return one number", expected="a 0-dim tensor (average over the batch)",
                            got=shape(value), hint="finish with .mean()")
    return value.reshape(())


def _value(ex: str, what: str, fn: Callable, *args: torch.Tensor) -> float:
    v = float(_scalar(ex, what, call(ex, what, fn, *args)).detach())
    if not math.isfinite(v):
        raise ExerciseError(ex, f"{what} is not finite", expected="a finite number", got=f"{v}",
                            hint="the inputs are logits (raw scores, any real number), not probabilities: "
                                 "D(x) = torch.sigmoid(logit); F.binary_cross_entropy_with_logits or F.softplus "
                                 "compute the logs stably")
    return v


def _same_value_and_grad(ex: str, fn: Callable, reference: Callable, n_inputs: int, what: str) -> None:
    """fn and reference agree on random logits: value, and gradient with respect to each input."""
    with sandbox(1):
        inputs = [torch.randn(16) * 3 for _ in range(n_inputs)]
    mine = [t.clone().requires_grad_(True) for t in inputs]
    ref = [t.clone().requires_grad_(True) for t in inputs]
    value = _scalar(ex, what, call(ex, what, fn, *mine))
    if not value.requires_grad:
        raise ExerciseError(ex, "the loss is not connected to the logits", expected="a tensor with a gradient (requires_grad)",
                            got="a tensor without one", hint="stay in torch: no .item(), numpy or math.log on the inputs")
    expected = reference(*ref)
    got, want = float(value.detach()), float(expected.detach())
    if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5):
        raise ExerciseError(ex, f"wrong value on random logits ({what})", expected=f"{want:.6f}", got=f"{got:.6f}")
    call(ex, "backward() of your loss", value.backward)
    expected.backward()
    for i, (m, r) in enumerate(zip(mine, ref)):
        if m.grad is None or not torch.allclose(m.grad, r.grad, rtol=1e-4, atol=1e-7):
            raise ExerciseError(ex, f"wrong gradient with respect to input {i + 1}",
                                expected=f"{r.grad[:3].tolist()} ...",
                                got=f"{m.grad[:3].tolist()} ..." if m.grad is not None else "no gradient")
    doubled = [torch.cat([t, t]) for t in inputs]
    twice = float(_scalar(ex, what, call(ex, what, fn, *doubled)).detach())
    if not math.isclose(twice, want, rel_tol=1e-4, abs_tol=1e-5):
        raise ExerciseError(ex, "the loss must not grow with the batch size",
                            expected=f"the same value for the batch repeated twice ({want:.6f})",
                            got=f"{twice:.6f}", hint="average over the batch (.mean()), do not sum")


def _check_d_loss(d_loss: Any) -> str:
    ex = "dcgan-d-loss"
    zeros = torch.zeros(8)
    at_half = _value(ex, "d_loss(zeros(8), zeros(8))", d_loss, zeros.clone(), zeros.clone())
    if not math.isclose(at_half, 2 * LOG2, abs_tol=1e-4):
        hint = "loss = -mean log D(x) - mean log(1 - D(G(z))), with D = sigmoid(logit)"
        if math.isclose(at_half, -2 * LOG2, abs_tol=1e-4):
            hint = ("the sign is flipped: (7) is what D maximises; the training loop minimises, "
                    "so return its negative, -[mean log D(x) + mean log(1 - D(G(z)))]")
        elif math.isclose(at_half, LOG2, abs_tol=1e-4):
            hint = "you average the real and fake terms; (7) adds them: log 2 for the real half plus log 2 for the fake half"
        elif math.isclose(at_half, 16 * LOG2, abs_tol=1e-3):
            hint = "you sum over the batch; average instead (.mean())"
        raise ExerciseError(ex, "wrong value when D outputs 1/2 on everything (logits 0)",
                            expected=f"2 log 2 = {2 * LOG2:.4f}", got=f"{at_half:.4f}", hint=hint)
    right = _value(ex, "d_loss(real logits +10, fake logits -10)", d_loss, torch.full((8,), 10.0), torch.full((8,), -10.0))
    wrong = _value(ex, "d_loss(real logits -10, fake logits +10)", d_loss, torch.full((8,), -10.0), torch.full((8,), 10.0))
    if not right < 1e-3 or not wrong > 19:
        swapped = right > wrong
        raise ExerciseError(ex, "wrong value when D is sure",
                            expected="about 0.0001 when D is right (real logits +10, fake -10) and about 20 when it is wrong",
                            got=f"{right:.4f} when right, {wrong:.4f} when wrong",
                            hint="real images are labelled 1 and generated ones 0: the labels are swapped" if swapped
                            else "loss = -mean log D(x) - mean log(1 - D(G(z)))")
    _same_value_and_grad(ex, d_loss, losses.d_loss_gan, 2, "d_loss(real_logits, fake_logits)")
    return (f"d_loss = {at_half:.4f} = 2 log 2 when D outputs 1/2 on everything, {right:.4f} when D is right "
            f"(real +10, fake -10), {wrong:.4f} when it is wrong; value and gradient match labkit.losses.d_loss_gan.")


def dcgan_d_loss(d_loss: Any) -> Any:
    """Check exercise ``dcgan-d-loss``: ``d_loss(real_logits, fake_logits)``, objective (7) negated.

    Tests: 2 log 2 at logits 0 (D = 1/2), near 0 when D is right and near 20 when it is
    wrong at logits +-10, value and gradients equal to ``losses.d_loss_gan`` on random
    logits, a batch mean. Returns the function, or ``losses.d_loss_gan``.
    """
    return run_check("dcgan-d-loss", d_loss, losses.d_loss_gan, _check_d_loss)


def _check_g_loss(g_loss: Any) -> str:
    ex = "dcgan-g-loss"
    at_half = _value(ex, "g_loss(zeros(8))", g_loss, torch.zeros(8))
    fooled = _value(ex, "g_loss(logits +5)", g_loss, torch.full((8,), 5.0))
    if not math.isclose(at_half, LOG2, abs_tol=1e-4):
        hint = "(6): G maximises mean log D(G(z)), so the loss to minimise is -mean log D(G(z))"
        if math.isclose(at_half, -LOG2, abs_tol=1e-4) and fooled < -1:
            hint = ("this is the minimax loss of (5), mean log(1 - D(G(z))), which saturates early in training; "
                    "the exercise asks for the non-saturating (6): -mean log D(G(z))")
        elif math.isclose(at_half, -LOG2, abs_tol=1e-4):
            hint = "the sign is flipped: (6) is maximised, the loss is its negative, -mean log D(G(z))"
        elif math.isclose(at_half, 8 * LOG2, abs_tol=1e-3):
            hint = "you sum over the batch; average instead (.mean())"
        raise ExerciseError(ex, "wrong value when D outputs 1/2 (logits 0)", expected=f"log 2 = {LOG2:.4f}",
                            got=f"{at_half:.4f}", hint=hint)
    rejected = _value(ex, "g_loss(logits -10)", g_loss, torch.full((8,), -10.0))
    if not fooled < 0.01 or not rejected > 9.9:
        raise ExerciseError(ex, "wrong value when D is sure",
                            expected="about 0.0067 when D is fooled (logits +5), about 10 when D rejects the images (logits -10)",
                            got=f"{fooled:.4f} and {rejected:.4f}", hint="-mean log D(G(z)) with D = sigmoid(logit)")
    _same_value_and_grad(ex, g_loss, losses.g_loss_nonsaturating, 1, "g_loss(fake_logits)")
    logits = torch.full((8,), -10.0, requires_grad=True)
    call(ex, "g_loss(logits -10).backward()", lambda: g_loss(logits).backward())
    per_sample = float(logits.grad[0]) * 8
    return (f"g_loss = {at_half:.4f} = log 2 at D = 1/2, {fooled:.4f} when D is fooled, {rejected:.4f} when D rejects "
            f"the images; gradient per sample at logit -10: {per_sample:.4f} (the minimax loss would give "
            f"{-torch.sigmoid(torch.tensor(-10.0)).item():.6f}); matches labkit.losses.g_loss_nonsaturating.")


def dcgan_g_loss(g_loss: Any) -> Any:
    """Check exercise ``dcgan-g-loss``: ``g_loss(fake_logits)``, the non-saturating objective (6) negated.

    Tests: log 2 at logits 0, near 0 when D is fooled and near 10 when D rejects the
    images, not the minimax loss, value and gradient equal to ``losses.g_loss_nonsaturating``,
    a batch mean. Returns the function, or ``losses.g_loss_nonsaturating``.
    """
    return run_check("dcgan-g-loss", g_loss, losses.g_loss_nonsaturating, _check_g_loss)


# =========================================================================== one training step


def reference_train_step(G: nn.Module, D: nn.Module, real: torch.Tensor, opt_g: torch.optim.Optimizer,
                         opt_d: torch.optim.Optimizer, gen: torch.Generator) -> tuple[float, float]:
    """One DCGAN step, labkit's answer: update D once on real and fake images, then G once.

    The same updates as ``labkit.train.fit`` with ``loss="gan"`` (same noise draws from
    ``gen``, same order), so a run of these steps equals a run of ``fit``. Returns the
    two losses as floats.
    """
    b = real.shape[0]
    # D's step, objective (7): real images towards 1, G's images (detached) towards 0
    z = torch.randn(b, G.nz, generator=gen).to(real.device)
    fake = G(z).detach()
    loss_d = losses.d_loss_gan(D(real), D(fake))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    # G's step, objective (6): fresh noise, judged by the updated D
    z = torch.randn(b, G.nz, generator=gen).to(real.device)
    loss_g = losses.g_loss_nonsaturating(D(G(z)))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def reuse_fake_train_step(G: nn.Module, D: nn.Module, real: torch.Tensor, opt_g: torch.optim.Optimizer,
                          opt_d: torch.optim.Optimizer, gen: torch.Generator) -> tuple[float, float]:
    """The other correct form (pytorch/examples' DCGAN): G's step reuses the D step's fake batch.

    The exercise's check and the grader both accept it.
    """
    z = torch.randn(real.shape[0], G.nz, generator=gen).to(real.device)
    fake = G(z)
    loss_d = losses.d_loss_gan(D(real), D(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = losses.g_loss_nonsaturating(D(fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _close(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(a, b))


def _losses_pair(ex: str, out: Any) -> tuple[float, float]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseError(ex, "train_step must return the two losses", expected="(d_loss, g_loss) as two floats",
                            got=repr(out) if not isinstance(out, torch.Tensor) else shape(out),
                            hint="return loss_d.item(), loss_g.item()")
    try:
        values = tuple(float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for v in out)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ExerciseError(ex, "train_step must return two numbers", expected="(d_loss, g_loss) as floats",
                            got=repr(out), hint="return loss_d.item(), loss_g.item()") from exc
    if not all(math.isfinite(v) for v in values):
        raise ExerciseError(ex, "train_step returned a non-finite loss", expected="finite numbers", got=repr(values))
    return values


def _check_train_step(train_step: Any) -> str:
    ex = "dcgan-train-step"
    with sandbox(0):
        G0 = models.DCGANGenerator(nz=SMALL_NZ, ngf=SMALL_NGF)
        D0 = models.DCGANDiscriminator(ndf=SMALL_NDF)
        batches = [torch.rand(16, 1, 32, 32) * 2 - 1 for _ in range(2)]

    def start():
        G, D = copy.deepcopy(G0).train(), copy.deepcopy(D0).train()
        # plain SGD: the update is lr * gradient, so any difference in the gradients shows
        return G, D, torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1), \
            torch.Generator().manual_seed(1)

    G, D, opt_g, opt_d, gen = start()
    what = "train_step(G, D, real, opt_g, opt_d, gen)"
    mine = _losses_pair(ex, call(ex, what, train_step, G, D, batches[0].clone(), opt_g, opt_d, gen))
    g1, d1 = _params(G), _params(D)
    if _close(d1, _params(D0)):
        raise ExerciseError(ex, "D's parameters did not change", expected="one update of D",
                            got="D unchanged", hint="loss_d.backward() then opt_d.step()")
    if _close(g1, _params(G0)):
        raise ExerciseError(ex, "G's parameters did not change", expected="one update of G",
                            got="G unchanged", hint="loss_g.backward() then opt_g.step()")

    variants = {}
    for name, step in (("fresh noise for G's step", reference_train_step),
                       ("G's step reuses the D step's fake batch", reuse_fake_train_step)):
        Gr, Dr, og, od, gr = start()
        ref_losses = step(Gr, Dr, batches[0].clone(), og, od, gr)
        variants[name] = (step, ref_losses, _params(Gr), _params(Dr))
    ref_d = next(iter(variants.values()))[3]  # D's update is the same in both forms
    if not _close(d1, ref_d):
        raise ExerciseError(
            ex, "D's update differs from labkit's reference step",
            expected=f"d_loss = {next(iter(variants.values()))[1][0]:.5f} for this batch", got=f"d_loss = {mine[0]:.5f}",
            hint="D first: z = torch.randn(B, G.nz, generator=gen); loss_d = d_loss(D(real), D(G(z).detach())); "
                 "opt_d.zero_grad(); loss_d.backward(); opt_d.step(). Pass the real and the fake batch through D "
                 "separately (BatchNorm normalises each batch on its own) and draw the noise from gen")
    matched = [name for name, (_, _, g_ref, _) in variants.items() if _close(g1, g_ref)]
    if not matched:
        raise ExerciseError(
            ex, "G's update differs from labkit's reference step (D's update matches)",
            expected=f"g_loss = {next(iter(variants.values()))[1][1]:.5f} (fresh noise)", got=f"g_loss = {mine[1]:.5f}",
            hint="after D's step: z = torch.randn(B, G.nz, generator=gen) (or reuse the fake batch); "
                 "loss_g = g_loss(D(G(z))) with the updated D; opt_g.zero_grad() before loss_g.backward(); opt_g.step()")
    form = matched[0]
    step, ref_losses, _, _ = variants[form]
    if not (math.isclose(mine[0], ref_losses[0], rel_tol=1e-4, abs_tol=1e-6)
            and math.isclose(mine[1], ref_losses[1], rel_tol=1e-4, abs_tol=1e-6)):
        raise ExerciseError(ex, "the returned losses are not the ones the step used",
                            expected=f"({ref_losses[0]:.5f}, {ref_losses[1]:.5f})", got=f"({mine[0]:.5f}, {mine[1]:.5f})",
                            hint="return loss_d.item(), loss_g.item() of this step")

    # a second step on the same models: gradients left over from step one would show now
    call(ex, f"a second {what}", train_step, G, D, batches[1].clone(), opt_g, opt_d, gen)
    Gr, Dr, og, od, gr = start()
    step(Gr, Dr, batches[0].clone(), og, od, gr)
    step(Gr, Dr, batches[1].clone(), og, od, gr)
    if not (_close(_params(D), _params(Dr)) and _close(_params(G), _params(Gr))):
        raise ExerciseError(ex, "the second step differs from the reference although the first matched",
                            expected="each step starts from zeroed gradients", got="gradients left over from the previous step",
                            hint="call opt_d.zero_grad() before loss_d.backward() and opt_g.zero_grad() before "
                                 "loss_g.backward(): G's backward also fills D's .grad")
    return (f"one step updates D, then G, exactly as labkit's reference step does ({form}); "
            f"two steps in a row match too. Losses of the first step: d_loss {mine[0]:.4f}, g_loss {mine[1]:.4f}.")


def dcgan_train_step(train_step: Any) -> Any:
    """Check exercise ``dcgan-train-step``: ``train_step(G, D, real, opt_g, opt_d, gen) -> (d_loss, g_loss)``.

    Runs the student's step on labkit's small models with plain SGD (the update is then
    lr * gradient) and a seeded noise generator, and compares both networks' parameters
    with :func:`reference_train_step` after one and after two steps. Reusing the D step's
    fake batch for G's step is accepted as well. Returns the function, or the reference.
    """
    return run_check("dcgan-train-step", train_step, reference_train_step, _check_train_step)
