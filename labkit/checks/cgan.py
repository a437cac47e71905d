"""Checks for notebook 02 (conditional DCGAN): label conditioning of G and D, D's loss, the style grid.

A conditional G must *use* y: the check feeds the same z with every class and wants
different images, and wants image i to depend on y[i] only. The D loss check wraps
labkit's models in recorders, so it can tell which label D saw with which image.
The references are labkit's ``models.DCGANGenerator`` / ``DCGANDiscriminator`` with
``n_classes=10``, :func:`reference_cgan_d_loss` and :func:`reference_style_grid`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .. import losses, models
from ._core import (
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

N_CLASSES = 10
SMALL_NZ, SMALL_NGF, SMALL_NDF = 16, 8, 8


def _check_labels_attr(ex: str, module: nn.Module, what: str) -> None:
    if getattr(module, "n_classes", None) != N_CLASSES:
        raise ExerciseError(ex, "the model must record its number of classes", expected=f"{what}.n_classes == {N_CLASSES}",
                            got=repr(getattr(module, "n_classes", "no attribute n_classes")),
                            hint="keep the line self.n_classes = n_classes: labkit's metrics and widgets read it")


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference between a and b relative to their typical size.

    Freshly initialised DCGAN models output tiny values (about 1e-4), so absolute
    tolerances mean nothing; float noise between batched and single calls is ~1e-6 of the size.
    """
    scale = max(float(a.abs().mean()), float(b.abs().mean()), 1e-30)
    return float((a - b).abs().amax()) / scale


def _per_sample(ex: str, who: str, batch: torch.Tensor, singles: torch.Tensor) -> None:
    if _gap(batch, singles) > 1e-3:
        raise ExerciseError(ex, f"{who}'s output for sample i must depend on sample i only (its own z or x and y[i])",
                            expected="the same result in a batch as alone (eval mode)", got="different results",
                            hint="use y[i] for sample i: F.one_hot(y, n_classes) gives one row per sample; "
                                 "do not index y[0] or mix samples")


# =========================================================================== generator


def _check_generator(Cls: Any, nz: int, ngf: int) -> str:
    ex = "cgan-generator"
    what = f"ConditionalGenerator(nz={SMALL_NZ}, ngf={SMALL_NGF}, nc=1, n_classes={N_CLASSES})"
    with sandbox(0):
        G = require_module(ex, call(ex, what, Cls, nz=SMALL_NZ, ngf=SMALL_NGF, nc=1, n_classes=N_CLASSES), what)
        if getattr(G, "nz", None) != SMALL_NZ:
            raise ExerciseError(ex, "G.nz must hold the size of z", expected=f"G.nz == {SMALL_NZ}",
                                got=repr(getattr(G, "nz", "no attribute nz")), hint="keep the line self.nz = nz")
        _check_labels_attr(ex, G, "G")
        G.train()
        z, y = torch.randn(N_CLASSES, SMALL_NZ), torch.arange(N_CLASSES)
        out, trace = traced(ex, f"G(z, y) with z of shape ({N_CLASSES}, {SMALL_NZ}) and y = tensor([0, ..., 9])", G, z, y)
        out = require_tensor(ex, "G(z, y)", out, f"images of shape ({N_CLASSES}, 1, 32, 32)")
        if tuple(out.shape) != (N_CLASSES, 1, 32, 32):
            raise ExerciseError(ex, "wrong output shape", expected=f"({N_CLASSES}, 1, 32, 32)", got=shape(out),
                                hint="the body takes nz + n_classes numbers per sample: torch.cat([z, one_hot], dim=1)")
        lo, hi = float(out.detach().min()), float(out.detach().max())
        if lo < -1 - 1e-6 or hi > 1 + 1e-6:
            raise ExerciseError(ex, "output outside [-1, 1]", expected="values in [-1, 1] (Tanh)", got=f"[{lo:.3f}, {hi:.3f}]")
        (out * torch.randn_like(out)).sum().backward()
        missing = params_without_grad(G)
        if missing:
            raise ExerciseError(ex, "some parameters get no gradient", expected="every layer used in forward",
                                got=f"no gradient for {', '.join(missing[:6])}")

        G.eval()
        with torch.no_grad():
            y_mixed = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
            z_mixed = torch.randn(8, SMALL_NZ)
            batch = call(ex, "G(z, y) in eval mode", G, z_mixed, y_mixed)
            singles = torch.cat([G(z_mixed[i:i + 1], y_mixed[i:i + 1]) for i in range(8)])
            _per_sample(ex, "G", batch, singles)
            same_z = torch.randn(1, SMALL_NZ).repeat(N_CLASSES, 1)
            per_class = call(ex, "G(z, y) in eval mode", G, same_z, torch.arange(N_CLASSES))
            if _gap(per_class, per_class[:1].expand_as(per_class)) < 1e-3:
                raise ExerciseError(ex, "G ignores y", expected="the same z drawn as a different image for each class",
                                    got="the same image for all 10 classes",
                                    hint="join the label to z: torch.cat([z, F.one_hot(y, self.n_classes).float()], dim=1)")
            other = G(torch.randn(8, SMALL_NZ), y_mixed)
            if _gap(batch, other) < 1e-3:
                raise ExerciseError(ex, "G ignores z", expected="different images for different z", got="identical images")

    with sandbox(0):
        what_lab = f"ConditionalGenerator(nz={nz}, ngf={ngf}, nc=1, n_classes={N_CLASSES})"
        G_lab = require_module(ex, call(ex, what_lab, Cls, nz=nz, ngf=ngf, nc=1, n_classes=N_CLASSES), what_lab)
        reference = models.DCGANGenerator(nz=nz, ngf=ngf, nc=1, n_classes=N_CLASSES)
    return (f"G(z, y) gives (B, 1, 32, 32) in [-1, 1], a different image for each class from the same z, "
            f"and image i depends on z[i] and y[i] only. {count(G_lab):,} parameters at nz={nz}, ngf={ngf} "
            f"(labkit's reference: {count(reference):,}).")


def cgan_generator(ConditionalGenerator: Any, nz: int = 100, ngf: int = 32) -> Any:
    """Check exercise ``cgan-generator``: ``ConditionalGenerator(nz, ngf, nc, n_classes)`` with ``forward(z, y)``.

    Tests: shape and range, gradients to every parameter, the image changes with y for a
    fixed z, sample i uses y[i] only, the image changes with z. Returns the class, or
    ``models.DCGANGenerator`` (which takes the same keyword arguments).
    """
    return run_check("cgan-generator", ConditionalGenerator, models.DCGANGenerator,
                     lambda cls: _check_generator(cls, nz, ngf))


# =========================================================================== discriminator


def _check_discriminator(Cls: Any, ndf: int) -> str:
    ex = "cgan-discriminator"
    what = f"ConditionalDiscriminator(ndf={SMALL_NDF}, nc=1, n_classes={N_CLASSES})"
    with sandbox(0):
        D = require_module(ex, call(ex, what, Cls, ndf=SMALL_NDF, nc=1, n_classes=N_CLASSES), what)
        _check_labels_attr(ex, D, "D")
        D.train()
        x = (torch.rand(N_CLASSES, 1, 32, 32) * 2 - 1).requires_grad_(True)
        y = torch.arange(N_CLASSES)
        out, trace = traced(ex, f"D(x, y) with x of shape ({N_CLASSES}, 1, 32, 32) and y = tensor([0, ..., 9])", D, x, y)
        out = require_tensor(ex, "D(x, y)", out, f"one logit per image, shape ({N_CLASSES},)")
        if tuple(out.shape) != (N_CLASSES,):
            raise ExerciseError(ex, "wrong output shape", expected=f"({N_CLASSES},): one raw logit per (image, label)",
                                got=shape(out), hint="flatten the last convolution's output with .view(-1)")
        ops = trace.layer_ops()
        if ops and ops[-1] == "sigmoid":
            raise ExerciseError(ex, "D must return raw logits, not probabilities", expected="no Sigmoid at the end",
                                got=" > ".join(ops))
        (out * torch.randn_like(out)).sum().backward()
        missing = params_without_grad(D)
        if missing:
            raise ExerciseError(ex, "some parameters get no gradient", expected="every layer used in forward",
                                got=f"no gradient for {', '.join(missing[:6])}")
        if x.grad is None or not bool(x.grad.abs().sum() > 0):
            raise ExerciseError(ex, "D's output must be differentiable with respect to the image",
                                expected="a gradient flowing back to x", got="none", hint="do not detach x")

        D.eval()
        with torch.no_grad():
            y_mixed = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
            x_mixed = torch.rand(8, 1, 32, 32) * 2 - 1
            batch = call(ex, "D(x, y) in eval mode", D, x_mixed, y_mixed)
            singles = torch.cat([D(x_mixed[i:i + 1], y_mixed[i:i + 1]) for i in range(8)])
            _per_sample(ex, "D", batch, singles)
            same_x = (torch.rand(1, 1, 32, 32) * 2 - 1).repeat(N_CLASSES, 1, 1, 1)
            per_class = call(ex, "D(x, y) in eval mode", D, same_x, torch.arange(N_CLASSES))
            if _gap(per_class, per_class[:1].expand_as(per_class)) < 1e-3:
                raise ExerciseError(ex, "D ignores y", expected="different logits for one image paired with different labels",
                                    got="the same logit for all 10 labels",
                                    hint="give D the label as extra input channels: the one-hot vector broadcast to "
                                         "(B, n_classes, 32, 32), concatenated to x along dim 1")

    with sandbox(0):
        what_lab = f"ConditionalDiscriminator(ndf={ndf}, nc=1, n_classes={N_CLASSES})"
        D_lab = require_module(ex, call(ex, what_lab, Cls, ndf=ndf, nc=1, n_classes=N_CLASSES), what_lab)
        reference = models.DCGANDiscriminator(ndf=ndf, nc=1, n_classes=N_CLASSES)
    return (f"D(x, y) gives one logit per (image, label), changes with the label, and uses y[i] for image i only. "
            f"{count(D_lab):,} parameters at ndf={ndf} (labkit's reference: {count(reference):,}).")


def cgan_discriminator(ConditionalDiscriminator: Any, ndf: int = 32) -> Any:
    """Check exercise ``cgan-discriminator``: ``ConditionalDiscriminator(ndf, nc, n_classes)``, ``forward(x, y)``.

    Tests: logits (B,), no final sigmoid, gradients to every parameter and to x, the logit
    changes with y for a fixed image, sample i uses y[i] only. Returns the class, or
    ``models.DCGANDiscriminator``.
    """
    return run_check("cgan-discriminator", ConditionalDiscriminator, models.DCGANDiscriminator,
                     lambda cls: _check_discriminator(cls, ndf))


# =========================================================================== D's loss


def reference_cgan_d_loss(D: nn.Module, G: nn.Module, real: torch.Tensor, y: torch.Tensor,
                          z: torch.Tensor) -> torch.Tensor:
    """labkit's answer: D judges (real image, its label) and (G(z, y), y); G's images are detached."""
    fake = G(z, y).detach()
    return losses.d_loss_gan(D(real, y), D(fake, y))


class _Recorder(nn.Module):
    """Wraps a labkit model and records every (input, labels, output) it is called with.

    ``gain`` scales the output: a fresh DCGAN D gives logits near 0 for everything, where
    every D loss is close to 2 log 2 and mistakes would not show.
    """

    def __init__(self, inner: nn.Module, gain: float = 1.0) -> None:
        super().__init__()
        self.inner, self.gain = inner, gain
        self.nz, self.nc, self.n_classes = getattr(inner, "nz", None), inner.nc, inner.n_classes
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.inner(x, y) * self.gain
        self.calls.append((x.detach(), None if y is None else y.detach().clone(), out.detach()))
        return out


def _find_rows(rows: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> list[int | None]:
    """For each row of ``rows``, the label it was given (the first exact match in ``inputs``), or None."""
    flat_in = inputs.flatten(1)
    found: list[int | None] = []
    for row in rows.flatten(1):
        hits = (flat_in - row).abs().amax(dim=1) < 1e-6
        index = int(hits.nonzero()[0]) if bool(hits.any()) else None
        found.append(None if index is None else int(labels[index]))
    return found


def _check_d_loss(fn: Any) -> str:
    ex = "cgan-d-loss"
    with sandbox(0):
        G = _Recorder(models.DCGANGenerator(nz=SMALL_NZ, ngf=SMALL_NGF, n_classes=N_CLASSES).eval())
        D = _Recorder(models.DCGANDiscriminator(ndf=SMALL_NDF, n_classes=N_CLASSES).eval(), gain=300.0)
        real = torch.rand(12, 1, 32, 32) * 2 - 1
        y = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])
        z = torch.randn(12, SMALL_NZ)
    what = "cgan_d_loss(D, G, real, y, z)"
    loss = require_tensor(ex, what, call(ex, what, fn, D, G, real.clone(), y.clone(), z.clone()), "a 0-dim tensor")
    if loss.numel() != 1:
        raise ExerciseError(ex, "the loss must be one number", expected="a 0-dim tensor", got=shape(loss))
    if not loss.requires_grad:
        raise ExerciseError(ex, "the loss is not connected to D", expected="a tensor with a gradient",
                            got="a tensor without one", hint="no .item() or torch.no_grad() around D's calls")
    if not G.calls:
        raise ExerciseError(ex, "G was never called", expected="fake images G(z, y) judged by D", got="no call to G")
    if not D.calls:
        raise ExerciseError(ex, "D was never called", expected="D(real, y) and D(fake, y)", got="no call to D")
    if any(labels is None for _, labels, _ in D.calls):
        raise ExerciseError(ex, "D must see the label with every image", expected="D(x, y)", got="D(x) without labels")
    d_inputs = torch.cat([x for x, _, _ in D.calls])
    d_labels = torch.cat([labels for _, labels, _ in D.calls])
    fake = torch.cat([out for _, _, out in G.calls])
    fake_labels = torch.cat([labels for _, labels, _ in G.calls if labels is not None])

    seen_real = _find_rows(real, d_inputs, d_labels)
    if any(label is None for label in seen_real):
        raise ExerciseError(ex, "D did not judge the real images", expected="D(real, y) on the batch passed in",
                            got=f"{sum(label is None for label in seen_real)} of {len(real)} real images never reached D")
    if seen_real != y.tolist():
        raise ExerciseError(ex, "D judged real images with the wrong labels", expected=f"labels {y.tolist()}",
                            got=f"labels {seen_real}", hint="a real image must be paired with its own label y")
    seen_fake = _find_rows(fake[-len(real):], d_inputs, d_labels)
    if any(label is None for label in seen_fake):
        raise ExerciseError(ex, "D did not judge G's images", expected="D(G(z, y).detach(), y)",
                            got="G's images never reached D")
    if seen_fake != fake_labels[-len(real):].tolist():
        raise ExerciseError(ex, "D judged G's images with labels other than the ones G drew them for",
                            expected=f"labels {fake_labels[-len(real):].tolist()} (those passed to G)",
                            got=f"labels {seen_fake}",
                            hint="pair each fake with the label it was generated for: D(fake, y) after fake = G(z, y); "
                                 "otherwise D cannot learn what a good 3 looks like, only what a good digit looks like")

    call(ex, "backward() of your loss", loss.backward)
    if params_without_grad(D.inner):
        raise ExerciseError(ex, "D's parameters get no gradient from the loss", expected="a gradient for every D parameter",
                            got=f"none for {', '.join(params_without_grad(D.inner)[:4])}")
    touched = [name for name, p in G.inner.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)]
    if touched:
        raise ExerciseError(ex, "the D loss sends gradients into G", expected="G's images detached in D's loss",
                            got=f"gradients in G ({', '.join(touched[:3])}, ...)",
                            hint="fake = G(z, y).detach() (or generate under torch.no_grad()): D's step must not train G")

    with torch.no_grad():
        real_logits = D.inner(real, y) * D.gain
        fake_logits = D.inner(fake[-len(real):], fake_labels[-len(real):]) * D.gain
        expected = losses.d_loss_gan(real_logits, fake_logits)
        swapped = losses.d_loss_gan(fake_logits, real_logits)
    value = float(loss.detach())
    if not math.isclose(value, float(expected), rel_tol=1e-4, abs_tol=1e-5):
        hint = "loss = d_loss_gan(D(real, y), D(fake, y)): real towards 1, fake towards 0, batch means added"
        if math.isclose(value, float(swapped), rel_tol=1e-4, abs_tol=1e-5):
            hint = "real and fake are swapped: real images are labelled 1, G's images 0"
        raise ExerciseError(ex, "wrong loss value", expected=f"{float(expected):.5f}", got=f"{value:.5f}", hint=hint)
    return (f"D saw every real image with its own label and every generated image with the label G drew it for; "
            f"G's images were detached; loss {value:.4f} equals labkit's.")


def cgan_d_loss(cgan_d_loss: Any) -> Any:
    """Check exercise ``cgan-d-loss``: ``cgan_d_loss(D, G, real, y, z) -> loss``.

    Wraps labkit's conditional models in recorders to see which label D was given with
    each real and each generated image, then checks detaching and the value.
    Returns the function, or :func:`reference_cgan_d_loss`.
    """
    return run_check("cgan-d-loss", cgan_d_loss, reference_cgan_d_loss, _check_d_loss)


# =========================================================================== style grid


@torch.no_grad()
def reference_style_grid(G: nn.Module, n_styles: int = 8, seed: int = 0) -> torch.Tensor:
    """labkit's answer: images for the style-versus-content grid, row c = class c, column j = z_j.

    Returns (n_classes * n_styles, nc, 32, 32) in row-major order (``plots.sample_grid(images,
    nrow=n_styles)`` draws it); G is used in eval mode and left in the mode it was in.
    """
    device = next(G.parameters()).device
    z = torch.randn(n_styles, G.nz, generator=torch.Generator().manual_seed(seed))  # one z per column
    z = z.repeat(G.n_classes, 1)  # the same n_styles z on every row
    y = torch.arange(G.n_classes).repeat_interleave(n_styles)  # row c asks for class c
    was_training = G.training
    G.eval()
    images = G(z.to(device), y.to(device)).cpu()
    G.train(was_training)
    return images


class _StubGenerator(nn.Module):
    """A fake conditional G whose images spell out the (z, y) they were drawn from."""

    def __init__(self, nz: int = 6) -> None:
        super().__init__()
        self.nz, self.nc, self.n_classes = nz, 1, N_CLASSES
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[bool] = []  # training mode at each call

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("y is required: G is conditional; call G(z, y)")
        if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point:
            raise ValueError(f"y must be an integer tensor of class labels, got {shape(y)}")
        z = z.flatten(1)
        if z.shape[1] != self.nz or z.shape[0] != y.shape[0]:
            raise ValueError(f"z must be (B, {self.nz}) with B = len(y), got z {tuple(z.shape)} and y {tuple(y.shape)}")
        if bool(((y < 0) | (y >= self.n_classes)).any()):
            raise ValueError(f"y must be in [0, {self.n_classes}), got {y.tolist()}")
        self.calls.append(self.training)
        out = torch.zeros(z.shape[0], 1, 32, 32)
        out[:, 0, 0, 0] = (y.float() + 0.5) / self.n_classes  # the class, readable back
        out[:, 0, 1, :self.nz] = torch.tanh(z / 3)  # the noise, readable back
        return out * self.scale


def _check_style_grid(style_grid: Any) -> str:
    ex = "cgan-style-grid"
    n = 5
    G = _StubGenerator()
    what = f"style_grid(G, n_styles={n}, seed=0)"
    images = require_tensor(ex, what, call(ex, what, style_grid, G, n_styles=n, seed=0),
                            f"a tensor of {N_CLASSES * n} images")
    if tuple(images.shape) != (N_CLASSES * n, 1, 32, 32):
        raise ExerciseError(ex, "wrong number or shape of images", expected=f"({N_CLASSES * n}, 1, 32, 32): "
                            f"{N_CLASSES} classes x {n} styles", got=shape(images))
    if any(G.calls):
        raise ExerciseError(ex, "G must be in eval mode while drawing the grid", expected="G.eval() before generating",
                            got="G called in training mode",
                            hint="in training mode BatchNorm normalises with the grid's own batch statistics, "
                                 "so an image would depend on the other images of the grid")
    images = images.detach().cpu()
    classes = torch.floor(images[:, 0, 0, 0] * N_CLASSES).long()
    rows = torch.arange(N_CLASSES).repeat_interleave(n)
    if not torch.equal(classes, rows):
        hint = "row c holds class c: y = torch.arange(n_classes).repeat_interleave(n_styles)"
        if torch.equal(classes, torch.arange(N_CLASSES).repeat(n)):
            hint = ("the images are ordered one style at a time; the grid is drawn row by row, so order them one "
                    "class at a time: y = torch.arange(n_classes).repeat_interleave(n_styles)")
        raise ExerciseError(ex, "the classes are not one per row", expected=f"classes {rows[:2 * n].tolist()} ...",
                            got=f"classes {classes[:2 * n].tolist()} ...", hint=hint)
    codes = images[:, 0, 1, :G.nz].view(N_CLASSES, n, G.nz)
    if not torch.allclose(codes, codes[:1].expand_as(codes)):
        raise ExerciseError(ex, "z changes down a column", expected="one z per column, the same for every class (row)",
                            got="different z in the same column",
                            hint="draw n_styles z once, then z.repeat(n_classes, 1)")
    first_row = codes[0]
    if torch.allclose(first_row, first_row[:1].expand_as(first_row)):
        raise ExerciseError(ex, "every column uses the same z", expected=f"{n} different z, one per column",
                            got="a single z everywhere", hint="torch.randn(n_styles, G.nz, generator=...)")
    again = require_tensor(ex, what, call(ex, what, style_grid, G, n_styles=n, seed=0), "the same grid")
    other = require_tensor(ex, f"style_grid(G, n_styles={n}, seed=1)",
                           call(ex, f"style_grid(G, n_styles={n}, seed=1)", style_grid, G, n_styles=n, seed=1),
                           "another grid")
    if not torch.equal(again.detach().cpu(), images):
        raise ExerciseError(ex, "the same seed must give the same grid", expected="identical grids for seed=0 twice",
                            got="different grids", hint="draw z from torch.Generator().manual_seed(seed)")
    if torch.equal(other.detach().cpu(), images):
        raise ExerciseError(ex, "the seed must choose z", expected="a different grid for seed=1", got="the same grid",
                            hint="draw z from torch.Generator().manual_seed(seed)")
    with sandbox(0):
        real_G = models.DCGANGenerator(nz=SMALL_NZ, ngf=SMALL_NGF, n_classes=N_CLASSES)
    out = call(ex, "style_grid(G, n_styles=3, seed=0) with labkit's conditional G", style_grid, real_G, n_styles=3, seed=0)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (3 * N_CLASSES, 1, 32, 32):
        raise ExerciseError(ex, "wrong result with a real generator", expected=f"({3 * N_CLASSES}, 1, 32, 32)",
                            got=shape(out))
    return (f"{N_CLASSES} rows (class c on row c) x n_styles columns, one z per column shared by every row, "
            f"G in eval mode, the seed fixes the grid.")


def cgan_style_grid(style_grid: Any) -> Any:
    """Check exercise ``cgan-style-grid``: ``style_grid(G, n_styles=8, seed=0) -> images``.

    Uses a stub generator whose images encode the (z, y) they came from, so the check can
    read back the layout: class c on row c, one z per column, G in eval mode, seeded.
    Returns the function, or :func:`reference_style_grid`.
    """
    return run_check("cgan-style-grid", style_grid, reference_style_grid, _check_style_grid)
