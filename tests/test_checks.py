"""labkit.checks: every check passes labkit's reference, falls back on NotImplementedError,
and rejects typical wrong answers with a message naming the problem."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import checks, losses, models, train

from exercise_helpers import rejects

# ----------------------------------------------------------------------------- helpers


def not_done_class(*args, **kwargs):
    raise NotImplementedError("exercise x: not done yet")


class NotDoneModule(nn.Module):
    """What a handout's class looks like: __init__ raises at the TODO."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("exercise x: not done yet — replace this line with your code")


def not_done_function(*args, **kwargs):
    raise NotImplementedError("exercise x: not done yet — replace this line with your code")


# ----------------------------------------------------------------------------- every check, both easy outcomes

CASES = [
    (checks.dcgan_generator, models.DCGANGenerator, NotDoneModule),
    (checks.dcgan_discriminator, models.DCGANDiscriminator, NotDoneModule),
    (checks.dcgan_d_loss, losses.d_loss_gan, not_done_function),
    (checks.dcgan_g_loss, losses.g_loss_nonsaturating, not_done_function),
    (checks.dcgan_train_step, checks.reference_train_step, not_done_function),
    (checks.cgan_generator, models.DCGANGenerator, NotDoneModule),
    (checks.cgan_discriminator, models.DCGANDiscriminator, NotDoneModule),
    (checks.cgan_d_loss, checks.reference_cgan_d_loss, not_done_function),
    (checks.cgan_style_grid, checks.reference_style_grid, not_done_function),
]
IDS = [check.__name__ for check, _, _ in CASES]


@pytest.mark.parametrize("check, reference, _", CASES, ids=IDS)
def test_reference_passes_and_is_returned(check, reference, _, capsys):
    assert check(reference) is reference
    out = capsys.readouterr().out
    assert ": passed." in out and "not done" not in out


@pytest.mark.parametrize("check, reference, not_done", CASES, ids=IDS)
def test_not_implemented_falls_back_to_reference(check, reference, not_done, capsys):
    assert check(not_done) is reference
    out = capsys.readouterr().out
    assert "not done yet: continuing with labkit's reference" in out
    assert reference.__qualname__ in out


def test_exercises_table_names_every_check_and_reference():
    assert len(checks.EXERCISES) == 9
    for exercise, (check, reference) in checks.EXERCISES.items():
        assert check(not_done_function if not isinstance(reference, type) else NotDoneModule) is reference, exercise


def test_none_is_explained():
    rejects(checks.dcgan_d_loss, None, "got None")


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.dcgan_generator(models.DCGANGenerator)
    checks.dcgan_d_loss(losses.d_loss_gan)
    assert torch.equal(torch.rand(3), expected)


def test_check_output_is_the_same_every_time(capsys):
    checks.dcgan_train_step(checks.reference_train_step)
    first = capsys.readouterr().out
    checks.dcgan_train_step(checks.reference_train_step)
    assert capsys.readouterr().out == first


def test_a_bug_inside_student_code_names_the_call():
    class Broken(models.DCGANGenerator):
        def forward(self, z, y=None):
            return self.main(z)  # forgot the projection: a shape error inside torch

    message = rejects(checks.dcgan_generator, Broken, "raised")
    assert "G(z)" in message


# ----------------------------------------------------------------------------- DCGAN generator


def test_generator_without_tanh_is_rejected():
    class NoTanh(models.DCGANGenerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.main[-1] = nn.Identity()

    rejects(checks.dcgan_generator, NoTanh, "Tanh")


def test_generator_with_wrong_output_shape_is_rejected():
    class TooBig(models.DCGANGenerator):
        def __init__(self, nz=100, ngf=32, nc=1, **kwargs):
            super().__init__(nz=nz, ngf=ngf, nc=nc, **kwargs)
            self.main[-2] = nn.Sequential(nn.ConvTranspose2d(ngf, ngf, 4, 2, 1), nn.ReLU(),
                                          nn.ConvTranspose2d(ngf, nc, 4, 2, 1))

    message = rejects(checks.dcgan_generator, TooBig, "wrong output shape", "(4, 1, 32, 32)")
    assert "too many" in message


def test_generator_with_pooling_is_rejected():
    class Pooled(models.DCGANGenerator):
        def forward(self, z, y=None):
            h = self.main[:-2](self.project(self.latent(z, y)).view(-1, self.ngf * 4, 4, 4))
            h = F.max_pool2d(F.interpolate(h, scale_factor=2), 2)
            return self.main[-1](self.main[-2](h))

    rejects(checks.dcgan_generator, Pooled, "pooling")


def test_generator_with_batchnorm_on_output_is_rejected():
    class NormedOutput(models.DCGANGenerator):
        def __init__(self, nz=100, ngf=32, nc=1, **kwargs):
            super().__init__(nz=nz, ngf=ngf, nc=nc, **kwargs)
            self.main.insert(len(self.main) - 1, nn.BatchNorm2d(nc))

    rejects(checks.dcgan_generator, NormedOutput, "output layer")


def test_generator_with_leaky_relu_is_rejected():
    class Leaky(models.DCGANGenerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for i, m in enumerate(self.main):
                if isinstance(m, nn.ReLU):
                    self.main[i] = nn.LeakyReLU(0.2)

    rejects(checks.dcgan_generator, Leaky, "ReLU", "LeakyReLU")


def test_generator_with_an_unused_layer_is_rejected():
    class Unused(models.DCGANGenerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.spare = nn.Linear(4, 4)

    rejects(checks.dcgan_generator, Unused, "no gradient", "spare")


# ----------------------------------------------------------------------------- DCGAN discriminator


def test_discriminator_returning_b_by_1_is_rejected():
    class Column(models.DCGANDiscriminator):
        def forward(self, x, y=None):
            return super().forward(x, y).view(-1, 1)

    message = rejects(checks.dcgan_discriminator, Column, "wrong output shape", "(4,)")
    assert "view(-1)" in message


def test_discriminator_with_sigmoid_is_rejected():
    class Probabilities(models.DCGANDiscriminator):
        def forward(self, x, y=None):
            return torch.sigmoid(super().forward(x, y))

    rejects(checks.dcgan_discriminator, Probabilities, "logits")


def test_discriminator_with_batchnorm_on_input_layer_is_rejected():
    class NormedInput(models.DCGANDiscriminator):
        def __init__(self, ndf=32, nc=1, **kwargs):
            super().__init__(ndf=ndf, nc=nc, **kwargs)
            self.main.insert(1, nn.BatchNorm2d(ndf))

    rejects(checks.dcgan_discriminator, NormedInput, "input layer")


def test_discriminator_that_detaches_its_input_is_rejected():
    class Detached(models.DCGANDiscriminator):
        def forward(self, x, y=None):
            return super().forward(x.detach(), y)

    rejects(checks.dcgan_discriminator, Detached, "differentiable")


# ----------------------------------------------------------------------------- losses


def test_d_loss_with_flipped_sign_is_rejected():
    message = rejects(checks.dcgan_d_loss, lambda r, f: -losses.d_loss_gan(r, f), "2 log 2", "1.3863")
    assert "sign is flipped" in message


def test_d_loss_with_swapped_labels_is_rejected():
    message = rejects(checks.dcgan_d_loss, lambda r, f: losses.d_loss_gan(f, r), "D is sure")
    assert "swapped" in message


def test_d_loss_averaging_the_two_terms_is_rejected():
    message = rejects(checks.dcgan_d_loss, lambda r, f: losses.d_loss_gan(r, f) / 2, "1.3863", "0.6931")
    assert "average" in message


def test_d_loss_summed_over_the_batch_is_rejected():
    def summed(r, f):
        return F.softplus(-r).sum() + F.softplus(f).sum()

    rejects(checks.dcgan_d_loss, summed, "sum")


def test_d_loss_on_probabilities_is_rejected():
    def as_probabilities(r, f):
        return -(torch.log(r).mean() + torch.log(1 - f).mean())

    rejects(checks.dcgan_d_loss, as_probabilities, "not finite", "logits")


def test_d_loss_that_leaves_torch_is_rejected():
    def numpy_loss(r, f):
        return torch.tensor(float(losses.d_loss_gan(r, f).detach()))

    rejects(checks.dcgan_d_loss, numpy_loss, "not connected")


def test_g_loss_minimax_is_rejected():
    rejects(checks.dcgan_g_loss, losses.g_loss_minimax, "minimax", "(6)")


def test_g_loss_with_flipped_sign_is_rejected():
    rejects(checks.dcgan_g_loss, lambda f: -losses.g_loss_nonsaturating(f), "sign is flipped")


# ----------------------------------------------------------------------------- training step


def test_reference_train_step_is_labkits_training_step():
    """reference_train_step performs exactly labkit.train.fit's updates (same noise draws, same order)."""
    config = train.TrainConfig(nz=8, ngf=4, ndf=4, batch_size=8, device="cpu")
    torch.manual_seed(0)
    G, D = models.DCGANGenerator(nz=8, ngf=4), models.DCGANDiscriminator(ndf=4)
    real = torch.rand(8, 1, 32, 32) * 2 - 1
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), **adam), torch.optim.Adam(D.parameters(), **adam)
    opt_g2, opt_d2 = torch.optim.Adam(G2.parameters(), **adam), torch.optim.Adam(D2.parameters(), **adam)
    gen, gen2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(2):
        d_loss, g_loss = checks.reference_train_step(G, D, real, opt_g, opt_d, gen)
        d_loss2, *_ = train._d_step(G2, D2, real, None, config, opt_d2, gen2)
        g_loss2, _ = train._g_step(G2, D2, 8, config, opt_g2, gen2, torch.device("cpu"))
        assert d_loss == pytest.approx(float(d_loss2), rel=1e-6)
        assert g_loss == pytest.approx(float(g_loss2), rel=1e-6)
    for a, b in zip([*G.parameters(), *D.parameters()], [*G2.parameters(), *D2.parameters()]):
        assert torch.allclose(a, b, atol=1e-7)


def test_train_step_reusing_the_fake_batch_is_accepted(capsys):
    def reuse(G, D, real, opt_g, opt_d, gen):
        fake = G(torch.randn(real.shape[0], G.nz, generator=gen))
        loss_d = losses.d_loss_gan(D(real), D(fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = losses.g_loss_nonsaturating(D(fake))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    assert checks.dcgan_train_step(reuse) is reuse
    assert "reuses the D step's fake batch" in capsys.readouterr().out


def test_train_step_that_never_steps_d_is_rejected():
    def no_d_step(G, D, real, opt_g, opt_d, gen):
        z = torch.randn(real.shape[0], G.nz, generator=gen)
        loss_d = losses.d_loss_gan(D(real), D(G(z).detach()))
        z = torch.randn(real.shape[0], G.nz, generator=gen)
        loss_g = losses.g_loss_nonsaturating(D(G(z)))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    rejects(checks.dcgan_train_step, no_d_step, "D's parameters did not change", "opt_d.step()")


def test_train_step_without_zero_grad_is_rejected():
    def no_zero_grad(G, D, real, opt_g, opt_d, gen):
        z = torch.randn(real.shape[0], G.nz, generator=gen)
        loss_d = losses.d_loss_gan(D(real), D(G(z).detach()))
        loss_d.backward()
        opt_d.step()
        z = torch.randn(real.shape[0], G.nz, generator=gen)
        loss_g = losses.g_loss_nonsaturating(D(G(z)))
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    rejects(checks.dcgan_train_step, no_zero_grad, "zero_grad")


def test_train_step_with_minimax_g_loss_is_rejected():
    def minimax(G, D, real, opt_g, opt_d, gen):
        z = torch.randn(real.shape[0], G.nz, generator=gen)
        loss_d = losses.d_loss_gan(D(real), D(G(z).detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        z = torch.randn(real.shape[0], G.nz, generator=gen)
        loss_g = losses.g_loss_minimax(D(G(z)))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d.item(), loss_g.item()

    rejects(checks.dcgan_train_step, minimax, "G's update differs")


def test_train_step_returning_nothing_is_rejected():
    def silent(G, D, real, opt_g, opt_d, gen):
        checks.reference_train_step(G, D, real, opt_g, opt_d, gen)

    rejects(checks.dcgan_train_step, silent, "return the two losses")


# ----------------------------------------------------------------------------- conditional models


class IgnoresY(nn.Module):
    """A 'conditional' G that takes y and throws it away."""

    def __init__(self, nz=100, ngf=32, nc=1, n_classes=10):
        super().__init__()
        self.nz, self.nc, self.n_classes = nz, nc, n_classes
        self.body = models.DCGANGenerator(nz=nz, ngf=ngf, nc=nc)

    def forward(self, z, y):
        return self.body(z)


class FirstLabelOnly(IgnoresY):
    """Conditions every sample on y[0]."""

    def __init__(self, nz=100, ngf=32, nc=1, n_classes=10):
        super().__init__(nz, ngf, nc, n_classes)
        self.body = models.DCGANGenerator(nz=nz + n_classes, ngf=ngf, nc=nc)

    def forward(self, z, y):
        onehot = F.one_hot(y[:1], self.n_classes).float().expand(z.shape[0], -1)
        return self.body(torch.cat([z, onehot], dim=1))


def test_conditional_generator_that_ignores_y_is_rejected():
    rejects(checks.cgan_generator, IgnoresY, "G ignores y")


def test_conditional_generator_using_one_label_for_all_is_rejected():
    rejects(checks.cgan_generator, FirstLabelOnly, "y[i]")


def test_conditional_discriminator_that_ignores_y_is_rejected():
    class DIgnoresY(nn.Module):
        def __init__(self, ndf=32, nc=1, n_classes=10):
            super().__init__()
            self.nc, self.n_classes = nc, n_classes
            self.body = models.DCGANDiscriminator(ndf=ndf, nc=nc)

        def forward(self, x, y):
            return self.body(x)

    rejects(checks.cgan_discriminator, DIgnoresY, "D ignores y")


def test_cgan_d_loss_without_detach_is_rejected():
    def not_detached(D, G, real, y, z):
        return losses.d_loss_gan(D(real, y), D(G(z, y), y))

    rejects(checks.cgan_d_loss, not_detached, "gradients into G", "detach")


def test_cgan_d_loss_with_mismatched_fake_labels_is_rejected():
    def wrong_labels(D, G, real, y, z):
        fake = G(z, y).detach()
        return losses.d_loss_gan(D(real, y), D(fake, (y + 1) % 10))

    rejects(checks.cgan_d_loss, wrong_labels, "labels other than the ones G drew")


def test_cgan_d_loss_with_random_fake_labels_is_accepted():
    def random_labels(D, G, real, y, z):
        y_fake = torch.randint(0, 10, y.shape)
        fake = G(z, y_fake).detach()
        return losses.d_loss_gan(D(real, y), D(fake, y_fake))

    assert checks.cgan_d_loss(random_labels) is random_labels


def test_cgan_d_loss_with_swapped_terms_is_rejected():
    def swapped(D, G, real, y, z):
        fake = G(z, y).detach()
        return losses.d_loss_gan(D(fake, y), D(real, y))

    rejects(checks.cgan_d_loss, swapped, "swapped")


# ----------------------------------------------------------------------------- style grid


def test_style_grid_ordered_by_style_is_rejected():
    @torch.no_grad()
    def by_style(G, n_styles=8, seed=0):
        G.eval()
        z = torch.randn(n_styles, G.nz, generator=torch.Generator().manual_seed(seed))
        z = z.repeat_interleave(G.n_classes, 0)
        y = torch.arange(G.n_classes).repeat(n_styles)
        return G(z, y)

    rejects(checks.cgan_style_grid, by_style, "one per row", "one style at a time")


def test_style_grid_in_training_mode_is_rejected():
    @torch.no_grad()
    def train_mode(G, n_styles=8, seed=0):
        G.train()
        z = torch.randn(n_styles, G.nz, generator=torch.Generator().manual_seed(seed)).repeat(G.n_classes, 1)
        return G(z, torch.arange(G.n_classes).repeat_interleave(n_styles))

    rejects(checks.cgan_style_grid, train_mode, "eval mode")


def test_style_grid_with_fresh_z_per_row_is_rejected():
    @torch.no_grad()
    def fresh(G, n_styles=8, seed=0):
        G.eval()
        z = torch.randn(G.n_classes * n_styles, G.nz, generator=torch.Generator().manual_seed(seed))
        return G(z, torch.arange(G.n_classes).repeat_interleave(n_styles))

    rejects(checks.cgan_style_grid, fresh, "z changes down a column")
