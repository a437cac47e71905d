"""labkit.checks.wgan: the references pass, NotImplementedError falls back on them, and the
usual wrong answers for the critic loss, clipping and the gradient penalty are rejected with
a message that names the mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import losses, models
from labkit.checks import wgan

from exercise_helpers import rejects

CASES = [
    (wgan.wgan_critic_loss, losses.d_loss_wgan),
    (wgan.wgan_clip, wgan.reference_clip_weights),
    (wgan.wgan_gradient_penalty, wgan.reference_gradient_penalty),
]
IDS = [check.__name__ for check, _ in CASES]


def not_done(*args, **kwargs):
    raise NotImplementedError("exercise x: not done yet — replace this line with your code")


# ----------------------------------------------------------------------------- the two easy outcomes


@pytest.mark.parametrize("check, reference", CASES, ids=IDS)
def test_reference_passes_and_is_returned(check, reference, capsys):
    assert check(reference) is reference
    out = capsys.readouterr().out
    assert ": passed." in out and "not done" not in out


@pytest.mark.parametrize("check, reference", CASES, ids=IDS)
def test_not_implemented_falls_back_to_reference(check, reference, capsys):
    assert check(not_done) is reference
    out = capsys.readouterr().out
    assert "not done yet: continuing with labkit's reference" in out
    assert reference.__qualname__ in out


@pytest.mark.parametrize("check, reference", CASES, ids=IDS)
def test_output_is_the_same_every_time_and_the_random_state_is_kept(check, reference, capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check(reference)
    first = capsys.readouterr().out
    assert torch.equal(torch.rand(3), expected)
    check(reference)
    assert capsys.readouterr().out == first


def test_the_references_are_what_training_does():
    critic = models.MLPDiscriminator(hidden=(8,), norm="none")
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(100)
    wgan.reference_clip_weights(critic, 0.02)
    assert all(float(p.detach().abs().max()) <= 0.02 for p in critic.parameters())
    real, fake = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32)
    torch.manual_seed(0)
    ours = wgan.reference_gradient_penalty(critic, real, fake)
    torch.manual_seed(0)
    theirs, _ = losses.gradient_penalty(critic, real, fake)
    assert torch.equal(ours, theirs)


# ----------------------------------------------------------------------------- critic loss


def test_critic_loss_with_flipped_sign_is_rejected():
    message = rejects(wgan.wgan_critic_loss, lambda r, f: r.mean() - f.mean(), "-1.5000", "1.5000")
    assert "sign is flipped" in message


def test_critic_loss_that_is_the_generator_loss_is_rejected():
    rejects(wgan.wgan_critic_loss, lambda r, f: -f.mean(), "G's loss")


def test_critic_loss_with_the_gan_cross_entropy_is_rejected():
    rejects(wgan.wgan_critic_loss, losses.d_loss_gan, "no sigmoid")


def test_critic_loss_summed_over_the_batch_is_rejected():
    rejects(wgan.wgan_critic_loss, lambda r, f: f.sum() - r.sum(), "sum")


def test_critic_loss_pairing_the_samples_is_rejected():
    message = rejects(wgan.wgan_critic_loss, lambda r, f: (f - r).mean(), "different sizes")
    assert "separately" in message


def test_critic_loss_with_a_sigmoid_is_rejected():
    rejects(wgan.wgan_critic_loss, lambda r, f: torch.sigmoid(f).mean() - torch.sigmoid(r).mean(), "wrong value")


def test_critic_loss_that_leaves_torch_is_rejected():
    rejects(wgan.wgan_critic_loss, lambda r, f: torch.tensor((f.mean() - r.mean()).item()), "not connected")


def test_critic_loss_with_clamped_scores_is_rejected():
    # right on the known scores (all within [-5, 5]) but the gradient dies on large ones
    def clamped(r, f):
        return f.clamp(-3, 3).mean() - r.clamp(-3, 3).mean()

    rejects(wgan.wgan_critic_loss, clamped, "gradient", "-0.125")


# ----------------------------------------------------------------------------- clipping


def clip_without_no_grad(critic, c):
    for p in critic.parameters():
        p.clamp_(-c, c)


def clip_rebinding(critic, c):
    for p in critic.parameters():
        p = p.clamp(-c, c)  # noqa: F841 — the bug: rebinding the loop variable


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
def clip_by_rescaling(critic, c):
    for p in critic.parameters():
        p.mul_(c / p.abs().max().clamp_min(c))


@torch.no_grad()
def clip_new_parameters(critic, c):
    for module in critic.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(p.clamp(-c, c)))


@torch.no_grad()
def clip_fixed_c(critic, c):
    for p in critic.parameters():
        p.clamp_(-0.01, 0.01)


@torch.no_grad()
def clip_to_zero(critic, c):
    for p in critic.parameters():
        p[p.abs() > c] = 0


def test_clip_without_no_grad_is_explained():
    rejects(wgan.wgan_clip, clip_without_no_grad, "in place while autograd", "torch.no_grad()")


def test_clip_rebinding_the_loop_variable_is_rejected():
    rejects(wgan.wgan_clip, clip_rebinding, "changed nothing", "rebinds")


def test_clip_leaving_out_biases_is_rejected():
    rejects(wgan.wgan_clip, clip_weights_only, "still outside")


def test_clip_of_the_state_dict_is_rejected_for_its_buffers():
    rejects(wgan.wgan_clip, clip_state_dict, "buffer", "running")


def test_clip_by_rescaling_is_rejected():
    rejects(wgan.wgan_clip, clip_by_rescaling, "inside", "rescaled")


def test_clip_creating_new_parameters_is_rejected():
    rejects(wgan.wgan_clip, clip_new_parameters, "new tensors", "optimiser")


def test_clip_ignoring_c_is_rejected():
    rejects(wgan.wgan_clip, clip_fixed_c, "0.05")


def test_clip_zeroing_instead_of_clamping_is_rejected():
    rejects(wgan.wgan_clip, clip_to_zero, "nearest end")


def test_clip_via_data_is_accepted():
    def via_data(critic, c):
        for p in critic.parameters():
            p.data.clamp_(-c, c)

    assert wgan.wgan_clip(via_data) is via_data


# ----------------------------------------------------------------------------- gradient penalty


def penalty_with(norm, eps_shape=None, square=True, one_sided=False, create_graph=True, scale=1.0, reduce="mean"):
    """A configurable penalty: norm(grad) -> (B, ...) norms; the other switches make the classic bugs."""

    def gp(critic, real, fake):
        shape = eps_shape(real) if eps_shape is not None else (real.shape[0],) + (1,) * (real.dim() - 1)
        eps = torch.rand(shape)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=create_graph)
        n = norm(grad)
        gap = (n - 1).clamp_min(0) if one_sided else (n - 1)
        value = gap ** 2 if square else gap.abs()
        return scale * (value.mean() if reduce == "mean" else value.sum())

    return gp


def test_a_correct_penalty_written_differently_is_accepted():
    gp = penalty_with(lambda g: g.view(g.shape[0], -1).norm(2, dim=1))
    assert wgan.wgan_gradient_penalty(gp) is gp


@pytest.mark.parametrize("dim, words", [(1, "dim 1"), (2, "dim 2"), (3, "dim 3")])
def test_penalty_with_the_norm_over_one_dimension_is_rejected_and_named(dim, words):
    message = rejects(wgan.wgan_gradient_penalty, penalty_with(lambda g: g.norm(2, dim=dim)), words, "flatten(1)")
    assert "||w|| = 1" in message


def test_penalty_with_one_norm_for_the_whole_batch_is_rejected():
    rejects(wgan.wgan_gradient_penalty, penalty_with(lambda g: g.norm()), "whole batch")


def test_penalty_with_the_squared_norm_is_rejected():
    rejects(wgan.wgan_gradient_penalty, penalty_with(lambda g: g.flatten(1).pow(2).sum(1)), "squared norm")


def test_one_sided_penalty_is_rejected():
    rejects(wgan.wgan_gradient_penalty, penalty_with(lambda g: g.flatten(1).norm(dim=1), one_sided=True), "one-sided")


def test_penalty_with_lambda_inside_is_rejected():
    rejects(wgan.wgan_gradient_penalty, penalty_with(lambda g: g.flatten(1).norm(dim=1), scale=10.0), "lambda")


def test_penalty_summed_over_the_batch_is_rejected():
    rejects(wgan.wgan_gradient_penalty, penalty_with(lambda g: g.flatten(1).norm(dim=1), reduce="sum"), "sum")


def test_penalty_without_the_square_is_rejected():
    rejects(wgan.wgan_gradient_penalty, penalty_with(lambda g: g.flatten(1).norm(dim=1), square=False), "square")


def test_penalty_with_eps_per_pixel_is_rejected():
    gp = penalty_with(lambda g: g.flatten(1).norm(dim=1), eps_shape=lambda real: real.shape)
    rejects(gp_check := wgan.wgan_gradient_penalty, gp, "pixel", "(B, 1, 1, 1)")
    assert gp_check is wgan.wgan_gradient_penalty


def test_penalty_with_one_eps_for_the_batch_is_rejected():
    gp = penalty_with(lambda g: g.flatten(1).norm(dim=1), eps_shape=lambda real: (1,))
    rejects(wgan.wgan_gradient_penalty, gp, "same eps")


def test_penalty_with_gaussian_eps_is_rejected():
    def gp(critic, real, fake):
        eps = torch.randn(real.shape[0], 1, 1, 1)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    rejects(wgan.wgan_gradient_penalty, gp, "between real and fake", "torch.rand")


def test_penalty_on_the_real_batch_only_is_rejected():
    def gp(critic, real, fake):
        x = real.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    rejects(wgan.wgan_gradient_penalty, gp, "never called on interpolates")


def test_penalty_without_create_graph_is_rejected():
    gp = penalty_with(lambda g: g.flatten(1).norm(dim=1), create_graph=False)
    rejects(wgan.wgan_gradient_penalty, gp, "not connected", "create_graph=True")


def test_penalty_without_requires_grad_is_explained():
    def gp(critic, real, fake):
        eps = torch.rand(real.shape[0], 1, 1, 1)
        x_hat = eps * real + (1 - eps) * fake
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    rejects(wgan.wgan_gradient_penalty, gp, "requires_grad")


def test_penalty_of_the_parameters_gradient_is_rejected():
    def gp(critic, real, fake):
        eps = torch.rand(real.shape[0], 1, 1, 1)
        x_hat = eps * real + (1 - eps) * fake
        grads = torch.autograd.grad(critic(x_hat).sum(), list(critic.parameters()), create_graph=True,
                                    allow_unused=True)
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None))
        return (norm - 1) ** 2

    rejects(wgan.wgan_gradient_penalty, gp, "wrong penalty")


def test_penalty_returning_per_sample_values_is_rejected():
    def gp(critic, real, fake):
        eps = torch.rand(real.shape[0], 1, 1, 1)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1) ** 2

    rejects(wgan.wgan_gradient_penalty, gp, "one number", ".mean()")


def test_penalty_with_a_leaky_critic_call_still_checks_the_mlp():
    # a penalty that is right for linear critics but wrong in general: it uses the critic's
    # gradient at the fake batch instead of at x_hat (the same for a linear critic)
    def gp(critic, real, fake):
        eps = torch.rand(real.shape[0], 1, 1, 1)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        critic(x_hat)
        x = fake.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.softplus(critic(x)).sum() * 0 + critic(x).sum(), x, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    rejects(wgan.wgan_gradient_penalty, gp, "small MLP critic")
