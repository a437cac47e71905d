"""Tests of labkit.models: shapes, the Linear/ConvTranspose2d equivalence, DCGAN init,
conditioning, and every bad-input error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit import models
from labkit.models import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    build_models,
    count_parameters,
    init_weights,
)

NZ, NGF, NDF = 8, 4, 4  # tiny sizes: the architecture is the same at any width


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("nc", [1, 3])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("n_classes", [0, 10])
def test_dcgan_shapes(nc: int, batch: int, n_classes: int) -> None:
    G = DCGANGenerator(nz=NZ, ngf=NGF, nc=nc, n_classes=n_classes)
    D = DCGANDiscriminator(ndf=NDF, nc=nc, n_classes=n_classes)
    y = torch.randint(0, n_classes, (batch,)) if n_classes else None
    for z in (torch.randn(batch, NZ), torch.randn(batch, NZ, 1, 1)):
        x = G(z, y)
        assert x.shape == (batch, nc, 32, 32)
        assert x.min() >= -1 and x.max() <= 1
        assert D(x, y).shape == (batch,)
    assert (G.nz, G.nc, G.n_classes) == (NZ, nc, n_classes)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_discriminator_norms(norm: str) -> None:
    D = DCGANDiscriminator(ndf=NDF, norm=norm)
    kinds = {type(m) for m in D.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch")
    assert (nn.GroupNorm in kinds) == (norm == "layer")
    assert D(torch.randn(3, 1, 32, 32)).shape == (3,)
    # no sigmoid: logits are not squeezed into [0, 1]
    assert not any(isinstance(m, nn.Sigmoid) for m in D.modules())


def test_layer_norm_critic_scores_each_sample_on_its_own() -> None:
    """A WGAN-GP critic must not mix samples: a sample's score ignores the rest of the batch."""
    x = torch.randn(4, 1, 32, 32)
    for norm, independent in (("layer", True), ("none", True), ("batch", False)):
        D = DCGANDiscriminator(ndf=NDF, norm=norm)
        alone = D(x[:1])
        together = D(x)[:1]
        assert torch.allclose(alone, together, atol=1e-5) == independent, norm


@pytest.mark.parametrize("nc", [1, 3])
@pytest.mark.parametrize("batch", [1, 5])
def test_mlp_shapes(nc: int, batch: int) -> None:
    G = MLPGenerator(nz=NZ, hidden=(16, 32), nc=nc)
    D = MLPDiscriminator(hidden=(32, 16), nc=nc)
    x = G(torch.randn(batch, NZ))
    assert x.shape == (batch, nc, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (batch,)
    assert G(torch.randn(batch, NZ, 1, 1)).shape == (batch, nc, 32, 32)


def test_mlp_norm_options() -> None:
    G = MLPGenerator(nz=NZ, hidden=(16, 32), norm="batch")
    assert sum(isinstance(m, nn.BatchNorm1d) for m in G.modules()) == 2
    assert G(torch.randn(3, NZ)).shape == (3, 1, 32, 32)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in MLPGenerator(nz=NZ, hidden=(16,)).modules())
    for norm, kind in (("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)):
        D = MLPDiscriminator(hidden=(32, 16, 8), norm=norm)
        # never on the first layer: one norm per later hidden layer
        assert sum(isinstance(m, kind) for m in D.modules()) == 2
        assert D(torch.randn(3, 1, 32, 32)).shape == (3,)


def test_default_mlp_is_the_lab2_critic() -> None:
    D = MLPDiscriminator()
    widths = [m.out_features for m in D.modules() if isinstance(m, nn.Linear)]
    assert widths == [1024, 512, 256, 1]
    assert D.main[1].in_features == 32 * 32
    G = MLPGenerator()
    assert [m.out_features for m in G.modules() if isinstance(m, nn.Linear)] == [256, 512, 1024, 1024]


def test_dcgan_layer_widths_follow_ngf_ndf() -> None:
    G = DCGANGenerator(nz=NZ, ngf=8)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(32, 16), (16, 8), (8, 1)]
    assert G.project.out_features == 8 * 4 * 16
    D = DCGANDiscriminator(ndf=8, nc=3, n_classes=10)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(13, 8), (8, 16), (16, 32), (32, 1)]


# ---------------------------------------------------------------- the fast first layer


@pytest.mark.parametrize("n_classes", [0, 10])
def test_linear_first_layer_equals_conv_transpose(n_classes: int) -> None:
    G = DCGANGenerator(nz=NZ, ngf=NGF, n_classes=n_classes)
    conv = G.as_conv_transpose()
    assert isinstance(conv, nn.ConvTranspose2d)
    assert (conv.kernel_size, conv.stride, conv.padding) == ((4, 4), (1, 1), (0, 0))
    nz_in = NZ + n_classes
    h = torch.randn(6, nz_in)
    by_linear = G.project(h).view(6, NGF * 4, 4, 4)
    by_conv = conv(h.view(6, nz_in, 1, 1))
    assert by_conv.shape == (6, NGF * 4, 4, 4)
    torch.testing.assert_close(by_linear, by_conv, rtol=1e-5, atol=1e-6)

    # and the whole generator: the classic conv path gives the same images
    G.eval()
    z = torch.randn(6, NZ)
    y = torch.randint(0, n_classes, (6,)) if n_classes else None
    classic = G.main(conv(G.latent(z, y).view(6, nz_in, 1, 1)))
    torch.testing.assert_close(G(z, y), classic, rtol=1e-5, atol=1e-6)


def test_conv_transpose_copy_is_a_copy() -> None:
    """The built layer holds copied weights, and a different weight layout would not match."""
    G = DCGANGenerator(nz=NZ, ngf=NGF)
    conv = G.as_conv_transpose()
    assert conv.weight.data_ptr() != G.project.weight.data_ptr()
    h = torch.randn(2, NZ)
    wrong = nn.ConvTranspose2d(NZ, NGF * 4, 4, 1, 0, bias=False)
    with torch.no_grad():  # a naive reshape without the transpose: not the same map
        wrong.weight.copy_(G.project.weight.reshape(NZ, NGF * 4, 4, 4))
    assert not torch.allclose(wrong(h.view(2, NZ, 1, 1)), G.project(h).view(2, NGF * 4, 4, 4))


# ---------------------------------------------------------------- initialisation


def _weights(module: nn.Module, kinds: tuple[type, ...]) -> torch.Tensor:
    return torch.cat([m.weight.detach().flatten() for m in module.modules() if isinstance(m, kinds)])


def _biases(module: nn.Module) -> list[torch.Tensor]:
    return [m.bias.detach() for m in module.modules() if getattr(m, "bias", None) is not None]


LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
NORM_LAYERS = (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)


def test_dcgan_init_statistics() -> None:
    G, D = build_models("dcgan", init="dcgan")  # default widths: ~1e5 weights each
    for net in (G, D):
        w = _weights(net, LAYERS)
        assert abs(w.mean().item()) < 0.002
        assert w.std().item() == pytest.approx(0.02, rel=0.05)
        bn = _weights(net, NORM_LAYERS)  # 224 BatchNorm scales: sampling error of the std ~5%
        assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
        assert bn.std().item() == pytest.approx(0.02, rel=0.3)
        biases = _biases(net)
        assert biases and all(torch.all(b == 0) for b in biases)
    D = DCGANDiscriminator(norm="layer")
    gn = _weights(D, (nn.GroupNorm,))
    assert gn.std().item() == pytest.approx(0.02, rel=0.3)


def test_default_init_differs_measurably() -> None:
    G, D = build_models("dcgan", init="default")
    # PyTorch's default: scales exactly 1, not N(1, 0.02)
    assert torch.all(_weights(G, NORM_LAYERS) == 1)
    # D's first conv (fan-in 1*4*4 = 16) gets U(-1/4, 1/4): std ~0.144, far from 0.02
    assert D.main[0].weight.std().item() > 0.1
    assert G.main[-2].weight.std().item() > 0.1  # G's last layer likewise
    # biases keep their nonzero default draw
    assert not torch.all(D.main[0].bias == 0)


def test_init_weights_on_any_module_and_default_is_untouched() -> None:
    net = nn.Sequential(nn.Linear(300, 400), nn.BatchNorm1d(400), nn.Conv2d(3, 64, 3))
    before = [p.clone() for p in net.parameters()]
    assert init_weights(net, "default") is net
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    init_weights(net)
    assert net[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(net[0].bias == 0) and torch.all(net[1].bias == 0)
    assert net[1].weight.mean().item() == pytest.approx(1.0, abs=0.01)


def test_no_batchnorm_eps_trap() -> None:
    """nn.BatchNorm2d(n, 0.8) sets eps = 0.8; every norm here keeps the small default eps."""
    modules = [*build_models("dcgan", n_classes=10)]
    modules += [MLPGenerator(norm="batch"), MLPDiscriminator(norm="batch"), DCGANDiscriminator(norm="layer")]
    norms = [m for net in modules for m in net.modules() if isinstance(m, NORM_LAYERS)]
    assert norms
    for m in norms:
        assert m.eps == 1e-5
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert m.momentum == 0.1


# ---------------------------------------------------------------- conditioning


def test_conditional_generator_uses_y() -> None:
    G = DCGANGenerator(nz=NZ, ngf=NGF, n_classes=10).eval()
    z = torch.randn(1, NZ).repeat(10, 1)  # one z, every class
    x = G(z, torch.arange(10))
    scale = x.abs().max()  # small at init in eval mode (fresh running stats): compare relatively
    for a in range(10):
        for b in range(a + 1, 10):
            assert (x[a] - x[b]).abs().max() > 1e-2 * scale
    # y's contribution is column y of the first layer: a learned per-class embedding
    h = G.project(G.latent(z[:2], torch.tensor([3, 7])))
    w = G.project.weight
    torch.testing.assert_close(h[0] - h[1], w[:, NZ + 3] - w[:, NZ + 7])


def test_conditional_discriminator_uses_y() -> None:
    x = torch.randn(1, 1, 32, 32).repeat(10, 1, 1, 1)  # one image, every label
    for norm in ("batch", "layer", "none"):
        D = DCGANDiscriminator(ndf=NDF, n_classes=10, norm=norm).eval()
        scores = D(x, torch.arange(10))
        gaps = (scores[:, None] - scores[None, :]).abs() + torch.eye(10)
        assert gaps.min() > 1e-3 * scores.abs().max(), norm


def test_labels_may_be_any_integer_dtype() -> None:
    G = DCGANGenerator(nz=NZ, ngf=NGF, n_classes=3).eval()
    z = torch.randn(3, NZ)
    y = torch.tensor([0, 1, 2])
    torch.testing.assert_close(G(z, y), G(z, y.to(torch.int32)))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: DCGANGenerator(nz=0), "nz"),
        (lambda: DCGANGenerator(nz=-3), "nz"),
        (lambda: DCGANGenerator(nz=2.5), "nz"),
        (lambda: DCGANGenerator(nz=True), "nz"),
        (lambda: DCGANGenerator(nz="100"), "nz"),
        (lambda: DCGANGenerator(ngf=0), "ngf"),
        (lambda: DCGANGenerator(nc=2), "nc"),
        (lambda: DCGANGenerator(n_classes=-1), "n_classes"),
        (lambda: DCGANGenerator(n_classes=1.5), "n_classes"),
        (lambda: DCGANGenerator(init="xavier"), "init"),
        (lambda: DCGANDiscriminator(ndf=0), "ndf"),
        (lambda: DCGANDiscriminator(ndf=-1), "ndf"),
        (lambda: DCGANDiscriminator(nc=4), "nc"),
        (lambda: DCGANDiscriminator(n_classes=-2), "n_classes"),
        (lambda: DCGANDiscriminator(init="he"), "init"),
        (lambda: DCGANDiscriminator(norm="instance"), "norm"),
        (lambda: MLPGenerator(nz=0), "nz"),
        (lambda: MLPGenerator(hidden=()), "hidden"),
        (lambda: MLPGenerator(hidden=(16, 0)), "hidden"),
        (lambda: MLPGenerator(hidden=16), "hidden"),
        (lambda: MLPGenerator(nc=2), "nc"),
        (lambda: MLPGenerator(norm="layer"), "norm"),
        (lambda: MLPGenerator(init="x"), "init"),
        (lambda: MLPDiscriminator(hidden=[]), "hidden"),
        (lambda: MLPDiscriminator(hidden=(-5,)), "hidden"),
        (lambda: MLPDiscriminator(norm="group"), "norm"),
        (lambda: MLPDiscriminator(nc=0), "nc"),
        (lambda: build_models("resnet"), "model"),
        (lambda: build_models("dcgan", critic_norm="weird"), "critic_norm"),
        (lambda: build_models("dcgan", ndf=0), "ndf"),
        (lambda: build_models("mlp", n_classes=10), "n_classes"),
        (lambda: init_weights(nn.Linear(2, 2), "orthogonal"), "init"),
    ],
)
def test_bad_construction_arguments(make, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        make()


def test_messages_list_accepted_values() -> None:
    with pytest.raises(ValueError, match=r"init must be one of \('dcgan', 'default'\), got 'xavier'"):
        DCGANGenerator(init="xavier")
    with pytest.raises(ValueError, match=r"norm must be one of \('batch', 'layer', 'none'\)"):
        DCGANDiscriminator(norm="instance")
    with pytest.raises(ValueError, match=r"nc must be 1 \(MNIST\) or 3 \(CIFAR-10\), got 2"):
        DCGANGenerator(nc=2)
    with pytest.raises(ValueError, match=r"model must be one of \('dcgan', 'mlp'\)"):
        build_models("gan")


def test_bad_labels() -> None:
    G = DCGANGenerator(nz=NZ, ngf=NGF, n_classes=10)
    D = DCGANDiscriminator(ndf=NDF, n_classes=10)
    z, x = torch.randn(3, NZ), torch.randn(3, 1, 32, 32)
    for net, inp in ((G, z), (D, x)):
        with pytest.raises(ValueError, match=r"y is required.*n_classes=10.*\[0, 10\)"):
            net(inp)
        with pytest.raises(ValueError, match=r"y must be in \[0, 10\).*\[-1, 12\]"):
            net(inp, torch.tensor([-1, 12, 3]))
        with pytest.raises(ValueError, match=r"y must be in \[0, 10\).*\[10\]"):
            net(inp, torch.tensor([10, 0, 0]))
        with pytest.raises(ValueError, match=r"y must have shape \(B,\) = \(3,\), got \(2,\)"):
            net(inp, torch.tensor([1, 2]))
        with pytest.raises(ValueError, match=r"y must be an integer tensor"):
            net(inp, torch.tensor([1.0, 2.0, 3.0]))
        with pytest.raises(ValueError, match=r"y must be a torch tensor"):
            net(inp, [1, 2, 3])
    unconditional = [
        (DCGANGenerator(nz=NZ, ngf=NGF), z),
        (DCGANDiscriminator(ndf=NDF), x),
        (MLPGenerator(nz=NZ, hidden=(8,)), z),
        (MLPDiscriminator(hidden=(8,)), x),
    ]
    for net, inp in unconditional:
        with pytest.raises(ValueError, match=r"y must be None.*n_classes=0"):
            net(inp, torch.tensor([0, 1, 2]))


def test_bad_latent_and_image_shapes() -> None:
    for G in (DCGANGenerator(nz=NZ, ngf=NGF), MLPGenerator(nz=NZ, hidden=(8,))):
        for z in (torch.randn(3, NZ + 1), torch.randn(NZ), torch.randn(3, NZ, 2, 2), torch.randn(0, NZ)):
            with pytest.raises(ValueError, match=rf"z must have shape \(B, {NZ}\) or \(B, {NZ}, 1, 1\)"):
                G(z)
        with pytest.raises(ValueError, match=r"z must be a torch tensor"):
            G([[0.0] * NZ])
    for D in (DCGANDiscriminator(ndf=NDF), MLPDiscriminator(hidden=(8,))):
        for x in (torch.randn(3, 3, 32, 32), torch.randn(3, 1, 28, 28), torch.randn(1, 32, 32)):
            with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 32, 32\)"):
                D(x)


def test_validation_happens_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad argument fails before any layer is built (so before any memory is spent)."""

    def built(*args, **kwargs):
        raise AssertionError("a module was built before the arguments were checked")

    monkeypatch.setattr(nn.Module, "__init__", built)
    with pytest.raises(ValueError, match="^init "):
        DCGANGenerator(nz=10_000, ngf=4096, init="bad")
    with pytest.raises(ValueError, match="^norm "):
        DCGANDiscriminator(ndf=4096, norm="bad")
    with pytest.raises(ValueError, match="^hidden "):
        MLPGenerator(hidden=(0,))
    with pytest.raises(ValueError, match="^ndf "):
        build_models("dcgan", ndf=0)
    with pytest.raises(ValueError, match="^critic_norm "):
        build_models("mlp", critic_norm="bad")


# ---------------------------------------------------------------- helpers


def test_build_models() -> None:
    assert models.MODELS == ("dcgan", "mlp")
    G, D = build_models("dcgan", nz=NZ, ngf=NGF, ndf=NDF, nc=3, n_classes=4, critic_norm="layer")
    assert isinstance(G, DCGANGenerator) and isinstance(D, DCGANDiscriminator)
    assert (G.nz, G.ngf, G.nc, G.n_classes) == (NZ, NGF, 3, 4)
    assert (D.ndf, D.nc, D.n_classes, D.norm) == (NDF, 3, 4, "layer")
    y = torch.tensor([0, 3])
    assert D(G(torch.randn(2, NZ), y), y).shape == (2,)

    G, D = build_models("mlp", nz=NZ, nc=3, critic_norm="none", init="default")
    assert isinstance(G, MLPGenerator) and isinstance(D, MLPDiscriminator)
    assert (G.nz, G.nc, G.n_classes, D.nc, D.norm) == (NZ, 3, 0, 3, "none")
    assert D(G(torch.randn(2, NZ))).shape == (2,)


def test_count_parameters() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1, bias=False))
    assert count_parameters(net) == 3 * 4 + 4 + 4
    net[0].weight.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 4 + 4
    assert count_parameters(net) == 20
    # the default DCGAN pair, counted by hand from the layer sizes
    G, D = build_models("dcgan")
    g = 100 * 128 * 16 + 2 * 128 + 128 * 64 * 16 + 2 * 64 + 64 * 32 * 16 + 2 * 32 + 32 * 1 * 16 + 1
    d = (1 * 32 * 16 + 32) + 32 * 64 * 16 + 2 * 64 + 64 * 128 * 16 + 2 * 128 + (128 * 16 + 1)
    assert count_parameters(G) == g
    assert count_parameters(D) == d


def test_models_train_one_step() -> None:
    """Gradients reach every parameter of G through D (nothing is accidentally detached)."""
    G, D = build_models("dcgan", nz=NZ, ngf=NGF, ndf=NDF, n_classes=3)
    y = torch.tensor([0, 1, 2, 1])
    D(G(torch.randn(4, NZ), y), y).mean().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
