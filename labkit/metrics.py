"""How good is a generator? Metrics in the feature space of a small digit classifier.

Inception-v3 features mean little for 32x32 grey digits, so the metrics look at MNIST
through :class:`DigitClassifier`, a small CNN trained by labkit itself
(:func:`train_feature_net`, ``python -m labkit train-features``) and shipped as
``labkit/assets/digit_classifier.pt``. Its 128-d penultimate layer, scaled to a fixed length,
is the feature space (FIDs here are on that scale, not Inception's).

- :func:`fid`: Fréchet distance between Gaussians fitted to two feature sets.
- :func:`precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019):
  share of fakes inside the real k-NN manifold, share of reals inside the fake one.
- :func:`density_coverage`: the outlier-robust pair of Naeem et al. (2020).
- :func:`label_accuracy`: does a conditional G(z, y) look like y to the classifier?
- :func:`class_histogram`, :func:`class_coverage`: mode coverage of an unconditional G.
- :func:`evaluate`: all of them for 10,000 samples of G against the real test set;
  :func:`real_floor`: the same figures for real training images, the best one can hope for.
- :func:`nearest_train_distance`, :func:`memorisation`: does G copy its training images? Each
  sample's distance to its nearest training image, in pixel space, beside real test images'.

Every number is only meaningful beside the real floor measured the same way
(:func:`format_metrics` prints both).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from .device import resolve_device
from .progress import progress

WEIGHTS_FILE = Path(__file__).resolve().parent / "assets" / "digit_classifier.pt"
REGENERATE = "python -m labkit train-features"
FEATURE_DIM = 128
N_DIGITS = 10
PR_K = 3  # k of improved precision/recall (Kynkäänniemi et al.)
DC_K = 5  # k of density/coverage (Naeem et al.)
COVERED_SHARE = 0.05  # a class counts as covered when it holds >= 5 % of the samples (uniform: 10 %)
_RANGE_TOL = 1e-3  # images may exceed [-1, 1] by this much (rounding in Tanh / Normalize)


# --------------------------------------------------------------------------- feature network

class DigitClassifier(nn.Module):
    """Small CNN for 32x32x1 digits in [-1, 1]: three stride-2 convolutions, then 128 features.

    ``forward(x)`` returns the 10 class logits. ``features(x)`` is the penultimate linear
    layer taken *before* its ReLU and scaled to a fixed length (sqrt(128), i.e. a mean square
    of 1 per coordinate): only its direction is kept. Why: measured on this network, with raw
    features (after or before the ReLU) blank images, near-blank ones and faint digits land
    inside the k-NN balls of real faint, broken "1"s and get a precision of 1.0; on the sphere
    they get 0-0.15 while real digits keep 0.85 (see tests/test_metrics.py).
    """

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM, n_classes: int = N_DIGITS,
                 dropout: float = 0.25) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            # input: 1 x 32 x 32
            nn.Conv2d(1, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),  # w x 16 x 16
            nn.Conv2d(w, 2 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),  # 2w x 8 x 8
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),  # 2w x 4 x 4
            nn.Flatten(),  # 2w * 16
            nn.Linear(2 * w * 16, feature_dim),  # feature_dim: the feature space (pre-activation)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(feature_dim, n_classes),  # n_classes logits
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, 128) feature vectors of a batch of images (B, 1, 32, 32), each of length sqrt(128)."""
        return self.normalise(self.body(x))

    @staticmethod
    def normalise(h: torch.Tensor) -> torch.Tensor:
        """Scale pre-activations h (B, D) to length sqrt(D): the feature space of the metrics."""
        return F.normalize(h, dim=1) * math.sqrt(h.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, 10)."""
        return self.head(self.body(x))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (the weights' identity in the real-floor cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_feature_net(device: str | torch.device = "auto", path: str | Path | None = None) -> DigitClassifier:
    """The trained feature network in eval mode, from ``labkit/assets/digit_classifier.pt`` (or ``path``)."""
    dev = resolve_device(device)
    path = Path(path) if path is not None else WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"feature-network weights not found: {path}. "
                                f"Regenerate them with `{REGENERATE}` (a few CPU minutes, needs MNIST).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        with torch.device("meta"):  # no random initialisation: the global RNG stays untouched
            net = DigitClassifier()
        net.load_state_dict(checkpoint["state_dict"], assign=True)
    except Exception as exc:  # any unpickling / key / shape problem means the file is unusable
        raise RuntimeError(f"feature-network weights in {path} are unreadable or do not match DigitClassifier "
                           f"({type(exc).__name__}: {exc}). Regenerate them with `{REGENERATE}`.") from exc
    net = net.to(dev).eval()
    if dev.type == "cpu":
        net = net.to(memory_format=torch.channels_last)  # ~25 % faster convolutions on CPU
    return net


def feature_net_info(path: str | Path | None = None) -> dict[str, Any]:
    """The metadata stored with the weights (accuracy, epochs, seed, labkit version) plus their sha256."""
    path = Path(path) if path is not None else WEIGHTS_FILE
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return {**checkpoint.get("meta", {}), "sha256": file_sha256(path), "file": str(path)}


def _net_device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _check_images(images: Any, name: str = "images") -> torch.Tensor:
    """Return ``images`` as a float tensor (N, 1, 32, 32) in [-1, 1], or raise ValueError."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor (N, 1, 32, 32) in [-1, 1], got {type(images).__name__}")
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 32, 32) or images.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 1, 32, 32) with N >= 1 (grey 32x32 MNIST-like digits), "
                         f"got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got dtype {images.dtype}")
    lo, hi = float(images.min()), float(images.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if lo < -1 - _RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(f"{name} must lie in [-1, 1] (as after Normalize((0.5,), (0.5,)) or a Tanh), "
                         f"got values in [{lo:.3g}, {hi:.3g}]")
    return images


@torch.no_grad()
def _run_net(net: DigitClassifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (float64, CPU) and logits (CPU) of one batch."""
    dev = _net_device(net)
    x = x.to(dev, torch.float32)
    if dev.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    h = net.body(x)
    return net.normalise(h.double()).cpu(), net.head(h).float().cpu()


def _extract(images: torch.Tensor, net: DigitClassifier, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    feats, logits = [], []
    for start in range(0, len(images), batch_size):
        f, lg = _run_net(net, images[start:start + batch_size])
        feats.append(f)
        logits.append(lg)
    return torch.cat(feats), torch.cat(logits)


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return int(batch_size)


def features(images: torch.Tensor, net: DigitClassifier | None = None, batch_size: int = 500) -> np.ndarray:
    """Feature vectors (N, 128), float64, of images (N, 1, 32, 32) in [-1, 1], computed in batches."""
    images = _check_images(images)
    batch_size = _check_batch_size(batch_size)
    net = net if net is not None else load_feature_net()
    return _extract(images, net.eval(), batch_size)[0].numpy()


def predict(images: torch.Tensor, net: DigitClassifier | None = None, batch_size: int = 500) -> np.ndarray:
    """The classifier's digit (N,) for each image."""
    images = _check_images(images)
    net = net if net is not None else load_feature_net()
    return _extract(images, net.eval(), _check_batch_size(batch_size))[1].argmax(1).numpy()


# --------------------------------------------------------------------------- training the feature network

def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random small affine jitter (±10°, scale 0.9-1.1, shift ±2 px) with background -1."""
    b = x.shape[0]
    u = torch.rand(b, 4, generator=gen).to(x.device) * 2 - 1  # U[-1, 1]
    angle = u[:, 0] * math.radians(10)
    scale = 1 + 0.1 * u[:, 1]
    shift = u[:, 2:] * (2 / 16)  # 1 px = 2/32 in normalised coordinates
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def _accuracy(net: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    logits = _extract(images, net, batch_size)[1]
    return float((logits.argmax(1) == labels).double().mean())


def train_feature_net(root: str | Path | None = None, epochs: int = 6, seed: int = 0,
                      device: str | torch.device = "auto", out: str | Path | None = WEIGHTS_FILE,
                      batch_size: int = 128, lr: float = 3e-3, n_train: int | None = None) -> float:
    """Train the metrics' digit classifier on MNIST train and save it; return its MNIST test accuracy.

    This is how ``labkit/assets/digit_classifier.pt`` was made (``python -m labkit train-features``):
    AdamW with a one-cycle learning rate, small random affine jitter as augmentation, seeded so the
    same seed gives the same weights on the CPU. The file holds ``{"state_dict", "meta"}`` (meta:
    accuracy, epochs, seed, labkit version) and loads with ``torch.load(..., weights_only=True)``.
    ``out=None`` trains without saving; ``n_train`` uses a random subset of the training set
    (quick checks only). The global RNG state is left as it was.
    """
    from . import data

    if n_train is not None and (isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1):
        raise ValueError(f"n_train must be None (all 60,000 images) or an int >= 1, got {n_train!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    dev = resolve_device(device)

    train_x, train_y = data.as_tensors(data.mnist(root, train=True, n=n_train, seed=seed))
    test_x, test_y = data.as_tensors(data.mnist(root, train=False))
    train_x, train_y = train_x.to(dev), train_y.to(dev)
    n = len(train_x)
    steps_per_epoch = n // batch_size  # drop the last partial batch: BatchNorm dislikes tiny ones
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} training images")
    layout = torch.channels_last if dev.type == "cpu" else torch.contiguous_format  # faster CPU convolutions

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = DigitClassifier().to(dev, memory_format=layout)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
        bar = progress(total=epochs * steps_per_epoch, desc="feature net", unit="step")
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(n, generator=gen).to(dev)
            seen, correct, loss_sum = 0, 0, 0.0
            for step in range(steps_per_epoch):
                idx = order[step * batch_size:(step + 1) * batch_size]
                x, y = _augment(train_x[idx], gen).contiguous(memory_format=layout), train_y[idx]
                logits = net(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                seen += len(y)
                correct += int((logits.argmax(1) == y).sum())
                loss_sum += loss.item() * len(y)
                bar.update()
                if step % 50 == 0:
                    bar.set_postfix(epoch=epoch + 1, loss=loss_sum / seen, train_acc=correct / seen)
        bar.close()
    net = net.cpu()
    accuracy = _accuracy(net, test_x, test_y)
    seconds = time.perf_counter() - start
    print(f"feature net: test accuracy {100 * accuracy:.2f} % after {epochs} epochs ({seconds:.0f} s)")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"accuracy": accuracy, "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
                "n_train": n,
                "labkit_version": __version__, "torch_version": str(torch.__version__),
                "train_seconds": round(seconds, 1), "architecture": "DigitClassifier(width=32, feature_dim=128)"}
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        tmp = out.with_name(out.name + ".tmp")
        torch.save({"state_dict": state, "meta": meta}, tmp)
        os.replace(tmp, out)
    return accuracy


# --------------------------------------------------------------------------- FID

def _as_feature_array(feats: Any, name: str) -> np.ndarray:
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().numpy()
    if not isinstance(feats, np.ndarray):
        raise ValueError(f"{name} must be a numpy array or torch tensor of shape (N, D), got {type(feats).__name__}")
    if feats.ndim != 2 or feats.shape[0] < 2 or feats.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2 samples, got {feats.shape}")
    feats = feats.astype(np.float64, copy=False)
    if not np.isfinite(feats).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return feats


def _check_pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same feature dimension, "
                         f"got {a.shape[1]} and {b.shape[1]}")


def feature_stats(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of a feature set, in float64 (the Gaussian FID fits)."""
    feats = _as_feature_array(feats, "feats")
    mu = feats.mean(axis=0)
    centred = feats - mu
    cov = centred.T @ centred / (len(feats) - 1)
    return mu, cov


def _sym_sqrt(c: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition."""
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def fid_from_stats(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2).

    ``Tr((C1 C2)^1/2)`` is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix ``C1^1/2 C2 C1^1/2`` (same spectrum as C1 C2): only ``eigh``, real
    numbers throughout, fine for singular covariances.
    """
    mu1, mu2, cov1, cov2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, cov1, cov2))
    s1 = _sym_sqrt(cov1)
    middle = s1 @ cov2 @ s1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets


def fid(feats_a: Any, feats_b: Any) -> float:
    """Fréchet Inception-style Distance between two feature sets (N, D) and (M, D); lower is better."""
    a = _as_feature_array(feats_a, "feats_a")
    b = _as_feature_array(feats_b, "feats_b")
    _check_pair(a, b, ("feats_a", "feats_b"))
    return fid_from_stats(*feature_stats(a), *feature_stats(b))


# --------------------------------------------------------------------------- k-NN manifolds

def _as_feature_tensor(feats: Any, name: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(_as_feature_array(feats, name)))


def _check_k(k: Any, n: int, name: str = "k", who: str = "set") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be an int >= 1, got {k!r}")
    if k >= n:
        raise ValueError(f"{name}={k} needs more than {k} samples in each {who}, got {n}")
    return int(k)


def _knn_radii(feats: torch.Tensor, ks: Sequence[int], batch_size: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row, for each k in ``ks``: (N, len(ks)).

    Rows are processed ``batch_size`` at a time, so memory is batch_size x N, never N x N.
    A point's distance to itself (0) is the first of the sorted distances, so the k-th
    neighbour sits at index k.
    """
    kmax = max(ks)
    out = torch.empty(len(feats), len(ks), dtype=feats.dtype)
    index = torch.tensor(list(ks))
    for start in range(0, len(feats), batch_size):
        d = torch.cdist(feats[start:start + batch_size], feats)
        nearest = d.topk(kmax + 1, dim=1, largest=False, sorted=True).values
        out[start:start + batch_size] = nearest[:, index]
    return out


def knn_radii(feats: Any, k: int = PR_K, batch_size: int = 1000) -> np.ndarray:
    """Radius of each sample's k-NN ball (distance to its k-th nearest neighbour), computed in row blocks."""
    x = _as_feature_tensor(feats, "feats")
    k = _check_k(k, len(x))
    return _knn_radii(x, (k,), _check_batch_size(batch_size))[:, 0].numpy()


def _manifold_metrics(real: torch.Tensor, fake: torch.Tensor, k_pr: int | None, k_dc: int | None,
                      batch_size: int, real_radii: dict[int, torch.Tensor] | None = None,
                      timings: dict[str, float] | None = None) -> dict[str, float]:
    """Precision/recall (k_pr) and density/coverage (k_dc) in one blocked pass over fake x real distances.

    ``real_radii`` may hold precomputed real k-NN radii by k; ``timings`` receives the seconds
    spent on k-NN radii and on the fake x real pass.
    """
    t0 = time.perf_counter()
    radii = dict(real_radii or {})
    missing = [k for k in (k_pr, k_dc) if k is not None and k not in radii]
    if missing:
        computed = _knn_radii(real, missing, batch_size)
        radii.update({k: computed[:, i] for i, k in enumerate(missing)})
    fake_r = _knn_radii(fake, (k_pr,), batch_size)[:, 0] if k_pr is not None else None
    t1 = time.perf_counter()

    n_real, n_fake = len(real), len(fake)
    in_real_manifold = torch.zeros(n_fake, dtype=torch.bool)  # precision: inside some real ball
    real_covered = torch.zeros(n_real, dtype=torch.bool)  # recall: inside some fake ball
    balls_containing = torch.zeros(n_fake, dtype=torch.int64)  # density: how many real balls
    nearest_fake = torch.full((n_real,), math.inf, dtype=real.dtype)  # coverage: nearest fake to each real
    for start in range(0, n_fake, batch_size):
        stop = min(start + batch_size, n_fake)
        d = torch.cdist(fake[start:stop], real)  # (b, n_real), never n_fake x n_real
        if k_pr is not None:
            in_real_manifold[start:stop] = (d <= radii[k_pr]).any(dim=1)
            real_covered |= (d <= fake_r[start:stop, None]).any(dim=0)
        if k_dc is not None:
            inside = (d <= radii[k_dc]).view(torch.uint8)  # uint8 sums are ~2x faster than bool sums
            balls_containing[start:stop] = inside.sum(dim=1, dtype=torch.int32)
            nearest_fake = torch.minimum(nearest_fake, d.amin(dim=0))
        del d
    result = {}
    if k_pr is not None:
        result["precision"] = float(in_real_manifold.double().mean())
        result["recall"] = float(real_covered.double().mean())
    if k_dc is not None:
        result["density"] = float(balls_containing.sum()) / (k_dc * n_fake)
        result["coverage"] = float((nearest_fake <= radii[k_dc]).double().mean())
    if timings is not None:
        timings["knn_radii"] = t1 - t0
        timings["cross_distances"] = time.perf_counter() - t1
    return result


def _prepare_pair(real_feats: Any, fake_feats: Any, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    real = _as_feature_tensor(real_feats, "real_feats")
    fake = _as_feature_tensor(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_feats and fake_feats must have the same feature dimension, "
                         f"got {real.shape[1]} and {fake.shape[1]}")
    return real, fake, _check_batch_size(batch_size)


def precision_recall(real_feats: Any, fake_feats: Any, k: int = PR_K, batch_size: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of fake against real features.

    Precision: share of fakes inside the union of real k-NN balls (fidelity). Recall: share of
    reals inside the union of fake k-NN balls (diversity). Distances go ``batch_size`` rows at a time.
    """
    real, fake, batch_size = _prepare_pair(real_feats, fake_feats, batch_size)
    k = _check_k(k, min(len(real), len(fake)), who="of real_feats and fake_feats")
    m = _manifold_metrics(real, fake, k, None, batch_size)
    return m["precision"], m["recall"]


def density_coverage(real_feats: Any, fake_feats: Any, k: int = DC_K, batch_size: int = 1000) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), robust to real outliers' huge k-NN balls.

    Density: how many real balls hold a fake, on average, divided by k (about 1 for matching
    distributions, can exceed 1). Coverage: share of reals whose own ball holds at least one fake.
    """
    real, fake, batch_size = _prepare_pair(real_feats, fake_feats, batch_size)
    k = _check_k(k, len(real), who="of real_feats")
    m = _manifold_metrics(real, fake, None, k, batch_size)
    return m["density"], m["coverage"]


# --------------------------------------------------------------------------- memorisation

MEMO_BOUND_DIM = 128  # principal directions of the training set behind the lower bound
MEMO_CANDIDATES = 32  # training images per sample whose exact distance is computed first
MEMO_FIT_ROWS = 4096  # training images (evenly spaced) the principal directions are fitted on
MEMO_TRAIN_CHUNK = 8192  # training images per torch.cdist call: memory is block_size x this many floats
_MEMO_SLACK = 0.05  # room for float32 rounding in the bound, in distance units (its error is ~1e-3)


def _check_block_size(block_size: Any) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1 (samples per block), got {block_size!r}")
    return int(block_size)


def _principal_basis(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and orthonormal top principal directions (D, k) of flat training images."""
    rows = torch.linspace(0, len(train) - 1, min(len(train), MEMO_FIT_ROWS), device=train.device).round().long()
    fit = train[rows]
    mean = fit.mean(0)
    centred = (fit - mean).cpu().double()
    k = min(MEMO_BOUND_DIM, *centred.shape)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small eigenproblem: on a busy machine, threads waiting for each other took 10x longer
    try:
        if len(centred) >= centred.shape[1]:
            _, vectors = torch.linalg.eigh(centred.T @ centred)  # eigenvalues in ascending order
            basis = vectors[:, -k:]
        else:  # fewer images than pixels: the same directions from the smaller Gram matrix
            _, vectors = torch.linalg.eigh(centred @ centred.T)
            basis = torch.linalg.qr(centred.T @ vectors[:, -k:]).Q
    finally:
        torch.set_num_threads(threads)
    return mean, basis.to(train.device, torch.float32).contiguous()


def _bound_coordinates(x: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """[projection on the basis, length of the rest]: distances between these never exceed the images'.

    With v = x - mean split into p (in the span of the basis) and r (orthogonal to it):
    ||v_a - v_b||^2 = ||p_a - p_b||^2 + ||r_a - r_b||^2 >= ||p_a - p_b||^2 + (||r_a|| - ||r_b||)^2.
    """
    v = x - mean
    p = v @ basis
    rest = (v.pow(2).sum(1, dtype=torch.float64) - p.pow(2).sum(1, dtype=torch.float64)).clamp_min(0).sqrt()
    return torch.cat([p, rest.to(p.dtype)[:, None]], dim=1)


def _squared(x: torch.Tensor, train: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Squared distances in float64 between each row of x and train[index] (its own training image)."""
    out = torch.empty(len(x), dtype=torch.float64, device=x.device)
    step = max(1, (1 << 21) // max(1, x.shape[1]))  # 2M pixel differences at a time
    for start in range(0, len(x), step):
        rows = slice(start, start + step)
        out[rows] = (x[rows].double() - train[index[rows]].double()).pow(2).sum(1)
    return out


def _candidate_squared(x: torch.Tensor, train: torch.Tensor, train_sq: torch.Tensor,
                       cand: torch.Tensor) -> torch.Tensor:
    """Squared distances (B, m) between each row of x and its m candidates train[cand], in float32."""
    out = torch.empty(cand.shape, device=x.device)
    step = max(1, (1 << 21) // max(1, cand.shape[1] * x.shape[1]))
    for start in range(0, len(x), step):
        rows = slice(start, start + step)
        dots = torch.bmm(train[cand[rows]], x[rows, :, None])[:, :, 0]
        out[rows] = train_sq[cand[rows]] - 2 * dots + x[rows].pow(2).sum(1, keepdim=True)
    return out


def _nearest_by_cdist(x: torch.Tensor, train: torch.Tensor, block_size: int) -> torch.Tensor:
    """Index of each row's nearest training image, comparing with all of them (torch.cdist, chunk by chunk)."""
    best = torch.full((len(x),), math.inf, device=x.device)
    index = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for start in range(0, len(x), block_size):
        rows = slice(start, start + block_size)
        for c0 in range(0, len(train), MEMO_TRAIN_CHUNK):
            d, j = torch.cdist(x[rows], train[c0:c0 + MEMO_TRAIN_CHUNK]).min(dim=1)
            better = d < best[rows]
            best[rows] = torch.where(better, d, best[rows])
            index[rows] = torch.where(better, j + c0, index[rows])
    return index


def nearest_train_distance(samples: Any, train: Any, block_size: int = 2048, return_index: bool = False,
                           device: str | torch.device = "cpu") -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Each sample's Euclidean distance, in pixel space, to its nearest training image: 0 for a copy.

    ``samples`` (N, 1, 32, 32) and ``train`` (M, 1, 32, 32) are images in [-1, 1]; returns the N
    distances (float64) and, with ``return_index``, the index in ``train`` of each nearest image.
    On this scale an exact copy is at 0, an MNIST test digit is about 9 from its nearest training
    digit (2 to 14), and no two images can be more than 64 apart.

    Why pixel space, not the digit classifier's feature space of the other metrics: a copy is an
    image that repeats a training image pixel for pixel, and pixel space is where that shows, as a
    distance of 0. The feature space is trained to ignore what makes one person's 7 differ from
    another's (and keeps only each vector's direction), so a new, typical 7 can lie as close to a
    training 7 there as a copy does. The limit of pixel space: a copy shifted by a pixel is no
    longer near its original; this measures copying, not closeness in style.

    How, exactly and in bounded memory. Pixels that hold one value in every training image
    (MNIST's padding and empty border) add the same amount to all of a sample's distances: they
    are counted once. On the others, each block of ``block_size`` samples goes through
    ``torch.cdist`` against MEMO_TRAIN_CHUNK training images at a time (never the N x M matrix),
    first on 129 numbers per image, the projection on the training set's top 128 principal
    directions and the length of the rest, whose distances are lower bounds of the true ones.
    The exact distances to the MEMO_CANDIDATES training images with the smallest bounds follow;
    when every other training image's bound exceeds the best of them, that is the nearest image.
    Samples for which the bound is too loose to decide (noise, say) are compared with every
    training image. 10,000 samples against MNIST's 60,000 training images take about 15 s of one
    CPU core (9 s on two free cores), a little over half of what comparing every pair costs.
    Distances are recomputed in float64, so a copy scores exactly 0; the result does not depend
    on ``block_size``.
    """
    x = _check_images(samples, "samples")
    t = _check_images(train, "train")
    block_size = _check_block_size(block_size)
    if not isinstance(return_index, bool):
        raise ValueError(f"return_index must be True or False, got {return_index!r}")
    dev = resolve_device(device)
    if dev.type == "mps":  # the exact distances are summed in float64, which MPS does not have
        dev = torch.device("cpu")
    x = x.reshape(len(x), -1).to(dev, torch.float32)
    t = t.reshape(len(t), -1).to(dev, torch.float32)
    varying = (t != t[:1]).any(dim=0)  # pixels that differ between training images
    constant = (x[:, ~varying].double() - t[:1, ~varying].double()).pow(2).sum(1)
    x, t = x[:, varying].contiguous(), t[:, varying].contiguous()
    m = min(MEMO_CANDIDATES, len(t))

    mean, basis = _principal_basis(t)
    tz = torch.cat([_bound_coordinates(t[c0:c0 + MEMO_TRAIN_CHUNK], mean, basis)
                    for c0 in range(0, len(t), MEMO_TRAIN_CHUNK)])
    t_sq = t.pow(2).sum(1)
    index = torch.empty(len(x), dtype=torch.long, device=dev)
    for start in range(0, len(x), block_size):
        xb = x[start:start + block_size]
        xz = _bound_coordinates(xb, mean, basis)
        bound = torch.empty(len(xb), 0, device=dev)  # the m smallest bounds so far, ascending
        cand = torch.empty(len(xb), 0, dtype=torch.long, device=dev)  # and their training images
        for c0 in range(0, len(t), MEMO_TRAIN_CHUNK):
            d = torch.cdist(xz, tz[c0:c0 + MEMO_TRAIN_CHUNK])
            low, j = d.topk(min(m, d.shape[1]), dim=1, largest=False)
            bound, pos = torch.cat([bound, low], 1).topk(m, dim=1, largest=False)
            cand = torch.cat([cand, j + c0], 1).gather(1, pos)
        d2, j = _candidate_squared(xb, t, t_sq, cand).min(dim=1)
        winner = cand.gather(1, j[:, None])[:, 0]
        # Decided when every training image outside the candidates has a bound above the best distance.
        undecided = (bound.amax(dim=1) <= d2.clamp_min(0).sqrt() * (1 + 1e-3) + _MEMO_SLACK) & (m < len(t))
        if bool(undecided.any()):
            winner[undecided] = _nearest_by_cdist(xb[undecided], t, block_size)
        index[start:start + len(xb)] = winner
    squared = _squared(x, t, index)  # the winners' distances, again, in float64
    distances = (squared + constant).sqrt().cpu().numpy()
    return (distances, index.cpu().numpy()) if return_index else distances


def memorisation(samples: Any, train: Any, test: Any, block_size: int = 2048,
                 device: str | torch.device = "cpu") -> dict[str, Any]:
    """Does G copy its training set? The samples' nearest-training distances beside real test images'.

    A real test image is not a copy of a training image, so the test set's distances are the
    reference: a G that draws new digits gives distances like theirs, a G that copies gives
    distances near 0. Returns ``sample_median`` and ``test_median`` (median distance to the
    nearest image of ``train``), ``ratio`` (sample_median / test_median: about 1 for new digits,
    near 0 for copies), ``near_copy_share`` (share of samples nearer to the training set than 99 %
    of the test images are: about 0.01 for new digits, near 1 for copies), ``near_copy_distance``
    (that threshold) and the three set sizes. All images (N, 1, 32, 32) in [-1, 1]; distances as
    :func:`nearest_train_distance` computes them, in pixel space.
    """
    s = _check_images(samples, "samples")
    t = _check_images(train, "train")
    r = _check_images(test, "test")
    d_samples = nearest_train_distance(s, t, block_size=block_size, device=device)
    d_test = nearest_train_distance(r, t, block_size=block_size, device=device)
    sample_median, test_median = float(np.median(d_samples)), float(np.median(d_test))
    threshold = float(np.quantile(d_test, 0.01))
    return {"sample_median": sample_median, "test_median": test_median,
            "ratio": sample_median / test_median if test_median > 0 else math.inf,
            "near_copy_share": float((d_samples < threshold).mean()), "near_copy_distance": threshold,
            "n_samples": len(s), "n_train": len(t), "n_test": len(r)}


# --------------------------------------------------------------------------- classes

def _shares(predicted: torch.Tensor | np.ndarray) -> np.ndarray:
    counts = np.bincount(np.asarray(predicted).ravel(), minlength=N_DIGITS)[:N_DIGITS]
    return counts / max(counts.sum(), 1)


def class_histogram(images: torch.Tensor, net: DigitClassifier | None = None, batch_size: int = 500) -> np.ndarray:
    """Share of each digit 0-9 among images, as the classifier sees them (10 shares summing to 1)."""
    return _shares(predict(images, net, batch_size))


def class_coverage(shares: Any, threshold: float = COVERED_SHARE) -> dict[str, float]:
    """Mode coverage from a class histogram: smallest and largest share, classes holding >= threshold."""
    shares = np.asarray(shares, dtype=np.float64)
    if shares.shape != (N_DIGITS,) or not np.isfinite(shares).all() or (shares < 0).any():
        raise ValueError(f"shares must be {N_DIGITS} non-negative class shares (see class_histogram), got {shares!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    return {"class_min_share": float(shares.min()), "class_max_share": float(shares.max()),
            "classes_covered": int((shares >= threshold).sum())}


def _check_generator(G: Any) -> None:
    if not callable(G):
        raise ValueError(f"G must be a callable generator module, got {type(G).__name__}")
    for attr in ("nz", "n_classes"):
        if not isinstance(getattr(G, attr, None), int):
            raise ValueError(f"G must have an int attribute {attr!r} (as labkit's generators do)")
    if G.n_classes not in (0, N_DIGITS):
        raise ValueError(f"G.n_classes must be 0 (unconditional) or {N_DIGITS} (MNIST digits), got {G.n_classes}")


def _generator_device(G: Any, fallback: torch.device) -> torch.device:
    params = list(G.parameters()) if isinstance(G, nn.Module) else []
    return params[0].device if params else fallback


def _check_truncation(truncation: Any) -> float | None:
    if truncation is None:
        return None
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not truncation > 0 \
            or not math.isfinite(truncation):
        raise ValueError(f"truncation must be None (no truncation) or a positive threshold such as 1.0, got {truncation!r}")
    return float(truncation)


def truncated_noise(n: int, nz: int, truncation: float | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` noise vectors of size ``nz`` for the truncation trick (Brock et al., BigGAN, 2019).

    Each coordinate is drawn from N(0, 1) and drawn again, as often as needed, while its size
    exceeds ``truncation``: z then comes from a normal truncated to [-truncation, truncation].
    A smaller threshold keeps G near the middle of its latent space, where it has learned the
    most typical images: samples get cleaner (precision up) and less varied (recall down).
    ``truncation=None`` is plain N(0, I), what G was trained on. The draws consume
    ``generator`` in a fixed order, so a seed gives the same z every time.
    """
    truncation = _check_truncation(truncation)
    z = torch.randn(n, nz, generator=generator)
    if truncation is None:
        return z
    outside = z.abs() > truncation
    while outside.any():  # about 32 % of coordinates at 1.0, 4.6 % at 2.0: a few rounds
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > truncation
    return z


@dataclass
class _Samples:
    feats: torch.Tensor  # float64 (n, 128)
    predicted: torch.Tensor  # (n,) the classifier's digits
    gen_seconds: float
    feat_seconds: float


def generated_batches(G: Any, n: int, labels: torch.Tensor | None, seed: int, batch_size: int,
                      device: torch.device, truncation: float | None = None) -> Iterator[torch.Tensor]:
    """G's images for ``n`` samples, one batch at a time, as every evaluation draws them.

    z comes from :func:`truncated_noise` with its own ``torch.Generator`` seeded by ``seed``
    (the global RNG is untouched, so a seed always gives the same images); a conditional G
    gets ``labels[i]`` for sample i. G runs in eval mode under no_grad (only around its own
    call: the caller's code between batches keeps its grad mode) and gets its mode back at the end.
    """
    gen = torch.Generator().manual_seed(seed)
    g_dev = _generator_device(G, device)
    was_training = getattr(G, "training", False)
    if isinstance(G, nn.Module):
        G.eval()
    try:
        for start in range(0, n, batch_size):
            z = truncated_noise(min(batch_size, n - start), G.nz, truncation, gen).to(g_dev)
            with torch.no_grad():
                x = G(z, labels[start:start + len(z)].to(g_dev)) if labels is not None else G(z)
            yield _check_images(x, "G's output")
    finally:
        if isinstance(G, nn.Module):
            G.train(was_training)


def _sample(G: Any, n: int, labels: torch.Tensor | None, seed: int, net: DigitClassifier, dev: torch.device,
            batch_size: int, desc: str, truncation: float | None = None) -> _Samples:
    """Generate n images from G in batches (:func:`generated_batches`) and featurise them on the fly."""
    feats, predicted = [], []
    gen_s = feat_s = 0.0
    batches = generated_batches(G, n, labels, seed, batch_size, dev, truncation)
    with progress(total=n, desc=desc, unit="img") as bar:
        while True:
            t0 = time.perf_counter()
            x = next(batches, None)
            if x is None:
                break
            t1 = time.perf_counter()
            with torch.no_grad():
                f, logits = _run_net(net, x)
            feats.append(f)
            predicted.append(logits.argmax(1))
            gen_s += t1 - t0
            feat_s += time.perf_counter() - t1
            bar.update(len(x))
    return _Samples(torch.cat(feats), torch.cat(predicted), gen_s, feat_s)


def _balanced_labels(n: int, n_classes: int, gen: torch.Generator) -> torch.Tensor:
    """n labels, each class n // n_classes or one more times, in random order."""
    labels = torch.arange(n) % n_classes
    return labels[torch.randperm(n, generator=gen)]


def _label_scores(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    hit = (predicted == labels).double()
    per_class = [float(hit[labels == c].mean()) if (labels == c).any() else float("nan") for c in range(N_DIGITS)]
    return {"overall": float(hit.mean()), "per_class": per_class}


def label_accuracy(G: Any, n_per_class: int = 1000, net: DigitClassifier | None = None, seed: int = 0,
                   device: str | torch.device = "auto", batch_size: int = 500) -> dict[str, Any]:
    """How often the classifier sees digit y in G(z, y): overall and per class (chance is 0.1)."""
    _check_generator(G)
    if G.n_classes == 0:
        raise ValueError("label_accuracy needs a conditional G (n_classes=10); use class_histogram for an "
                         "unconditional one")
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"n_per_class must be an int >= 1, got {n_per_class!r}")
    batch_size = _check_batch_size(batch_size)
    dev = resolve_device(device)
    net = net if net is not None else load_feature_net(dev)
    labels = torch.arange(N_DIGITS).repeat_interleave(n_per_class)
    samples = _sample(G, len(labels), labels, seed, net, dev, batch_size, "label accuracy")
    return _label_scores(samples.predicted, labels)


# --------------------------------------------------------------------------- real reference and evaluation

@dataclass
class _Reference:
    """Real features with what every evaluation against them reuses."""
    feats: torch.Tensor
    mu: np.ndarray
    cov: np.ndarray
    radii: dict[int, torch.Tensor]


_REFERENCES: dict[tuple, _Reference] = {}
_FLOORS: dict[tuple, dict[str, Any]] = {}


def _default_root(root: str | Path | None) -> Path:
    from . import data

    return Path(data.data_root(root))


def _real_test_images(root: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    from . import data

    return data.as_tensors(data.mnist(root, train=False))


def _make_reference(feats: torch.Tensor, ks: Sequence[int], batch_size: int) -> _Reference:
    mu, cov = feature_stats(feats.numpy())
    r = _knn_radii(feats, tuple(ks), max(batch_size, 1000))
    return _Reference(feats, mu, cov, {k: r[:, i] for i, k in enumerate(ks)})


def _reference(real: Any, root: str | Path | None, net: DigitClassifier, net_key: str, ks: Sequence[int],
               batch_size: int) -> _Reference:
    """Features, Gaussian and k-NN radii of the real set (the MNIST test set when real is None), cached."""
    from . import data

    if real is not None:
        real = _check_images(real, "real")
        if len(real) <= max(ks):
            raise ValueError(f"real must hold more than {max(ks)} images (the k of the k-NN balls), got {len(real)}")
        return _make_reference(_extract(real, net, batch_size)[0], ks, batch_size)
    key = (str(Path(data.mnist_raw_folder(root)).resolve()), net_key, str(_net_device(net)))
    ref = _REFERENCES.get(key)
    if ref is None or any(k not in ref.radii for k in ks):
        feats = _extract(_real_test_images(root)[0], net, batch_size)[0]
        ref = _make_reference(feats, sorted(set(ks) | {PR_K, DC_K}), batch_size)
        _REFERENCES[key] = ref
    return ref


def _scores(ref: _Reference, fake: torch.Tensor, predicted: torch.Tensor, k: int, batch_size: int,
            timings: dict[str, float]) -> dict[str, Any]:
    t0 = time.perf_counter()
    mu, cov = feature_stats(fake.numpy())
    result: dict[str, Any] = {"fid": fid_from_stats(ref.mu, ref.cov, mu, cov)}
    timings["fid"] = time.perf_counter() - t0
    result.update(_manifold_metrics(ref.feats, fake, k, DC_K, max(batch_size, 1000), ref.radii, timings))
    result.update(class_coverage(_shares(predicted)))
    return result


def _check_common(n: int, k: int, batch_size: int, seed: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n <= k:
        raise ValueError(f"n must be an int larger than k={k}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    _check_batch_size(batch_size)


def evaluate(G: Any, n: int = 10_000, real: torch.Tensor | None = None, seed: int = 0,
             device: str | torch.device = "auto", batch_size: int = 500, k: int = PR_K,
             root: str | Path | None = None, net: DigitClassifier | None = None,
             truncation: float | None = None) -> dict[str, Any]:
    """All metrics of generator G on n samples against real images (default: the MNIST test set).

    Returns a dict: fid, precision, recall (k-NN, k), density, coverage (k=5), class_min_share,
    class_max_share, classes_covered, label_accuracy (+ label_accuracy_per_class) when G is
    conditional (classes sampled uniformly), n, seconds, timings. Sampling uses its own seeded
    torch.Generator (the global RNG is untouched) with G in eval mode under no_grad.
    ``truncation``: z from :func:`truncated_noise` at that threshold (None: plain N(0, I)).
    """
    _check_generator(G)
    truncation = _check_truncation(truncation)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    _check_common(n, k, batch_size, seed)
    start = time.perf_counter()
    dev = resolve_device(device)
    if net is None:
        net = load_feature_net(dev)
        net_key = file_sha256(WEIGHTS_FILE)
    else:
        net_key = f"net-{id(net)}"
    t0 = time.perf_counter()
    ref = _reference(real, root, net, net_key, (k, DC_K), batch_size)
    timings = {"real_features": time.perf_counter() - t0}
    labels = None
    if G.n_classes:
        labels = _balanced_labels(n, G.n_classes, torch.Generator().manual_seed(seed + 1))
    samples = _sample(G, n, labels, seed, net, dev, batch_size, "evaluate", truncation)
    timings.update({"generation": samples.gen_seconds, "features": samples.feat_seconds})
    result = _scores(ref, samples.feats, samples.predicted, k, batch_size, timings)
    if labels is not None:
        scores = _label_scores(samples.predicted, labels)
        result["label_accuracy"] = scores["overall"]
        result["label_accuracy_per_class"] = scores["per_class"]
    result["n"] = n
    result["truncation"] = truncation
    result["seconds"] = time.perf_counter() - start
    result["timings"] = timings
    return result


TRUNCATIONS = (None, 2.0, 1.5, 1.0, 0.7, 0.5, 0.3)  # thresholds of a truncation sweep: none, then tighter
STANDING_SAMPLES = 4096  # noise vectors whose activations set the standing statistics


@torch.no_grad()
def standing_statistics(G: nn.Module, truncation: float | None, n: int = STANDING_SAMPLES, seed: int = 0,
                        batch_size: int = 256) -> nn.Module:
    """A copy of G whose BatchNorm layers hold the statistics of its activations under truncated noise.

    G's running statistics were gathered on z ~ N(0, I). Truncated z has a smaller spread, so
    every BatchNorm in eval mode would scale the activations down and the images fade: measured
    on lab 1's default DCGAN, truncation then lowers precision instead of raising it. BigGAN's
    remedy ("standing statistics") is to recompute them: the copy runs ``n`` truncated noise
    vectors (uniform labels for a conditional G) through its layers in training mode, averaging
    each layer's batch statistics, and is returned in eval mode. G itself is not changed; the
    same arguments give the same copy.
    """
    truncation = _check_truncation(truncation)
    copy_ = copy.deepcopy(G)
    norms = [m for m in copy_.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    device = _generator_device(copy_, torch.device("cpu"))
    if norms:
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over all the batches below
        copy_.train()
        gen = torch.Generator().manual_seed(seed)
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            z = truncated_noise(b, copy_.nz, truncation, gen).to(device)
            if getattr(copy_, "n_classes", 0):
                copy_(z, torch.randint(copy_.n_classes, (b,), generator=gen).to(device))
            else:
                copy_(z)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return copy_.eval()


def truncation_sweep(G: Any, truncations: Sequence[float | None] = TRUNCATIONS, n: int = 2000, seed: int = 0,
                     device: str | torch.device = "auto", root: str | Path | None = None,
                     net: DigitClassifier | None = None, standing: bool = True) -> list[dict[str, Any]]:
    """:func:`evaluate` at each truncation threshold: the precision-recall trade-off of one trained G.

    Returns one dict of metrics per threshold, in the order given, each with its ``truncation``
    and ``standing`` (whether BatchNorm used :func:`standing_statistics` for that threshold; the
    untruncated row always uses G's own statistics). The same ``seed`` is used at every threshold,
    so the rows differ by the truncation alone.
    """
    truncations = list(truncations)
    if not truncations:
        raise ValueError("truncations must hold at least one threshold (None: no truncation)")
    for t in truncations:
        _check_truncation(t)
    rows = []
    for t in truncations:
        recalibrated = standing and t is not None and isinstance(G, nn.Module)
        model = standing_statistics(G, t, seed=seed) if recalibrated else G
        row = evaluate(model, n=n, seed=seed, device=device, root=root, net=net, truncation=t)
        rows.append({**row, "standing": recalibrated, "standing_seed": seed})
    return rows


def real_floor(root: str | Path | None = None, n: int = 10_000, seed: int = 0, k: int = PR_K,
               device: str | torch.device = "auto", batch_size: int = 500, cache: bool = True) -> dict[str, Any]:
    """The metrics of n real MNIST training images against the real test set: the best a G can score.

    Computed exactly as :func:`evaluate` computes a generator's (same keys; label_accuracy here
    is the classifier's accuracy on those images). Cached in memory and as JSON under
    ``root/labkit-cache/real_floor.json``, keyed by the weights' sha256, n, seed and k
    (``cache=False`` recomputes and stores nothing).
    """
    from . import data

    _check_common(n, k, batch_size, seed)
    net = load_feature_net(device)  # first, so a missing weights file says how to make it
    net_hash = file_sha256(WEIGHTS_FILE)
    data_root = _default_root(root)
    key = f"{net_hash[:16]}-n{n}-seed{seed}-k{k}"
    mem_key = (str(data_root.resolve()), key)
    cache_file = data_root / "labkit-cache" / "real_floor.json"
    if cache:
        if mem_key in _FLOORS:
            return dict(_FLOORS[mem_key])
        try:
            cached = json.loads(cache_file.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            cached = None
        if isinstance(cached, dict) and "fid" in cached:
            _FLOORS[mem_key] = cached
            return dict(cached)

    start = time.perf_counter()
    t0 = time.perf_counter()
    ref = _reference(None, root, net, net_hash, (k, DC_K), batch_size)
    timings = {"real_features": time.perf_counter() - t0}
    t0 = time.perf_counter()
    images, labels = data.as_tensors(data.mnist(root, train=True, n=n, seed=seed))
    timings["generation"] = time.perf_counter() - t0  # here: loading the real training images
    t0 = time.perf_counter()
    feats, logits = _extract(images, net, batch_size)
    timings["features"] = time.perf_counter() - t0
    predicted = logits.argmax(1)
    result = _scores(ref, feats, predicted, k, batch_size, timings)
    scores = _label_scores(predicted, labels)
    result["label_accuracy"] = scores["overall"]
    result["label_accuracy_per_class"] = scores["per_class"]
    result["n"] = n
    result["seconds"] = time.perf_counter() - start
    result["timings"] = timings

    if not cache:
        return result
    _FLOORS[mem_key] = result
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            table = json.loads(cache_file.read_text())
            table = table if isinstance(table, dict) else {}
        except (OSError, ValueError):
            table = {}
        table[key] = result
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only data folder only costs the on-disk cache
    return dict(result)


_ROWS = (  # key, label, format, which way is better
    ("fid", "FID", "{:.2f}", "lower"),
    ("precision", "precision", "{:.3f}", "higher"),
    ("recall", "recall", "{:.3f}", "higher"),
    ("density", "density", "{:.3f}", "~1"),
    ("coverage", "coverage", "{:.3f}", "higher"),
    ("label_accuracy", "label accuracy", "{:.3f}", "higher"),
    ("class_min_share", "smallest class share", "{:.3f}", "~0.1"),
    ("class_max_share", "largest class share", "{:.3f}", "~0.1"),
    ("classes_covered", "classes >= 5 %", "{:d}", "10"),
    ("n", "samples", "{:d}", ""),
    ("seconds", "seconds", "{:.1f}", ""),
)


def format_metrics(metrics: dict[str, Any], floor: dict[str, Any] | None = None) -> str:
    """A small aligned text table of a model's metrics, beside the real floor when given."""
    if not isinstance(metrics, dict):
        raise ValueError(f"metrics must be the dict returned by evaluate, got {type(metrics).__name__}")
    header = ["metric", "model"] + (["real floor"] if floor is not None else []) + ["better"]
    rows = [header]
    for key, label, fmt, better in _ROWS:
        if key not in metrics:
            continue
        cells = [label, fmt.format(metrics[key])]
        if floor is not None:
            cells.append(fmt.format(floor[key]) if key in floor else "-")
        rows.append(cells + [better])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
