"""Lab 1, notebook 02 (conditional DCGAN): G(z, y), D(x, y), D's conditional loss, the style grid.

Every exercise of the notebook is declared in :data:`EXERCISES` at the end of this module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import losses, models
from ._core import Exercise, Part, describe, module_facts, part, tensor_facts
from .dcgan import compare_module, summarise_module

LAB = "02_cgan"
N_CLASSES = 10
PREAMBLE = """import math
import torch
import torch.nn.functional as F
from torch import nn
from labkit import losses, models
n_classes = 10
"""

# --------------------------------------------------------------------------- references


def reference_generator(nz: int = 100, ngf: int = 32, nc: int = 1, n_classes: int = N_CLASSES) -> nn.Module:
    """labkit's conditional G with the exercise's signature: z joined with one-hot(y)."""
    return models.DCGANGenerator(nz=nz, ngf=ngf, nc=nc, n_classes=n_classes)


class LabelFirstGenerator(models.DCGANGenerator):
    """The same G with one-hot(y) placed before z: an equally correct answer (the order is a convention)."""

    def latent(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        joined = super().latent(z, y)
        return torch.cat([joined[:, self.nz:], joined[:, :self.nz]], dim=1)


def label_first_generator(nz: int = 100, ngf: int = 32, nc: int = 1, n_classes: int = N_CLASSES) -> nn.Module:
    return LabelFirstGenerator(nz=nz, ngf=ngf, nc=nc, n_classes=n_classes)


def reference_discriminator(ndf: int = 32, nc: int = 1, n_classes: int = N_CLASSES) -> nn.Module:
    """labkit's conditional D with the exercise's signature: the label as one extra map per class."""
    return models.DCGANDiscriminator(ndf=ndf, nc=nc, n_classes=n_classes)


class _MapsFirstDiscriminator(nn.Module):
    """The same D with the label maps placed before the image channels (also correct)."""

    def __init__(self, ndf: int = 32, nc: int = 1, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.inner, self.n_classes, self.nc = models.DCGANDiscriminator(ndf=ndf, nc=nc, n_classes=n_classes), n_classes, nc

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        joined = models.join_label_maps(x, y, self.n_classes)
        return self.inner.main(torch.cat([joined[:, self.nc:], joined[:, :self.nc]], dim=1)).flatten()


def maps_first_discriminator(ndf: int = 32, nc: int = 1, n_classes: int = N_CLASSES) -> nn.Module:
    return _MapsFirstDiscriminator(ndf=ndf, nc=nc, n_classes=n_classes)


def reference_cgan_d_loss(D: nn.Module, G: nn.Module, real: torch.Tensor, y: torch.Tensor,
                          z: torch.Tensor) -> torch.Tensor:
    """labkit's answer: D judges (real image, its label) and (G(z, y), y); G's images are detached."""
    fake = G(z, y).detach()
    return losses.d_loss_gan(D(real, y), D(fake, y))


@torch.no_grad()
def reference_style_grid(G: nn.Module, n_styles: int = 8, seed: int = 0) -> torch.Tensor:
    """labkit's answer: images for the style-versus-content grid, row c = class c, column j = z_j.

    Returns (n_classes * n_styles, nc, 32, 32) row by row (``plots.sample_grid(images,
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


# --------------------------------------------------------------------------- probes


def _labels(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, N_CLASSES, (n,), generator=g)


def _seed_params(g: torch.Generator, *nets: nn.Module) -> None:
    """Seeded parameters under which the models' outputs depend on their inputs, in eval mode too.

    Weights and biases ~ N(0, 0.1^2), BatchNorm's scales ~ N(1, 0.1^2). Scales drawn around 0
    shrank the signal tenfold at each BatchNorm (running variance 1 in eval mode): G's images no
    longer depended on z or y, and wrong labels, a swapped grid or fresh noise on every row
    passed at some seeds and failed at others.
    """
    with torch.no_grad():
        for net in nets:
            for module in net.modules():
                for name, p in module.named_parameters(recurse=False):
                    scale = 1.0 if isinstance(module, nn.modules.batchnorm._BatchNorm) and name == "weight" else 0.0
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1 + scale)


def probe_generator(cls: Any, seed: int) -> dict:
    """Two small conditional generators on grader-drawn (z, y); size at the lab's defaults."""
    facts = {f"net{k}": module_facts(cls, dict(nz=nz, ngf=ngf),
                                     lambda g, nz=nz: (torch.randn(5, nz, generator=g), _labels(5, g)), seed + 10 * k)
             for k, (nz, ngf) in enumerate(((12, 4), (7, 8)))}
    lab = cls(nz=100, ngf=32)
    facts["lab_params"] = int(sum(p.numel() for p in lab.parameters()))
    facts["attrs"] = [getattr(lab, "nz", None), getattr(lab, "n_classes", None)]
    return facts


def probe_discriminator(cls: Any, seed: int) -> dict:
    """Two small conditional discriminators on grader-drawn (x, y); size at the lab's defaults."""
    facts = {f"net{k}": module_facts(cls, dict(ndf=ndf),
                                     lambda g: (torch.rand(5, 1, 32, 32, generator=g) * 2 - 1, _labels(5, g)),
                                     seed + 10 * k)
             for k, ndf in enumerate((4, 8))}
    facts["lab_params"] = int(sum(p.numel() for p in cls(ndf=32).parameters()))
    return facts


class _Recorder(nn.Module):
    """Wraps a model and records every (input, labels, output) it is called with; ``gain`` scales outputs."""

    def __init__(self, inner: nn.Module, gain: float = 1.0) -> None:
        super().__init__()
        self.inner, self.gain = inner, gain
        self.nz, self.nc, self.n_classes = getattr(inner, "nz", None), inner.nc, inner.n_classes
        self.calls: list[tuple[torch.Tensor, Any, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.inner(x, y) * self.gain
        self.calls.append((x.detach(), None if y is None else y.detach().clone(), out.detach()))
        return out


def _labels_seen(rows: torch.Tensor, calls: list) -> list:
    """For each row, the label D saw it with (first exact match among D's inputs), or None."""
    seen = []
    for row in rows.flatten(1):
        label = None
        for x, y, _ in calls:
            hits = (x.flatten(1) - row).abs().amax(dim=1) < 1e-6
            if bool(hits.any()):
                label = None if y is None else int(y[int(hits.nonzero()[0])])
                break
        seen.append(label)
    return seen


def probe_cgan_d_loss(fn: Any, seed: int) -> dict:
    """The loss on labkit's small conditional pair and grader-drawn data; D scaled so mistakes show."""
    g = torch.Generator().manual_seed(seed)
    G = _Recorder(models.DCGANGenerator(nz=8, ngf=4, n_classes=N_CLASSES))
    # logits of a few units: at gain 30 the loss saturated and the fake term's gradient vanished at some seeds
    D = _Recorder(models.DCGANDiscriminator(ndf=4, n_classes=N_CLASSES), gain=3.0)
    _seed_params(g, G, D)
    G.eval(), D.eval()
    real, y, z = torch.rand(8, 1, 32, 32, generator=g) * 2 - 1, _labels(8, g), torch.randn(8, 8, generator=g)
    value = fn(D, G, real.clone(), y.clone(), z.clone())
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise TypeError(f"the loss must be a 0-dim tensor, got {describe(tensor_facts(value))}")
    value.backward()
    grads = lambda m: tensor_facts(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                              for p in m.inner.parameters()]))
    fakes = torch.cat([out for _, _, out in G.calls]) if G.calls else torch.zeros(0, 1, 32, 32)
    drawn = torch.cat([lab for _, lab, _ in G.calls if lab is not None]) if G.calls else torch.zeros(0)
    return {"value": float(value.detach()), "D_grad": grads(D), "G_grad": grads(G),
            "real_labels": _labels_seen(real, D.calls), "y": y.tolist(),
            "fake_labels": _labels_seen(fakes[-8:], D.calls), "drawn_labels": drawn[-8:].tolist()}


def compare_cgan_d_loss(got: dict, ref: dict) -> list[Part]:
    hint = "D judges (real, y) and (G(z, y).detach(), y): d_loss_gan(D(real, y), D(fake, y))"
    if got.get("real_labels") is not None and got.get("real_labels") != got.get("y"):
        hint = "pair every real image with its own label y: D(real, y)"
    elif got.get("drawn_labels") != got.get("y"):
        hint = ("draw the fakes for the batch's own labels, fake = G(z, y), and judge them as (fake, y): this is the "
                "form the lab's training loop uses, and the one this exercise asks for")
    elif got.get("fake_labels") != got.get("drawn_labels"):
        hint = ("pair each fake with the label it was drawn for, and draw the fakes for the batch's labels: "
                "fake = G(z, y), then D(fake, y). With other labels D only learns what a good digit looks like, "
                "not what a good 3 looks like")
    value = part("value on the grader's models and data", got, ref, ("value",), hint)
    d_grad = part("D's gradient", got, ref, ("D_grad",), hint)
    g_grad = part("no gradient into G (its images detached)", got, ref, ("G_grad",),
                  "fake = G(z, y).detach() (or generate under torch.no_grad()): this loss trains D only")
    return [value, d_grad, Part(g_grad.check, g_grad.passed and value.passed, g_grad.message or value.message)]


def probe_style_grid(fn: Any, seed: int) -> dict:
    """The grid of labkit's small conditional G (left in training mode) for two seeds and sizes."""
    G = models.DCGANGenerator(nz=8, ngf=4, n_classes=N_CLASSES)
    g = torch.Generator().manual_seed(seed)
    _seed_params(g, G)
    G.train()
    first = fn(G, n_styles=3, seed=seed % 1000)
    G.train()
    second = fn(G, n_styles=2, seed=seed % 1000 + 1)
    return {"grid": tensor_facts(first), "grid2": tensor_facts(second)}


def compare_style_grid(got: dict, ref: dict) -> list[Part]:
    hint = ("row c holds class c (labels torch.arange(n_classes).repeat_interleave(n_styles)); column j the same z_j "
            "on every row (z.repeat(n_classes, 1)); z from torch.Generator().manual_seed(seed); G in eval mode")
    return [part("the grid: class per row, one z per column, eval mode", got, ref, ("grid",), hint),
            part("another seed and number of styles", got, ref, ("grid2",), hint)]


def summarise_d_loss(facts: dict) -> str:
    return (f"D saw every real image with its label and every fake with the label G drew it for; G's images were "
            f"detached; loss {facts['value']:.4f} equals labkit's.")


def summarise_grid(facts: dict) -> str:
    return "10 rows (class c on row c), one z per column shared by every row, G in eval mode, the seed fixes the grid."


EXERCISES = (
    Exercise("cgan-generator", LAB, "the conditional generator G(z, y)", 2, "ConditionalGenerator",
             "labkit.exercises.cgan:reference_generator", probe_generator,
             compare_module("generator", ("lab_params", "attrs")), summarise_module,
             variants=("labkit.exercises.cgan:label_first_generator",),
             hidden=("labkit.models:join_label", "labkit.exercises.cgan:LabelFirstGenerator")),
    Exercise("cgan-discriminator", LAB, "the conditional discriminator D(x, y)", 2, "ConditionalDiscriminator",
             "labkit.exercises.cgan:reference_discriminator", probe_discriminator,
             compare_module("discriminator", ("lab_params",)), summarise_module,
             variants=("labkit.exercises.cgan:maps_first_discriminator",),
             hidden=("labkit.models:join_label_maps", "labkit.exercises.cgan:_MapsFirstDiscriminator")),
    Exercise("cgan-d-loss", LAB, "D's conditional loss", 2, "cgan_d_loss", "labkit.exercises.cgan:reference_cgan_d_loss",
             probe_cgan_d_loss, compare_cgan_d_loss, summarise_d_loss),
    Exercise("cgan-style-grid", LAB, "the style-versus-content grid", 2, "style_grid",
             "labkit.exercises.cgan:reference_style_grid", probe_style_grid, compare_style_grid, summarise_grid),
)

