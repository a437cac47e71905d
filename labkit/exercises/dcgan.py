"""Lab 1, notebook 01 (DCGAN): the generator, the discriminator, the two losses, one training step.

Every exercise of the notebook is declared in :data:`EXERCISES` at the end of this module,
with its probe and its comparison above it (see :mod:`labkit.exercises`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import losses, models
from ._core import Exercise, Part, describe, module_diagnosis, module_facts, part, same, tensor_facts

LAB = "01_dcgan"
#: what every exercise cell of the notebook may use without defining it (its import cell)
PREAMBLE = """import math
import torch
import torch.nn.functional as F
from torch import nn
from labkit import losses, models
"""

# --------------------------------------------------------------------------- generator and discriminator


def probe_generator(cls: Any, seed: int) -> dict:
    """Two small generators on grader-drawn z; channel count and size at the lab's defaults."""
    facts = {f"net{k}": module_facts(cls, dict(nz=nz, ngf=ngf), lambda g, nz=nz: (torch.randn(5, nz, generator=g),),
                                     seed + 10 * k)
             for k, (nz, ngf) in enumerate(((12, 4), (7, 8)))}
    rgb = cls(nz=6, ngf=4, nc=3)
    facts["nc3_shape"] = list(rgb(torch.randn(2, 6)).shape)
    lab = cls(nz=100, ngf=32)
    facts["nz_attr"] = getattr(lab, "nz", None)
    facts["lab_params"] = int(sum(p.numel() for p in lab.parameters()))
    return facts


def probe_discriminator(cls: Any, seed: int) -> dict:
    """Two small discriminators on grader-drawn images in [-1, 1]; size at the lab's defaults."""
    facts = {f"net{k}": module_facts(cls, dict(ndf=ndf), lambda g: (torch.rand(5, 1, 32, 32, generator=g) * 2 - 1,),
                                     seed + 10 * k)
             for k, ndf in enumerate((4, 8))}
    facts["nc3_shape"] = list(cls(ndf=4, nc=3)(torch.rand(2, 3, 32, 32) * 2 - 1).shape)
    facts["lab_params"] = int(sum(p.numel() for p in cls(ndf=32).parameters()))
    return facts


def compare_module(role: str, extra: tuple[str, ...]) -> Any:
    """The comparison of a module exercise: training-mode output, input gradient, eval-mode output."""
    def compare(got: dict, ref: dict) -> list[Part]:
        nets = [k for k in ref if k.startswith("net")]
        diagnosis = "; ".join(module_diagnosis(got.get(n) or {}, ref[n], role) for n in nets[:1])
        extra_ok = all(same(got, ref, k) for k in extra)
        extra_why = "; ".join(f"{k}: expected {describe(ref[k])}, got {describe(got.get(k))}"
                              for k in extra if not same(got, ref, k))
        if "nz_attr" in extra and not same(got, ref, "nz_attr"):
            extra_why += " (keep self.nz = nz: labkit's training and widgets read G.nz)"

        def scored(key: str, label: str) -> Part:
            ok = all(same(got.get(n) or {}, ref[n], key) for n in nets)
            return Part(label, ok, "" if ok else diagnosis)

        first = scored("out", "output on the grader's inputs, seeded weights, training mode")
        grad = scored("grad", "gradient of the output with respect to the input")
        if first.passed and not grad.passed:  # right numbers, but autograd cannot follow them
            grad = Part(grad.check, False, "the output is right but its gradient is not: something in forward "
                        "leaves autograd (.detach(), .data, .item(), numpy or torch.no_grad())")
        first = Part(first.check, first.passed and extra_ok, "; ".join(x for x in (first.message, extra_why) if x))
        return [first,
                grad,
                scored("eval", "output in eval mode (BatchNorm's running statistics after one pass)")]
    return compare


def summarise_module(facts: dict) -> str:
    ops = " > ".join(facts["net0"]["ops"])
    return (f"same outputs, gradients and eval-mode outputs as labkit's reference on the check's inputs; "
            f"layers: {ops}; {facts['lab_params']:,} parameters at the lab's size.")


# --------------------------------------------------------------------------- the two losses


def _extreme(n: int, g: torch.Generator, sign: float) -> torch.Tensor:
    """Logits far out with mixed signs: where log(sigmoid(x)) rounds to log(0).

    |x| in [30, 80] for the logits of sign ``sign``, in [110, 160] for the others: float32's
    sigmoid rounds to 1 from x = 17 on but to 0 only below x = -88, so without the second
    range G's loss written as -log(sigmoid(x)) stayed finite and passed.
    """
    magnitude = 30 + 50 * torch.rand(n, generator=g)
    magnitude[1::2] += 80
    signs = torch.tensor([sign, -sign] * n)[:n]
    return magnitude * signs


def loss_facts(fn: Any, n_args: int, seed: int) -> dict:
    """A loss of D's logits on grader-drawn batches: value, gradients, and far-out logits."""
    g = torch.Generator().manual_seed(seed)
    sizes = (7, 5)[:n_args]
    args = [(torch.randn(s, generator=g) * 2).requires_grad_(True) for s in sizes]
    value = fn(*args)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise TypeError(f"the loss must be a 0-dim tensor (one number), got {describe(tensor_facts(value))}")
    grads = torch.autograd.grad(value, args, allow_unused=True)
    facts = {"value": float(value.detach()), "grad": [tensor_facts(gr if gr is not None else torch.zeros_like(a))
                                             for gr, a in zip(grads, args)]}
    extreme = [_extreme(6, g, 1.0 if i == 0 else -1.0) for i in range(n_args)]
    facts["extreme"] = float(fn(*extreme).detach())
    if n_args == 2:
        facts["swapped"] = float(fn(*[a.detach() for a in reversed(args)]).detach())
    return facts


def probe_d_loss(fn: Any, seed: int) -> dict:
    return loss_facts(fn, 2, seed)


def probe_g_loss(fn: Any, seed: int) -> dict:
    return loss_facts(fn, 1, seed)


def compare_loss(target_hint: str) -> Any:
    def compare(got: dict, ref: dict) -> list[Part]:
        value = part("value on the grader's logits", got, ref, ("value",), target_hint)
        if not value.passed and isinstance(got.get("value"), float):
            if ref.get("swapped") is not None and abs(got["value"] - ref["swapped"]) < 1e-4 * (1 + abs(ref["swapped"])):
                value = Part(value.check, False, value.message + ". Real and fake are swapped: real logits towards 1, fake towards 0")
            elif abs(got["value"] + ref["value"]) < 1e-4 * (1 + abs(ref["value"])):
                value = Part(value.check, False, value.message + ". The sign is flipped: it is a loss to minimise")
        return [value,
                part("gradient with respect to the logits", got, ref, ("grad",),
                     "the mean over the batch of each term, so each logit's gradient is divided by the batch size"),
                part("finite and right on far-out logits (|x| = 30 to 160)", got, ref, ("extreme",),
                     "compute it from the logits with F.binary_cross_entropy_with_logits (or softplus): "
                     "log(sigmoid(x)) becomes log(0) = -inf once sigmoid(x) rounds to 0 or 1")]
    return compare


def summarise_loss(facts: dict) -> str:
    return (f"same value ({facts['value']:.4f} on the check's logits) and gradient as labkit's reference, "
            f"and finite on far-out logits ({facts['extreme']:.2f}).")


# --------------------------------------------------------------------------- one training step


def reference_train_step(G: nn.Module, D: nn.Module, real: torch.Tensor, opt_g: torch.optim.Optimizer,
                         opt_d: torch.optim.Optimizer, gen: torch.Generator) -> tuple[float, float]:
    """One DCGAN step, labkit's answer: update D once on real and fake images, then G once on a new batch.

    The textbook form (Goodfellow et al.'s algorithm 1), which the exercise's hints
    describe. Returns the two losses as floats.
    """
    b = real.shape[0]
    z = torch.randn(b, G.nz, generator=gen).to(real.device)
    fake = G(z).detach()
    loss_d = losses.d_loss_gan(D(real), D(fake))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    z = torch.randn(b, G.nz, generator=gen).to(real.device)
    loss_g = losses.g_loss_nonsaturating(D(G(z)))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def reuse_fake_train_step(G: nn.Module, D: nn.Module, real: torch.Tensor, opt_g: torch.optim.Optimizer,
                          opt_d: torch.optim.Optimizer, gen: torch.Generator) -> tuple[float, float]:
    """The other correct form (pytorch/examples' DCGAN): G's step reuses the D step's fake batch.

    The updates ``labkit.train.fit`` makes with ``loss="gan"`` (one G pass per step instead of two).
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


def _flat(module: nn.Module) -> dict:
    return tensor_facts(torch.cat([p.detach().flatten() for p in module.parameters()]))


def probe_train_step(step: Any, seed: int) -> dict:
    """Two steps on labkit's small DCGAN pair with plain SGD (an update is lr times the gradient).

    Not Adam: its first update is about lr * sign(gradient), which turns float noise in a
    near-zero gradient into a full-size difference.
    """
    G, D = models.DCGANGenerator(nz=8, ngf=4), models.DCGANDiscriminator(ndf=4)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in [*G.parameters(), *D.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(seed + 1)
    facts: dict[str, Any] = {"losses": []}
    for k in range(2):
        real = torch.rand(6, 1, 32, 32, generator=g) * 2 - 1
        out = step(G, D, real, opt_g, opt_d, gen)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"train_step must return (d_loss, g_loss), got {describe(tensor_facts(out))}")
        facts["losses"].append([float(v) for v in out])
        facts[f"D{k + 1}"], facts[f"G{k + 1}"] = _flat(D), _flat(G)
    return facts


def compare_train_step(got: dict, ref: dict) -> list[Part]:
    return [
        part("D's parameters after one step", got, ref, ("D1",),
             "D first: z from gen; loss_d = d_loss(D(real), D(G(z).detach())); opt_d.zero_grad(); backward; "
             "opt_d.step(). Pass the real and the fake batch through D separately (BatchNorm normalises each batch)"),
        part("G's parameters after one step", got, ref, ("G1",),
             "then G: fresh z from gen (or the D step's fake batch, not detached); loss_g = g_loss(D(G(z))) with the "
             "updated D; opt_g.zero_grad() before loss_g.backward(); opt_g.step()"),
        part("both networks after a second step", got, ref, ("D2", "G2"),
             "each step starts from zeroed gradients: G's backward also fills D's .grad, so call opt_d.zero_grad() "
             "before loss_d.backward()"),
        part("the returned losses (d_loss, g_loss) of both steps", got, ref, ("losses",),
             "return loss_d.item(), loss_g.item() of this step"),
    ]


def summarise_train_step(facts: dict) -> str:
    d, g = facts["losses"][0]
    return (f"two steps in a row update D, then G, exactly as labkit's reference step does; "
            f"first step's losses: d_loss {d:.4f}, g_loss {g:.4f}.")


# --------------------------------------------------------------------------- the lab's exercises

EXERCISES = (
    Exercise("dcgan-generator", LAB, "the DCGAN generator", 3, "Generator", "labkit.models:DCGANGenerator",
             probe_generator, compare_module("generator", ("nc3_shape", "nz_attr", "lab_params")), summarise_module),
    Exercise("dcgan-discriminator", LAB, "the DCGAN discriminator", 3, "Discriminator",
             "labkit.models:DCGANDiscriminator", probe_discriminator,
             compare_module("discriminator", ("nc3_shape", "lab_params")), summarise_module),
    Exercise("dcgan-d-loss", LAB, "D's loss (7)", 2, "d_loss", "labkit.losses:d_loss_gan", probe_d_loss,
             compare_loss("D's loss: binary cross-entropy with target 1 on the real logits plus target 0 on the "
                          "fake ones, each averaged over its batch"), summarise_loss),
    Exercise("dcgan-g-loss", LAB, "G's non-saturating loss (6)", 2, "g_loss", "labkit.losses:g_loss_nonsaturating",
             probe_g_loss, compare_loss("G's loss: binary cross-entropy with target 1 on D's logits for G(z), "
                                        "averaged over the batch: -mean log D(G(z))"), summarise_loss,
             ),
    Exercise("dcgan-train-step", LAB, "one training step", 3, "train_step",
             "labkit.exercises.dcgan:reference_train_step", probe_train_step, compare_train_step,
             summarise_train_step, variants=("labkit.exercises.dcgan:reuse_fake_train_step",),
             hidden=("labkit.train:_d_step", "labkit.train:_g_step", "labkit.train:_train_step"), uses=("dcgan-d-loss", "dcgan-g-loss")),
)
