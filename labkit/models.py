"""The networks of the labs: DCGAN G and D (conditional or not), MLP G and D, DCGAN init.

Every image is 32x32 (MNIST padded from 28x28, or CIFAR-10) with ``nc`` channels in
[-1, 1]. Every discriminator returns raw logits of shape (B,): no sigmoid, because the
loss decides what a score means (BCE for a GAN, a plain mean for a WGAN critic).

Each layer carries a shape comment, as in the classic DCGAN example, so the
architecture reads top to bottom. Conditioning (``n_classes > 0``) follows the lab:
the label joins z as a one-hot vector in G, and joins the image as one-hot channels in D.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("dcgan", "mlp")
INITS = ("dcgan", "default")
NORMS = ("batch", "layer", "none")
G_NORMS = ("batch", "none")  # the MLP generator's choices
IMAGE_SIZE = 32
CHANNELS = (1, 3)


# ----------------------------------------------------------------------------------------
# Argument checks: each raises ValueError naming the parameter and what it accepts.


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_nc(nc: object) -> None:
    if isinstance(nc, bool) or nc not in CHANNELS:
        raise ValueError(f"nc must be 1 (MNIST) or 3 (CIFAR-10), got {nc!r}")


def _check_n_classes(n_classes: object) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 0:
        raise ValueError(f"n_classes must be an int >= 0 (0 = unconditional), got {n_classes!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_hidden(hidden: object) -> tuple[int, ...]:
    ok = isinstance(hidden, Sequence) and not isinstance(hidden, str) and len(hidden) > 0
    if ok:
        ok = all(not isinstance(h, bool) and isinstance(h, numbers.Integral) and h > 0 for h in hidden)
    if not ok:
        raise ValueError(f"hidden must be a non-empty sequence of positive ints, e.g. (256, 512), got {hidden!r}")
    return tuple(int(h) for h in hidden)


def _check_labels(y: torch.Tensor | None, n_classes: int, batch: int, who: str) -> torch.Tensor | None:
    """Validate class labels against a model's n_classes; return them as int64 (or None)."""
    if n_classes == 0:
        if y is not None:
            raise ValueError(f"y must be None: this {who} is unconditional (n_classes=0); "
                             "build it with n_classes > 0 to pass labels")
        return None
    if y is None:
        raise ValueError(f"y is required: this {who} is conditional (n_classes={n_classes}); "
                         f"pass class labels of shape (B,) with values in [0, {n_classes})")
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"y must be a torch tensor of class labels, got {type(y).__name__}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"y must be an integer tensor of class labels (e.g. torch.long), got {y.dtype}")
    if tuple(y.shape) != (batch,):
        raise ValueError(f"y must have shape (B,) = ({batch},), got {tuple(y.shape)}")
    bad = (y < 0) | (y >= n_classes)
    if bool(bad.any()):
        offending = sorted(set(y[bad].tolist()))
        raise ValueError(f"y must be in [0, {n_classes}) (n_classes={n_classes}), got values {offending[:10]}")
    return y.long()


def _flat_latent(z: torch.Tensor, nz: int) -> torch.Tensor:
    """Accept z as (B, nz) or (B, nz, 1, 1) (the classic DCGAN noise shape); return (B, nz)."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"z must be a torch tensor of shape (B, {nz}) or (B, {nz}, 1, 1), got {type(z).__name__}")
    shape = tuple(z.shape)
    if len(shape) == 2 and shape[1] == nz and shape[0] > 0:
        return z
    if len(shape) == 4 and shape[1:] == (nz, 1, 1) and shape[0] > 0:
        return z.flatten(1)
    raise ValueError(f"z must have shape (B, {nz}) or (B, {nz}, 1, 1) with B >= 1, got {shape}")


def _check_images(x: torch.Tensor, nc: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch tensor of shape (B, {nc}, 32, 32), got {type(x).__name__}")
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[1:] != (nc, IMAGE_SIZE, IMAGE_SIZE) or shape[0] == 0:
        raise ValueError(f"x must have shape (B, {nc}, 32, 32) with B >= 1, got {shape}")


# ----------------------------------------------------------------------------------------
# Conditioning: how a label joins the input (lab 1's cGAN exercises write these themselves;
# the grader hides them, one at a time, while it scores those exercises)


def join_label(z: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """z (B, nz) joined with one-hot(y): (B, nz + n_classes), the conditional G's first input."""
    onehot = F.one_hot(y.to(z.device), n_classes).to(z.dtype)
    return torch.cat([z, onehot], dim=1)


def join_label_maps(x: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Images (B, nc, H, W) joined with one map per class (channel y all ones): (B, nc + n_classes, H, W)."""
    onehot = F.one_hot(y.to(x.device), n_classes).to(x.dtype)
    maps = onehot[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    return torch.cat([x, maps], dim=1)


# ----------------------------------------------------------------------------------------
# Initialisation


_NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@torch.no_grad()
def init_weights(module: nn.Module, init: str = "dcgan") -> nn.Module:
    """Apply DCGAN's initialisation (Radford et al. 2016) to every layer of ``module``.

    ``init="dcgan"``: conv, transposed-conv and linear weights ~ N(0, 0.02), their biases 0;
    normalisation layers' scales ~ N(1, 0.02) and shifts 0 (the part public code often
    forgets). ``init="default"`` keeps PyTorch's own initialisation (an ablation of lab 1).
    Returns the module so the call can be chained.
    """
    _check_choice("init", init, INITS)
    if init == "default":
        return module
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORM_LAYERS):
            if getattr(m, "weight", None) is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    return module


def _norm2d(norm: str, channels: int) -> nn.Module:
    """A 2-d normalisation layer. Default eps and momentum on purpose: ``nn.BatchNorm2d(n, 0.8)``
    in public code sets eps = 0.8, not momentum."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    # "layer": GroupNorm with one group normalises each sample over all of (C, H, W), like
    # LayerNorm, but keeps one scale/shift per channel (as BatchNorm does) instead of one per
    # pixel. No statistics cross the batch, so each critic output depends on its own input
    # only, which the WGAN-GP gradient penalty assumes.
    return nn.GroupNorm(1, channels)


# ----------------------------------------------------------------------------------------
# DCGAN


class DCGANGenerator(nn.Module):
    """DCGAN generator for 32x32 images: z (and a label) -> image in [-1, 1].

    The first layer is ``project``, a Linear(nz_in, ngf*4*16) reshaped to (ngf*4) x 4 x 4.
    It is the very map of the classic ConvTranspose2d(nz_in, ngf*4, 4, 1, 0) on a 1x1 input
    (``as_conv_transpose()`` builds that layer with the same weights), and on a CPU it runs
    several times faster.

    Conditioning (n_classes > 0): the one-hot label is joined to z, so nz_in = nz + n_classes.
    A one-hot vector entering ``project`` adds column y of its weight to the 4x4 maps: the
    first layer already *is* a learned label embedding of size ngf*4*16, so an extra
    nn.Embedding would add parameters and nothing expressive. One-hot entries are also on
    the scale of z ~ N(0, 1), whereas an embedding under DCGAN's N(0, 0.02) init would
    start out nearly invisible next to z.
    """

    def __init__(self, nz: int = 100, ngf: int = 32, nc: int = 1, n_classes: int = 0, init: str = "dcgan") -> None:
        _check_positive_int("nz", nz)
        _check_positive_int("ngf", ngf)
        _check_nc(nc)
        _check_n_classes(n_classes)
        _check_choice("init", init, INITS)
        super().__init__()
        self.nz, self.ngf, self.nc, self.n_classes = int(nz), int(ngf), int(nc), int(n_classes)
        nz_in = self.nz + self.n_classes
        # input: nz_in (z, joined with the one-hot label when conditional)
        self.project = nn.Linear(nz_in, ngf * 4 * 4 * 4, bias=False)  # reshaped to (ngf*4) x 4 x 4
        self.main = nn.Sequential(
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size: (ngf*4) x 4 x 4
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size: (ngf*2) x 8 x 8
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size: (ngf) x 16 x 16
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=True),  # bias: no BatchNorm follows
            nn.Tanh(),
            # output: (nc) x 32 x 32, in [-1, 1]
        )
        init_weights(self, init)

    def latent(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The first layer's input: z flattened to (B, nz), joined with one-hot(y) if conditional."""
        z = _flat_latent(z, self.nz)
        y = _check_labels(y, self.n_classes, z.shape[0], "generator")
        return z if y is None else join_label(z, y, self.n_classes)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z: (B, nz) or (B, nz, 1, 1); y: (B,) labels if conditional. Returns (B, nc, 32, 32)."""
        h = self.project(self.latent(z, y))
        return self.main(h.view(-1, self.ngf * 4, 4, 4))

    @torch.no_grad()
    def as_conv_transpose(self) -> nn.ConvTranspose2d:
        """The classic first layer, ConvTranspose2d(nz_in, ngf*4, 4, 1, 0), with ``project``'s weights.

        ``project`` computes out[c*16 + i*4 + j] = sum_k W[c*16 + i*4 + j, k] z[k]; the transposed
        convolution on a 1x1 input computes out[c, i, j] = sum_k K[k, c, i, j] z[k]. So
        K = W.T reshaped to (nz_in, ngf*4, 4, 4).
        """
        nz_in = self.project.in_features
        conv = nn.ConvTranspose2d(nz_in, self.ngf * 4, 4, 1, 0, bias=False)
        conv = conv.to(device=self.project.weight.device, dtype=self.project.weight.dtype)
        conv.weight.copy_(self.project.weight.t().reshape(nz_in, self.ngf * 4, 4, 4))
        return conv


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator (or critic) for 32x32 images: image (and a label) -> one logit.

    Strided 4x4 convolutions halve the size, LeakyReLU(0.2), no normalisation on the first
    layer (DCGAN's rule), and a last 4x4 convolution down to a single raw score: shape (B,).

    ``norm``: "batch" (DCGAN), "layer" (GroupNorm(1, C): per-sample normalisation over
    C x H x W, the choice for WGAN-GP, whose penalty needs each score to depend on its own
    sample only) or "none".

    Conditioning (n_classes > 0): the label enters as n_classes extra input channels, the
    one-hot vector broadcast to 32x32 (channel y all ones, the others zero). It is the
    plainest form to read and the one the lab describes; the first convolution learns
    per-class filters from it. (A projection discriminator, which adds <embed(y), features>
    to the logit, is the stronger alternative on large datasets; not needed for MNIST.)
    """

    def __init__(self, ndf: int = 32, nc: int = 1, n_classes: int = 0, init: str = "dcgan", norm: str = "batch") -> None:
        _check_positive_int("ndf", ndf)
        _check_nc(nc)
        _check_n_classes(n_classes)
        _check_choice("init", init, INITS)
        _check_choice("norm", norm, NORMS)
        super().__init__()
        self.ndf, self.nc, self.n_classes, self.norm = int(ndf), int(nc), int(n_classes), norm
        normed = norm != "none"
        # a conv gets a bias only where no normalisation follows (a norm's shift absorbs it)

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not normed)]
            if normed:
                layers.append(_norm2d(norm, c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.main = nn.Sequential(
            # input: (nc + n_classes) x 32 x 32 (image, then the one-hot label maps)
            nn.Conv2d(nc + n_classes, ndf, 4, 2, 1, bias=True),
            nn.LeakyReLU(0.2, inplace=True),
            # state size: (ndf) x 16 x 16
            *block(ndf, ndf * 2),
            # state size: (ndf*2) x 8 x 8
            *block(ndf * 2, ndf * 4),
            # state size: (ndf*4) x 4 x 4
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=True),
            # output: 1 x 1 x 1, a raw logit (no sigmoid)
        )
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, nc, 32, 32); y: (B,) labels if conditional. Returns logits of shape (B,)."""
        _check_images(x, self.nc)
        y = _check_labels(y, self.n_classes, x.shape[0], "discriminator")
        if y is not None:
            x = join_label_maps(x, y, self.n_classes)  # (nc + n_classes) x 32 x 32
        return self.main(x).flatten()


# ----------------------------------------------------------------------------------------
# MLP (the vanilla GAN of lab 2; its WGANs use the DCGAN pair above)


class MLPGenerator(nn.Module):
    """Fully connected generator: z -> hidden layers (LeakyReLU 0.2) -> nc*32*32 -> Tanh -> image.

    ``norm="batch"`` puts a BatchNorm1d after each hidden linear layer (train-mode BatchNorm1d
    needs batches of 2 or more); the default "none" matches lab 2's MLP.
    """

    def __init__(self, nz: int = 100, hidden: Sequence[int] = (256, 512, 1024), nc: int = 1,
                 norm: str = "none", init: str = "dcgan") -> None:
        _check_positive_int("nz", nz)
        hidden = _check_hidden(hidden)
        _check_nc(nc)
        _check_choice("norm", norm, G_NORMS)
        _check_choice("init", init, INITS)
        super().__init__()
        self.nz, self.nc, self.hidden, self.norm, self.n_classes = int(nz), int(nc), hidden, norm, 0
        layers: list[nn.Module] = []
        width = self.nz  # input: nz
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width = h  # state size: h
        layers += [nn.Linear(width, nc * IMAGE_SIZE * IMAGE_SIZE), nn.Tanh()]  # nc*32*32 in [-1, 1]
        self.main = nn.Sequential(*layers)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z: (B, nz) or (B, nz, 1, 1). Returns (B, nc, 32, 32). y must be None (unconditional)."""
        z = _flat_latent(z, self.nz)
        _check_labels(y, 0, z.shape[0], "generator")
        return self.main(z).view(-1, self.nc, IMAGE_SIZE, IMAGE_SIZE)  # (nc) x 32 x 32


class MLPDiscriminator(nn.Module):
    """Fully connected discriminator/critic: flattened image -> hidden layers (LeakyReLU 0.2) -> logit.

    ``norm`` in {"batch", "layer", "none"} (LayerNorm for "layer"), never on the first layer;
    the default "none" is lab 2's critic (784-1024-512-256 on MNIST).
    """

    def __init__(self, hidden: Sequence[int] = (1024, 512, 256), nc: int = 1, norm: str = "none",
                 init: str = "dcgan") -> None:
        hidden = _check_hidden(hidden)
        _check_nc(nc)
        _check_choice("norm", norm, NORMS)
        _check_choice("init", init, INITS)
        super().__init__()
        self.nc, self.hidden, self.norm, self.n_classes = int(nc), hidden, norm, 0
        layers: list[nn.Module] = [nn.Flatten()]
        width = nc * IMAGE_SIZE * IMAGE_SIZE  # input: nc*32*32
        for i, h in enumerate(hidden):
            normed = norm != "none" and i > 0
            layers.append(nn.Linear(width, h, bias=not normed))
            if normed:
                layers.append(nn.BatchNorm1d(h) if norm == "batch" else nn.LayerNorm(h))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width = h  # state size: h
        layers.append(nn.Linear(width, 1))  # output: 1 raw logit (no sigmoid)
        self.main = nn.Sequential(*layers)
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, nc, 32, 32). Returns logits of shape (B,). y must be None (unconditional)."""
        _check_images(x, self.nc)
        _check_labels(y, 0, x.shape[0], "discriminator")
        return self.main(x).flatten()


# ----------------------------------------------------------------------------------------
# Helpers


def build_models(model: str = "dcgan", nz: int = 100, ngf: int = 32, ndf: int = 32, nc: int = 1,
                 n_classes: int = 0, init: str = "dcgan", critic_norm: str = "batch",
                 g_norm: str = "none") -> tuple[nn.Module, nn.Module]:
    """Build a (G, D) pair by name, so a notebook or config names the model in one word.

    "dcgan": DCGANGenerator + DCGANDiscriminator (conditional when n_classes > 0).
    "mlp": MLPGenerator + MLPDiscriminator with their default hidden sizes (ngf and ndf are
    ignored; n_classes must be 0). ``critic_norm`` is D's normalisation for both; lab 2's MLP
    critic uses "none", and a WGAN-GP critic "layer" or "none". ``g_norm`` is the MLP
    generator's normalisation ("batch" or "none"); the DCGAN generator always uses BatchNorm.
    """
    _check_choice("model", model, MODELS)
    if model == "mlp":
        _check_n_classes(n_classes)
        if n_classes != 0:
            raise ValueError(f"n_classes must be 0 for model='mlp' (only 'dcgan' is conditional), got {n_classes!r}")
        _check_choice("critic_norm", critic_norm, NORMS)
        _check_choice("g_norm", g_norm, G_NORMS)
        return (MLPGenerator(nz=nz, nc=nc, init=init, norm=g_norm),
                MLPDiscriminator(nc=nc, norm=critic_norm, init=init))
    _check_choice("critic_norm", critic_norm, NORMS)
    _check_positive_int("ndf", ndf)  # D's own check, made before G is built
    G = DCGANGenerator(nz=nz, ngf=ngf, nc=nc, n_classes=n_classes, init=init)
    D = DCGANDiscriminator(ndf=ndf, nc=nc, n_classes=n_classes, init=init, norm=critic_norm)
    return G, D


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (scalars) in ``module``; with trainable_only, those with requires_grad."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
