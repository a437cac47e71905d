"""labkit.exercises: the notebook's check and the grader's judgement agree.

Code that passes the check (seed 0) gets full points from ``judge`` at another seed, and code
that loses points fails the check naming the same parts. Covered: every solution and handout
cell, wrong answers for each exercise, correct answers written differently, and the decisions
where the two could disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import checks, exercises, losses, models
from labkit.checks import wgan as wgan_checks
from labkit.exercises import ExerciseError, judge, run_probe

ROOT = Path(__file__).resolve().parents[1]
SECRET = 5  # stands for the grader's seed; the notebook's check uses seed 0


# ----------------------------------------------------------------------------- helpers


_REFERENCE_RESULTS: dict[tuple[str, int], list[dict]] = {}


def verdict(ex_id: str, obj, seed: int) -> exercises.Verdict:
    """The grader's judgement of ``obj`` at ``seed`` (the references' probes, which depend on the seed only, once)."""
    ex = exercises.get(ex_id)
    if (ex_id, seed) not in _REFERENCE_RESULTS:
        _REFERENCE_RESULTS[ex_id, seed] = [run_probe(ex, r, seed) for r in ex.references()]
    return judge(ex, run_probe(ex, obj, seed), _REFERENCE_RESULTS[ex_id, seed])


def check_of(ex_id: str):
    """The check function a notebook calls for this exercise."""
    return getattr(wgan_checks if ex_id.startswith("wgan") else checks, ex_id.replace("-", "_"))


def exercise_cells(folder: str) -> dict[str, str]:
    """Exercise id -> source of its cell, for every notebook in ``folder``."""
    cells = {}
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            ex_id = cell.get("metadata", {}).get("labkit", {}).get("exercise")
            if ex_id:
                cells[ex_id] = "".join(cell["source"])
    return cells


def define(ex_id: str, source: str):
    """Run an exercise cell on its notebook's imports; what it defines under the exercise's name."""
    namespace: dict = {}
    exec(exercises.preamble(ex_id), namespace)
    if ex_id == "dcgan-train-step":
        namespace.update(d_loss=losses.d_loss_gan, g_loss=losses.g_loss_nonsaturating)
    exec(compile(source, f"<{ex_id}>", "exec"), namespace)
    return namespace[exercises.get(ex_id).name]


def failing(text: str) -> dict[str, str]:
    """Label -> line of every part a judgement's message reports wrong."""
    return {line.split(": wrong. ")[0]: line for line in text.splitlines() if ": wrong. " in line}


def accepted(ex_id: str, obj) -> None:
    """The check returns ``obj`` and the grader gives full points at its seed."""
    assert check_of(ex_id)(obj) is obj
    v = verdict(ex_id, obj, SECRET)
    assert (v.outcome, v.points) == ("passed", v.max_points), v.message


def refused(ex_id: str, obj, parts: tuple[str, ...], words: tuple[str, ...]) -> tuple[str, exercises.Verdict]:
    """The check raises and the grader deducts; both name ``parts`` (label fragments) and ``words``.

    At the grader's seed the same parts fail with the same hint (the end of their line; the
    numbers before it differ). With no ``parts`` the code raises: both report the error, and
    ``words`` are looked for in the whole message.
    """
    with pytest.raises(ExerciseError) as info:
        check_of(ex_id)(obj)
    shown = str(info.value)
    v = verdict(ex_id, obj, SECRET)
    assert v.points < v.max_points, v.message
    for text in (shown, v.message):
        wrong = failing(text)
        where = "\n".join(wrong.values()) if parts else text
        for word in words:
            assert word in where, (word, text)
    public, secret = failing(shown), failing(v.message)
    for fragment in parts:
        label = next((label for label in public if fragment in label), None)
        assert label in secret, (fragment, shown, v.message)
        assert public[label][-30:] == secret[label][-30:], (public[label], secret[label])
    if not parts:
        assert v.outcome == "error" and f"calling your {exercises.get(ex_id).name} failed" in shown
    return shown, v


SOLUTIONS = exercise_cells("solutions")
HANDOUTS = exercise_cells("notebooks")
Generator = define("dcgan-generator", SOLUTIONS["dcgan-generator"])
ConditionalGenerator = define("cgan-generator", SOLUTIONS["cgan-generator"])
ConditionalDiscriminator = define("cgan-discriminator", SOLUTIONS["cgan-discriminator"])

# part labels (fragments) of each comparison
OUT, GRAD, EVAL = "output on the grader's inputs", "gradient of the output", "output in eval mode"
VALUE, LOGIT_GRAD, FAR = "value on the grader's logits", "gradient with respect to the logits", "far-out logits"
D1, G1, STEP2, RETURNED = "D's parameters after", "G's parameters after", "after a second step", "returned losses"
C_VALUE, D_GRAD, NO_G = "value on the grader's models", "D's gradient", "no gradient into G"
GRID, GRID2 = "the grid:", "another seed"
W_VALUE, W_GRAD, UNEVEN = "value on the grader's scores", "gradient with respect to the scores", "different sizes"
CLAMPED, BUFFERS, IN_PLACE = "clamped into [-c, c]", "buffers", "in place"
SAME, LINEAR, SEGMENT, GRAPH = "real == fake", "linear critic", "strictly between", "differentiable"


# ----------------------------------------------------------------------------- 1, 2: solutions and handouts


def test_every_exercise_has_a_solution_and_a_handout_cell():
    assert set(SOLUTIONS) == set(HANDOUTS) == set(exercises.EXERCISES)


@pytest.mark.parametrize("ex_id", list(SOLUTIONS))
def test_solution_passes_the_check_and_gets_full_points(ex_id, capsys):
    obj = define(ex_id, SOLUTIONS[ex_id])
    accepted(ex_id, obj)
    assert f"exercise {ex_id}: passed." in capsys.readouterr().out


@pytest.mark.parametrize("ex_id", list(HANDOUTS))
def test_handout_is_not_attempted_and_the_check_falls_back_on_the_reference(ex_id, capsys):
    ex = exercises.get(ex_id)
    obj = define(ex_id, HANDOUTS[ex_id])
    v = verdict(ex_id, obj, SECRET)
    assert (v.outcome, v.points) == ("not attempted", 0)
    assert check_of(ex_id)(obj) is ex.references()[0]
    out = capsys.readouterr().out
    assert f"exercise {ex_id} not done yet: continuing with labkit's reference" in out
    assert "NotImplementedError" in out


# ----------------------------------------------------------------------------- building wrong and right models


def dcgan_g(first="convt", bias=False, norms=(True, True, True), extra_up=False, upsample=False, out_norm=False,
            tanh=True, pool=False):
    """A DCGAN generator class, the lab's by default; each argument makes one change."""

    class G(nn.Module):
        def __init__(self, nz=100, ngf=32, nc=1):
            super().__init__()
            self.nz, self.ngf = nz, ngf
            self.fc = nn.Linear(nz, ngf * 4 * 16, bias=False) if first == "linear" else None
            layers = [] if first == "linear" else [nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=bias)]
            chans = [ngf * 4, ngf * 2, ngf] + ([ngf] if extra_up else [])
            for i, c in enumerate(chans):
                if norms[min(i, 2)]:
                    layers.append(nn.BatchNorm2d(c))
                layers.append(nn.ReLU())
                c_out = chans[i + 1] if i + 1 < len(chans) else nc
                last = i + 1 == len(chans)
                if upsample and i == 0:
                    layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c, c_out, 3, 1, 1, bias=bias)]
                else:
                    layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=bias or last))
            if pool:
                layers.append(nn.MaxPool2d(2))
            if out_norm:
                layers.append(nn.BatchNorm2d(nc))
            if tanh:
                layers.append(nn.Tanh())
            self.main = nn.Sequential(*layers)

        def forward(self, z):
            if self.fc is not None:
                return self.main(self.fc(z.flatten(1)).view(-1, self.ngf * 4, 4, 4))
            return self.main(z.view(-1, self.nz, 1, 1))

    return G


class NoNzGenerator(Generator):
    """The lab's G keeping nz under another name."""

    def __init__(self, nz=100, ngf=32, nc=1):
        super().__init__(nz, ngf, nc)
        del self.nz
        self.latent_dim = nz

    def forward(self, z):
        return self.main(z.view(-1, self.latent_dim, 1, 1))


class SeparateLayersGenerator(nn.Module):
    """The lab's G as separate attributes, registered last layer first, activations in forward."""

    def __init__(self, nz=100, ngf=32, nc=1):
        super().__init__()
        self.nz = nz
        self.out = nn.ConvTranspose2d(ngf, nc, 4, 2, 1)
        self.bn3, self.up3 = nn.BatchNorm2d(ngf), nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False)
        self.bn2, self.up2 = nn.BatchNorm2d(ngf * 2), nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False)
        self.bn1, self.up1 = nn.BatchNorm2d(ngf * 4), nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False)

    def forward(self, z):
        h = F.relu(self.bn1(self.up1(z.view(z.shape[0], -1, 1, 1))))
        h = F.relu(self.bn2(self.up2(h)))
        h = F.relu(self.bn3(self.up3(h)))
        return torch.tanh(self.out(h))


def dcgan_d(first_norm=False, pool=False, sigmoid=False, column=False):
    """A DCGAN discriminator class, the lab's by default; each argument makes one change."""

    class D(nn.Module):
        def __init__(self, ndf=32, nc=1):
            super().__init__()
            layers, c_in = [], nc
            for i, c in enumerate((ndf, ndf * 2, ndf * 4)):
                layers.append(nn.Conv2d(c_in, c, 3, 1, 1, bias=i == 0) if pool else
                              nn.Conv2d(c_in, c, 4, 2, 1, bias=i == 0 and not first_norm))
                if i > 0 or first_norm:
                    layers.append(nn.BatchNorm2d(c))
                layers.append(nn.LeakyReLU(0.2))
                if pool:
                    layers.append(nn.MaxPool2d(2))
                c_in = c
            layers.append(nn.Conv2d(ndf * 4, 1, 4, 1, 0))
            self.main = nn.Sequential(*layers)

        def forward(self, x):
            out = self.main(x)
            out = out.view(-1, 1) if column else out.view(-1)
            return torch.sigmoid(out) if sigmoid else out

    return D


def onehot(y, n=10):
    return F.one_hot(y, n).float()


def label_maps(x, y, n=10):
    return onehot(y, n)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])


def conditional_g(join):
    """The lab's conditional G with ``join(z, y)`` as the body's input."""

    class G(ConditionalGenerator):
        def forward(self, z, y):
            return self.body(join(z, y))

    return G


def conditional_d(join):
    """The lab's conditional D with ``join(x, y)`` as the first convolution's input."""

    class D(ConditionalDiscriminator):
        def forward(self, x, y):
            return self.main(join(x, y)).view(-1)

    return D


def train_step(detach=True, zero_d=True, zero_g=True, zero_at_top=False, step_d=True,
               g_loss=losses.g_loss_nonsaturating, reuse_fake=False, together=False, rng="gen", returns=True):
    """One DCGAN step, labkit's reference by default; each argument makes one change."""

    def step(G, D, real, opt_g, opt_d, gen):
        b = real.shape[0]
        noise = (lambda: torch.randn(b, G.nz, generator=gen)) if rng == "gen" else (lambda: torch.randn(b, G.nz))
        if zero_at_top:
            opt_d.zero_grad()
            opt_g.zero_grad()

        def d_update():
            fake = G(noise())
            fake_in = fake.detach() if detach else fake
            if together:
                scores = D(torch.cat([real, fake_in]))
                loss = losses.d_loss_gan(scores[:b], scores[b:])
            else:
                loss = losses.d_loss_gan(D(real), D(fake_in))
            if zero_d and not zero_at_top:
                opt_d.zero_grad()
            loss.backward()
            if step_d:
                opt_d.step()
            return loss, fake

        def g_update(fake):
            loss = g_loss(D(fake))
            if zero_g and not zero_at_top:
                opt_g.zero_grad()
            loss.backward()
            opt_g.step()
            return loss

        loss_d, fake = d_update()
        loss_g = g_update(fake if reuse_fake else G(noise()))
        if returns:
            return loss_d.item(), loss_g.item()

    return step


def cgan_d_loss(drawn=lambda y: y, judged=lambda y, drawn: drawn, real_labels=lambda y: y, detach=True, swap=False):
    """D's conditional loss, labkit's reference by default; each argument makes one change.

    ``drawn(y)``: the labels G draws the fakes for; ``judged(y, drawn)``: the labels D judges them with.
    """

    def loss(D, G, real, y, z):
        fake_y = drawn(y)
        fake = G(z, fake_y)
        fake = fake.detach() if detach else fake
        real_logits, fake_logits = D(real, real_labels(y)), D(fake, judged(y, fake_y))
        return losses.d_loss_gan(fake_logits, real_logits) if swap else losses.d_loss_gan(real_logits, fake_logits)

    return loss


def style_grid(mode="eval", layout="rows", z_per="column", rng="seeded", restore=False):
    """The style-versus-content grid, labkit's reference by default; each argument makes one change."""

    @torch.no_grad()
    def grid(G, n_styles=8, seed=0):
        gen = torch.Generator().manual_seed(seed) if rng == "seeded" else None
        n = G.n_classes
        if z_per == "image":
            z = torch.randn(n * n_styles, G.nz, generator=gen)
        else:
            z = torch.randn(n_styles, G.nz, generator=gen)
            z = z.repeat(n, 1) if layout == "rows" else z.repeat_interleave(n, 0)
        y = torch.arange(n).repeat_interleave(n_styles) if layout == "rows" else torch.arange(n).repeat(n_styles)
        was_training = G.training
        G.train(mode == "train")
        images = G(z, y)
        if restore:
            G.train(was_training)
        return images

    return grid


def penalty(eps="sample", at="x_hat", norm=lambda g: g.flatten(1).norm(2, dim=1), reduce="mean", square=True,
            one_sided=False, create_graph=True, requires_grad=True, scale=1.0):
    """WGAN-GP's penalty, labkit's reference by default; each argument makes one change."""

    def gp(critic, real, fake):
        b = real.shape[0]
        draw = {"sample": lambda: torch.rand(b, 1, 1, 1), "pixel": lambda: torch.rand_like(real),
                "batch": lambda: torch.rand(1), "gauss": lambda: torch.randn(b, 1, 1, 1),
                "numpy": lambda: torch.from_numpy(np.random.uniform(size=(b, 1, 1, 1))).float()}[eps]()
        x = {"x_hat": lambda: draw * real + (1 - draw) * fake, "lerp": lambda: torch.lerp(fake, real, draw),
             "real": lambda: real.clone(), "fake": lambda: fake.clone()}[at]()
        if requires_grad:
            x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=create_graph)
        gap = norm(grad) - 1
        gap = gap.clamp_min(0) if one_sided else gap
        value = gap ** 2 if square else gap.abs()
        return scale * (value.mean() if reduce == "mean" else value.sum() if reduce == "sum" else value)

    return gp


def d_loss_under_no_grad(D, G, real, y, z):
    with torch.no_grad():
        fake = G(z, y)
    return losses.d_loss_gan(D(real, y), D(fake, y))


def clip_data(critic, c):
    for p in critic.parameters():
        p.data.clamp_(-c, c)


# ----------------------------------------------------------------------------- 3: wrong answers, refused alike

WRONG = {
    # DCGAN generator
    "G without Tanh": ("dcgan-generator", dcgan_g(tanh=False), (OUT, GRAD, EVAL), ("conv_transpose2d > tanh; got",)),
    "G with BatchNorm on its output": ("dcgan-generator", dcgan_g(out_norm=True), (OUT, GRAD, EVAL),
                                       ("conv_transpose2d > batch_norm > tanh",)),
    "G with one upsampling too many": ("dcgan-generator", dcgan_g(extra_up=True), (OUT, GRAD, EVAL),
                                       ("one upsampling layer too many", "(5, 1, 64, 64)")),
    "G upsampling to 64 then pooling": ("dcgan-generator", dcgan_g(extra_up=True, pool=True), (OUT, GRAD, EVAL),
                                        ("DCGAN uses no pooling",)),
    "G without self.nz": ("dcgan-generator", NoNzGenerator, (OUT,), ("keep self.nz = nz",)),
    # DCGAN discriminator
    "D with a Sigmoid": ("dcgan-discriminator", dcgan_d(sigmoid=True), (OUT, GRAD, EVAL), ("no Sigmoid at the end",)),
    "D returning (B, 1)": ("dcgan-discriminator", dcgan_d(column=True), (OUT, EVAL),
                           ("flatten the last convolution's (B, 1, 1, 1) to (B,)",)),
    "D with pooling": ("dcgan-discriminator", dcgan_d(pool=True), (OUT, GRAD, EVAL), ("DCGAN uses no pooling",)),
    "D with BatchNorm on its input layer": ("dcgan-discriminator", dcgan_d(first_norm=True), (OUT, GRAD, EVAL),
                                            ("got conv2d > batch_norm > leaky_relu",)),
    # D's loss
    "D loss with the sign flipped": ("dcgan-d-loss", lambda r, f: -losses.d_loss_gan(r, f), (VALUE, LOGIT_GRAD, FAR),
                                     ("The sign is flipped",)),
    "D loss with real and fake swapped": ("dcgan-d-loss", lambda r, f: losses.d_loss_gan(f, r), (VALUE, LOGIT_GRAD),
                                          ("Real and fake are swapped",)),
    "D loss averaging the two terms": ("dcgan-d-loss", lambda r, f: losses.d_loss_gan(r, f) / 2,
                                       (VALUE, LOGIT_GRAD, FAR), ("each averaged over its batch",)),
    "D loss summed over the batch": ("dcgan-d-loss", lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(),
                                     (VALUE, LOGIT_GRAD), ("divided by the batch size",)),
    "D loss on probabilities": ("dcgan-d-loss", lambda r, f: -(torch.log(r).mean() + torch.log(1 - f).mean()),
                                (VALUE, LOGIT_GRAD), ()),
    "D loss leaving torch": ("dcgan-d-loss", lambda r, f: torch.tensor(losses.d_loss_gan(r, f).item()), (),
                             ("does not require grad",)),
    "d_loss not defined": ("dcgan-d-loss", None, (), ("d_loss is not defined",)),
    # G's loss
    "G loss minimax": ("dcgan-g-loss", losses.g_loss_minimax, (VALUE, LOGIT_GRAD, FAR), ("-mean log D(G(z))",)),
    "G loss with the sign flipped": ("dcgan-g-loss", lambda f: -losses.g_loss_nonsaturating(f), (VALUE,),
                                     ("The sign is flipped",)),
    "G loss as -log(sigmoid)": ("dcgan-g-loss", lambda f: -torch.log(torch.sigmoid(f)).mean(), (FAR,),
                                ("log(sigmoid(x)) becomes log(0)",)),
    # one training step
    "step without zero_grad": ("dcgan-train-step", train_step(zero_d=False, zero_g=False), (STEP2, RETURNED),
                               ("opt_d.zero_grad() before loss_d.backward()",)),
    "step without opt_d.zero_grad": ("dcgan-train-step", train_step(zero_d=False), (STEP2,), ("opt_d.zero_grad()",)),
    "step never stepping D": ("dcgan-train-step", train_step(step_d=False), (D1, G1, STEP2), ("opt_d.step()",)),
    "step with G's minimax loss": ("dcgan-train-step", train_step(g_loss=losses.g_loss_minimax), (G1,), ()),
    "step with real and fake through D together": ("dcgan-train-step", train_step(together=True), (D1,),
                                                   ("through D separately",)),
    "step drawing z from the global RNG": ("dcgan-train-step", train_step(rng="global"), (D1, G1),
                                           ("z from gen",)),
    "step without detach, gradients zeroed at the top": ("dcgan-train-step",
                                                         train_step(detach=False, zero_at_top=True), (G1,), ()),
    "step without detach, reusing the fake batch": ("dcgan-train-step", train_step(detach=False, reuse_fake=True), (),
                                                    ("backward through the graph a second time",)),
    "step returning nothing": ("dcgan-train-step", train_step(returns=False), (),
                               ("train_step must return (d_loss, g_loss)",)),
    # conditional G and D
    "conditional G ignoring y": ("cgan-generator", conditional_g(lambda z, y: torch.cat([z, 0 * onehot(y)], 1)),
                                 (OUT, GRAD), ("same layers and parameter count",)),
    "conditional G using y[0] for all": ("cgan-generator", conditional_g(
        lambda z, y: torch.cat([z, onehot(y[:1]).expand(z.shape[0], -1)], 1)), (OUT, GRAD), ()),
    "conditional D ignoring y": ("cgan-discriminator", conditional_d(
        lambda x, y: torch.cat([x, 0 * label_maps(x, y)], 1)), (OUT, GRAD), ()),
    # D's conditional loss
    "cGAN D loss without detach": ("cgan-d-loss", cgan_d_loss(detach=False), (NO_G,), ("this loss trains D only",)),
    "cGAN D loss with fakes relabelled": ("cgan-d-loss", cgan_d_loss(judged=lambda y, drawn: (drawn + 1) % 10),
                                          (C_VALUE, D_GRAD), ("pair each fake with the label it was drawn for",)),
    "cGAN D loss with fakes of class 0": ("cgan-d-loss", cgan_d_loss(drawn=torch.zeros_like, judged=lambda y, drawn: y),
                                          (D_GRAD,), ("draw the fakes for the batch's own labels",)),
    "cGAN D loss with reals mislabelled": ("cgan-d-loss", cgan_d_loss(real_labels=lambda y: y.flip(0)), (D_GRAD,),
                                           ("pair every real image with its own label y",)),
    "cGAN D loss with real and fake swapped": ("cgan-d-loss", cgan_d_loss(swap=True), (C_VALUE, D_GRAD),
                                               ("d_loss_gan(D(real, y), D(fake, y))",)),
    # style grid
    "grid in training mode": ("cgan-style-grid", style_grid(mode="train"), (GRID, GRID2), ("G in eval mode",)),
    "grid with rows and columns swapped": ("cgan-style-grid", style_grid(layout="columns"), (GRID, GRID2),
                                           ("row c holds class c",)),
    "grid with a fresh z for every image": ("cgan-style-grid", style_grid(z_per="image"), (GRID, GRID2),
                                            ("the same z_j on every row",)),
    "grid drawn from the global RNG": ("cgan-style-grid", style_grid(rng="global"), (GRID, GRID2),
                                       ("torch.Generator().manual_seed(seed)",)),
    # the critic's loss
    "critic loss with the sign flipped": ("wgan-critic-loss", lambda r, f: r.mean() - f.mean(),
                                          (W_VALUE, W_GRAD, UNEVEN), ("the sign is flipped",)),
    "critic loss that is G's": ("wgan-critic-loss", lambda r, f: -f.mean(), (W_VALUE, W_GRAD, UNEVEN), ()),
    "critic loss with cross-entropy": ("wgan-critic-loss", losses.d_loss_gan, (W_VALUE,), ("no sigmoid, no log",)),
    "critic loss summed": ("wgan-critic-loss", lambda r, f: f.sum() - r.sum(), (W_VALUE, W_GRAD),
                           ("1/B per score",)),
    "critic loss pairing the samples": ("wgan-critic-loss", lambda r, f: (f - r).mean(), (),
                                        ("must match the size",)),
    "critic loss on sigmoids": ("wgan-critic-loss", lambda r, f: torch.sigmoid(f).mean() - torch.sigmoid(r).mean(),
                                (W_VALUE, W_GRAD, UNEVEN), ()),
}


def clip_without_no_grad(critic, c):
    for p in critic.parameters():
        p.clamp_(-c, c)


def clip_rebinding(critic, c):
    for p in critic.parameters():
        p = p.clamp(-c, c)  # noqa: F841 -- the mistake: the loop variable is rebound, the parameter untouched


@torch.no_grad()
def clip_weights_only(critic, c):
    for name, p in critic.named_parameters():
        if name.endswith("weight"):
            p.clamp_(-c, c)


@torch.no_grad()
def clip_state_dict(critic, c):
    for t in critic.state_dict().values():
        if t.is_floating_point():
            t.clamp_(-c, c)


@torch.no_grad()
def clip_rescaling(critic, c):
    for p in critic.parameters():
        p.mul_(c / p.abs().max().clamp_min(c))


@torch.no_grad()
def clip_into_new_parameters(critic, c):
    for module in critic.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(p.clamp(-c, c)))


@torch.no_grad()
def clip_fixed(critic, c):
    for p in critic.parameters():
        p.clamp_(-0.01, 0.01)


@torch.no_grad()
def clip_zeroing(critic, c):
    for p in critic.parameters():
        p.masked_fill_(p.abs() > c, 0)


@torch.no_grad()
def clip_copying(critic, c):
    for p in critic.parameters():
        p.copy_(p.clamp(-c, c))


WRONG.update({
    "clip without no_grad": ("wgan-clip", clip_without_no_grad, (), ("a leaf Variable that requires grad",)),
    "clip rebinding the loop variable": ("wgan-clip", clip_rebinding, (CLAMPED, IN_PLACE), ("p.clamp_(-c, c)",)),
    "clip of the weights only": ("wgan-clip", clip_weights_only, (CLAMPED,), ()),
    "clip of the state_dict": ("wgan-clip", clip_state_dict, (BUFFERS,), ("clip critic.parameters() only",)),
    "clip that rescales": ("wgan-clip", clip_rescaling, (CLAMPED,), ("do not rescale it",)),
    "clip into new Parameters": ("wgan-clip", clip_into_new_parameters, (IN_PLACE,), ("p.clamp_(-c, c)",)),
    "clip to a fixed 0.01": ("wgan-clip", clip_fixed, (CLAMPED,), ()),
    "clip zeroing what is outside": ("wgan-clip", clip_zeroing, (CLAMPED,), ()),
    # the gradient penalty
    "penalty with the norm over dim 1": ("wgan-gradient-penalty", penalty(norm=lambda g: g.norm(2, dim=1)), (SAME,),
                                         ("grad.flatten(1)",)),
    "penalty with the norm over dim 3": ("wgan-gradient-penalty", penalty(norm=lambda g: g.norm(2, dim=3)), (SAME,),
                                         ("grad.flatten(1)",)),
    "penalty with one norm for the batch": ("wgan-gradient-penalty", penalty(norm=lambda g: g.norm()), (SAME,), ()),
    "penalty with the squared norm": ("wgan-gradient-penalty", penalty(norm=lambda g: g.flatten(1).pow(2).sum(1)),
                                      (SAME,), ()),
    "one-sided penalty": ("wgan-gradient-penalty", penalty(one_sided=True), (SAME,), ()),
    "penalty with lambda inside": ("wgan-gradient-penalty", penalty(scale=10.0), (SAME, LINEAR, GRAPH), ()),
    "penalty summed over the batch": ("wgan-gradient-penalty", penalty(reduce="sum"), (SAME, LINEAR),
                                      ("the mean over the batch",)),
    "penalty without the square": ("wgan-gradient-penalty", penalty(square=False), (SAME, LINEAR), ()),
    "penalty with an eps per pixel": ("wgan-gradient-penalty", penalty(eps="pixel"), (SEGMENT,),
                                      ("the same for all of its pixels",)),
    "penalty with Gaussian eps": ("wgan-gradient-penalty", penalty(eps="gauss"), (SEGMENT,), ("U[0, 1)",)),
    "penalty at the real batch": ("wgan-gradient-penalty", penalty(at="real"), (SEGMENT,), ("not at real or fake",)),
    "penalty at the fake batch": ("wgan-gradient-penalty", penalty(at="fake"), (SEGMENT,), ("not at real or fake",)),
    "penalty without create_graph": ("wgan-gradient-penalty", penalty(create_graph=False), (),
                                     ("does not require grad",)),
    "penalty on an x_hat without requires_grad": ("wgan-gradient-penalty", penalty(requires_grad=False), (),
                                                  ("does not require grad",)),
    "penalty per sample": ("wgan-gradient-penalty", penalty(reduce="none"), (), ("must be a 0-dim tensor",)),
})


def test_every_exercise_has_wrong_answers():
    assert {ex_id for ex_id, *_ in WRONG.values()} == set(exercises.EXERCISES)


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answer_is_refused_by_the_check_and_loses_points_alike(case):
    ex_id, obj, parts, words = WRONG[case]
    refused(ex_id, obj, parts, words)


@pytest.mark.parametrize("case", [next(case for case, (ex_id, *_) in WRONG.items() if ex_id == ex)
                                  for ex in exercises.EXERCISES])
def test_the_check_shows_the_judgement_at_its_seed_line_for_line(case):
    ex_id, obj = WRONG[case][:2]
    with pytest.raises(ExerciseError) as info:
        check_of(ex_id)(obj)
    v = verdict(ex_id, obj, 0)
    assert str(info.value) == f"exercise {ex_id}: {v.outcome} ({v.points:g} of {v.max_points:g} points)\n{v.message}"


# ----------------------------------------------------------------------------- 4: the decided disagreements


def test_cgan_d_loss_with_random_fake_labels_is_refused():
    """Decided: refused. The exercise asks for fakes drawn for the batch's own labels (G(z, y))."""
    random_labels = cgan_d_loss(drawn=lambda y: torch.randint(0, 10, y.shape))
    refused("cgan-d-loss", random_labels, (D_GRAD,), ("draw the fakes for the batch's own labels",))


def test_conditional_generator_with_the_label_before_z_is_accepted():
    """Decided: accepted. torch.cat([onehot, z]) is as correct as [z, onehot]: the order is a convention."""
    accepted("cgan-generator", conditional_g(lambda z, y: torch.cat([onehot(y), z], 1)))


def test_generator_with_batchnorm_after_the_first_layer_only_is_refused_naming_the_layers():
    """Decided: refused. BatchNorm after the first layer only, with biases elsewhere, is not DCGAN's G."""
    shown, v = refused("dcgan-generator", dcgan_g(bias=True, norms=(True, False, False)), (OUT, GRAD, EVAL),
                       ("layers in order",))
    for text in (shown, v.message):
        assert ("expected conv_transpose2d > batch_norm > relu > conv_transpose2d > batch_norm > relu > "
                "conv_transpose2d > batch_norm > relu > conv_transpose2d > tanh; got conv_transpose2d > batch_norm > "
                "relu > conv_transpose2d > relu > conv_transpose2d > relu > conv_transpose2d > tanh") in text


def test_d_loss_as_log_of_sigmoid_is_refused_by_the_check_and_partial_for_the_grader():
    """Decided: the check refuses it; the grader gives the value and gradient parts, not the far-out part."""
    def log_sigmoid(r, f):
        return -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())

    shown, v = refused("dcgan-d-loss", log_sigmoid, (FAR,), ("binary_cross_entropy_with_logits",))
    assert shown.startswith("exercise dcgan-d-loss: partial (1.33 of 2 points)")
    assert v.outcome == "partial" and [p["passed"] for p in v.parts] == [True, True, False]


def test_train_step_without_detach_is_accepted_when_opt_g_zero_grad_precedes_g_backward():
    """Decided: accepted. G's .grad from D's loss is then discarded: the same updates as the reference."""
    accepted("dcgan-train-step", train_step(detach=False))


def test_penalty_with_one_eps_for_the_whole_batch_is_accepted():
    """Decided: accepted, undetectable: each point is still between its real and its fake, and eps is random."""
    accepted("wgan-gradient-penalty", penalty(eps="batch"))


# ----------------------------------------------------------------------------- 5: right answers written differently


RIGHT = {
    "D loss with softplus": ("dcgan-d-loss", lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean()),
    "D loss with logsigmoid": ("dcgan-d-loss", lambda r, f: -(F.logsigmoid(r).mean() + F.logsigmoid(-f).mean())),
    "G loss with softplus": ("dcgan-g-loss", lambda f: F.softplus(-f).mean()),
    "G with a Linear first layer reshaped to 4x4": ("dcgan-generator", dcgan_g(first="linear")),
    "G as separate layers in another order": ("dcgan-generator", SeparateLayersGenerator),
    "D built in a loop": ("dcgan-discriminator", dcgan_d()),
    "step reusing D's fake batch": ("dcgan-train-step", train_step(reuse_fake=True)),
    "step zeroing both gradients first": ("dcgan-train-step", train_step(zero_at_top=True)),
    "conditional D with the label maps first": ("cgan-discriminator",
                                                conditional_d(lambda x, y: torch.cat([label_maps(x, y), x], 1))),
    "cGAN D loss generating under no_grad": ("cgan-d-loss", d_loss_under_no_grad),
    "grid restoring G's mode": ("cgan-style-grid", style_grid(restore=True)),
    "critic loss as -(real - fake)": ("wgan-critic-loss", lambda r, f: -(r.mean() - f.mean())),
    "clip through p.data": ("wgan-clip", clip_data),
    "clip by copying the clamped values": ("wgan-clip", clip_copying),
    "penalty with torch.lerp": ("wgan-gradient-penalty", penalty(at="lerp")),
    "penalty with eps from numpy": ("wgan-gradient-penalty", penalty(eps="numpy")),
}


@pytest.mark.parametrize("case", list(RIGHT))
def test_right_answer_written_differently_gets_full_points(case):
    ex_id, obj = RIGHT[case]
    accepted(ex_id, obj)


def test_generator_upsampling_then_convolving_is_refused():
    """nn.Upsample + Conv2d is not DCGAN's generator, and the message says what is."""
    shown, v = refused("dcgan-generator", dcgan_g(upsample=True), (OUT, GRAD, EVAL),
                       ("DCGAN's generator upsamples with transposed convolutions",))
    assert "interpolate > conv2d" in shown


# ----------------------------------------------------------------------------- 6: hard-coding


def replay(ex_id: str, make):
    """An answer that returns what labkit's reference returned at seed 0, call by call.

    ``make(recorded, args)`` builds the answer's return value from the recorded one.
    """
    ex = exercises.get(ex_id)
    reference, recorded = ex.references()[0], []

    def record(*args, **kwargs):
        out = reference(*args, **kwargs)
        recorded.append(out.detach().clone())
        return out

    assert run_probe(ex, record, 0)["status"] == "ok"
    calls = iter(recorded)

    def answer(*args, **kwargs):
        return make(next(calls), args)

    return answer


@pytest.mark.parametrize("ex_id, make", [
    ("cgan-style-grid", lambda out, args: out),
    ("dcgan-d-loss", lambda out, args: losses.d_loss_gan(*args) - losses.d_loss_gan(*args).detach() + out),
    ("wgan-critic-loss", lambda out, args: losses.d_loss_wgan(*args) - losses.d_loss_wgan(*args).detach() + out),
], ids=["grid", "d-loss", "critic-loss"])
def test_values_hard_coded_for_seed_0_lose_points_at_another_seed(ex_id, make):
    """Full points at the public seed, not at the grader's: every scored part is computed from the seed's inputs."""
    assert verdict(ex_id, replay(ex_id, make), 0).outcome == "passed"
    v = verdict(ex_id, replay(ex_id, make), SECRET)
    assert v.points < v.max_points and failing(v.message)


# ----------------------------------------------------------------------------- 7: declarations


def test_checks_table_maps_labs_1_and_2_to_their_check_and_reference():
    ids = [ex.id for lab in ("01_dcgan", "02_cgan") for ex in exercises.LABS[lab].EXERCISES]
    assert list(checks.EXERCISES) == ids
    for ex_id, (check, reference) in checks.EXERCISES.items():
        assert check is check_of(ex_id) and reference is exercises.get(ex_id).references()[0]


def test_declarations_are_consistent():
    declared = [ex for lab in exercises.LABS.values() for ex in lab.EXERCISES]
    assert len({ex.id for ex in declared}) == len(declared) == len(exercises.EXERCISES)
    for ex in declared:
        assert ex.points > 0 and ex.lab in exercises.LABS and ex.id in exercises.EXERCISES
        for name in (ex.reference, *ex.variants, *ex.hidden):
            assert exercises.resolve(name) is not None, name
        assert all(use in exercises.EXERCISES for use in ex.uses)
    with pytest.raises(ValueError, match="points"):
        exercises.Exercise("x", "01_dcgan", "x", 0, "x", declared[0].reference, declared[0].probe,
                           declared[0].compare, declared[0].summary)


# ----------------------------------------------------------------------------- 8: the caller's torch state


def test_check_leaves_the_global_rng_and_thread_count_alone():
    def meddling_loss(r, f):
        torch.manual_seed(1)
        torch.set_num_threads(1)
        return losses.d_loss_gan(r, f)

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        check_of("dcgan-d-loss")(meddling_loss)
        check_of("dcgan-generator")(Generator)
        check_of("dcgan-d-loss")(define("dcgan-d-loss", HANDOUTS["dcgan-d-loss"]))
        with pytest.raises(ExerciseError):
            check_of("dcgan-d-loss")(lambda r, f: -losses.d_loss_gan(r, f))
        assert torch.equal(torch.rand(3), expected)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_notebooks_name_each_declared_exercise_by_its_id_only():
    """Declared once: a notebook cell carries the exercise id, nothing else; each lab's cells match its declarations."""
    for lab, module in exercises.LABS.items():
        for folder in ("solutions", "notebooks"):
            nb = nbformat.read(ROOT / folder / f"{lab}.ipynb", as_version=4)
            found = []
            for cell in nb.cells:
                meta = cell.metadata.get("labkit", {})
                if "exercise" in meta:
                    assert set(meta) == {"exercise"}, (folder, lab, meta)
                    found.append(meta["exercise"])
            assert found == [ex.id for ex in module.EXERCISES], (folder, lab, found)
