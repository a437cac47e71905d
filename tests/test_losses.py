"""Tests of labkit.losses on values known by hand, at extreme logits, and the gradient penalty
on critics whose gradient norm is known exactly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labkit import losses
from labkit.losses import (
    LOSSES,
    d_loss_gan,
    d_loss_wgan,
    g_loss_minimax,
    g_loss_nonsaturating,
    g_loss_wgan,
    gradient_penalty,
)
from labkit.models import DCGANDiscriminator

LOG2 = math.log(2.0)


def test_loss_names() -> None:
    assert LOSSES == ("gan", "gan-minimax", "wgan", "wgan-gp")


def test_gan_losses_at_equilibrium() -> None:
    """Logits 0 mean D = 1/2 everywhere (the Nash equilibrium)."""
    zeros = torch.zeros(7)
    assert d_loss_gan(zeros, torch.zeros(3)).item() == pytest.approx(2 * LOG2)
    assert g_loss_nonsaturating(zeros).item() == pytest.approx(LOG2)
    assert g_loss_minimax(zeros).item() == pytest.approx(-LOG2)
    for loss in (d_loss_gan(zeros, zeros), g_loss_nonsaturating(zeros), g_loss_minimax(zeros)):
        assert loss.dim() == 0


def test_gan_losses_match_the_equations() -> None:
    real = torch.tensor([2.0, -1.0, 0.5, 3.0])
    fake = torch.tensor([-2.0, 0.3, 1.5])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    # (7) negated: -(E log D(x) + E log(1 - D(G(z))))
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    torch.testing.assert_close(d_loss_gan(real, fake), expected_d)
    # and equal to PyTorch's BCE with targets 1 for real, 0 for fake
    bce = nn.functional.binary_cross_entropy_with_logits
    torch.testing.assert_close(d_loss_gan(real, fake),
                               bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(g_loss_nonsaturating(fake), -torch.log(d_fake).mean())  # (6) negated
    torch.testing.assert_close(g_loss_minimax(fake), torch.log(1 - d_fake).mean())  # G's part of (5)


def test_gan_losses_stay_finite_at_extreme_logits() -> None:
    big = torch.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    for loss in (d_loss_gan(big, big), g_loss_nonsaturating(big), g_loss_minimax(big)):
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, big)
        assert torch.isfinite(grad).all()
    # a perfect D costs ~0; a perfectly fooled one costs ~|logit|, not inf
    assert d_loss_gan(torch.full((2,), 1e4), torch.full((2,), -1e4)).item() == pytest.approx(0.0, abs=1e-6)
    assert d_loss_gan(torch.full((2,), -1e4), torch.full((2,), 1e4)).item() == pytest.approx(2e4)
    assert g_loss_nonsaturating(torch.full((3,), -1e4)).item() == pytest.approx(1e4)
    assert g_loss_minimax(torch.full((3,), 1e4)).item() == pytest.approx(-1e4)


def test_generator_gradients_saturate_only_for_minimax() -> None:
    """Lab question 3: when D rejects fakes (very negative logits), log(1 - D(G(z))) gives G no
    gradient while -log D(G(z)) still gives ~1 per sample. Both push the logits up."""
    logits = torch.full((4,), -10.0, requires_grad=True)
    (g_mm,) = torch.autograd.grad(g_loss_minimax(logits), logits)
    (g_ns,) = torch.autograd.grad(g_loss_nonsaturating(logits), logits)
    n = logits.numel()
    # d/dl mean log(1 - sigmoid(l)) = -sigmoid(l)/n ; d/dl mean softplus(-l) = -sigmoid(-l)/n
    torch.testing.assert_close(g_mm, torch.full((4,), -torch.sigmoid(torch.tensor(-10.0)).item() / n))
    torch.testing.assert_close(g_ns, torch.full((4,), -torch.sigmoid(torch.tensor(10.0)).item() / n))
    assert (g_mm.abs() * n).max() < 1e-4  # saturated
    assert (g_ns.abs() * n).min() > 0.999  # ~1
    assert (g_mm < 0).all() and (g_ns < 0).all()  # same direction: descent raises the logits
    # once D is fooled (logits very positive) the roles swap
    logits = torch.full((4,), 10.0, requires_grad=True)
    (g_mm,) = torch.autograd.grad(g_loss_minimax(logits), logits)
    (g_ns,) = torch.autograd.grad(g_loss_nonsaturating(logits), logits)
    assert (g_mm.abs() * n).min() > 0.999 and (g_ns.abs() * n).max() < 1e-4


def test_wasserstein_losses_on_known_numbers() -> None:
    real = torch.tensor([1.0, 2.0, 3.0])  # mean 2
    fake = torch.tensor([-1.0, 0.0, 4.0, 1.0])  # mean 1
    assert d_loss_wgan(real, fake).item() == pytest.approx(1.0 - 2.0)
    assert g_loss_wgan(fake).item() == pytest.approx(-1.0)
    assert d_loss_wgan(real, fake).dim() == 0 and g_loss_wgan(fake).dim() == 0
    assert d_loss_wgan(real, real).item() == 0.0


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: d_loss_gan(torch.zeros(0), torch.zeros(2)), "real_logits"),
        (lambda: d_loss_gan(torch.zeros(2), [0.0]), "fake_logits"),
        (lambda: g_loss_nonsaturating(torch.zeros(2, dtype=torch.long)), "fake_logits"),
        (lambda: g_loss_minimax(torch.zeros(0)), "fake_logits"),
        (lambda: d_loss_wgan(torch.zeros(2), torch.zeros(0)), "fake_scores"),
        (lambda: d_loss_wgan(None, torch.zeros(2)), "real_scores"),
        (lambda: g_loss_wgan(torch.zeros(0)), "fake_scores"),
    ],
)
def test_bad_scores(call, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        call()


# ---------------------------------------------------------------- gradient penalty


class LinearCritic(nn.Module):
    """f(x) = <w, x> summed over all of a sample's dimensions: its gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def _images(b: int = 6, shape: tuple[int, ...] = (3, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, *shape), torch.randn(b, *shape)


def test_gradient_penalty_is_zero_for_a_1_lipschitz_linear_critic() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8)
    critic = LinearCritic(w / w.norm())  # ||w|| = 1 over C x H x W
    real, fake = _images()
    penalty, norm = gradient_penalty(critic, real, fake)
    assert penalty.dim() == 0 and norm.dim() == 0
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)
    assert norm.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("scale", [0.25, 3.0])
def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared(scale: float) -> None:
    torch.manual_seed(1)
    w = torch.randn(3, 8, 8)
    critic = LinearCritic(scale * w / w.norm())
    real, fake = _images()
    penalty, norm = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((scale - 1) ** 2, rel=1e-5)
    assert norm.item() == pytest.approx(scale, rel=1e-5)
    # create_graph=True: the penalty trains the critic, d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    penalty.backward()
    expected = 2 * (scale - 1) * critic.w.detach() / scale
    torch.testing.assert_close(critic.w.grad, expected, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_norm_is_per_sample_over_all_dims() -> None:
    """The norm is over C x H x W of each sample; one axis only (a known public bug) is wrong."""
    torch.manual_seed(2)
    w = torch.randn(3, 8, 8)
    w = w / w.norm()
    critic = LinearCritic(w)
    real, fake = _images()
    penalty, norm = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)
    # what the buggy norm over dim=1 (channels) would have given: far from 0
    grad = w.expand(6, 3, 8, 8)
    buggy = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    assert buggy.item() > 0.5

    # a nonlinear critic with a different gradient per sample: f(x) = ||x||^2 / 2, grad = x_hat
    class Half(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * (x ** 2).flatten(1).sum(1)

    gen = torch.Generator().manual_seed(7)
    penalty, norm = gradient_penalty(Half(), real, fake, generator=gen)
    eps = torch.rand((6, 1, 1, 1), generator=torch.Generator().manual_seed(7))
    x_hat = eps * real + (1 - eps) * fake
    per_sample = x_hat.flatten(1).norm(dim=1)
    torch.testing.assert_close(penalty, ((per_sample - 1) ** 2).mean())
    torch.testing.assert_close(norm, per_sample.mean())


def test_gradient_penalty_eps_per_sample_uniform_and_repeatable() -> None:
    """With real = 1 and fake = 0, x_hat = eps: a critic that records its input reveals eps."""

    class Half(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * (x ** 2).flatten(1).sum(1)

    b, d = 2000, 4
    real, fake = torch.ones(b, d), torch.zeros(b, d)
    seen = {}

    class Spy(Half):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen["x_hat"] = x.detach().clone()
            return super().forward(x)

    p1, _ = gradient_penalty(Spy(), real, fake, generator=torch.Generator().manual_seed(3))
    x_hat = seen["x_hat"]
    eps = x_hat[:, 0]
    assert torch.equal(x_hat, eps[:, None].expand(b, d))  # one eps per sample, shared by its dims
    assert eps.min() >= 0 and eps.max() <= 1
    assert eps.mean().item() == pytest.approx(0.5, abs=0.03)  # U[0, 1]: mean 1/2, var 1/12
    assert eps.var().item() == pytest.approx(1 / 12, rel=0.1)
    p2, _ = gradient_penalty(Spy(), real, fake, generator=torch.Generator().manual_seed(3))
    assert torch.equal(p1, p2)
    p3, _ = gradient_penalty(Spy(), real, fake, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(p1, p3)


def test_gradient_penalty_does_not_train_the_generator() -> None:
    torch.manual_seed(3)
    source = nn.Parameter(torch.randn(4, 3, 8, 8))
    fake = source * 2  # as if produced by G

    class Quadratic(nn.Module):  # f(x) = a ||x||^2 / 2: grad_x f = a x depends on x_hat, so on fake
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.tensor(0.3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * self.a * (x ** 2).flatten(1).sum(1)

    critic = Quadratic()
    penalty, _ = gradient_penalty(critic, torch.randn(4, 3, 8, 8), fake)
    penalty.backward()
    assert source.grad is None
    assert critic.a.grad is not None and critic.a.grad.abs() > 0


def test_gradient_penalty_with_a_conditional_dcgan_critic() -> None:
    torch.manual_seed(4)
    critic = DCGANDiscriminator(ndf=4, nc=1, n_classes=10, norm="layer")
    real, fake = torch.randn(3, 1, 32, 32), torch.randn(3, 1, 32, 32)
    y = torch.tensor([1, 5, 9])
    penalty, norm = gradient_penalty(critic, real, fake, y=y)
    assert torch.isfinite(penalty) and norm.item() > 0
    penalty.backward()
    for name, p in critic.named_parameters():
        if name.endswith("weight"):  # every weight shapes grad_x f, so the penalty trains it
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # the last bias shifts f without changing grad_x f: the penalty gives it no gradient
    assert critic.main[-1].bias.grad is None
    with pytest.raises(ValueError, match="y is required"):
        gradient_penalty(critic, real, fake)


def test_gradient_penalty_bad_input() -> None:
    critic = LinearCritic(torch.ones(3, 8, 8))
    with pytest.raises(ValueError, match="real and fake must have the same shape"):
        gradient_penalty(critic, torch.randn(2, 3, 8, 8), torch.randn(3, 3, 8, 8))
    with pytest.raises(ValueError, match="real and fake must be torch tensors"):
        gradient_penalty(critic, torch.randn(2, 3, 8, 8), None)
    with pytest.raises(ValueError, match="real must be a floating-point tensor"):
        gradient_penalty(critic, torch.zeros(2, 3, 8, 8, dtype=torch.long), torch.zeros(2, 3, 8, 8, dtype=torch.long))


def test_module_exports() -> None:
    for name in ("d_loss_gan", "g_loss_nonsaturating", "g_loss_minimax", "d_loss_wgan", "g_loss_wgan",
                 "gradient_penalty"):
        assert callable(getattr(losses, name))
