"""Metrics: FID against its closed form, k-NN manifolds against a brute-force reference,
the shipped feature network on real MNIST, and the degenerate generators students produce."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labkit import data, metrics, models

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------- FID

def random_spd(d: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.2 * np.eye(d))


def frechet_closed_form(m1, s1, m2, s2) -> float:
    """Fréchet distance from the true parameters, via the (non-symmetric) eigenvalues of S1 S2."""
    tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(min=0)).sum()
    return float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


@pytest.mark.filterwarnings("error")
def test_fid_matches_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    d, n = 10, 20_000
    m1, m2 = np.zeros(d), rng.normal(scale=0.8, size=d)
    s1, s2 = random_spd(d, rng), random_spd(d, rng, scale=2.0)
    x = rng.multivariate_normal(m1, s1, size=n)
    y = rng.multivariate_normal(m2, s2, size=n)
    expected = frechet_closed_form(m1, s1, m2, s2)
    assert expected > 5  # far enough apart for a relative tolerance to mean something
    assert metrics.fid(x, y) == pytest.approx(expected, rel=0.03)
    # from the true statistics the formula is exact
    assert metrics.fid_from_stats(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    # torch input, any float dtype, gives the same number
    assert metrics.fid(torch.from_numpy(x).float(), y) == pytest.approx(metrics.fid(x, y), rel=1e-4)


@pytest.mark.filterwarnings("error")
def test_fid_zero_for_identical_sets_and_symmetric():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 16)), rng.normal(loc=0.3, size=(400, 16)) * 1.5
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-9)
    assert metrics.fid(x, y) == pytest.approx(metrics.fid(y, x), rel=1e-9)
    shifted = x + 2.0  # pure mean shift: FID is exactly the squared shift
    assert metrics.fid(x, shifted) == pytest.approx(16 * 4.0, rel=1e-9)


@pytest.mark.filterwarnings("error")
def test_fid_singular_covariance_is_finite_and_real():
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(3, 128))
    x = rng.normal(size=(200, 3)) @ basis  # rank 3 in 128 dimensions
    y = rng.normal(size=(50, 3)) @ basis + 0.1  # fewer samples than dimensions, too
    constant = np.ones((40, 128))  # zero covariance
    for a, b in ((x, y), (x, x), (x, constant), (constant, constant)):
        value = metrics.fid(a, b)
        assert isinstance(value, float) and math.isfinite(value) and value >= 0
    assert metrics.fid(constant, constant) == 0.0
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_rejects_bad_input():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match="same feature dimension"):
        metrics.fid(x, np.zeros((10, 5)))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.fid(x, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.fid(x, np.full((10, 4), np.nan))
    with pytest.raises(ValueError, match="numpy array or torch tensor"):
        metrics.fid([[0.0]], x)


# ------------------------------------------------------------------------- k-NN manifolds

def brute_force(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """The four definitions written out with full distance matrices (small data only)."""
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    d_rr, d_ff, d_fr = dist(real, real), dist(fake, fake), dist(fake, real)
    r_real = lambda k: np.sort(d_rr, axis=1)[:, k]  # noqa: E731 - index 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k_pr]
    return {
        "precision": float((d_fr <= r_real(k_pr)[None, :]).any(1).mean()),
        "recall": float((d_fr <= r_fake[:, None]).any(0).mean()),
        "density": float((d_fr <= r_real(k_dc)[None, :]).sum() / (k_dc * len(fake))),
        "coverage": float((d_fr.min(0) <= r_real(k_dc)).mean()),
    }


def overlapping_sets(seed=3, n_real=300, n_fake=250, d=8):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d))
    fake = rng.normal(loc=0.8, scale=1.0, size=(n_fake, d))
    return real, fake


def test_manifold_metrics_match_brute_force_and_batching():
    real, fake = overlapping_sets()
    expected = brute_force(real, fake)
    assert 0.2 < expected["precision"] < 0.95 and 0.2 < expected["recall"] < 0.95  # a non-trivial case
    for batch_size in (7, 64, 10_000):
        p, r = metrics.precision_recall(real, fake, k=3, batch_size=batch_size)
        d, c = metrics.density_coverage(real, fake, k=5, batch_size=batch_size)
        assert (p, r) == pytest.approx((expected["precision"], expected["recall"]), abs=1e-12)
        assert (d, c) == pytest.approx((expected["density"], expected["coverage"]), abs=1e-12)


def test_knn_radii_is_kth_neighbour_excluding_self():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert metrics.knn_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert metrics.knn_radii(x, k=2, batch_size=1).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 16))
    assert metrics.precision_recall(x, x) == (1.0, 1.0)
    assert metrics.density_coverage(x, x)[1] == 1.0
    far = rng.normal(size=(300, 16)) + 50.0
    assert metrics.precision_recall(x, far) == (0.0, 0.0)
    assert metrics.density_coverage(x, far) == (0.0, 0.0)
    # half the fakes on the real cloud, half far away: precision is halved exactly
    near = rng.normal(size=(200, 16))
    p_near, _ = metrics.precision_recall(x, near)
    p_half, _ = metrics.precision_recall(x, np.concatenate([near, far[:200]]))
    assert p_near > 0.6 and p_half == pytest.approx(p_near / 2)


def test_manifold_metrics_reject_bad_input():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match="k=10 needs more than 10 samples"):
        metrics.precision_recall(x, x, k=10)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        metrics.density_coverage(x, x, k=0)
    with pytest.raises(ValueError, match="same feature dimension"):
        metrics.precision_recall(x, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="batch_size"):
        metrics.precision_recall(x, x, batch_size=0)


@pytest.fixture
def cdist_shapes(monkeypatch) -> list[tuple[int, int]]:
    """The (rows, columns) of every torch.cdist call made while the test runs, in order."""
    shapes: list[tuple[int, int]] = []
    real_cdist = torch.cdist

    def recording_cdist(a, b, *args, **kwargs):
        shapes.append((a.shape[0], b.shape[0]))
        return real_cdist(a, b, *args, **kwargs)

    monkeypatch.setattr(torch, "cdist", recording_cdist)
    return shapes


def test_blocks_never_build_the_full_distance_matrix(cdist_shapes):
    rng = np.random.default_rng(5)
    n, batch_size = 10_000, 500
    real = rng.normal(size=(n, 4)).astype(np.float32)
    fake = rng.normal(size=(n, 4)).astype(np.float32)
    shapes = cdist_shapes
    p, r = metrics.precision_recall(real, fake, batch_size=batch_size)
    assert shapes and max(rows for rows, _ in shapes) <= batch_size
    assert max(rows * cols for rows, cols in shapes) <= batch_size * n  # 500 x 10k, never 10k x 10k
    assert len(shapes) == 3 * n // batch_size  # real radii, fake radii, fake x real
    assert 0.6 < p < 1 and 0.6 < r < 1  # same distribution
    shapes.clear()
    d, c = metrics.density_coverage(real, fake[:1000], batch_size=batch_size)
    assert max(rows * cols for rows, cols in shapes) <= batch_size * n
    assert len(shapes) == (n + 1000) // batch_size  # real radii, fake x real
    assert 0.6 < d < 1.4 and 0.3 < c <= 1  # 1000 fakes cover ~1 - (1 - 5/10k)^1000 of the reals


# ------------------------------------------------------------------------- classes

def test_class_coverage_summary():
    uniform = np.full(10, 0.1)
    assert metrics.class_coverage(uniform) == {"class_min_share": 0.1, "class_max_share": 0.1, "classes_covered": 10}
    one = np.eye(10)[3]
    assert metrics.class_coverage(one) == {"class_min_share": 0.0, "class_max_share": 1.0, "classes_covered": 1}
    with pytest.raises(ValueError, match="10 non-negative class shares"):
        metrics.class_coverage(np.ones(9) / 9)


# ------------------------------------------------------------------------- feature network

def test_classifier_shapes_and_feature_length():
    net = metrics.DigitClassifier().eval()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    assert net(x).shape == (4, 10)
    f = net.features(x)
    assert f.shape == (4, metrics.FEATURE_DIM)
    assert torch.allclose(f.norm(dim=1), torch.full((4,), math.sqrt(metrics.FEATURE_DIM)), rtol=1e-5)


def test_weights_file_small_and_loadable_with_weights_only():
    size = metrics.WEIGHTS_FILE.stat().st_size
    assert size < 1_000_000
    checkpoint = torch.load(metrics.WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"state_dict", "meta"}
    assert checkpoint["meta"]["accuracy"] >= 0.99 and checkpoint["meta"]["seed"] == 0


def test_load_feature_net_names_file_and_command(tmp_path):
    missing = tmp_path / "nothing.pt"
    with pytest.raises(FileNotFoundError, match="python -m labkit train-features") as info:
        metrics.load_feature_net("cpu", path=missing)
    assert str(missing) in str(info.value)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="python -m labkit train-features") as info:
        metrics.load_feature_net("cpu", path=corrupt)
    assert str(corrupt) in str(info.value)
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {}}, wrong)
    with pytest.raises(RuntimeError, match="do not match DigitClassifier"):
        metrics.load_feature_net("cpu", path=wrong)


@pytest.fixture(scope="module")
def net():
    return metrics.load_feature_net("cpu")


def test_features_validate_images(net):
    good = torch.zeros(3, 1, 32, 32)
    out = metrics.features(good, net)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (3, 128)
    for bad, match in ((torch.zeros(3, 3, 32, 32), r"shape \(N, 1, 32, 32\)"),
                       (torch.zeros(3, 1, 28, 28), r"shape \(N, 1, 32, 32\)"),
                       (torch.full((3, 1, 32, 32), 255.0), r"\[-1, 1\]"),
                       (torch.full((3, 1, 32, 32), float("nan")), "NaN"),
                       (torch.zeros(3, 1, 32, 32, dtype=torch.uint8), "float"),
                       ([0.0], "torch tensor")):
        with pytest.raises(ValueError, match=match):
            metrics.features(bad, net)


def test_train_feature_net_is_seeded(tmp_path, mnist_root):
    """Same seed, same weights (a tiny run: the real one is `python -m labkit train-features`)."""
    state = torch.get_rng_state()
    kwargs = dict(root=mnist_root, epochs=1, n_train=256, batch_size=64, device="cpu")
    a = metrics.train_feature_net(**kwargs, out=tmp_path / "a.pt")
    b = metrics.train_feature_net(**kwargs, out=tmp_path / "b.pt")
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    sa = torch.load(tmp_path / "a.pt", weights_only=True)
    sb = torch.load(tmp_path / "b.pt", weights_only=True)
    assert a == b and sa["meta"]["accuracy"] == a
    assert all(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in sa["state_dict"])
    metrics.load_feature_net("cpu", path=tmp_path / "a.pt")  # loadable as shipped weights are
    with pytest.raises(ValueError, match="epochs"):
        metrics.train_feature_net(epochs=0, out=None)


# ------------------------------------------------------------------------- real MNIST

@pytest.fixture(scope="module")
def mnist_root():
    root = os.environ.get("LABKIT_DATA") or str(REPO / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_OFFLINE", "1")
        data.fetch_mnist(root, verbose=False)
    return root


@pytest.fixture(scope="module")
def mnist_train(mnist_root):
    return data.as_tensors(data.mnist(mnist_root, train=True, n=20_000, seed=1))


class BankGenerator(nn.Module):
    """A stand-in "generator" that hands out stored images: real digits, noise, blanks...

    Unconditional: images in order. Conditional (n_classes=10): for G(z, y), the next image of class y.
    ``ignore_y`` makes a conditional G that hands out images in order whatever y says.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, n_classes: int = 0,
                 ignore_y: bool = False):
        super().__init__()
        self.nz, self.n_classes, self.ignore_y = 8, n_classes, ignore_y
        self.images, self.labels = images, labels
        self.next = 0
        self.next_of = {c: 0 for c in range(10)}

    def forward(self, z, y=None):
        b = z.shape[0]
        if self.n_classes and y is None:
            raise ValueError("y is required")
        if not self.n_classes or self.ignore_y:
            idx = torch.arange(self.next, self.next + b) % len(self.images)
            self.next += b
            return self.images[idx]
        out = []
        for c in y.tolist():
            pool = (self.labels == c).nonzero().flatten()
            out.append(self.images[pool[self.next_of[c] % len(pool)]])
            self.next_of[c] += 1
        return torch.stack(out)


def test_shipped_net_accuracy_on_full_test_set(net, mnist_root):
    x, y = data.as_tensors(data.mnist(mnist_root, train=False))
    predicted = metrics.predict(x, net)
    assert len(predicted) == 10_000
    assert (predicted == y.numpy()).mean() >= 0.99


def test_feature_length_is_what_keeps_blank_images_out(net, mnist_root):
    """Why features() drops the length: on raw pre-activations blank images look perfect."""
    real, _ = data.as_tensors(data.mnist(mnist_root, train=False))
    blank = -torch.ones(20, 1, 32, 32)
    with torch.no_grad():
        raw_real = torch.cat([net.body(real[i:i + 1000]) for i in range(0, len(real), 1000)])
        raw_blank = net.body(blank)
    assert metrics.precision_recall(raw_real, raw_blank)[0] > 0.9  # the blind spot (measured: 1.0)
    normalised = metrics.DigitClassifier.normalise
    assert metrics.precision_recall(normalised(raw_real), normalised(raw_blank))[0] == 0.0


def test_real_floor_10k(mnist_root):
    floor = metrics.real_floor(root=mnist_root, n=10_000, cache=False)
    assert floor["n"] == 10_000
    assert floor["fid"] < 0.5
    assert floor["precision"] > 0.8 and floor["recall"] > 0.8
    assert 0.8 < floor["density"] < 1.2 and floor["coverage"] > 0.9
    assert floor["classes_covered"] == 10 and floor["class_max_share"] < 0.13
    assert floor["label_accuracy"] > 0.99
    table = metrics.format_metrics(floor, floor)
    assert "FID" in table and "real floor" in table and "precision" in table


def test_real_floor_cache(mnist_root, tmp_path):
    # a private root that shares the real MNIST files, so the cache file lands in tmp_path
    (tmp_path / "MNIST").symlink_to(Path(mnist_root).resolve() / "MNIST")
    floor = metrics.real_floor(root=tmp_path, n=1000, seed=3)
    cache = json.loads((tmp_path / "labkit-cache" / "real_floor.json").read_text())
    (key, stored), = cache.items()
    assert key.endswith("-n1000-seed3-k3") and stored["fid"] == floor["fid"]
    assert metrics.real_floor(root=tmp_path, n=1000, seed=3) == floor  # from memory
    metrics._FLOORS.clear()
    assert metrics.real_floor(root=tmp_path, n=1000, seed=3) == floor  # from disk
    stored["fid"] = -1.0  # the disk cache really is what gets returned
    (tmp_path / "labkit-cache" / "real_floor.json").write_text(json.dumps({key: stored}))
    metrics._FLOORS.clear()
    assert metrics.real_floor(root=tmp_path, n=1000, seed=3)["fid"] == -1.0
    assert metrics.real_floor(root=tmp_path, n=1000, seed=3, cache=False)["fid"] == floor["fid"]


@pytest.fixture(scope="module")
def real_scores(mnist_root, mnist_train):
    images, _ = mnist_train
    return metrics.evaluate(BankGenerator(images[:2000]), n=2000, root=mnist_root, device="cpu")


def test_real_images_score_near_the_floor(real_scores):
    assert real_scores["fid"] < 2.0
    assert real_scores["precision"] > 0.8 and real_scores["recall"] > 0.8
    assert real_scores["density"] > 0.8 and real_scores["classes_covered"] == 10


@pytest.mark.parametrize("kind", ["uniform noise", "blank", "near-blank", "faint digits", "blobs"])
def test_degenerate_generators_score_bad(kind, mnist_root, mnist_train, real_scores):
    gen = torch.Generator().manual_seed(0)
    n = 2000
    images = mnist_train[0][:n]
    if kind == "uniform noise":
        fake = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
    elif kind == "blank":
        fake = -torch.ones(n, 1, 32, 32)
    elif kind == "near-blank":
        fake = -1 + 0.05 * torch.rand(n, 1, 32, 32, generator=gen)
    elif kind == "faint digits":
        fake = images * 0.1 - 0.9
    else:
        yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        radius = 4 + 5 * torch.rand(n, 1, 1, 1, generator=gen)
        fake = torch.where((yy - 16) ** 2 + (xx - 16) ** 2 < radius**2, 1.0, -1.0)
    scores = metrics.evaluate(BankGenerator(fake), n=n, root=mnist_root, device="cpu")
    assert scores["fid"] > 30 * real_scores["fid"] and scores["fid"] > 20
    # measured: 0.0 for noise and (near-)blank images, 0.11-0.14 for blobs and faint digits
    # (a filled disk is a fat "0"), against 0.85 for real digits
    assert scores["precision"] < (0.2 if kind in ("faint digits", "blobs") else 0.02), scores
    assert scores["recall"] < 0.05 and scores["density"] < 0.1 and scores["coverage"] < 0.05


def test_one_digit_generator_is_flagged(mnist_root, mnist_train, real_scores):
    images, labels = mnist_train
    ones = images[labels == 1][:2000]
    scores = metrics.evaluate(BankGenerator(ones), n=2000, root=mnist_root, device="cpu")
    assert scores["precision"] > 0.7  # each image is a fine digit...
    assert scores["recall"] < 0.25 and scores["coverage"] < 0.25  # ...but only one kind
    assert scores["classes_covered"] == 1 and scores["class_max_share"] > 0.95
    assert scores["fid"] > 30 * real_scores["fid"]
    hist = metrics.class_histogram(ones[:500])
    assert hist.shape == (10,) and hist.sum() == pytest.approx(1.0) and hist[1] > 0.95


def test_label_accuracy_of_conditional_generators(mnist_train, net):
    images, labels = mnist_train
    faithful = BankGenerator(images, labels, n_classes=10)
    scores = metrics.label_accuracy(faithful, n_per_class=100, net=net, device="cpu")
    assert scores["overall"] > 0.98 and len(scores["per_class"]) == 10 and min(scores["per_class"]) > 0.9
    careless = BankGenerator(images, labels, n_classes=10, ignore_y=True)
    scores = metrics.label_accuracy(careless, n_per_class=100, net=net, device="cpu")
    assert 0.05 < scores["overall"] < 0.16
    with pytest.raises(ValueError, match="conditional"):
        metrics.label_accuracy(BankGenerator(images), net=net)


def test_evaluate_dcgan_is_seeded_and_leaves_state_alone(mnist_root, net):
    torch.manual_seed(123)
    G = models.DCGANGenerator(nz=16, ngf=8, n_classes=10).train()
    rng_state = torch.get_rng_state()
    a = metrics.evaluate(G, n=300, root=mnist_root, device="cpu", batch_size=128)
    b = metrics.evaluate(G, n=300, root=mnist_root, device="cpu", batch_size=128)
    assert torch.equal(torch.get_rng_state(), rng_state) and G.training
    keys = {"fid", "precision", "recall", "density", "coverage", "class_min_share", "class_max_share",
            "classes_covered", "label_accuracy", "label_accuracy_per_class", "n", "truncation", "seconds", "timings"}
    assert set(a) == keys
    assert {k: a[k] for k in keys - {"seconds", "timings"}} == {k: b[k] for k in keys - {"seconds", "timings"}}
    assert a["fid"] > 20 and a["n"] == 300  # an untrained G is nowhere near the floor
    mlp = metrics.evaluate(models.MLPGenerator(nz=16, hidden=(32,)), n=50, real=G(torch.randn(40, 16),
                           torch.arange(40) % 10).detach(), device="cpu", net=net)
    assert "label_accuracy" not in mlp and math.isfinite(mlp["fid"])


def test_generated_batches_are_seeded_and_leave_the_callers_grad_mode_and_g_alone():
    G = models.DCGANGenerator(nz=16, ngf=8).train()
    grad_modes = []
    batches = []
    for x in metrics.generated_batches(G, 10, None, seed=3, batch_size=4, device=torch.device("cpu")):
        grad_modes.append(torch.is_grad_enabled())
        batches.append(x)
    assert [len(x) for x in batches] == [4, 4, 2] and not any(x.requires_grad for x in batches)
    assert grad_modes == [True, True, True] and G.training
    again = torch.cat(list(metrics.generated_batches(G, 10, None, seed=3, batch_size=10, device=torch.device("cpu"))))
    assert torch.allclose(torch.cat(batches), again, atol=1e-6)
    truncated = torch.cat(list(metrics.generated_batches(G, 10, None, 3, 10, torch.device("cpu"), truncation=0.5)))
    assert not torch.allclose(truncated, again)


def test_evaluate_rejects_bad_generators(net):
    class NoAttributes(nn.Module):
        def forward(self, z):
            return z

    with pytest.raises(ValueError, match="nz"):
        metrics.evaluate(NoAttributes(), n=10, net=net)
    wide = BankGenerator(torch.full((20, 1, 32, 32), 3.0))
    with pytest.raises(ValueError, match=r"G's output must lie in \[-1, 1\]"):
        metrics.evaluate(wide, n=20, real=torch.zeros(20, 1, 32, 32), net=net, device="cpu")
    with pytest.raises(ValueError, match="n must be an int"):
        metrics.evaluate(wide, n=2, net=net)


def test_format_metrics_aligns_columns():
    model = {"fid": 12.3456, "precision": 0.5, "recall": 0.25, "n": 10_000, "seconds": 3.2}
    floor = {"fid": 0.4, "precision": 0.9, "recall": 0.9, "n": 10_000, "seconds": 1.0}
    lines = metrics.format_metrics(model, floor).splitlines()
    assert lines[0].split() == ["metric", "model", "real", "floor", "better"]
    assert "12.35" in lines[2] and "0.40" in lines[2]
    assert len({len(line) for line in lines[:5]}) == 1  # the columns line up
    assert "density" not in "\n".join(lines)  # only the metrics given are shown
    with pytest.raises(ValueError, match="metrics must be the dict"):
        metrics.format_metrics([1, 2])


# ------------------------------------------------------------------------- memorisation (nearest training image)

@pytest.fixture(scope="module")
def memo_sets(mnist_root, mnist_train):
    """Training digits, copies of some of them, real test digits and uniform noise, all (N, 1, 32, 32) in [-1, 1]."""
    train = mnist_train[0][:6000]
    test = data.as_tensors(data.mnist(mnist_root, train=False))[0][:600]
    g = torch.Generator().manual_seed(7)
    copies = train[torch.randperm(len(train), generator=g)[:300]]
    noise = torch.rand(100, 1, 32, 32, generator=g) * 2 - 1
    return train, copies, test, noise


def brute_nearest(samples: torch.Tensor, train: torch.Tensor) -> np.ndarray:
    """Every distance, in float64, without the matrix-product shortcut (no cancellation)."""
    x, t = samples.flatten(1).double(), train.flatten(1).double()
    return torch.cdist(x, t, compute_mode="donot_use_mm_for_euclid_dist").min(1).values.numpy()


def test_nearest_train_distance_is_exact(memo_sets):
    train, copies, test, noise = memo_sets
    samples = torch.cat([test[:200], copies[:100], noise[:30]])  # bound decides, copies, bound too loose
    d, index = metrics.nearest_train_distance(samples, train, return_index=True)
    assert d.dtype == np.float64 and d.shape == (330,) and index.shape == (330,)
    assert np.abs(d - brute_nearest(samples, train)).max() < 1e-5
    again = (samples.flatten(1).double() - train[index].flatten(1).double()).norm(dim=1).numpy()
    assert np.abs(again - d).max() < 1e-9  # the index points at an image at that distance


def test_copies_score_zero_and_noise_far_above_real_test_digits(memo_sets):
    train, copies, test, noise = memo_sets
    d_copies = metrics.nearest_train_distance(copies, train)
    d_test = metrics.nearest_train_distance(test, train)
    d_noise = metrics.nearest_train_distance(noise, train)
    assert d_copies.max() == 0.0  # exact copies: the distance is recomputed in float64
    assert d_test.min() > 1.0 and 5 < np.median(d_test) < 15  # a test digit is nobody's copy
    assert d_noise.min() > 2 * d_test.max()  # noise is far from every digit

    copying = metrics.memorisation(copies, train, test)
    assert copying["sample_median"] == 0.0 and copying["ratio"] == 0.0 and copying["near_copy_share"] == 1.0
    assert copying["test_median"] == pytest.approx(np.median(d_test))
    assert (copying["n_samples"], copying["n_train"], copying["n_test"]) == (300, 6000, 600)
    # half copies, half new digits: the share of near-copies says so
    half = metrics.memorisation(torch.cat([copies[:100], test[300:400]]), train, test[:300])
    assert 0.45 <= half["near_copy_share"] <= 0.6
    new = metrics.memorisation(test[300:], train, test[:300])  # new digits score like the reference
    assert 0.8 < new["ratio"] < 1.25 and new["near_copy_share"] < 0.05
    assert metrics.memorisation(noise, train, test)["ratio"] > 2


def test_block_size_does_not_change_the_result(memo_sets):
    train, copies, test, noise = memo_sets
    samples = torch.cat([test[:60], copies[:20], noise[:10]])
    reference, index = metrics.nearest_train_distance(samples, train, return_index=True)
    for block_size in (1, 7, 64, 10_000):
        d, i = metrics.nearest_train_distance(samples, train, block_size=block_size, return_index=True)
        np.testing.assert_allclose(d, reference, rtol=0, atol=1e-6)
        assert (i == index).mean() > 0.99  # ties aside, the same nearest images


def test_memorisation_works_in_bounded_blocks(memo_sets, monkeypatch, cdist_shapes):
    train, copies, test, noise = memo_sets
    shapes = cdist_shapes
    monkeypatch.setattr(metrics, "MEMO_TRAIN_CHUNK", 1000)
    metrics.nearest_train_distance(torch.cat([test[:200], noise[:20]]), train, block_size=64)
    assert shapes and max(rows for rows, _ in shapes) <= 64 and max(cols for _, cols in shapes) <= 1000


def test_memorisation_rejects_bad_input(memo_sets):
    train, copies, test, _ = memo_sets
    with pytest.raises(ValueError, match=r"samples must have shape \(N, 1, 32, 32\)"):
        metrics.nearest_train_distance(copies[:, 0], train)
    with pytest.raises(ValueError, match=r"train must have shape \(N, 1, 32, 32\) with N >= 1"):
        metrics.nearest_train_distance(copies, train[:0])
    with pytest.raises(ValueError, match=r"samples must have shape .* N >= 1"):
        metrics.nearest_train_distance(copies[:0], train)
    with pytest.raises(ValueError, match=r"train must lie in \[-1, 1\]"):
        metrics.nearest_train_distance(copies, train * 3)
    with pytest.raises(ValueError, match="samples must be a torch tensor"):
        metrics.nearest_train_distance([[0.0]], train)
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        metrics.nearest_train_distance(copies, train, block_size=0)
    with pytest.raises(ValueError, match="return_index"):
        metrics.nearest_train_distance(copies, train, return_index="yes")
    with pytest.raises(ValueError, match=r"test must have shape"):
        metrics.memorisation(copies, train, test[:0])
    with pytest.raises(ValueError, match=r"train must have shape"):
        metrics.memorisation(copies, train.flatten(1), test)


def test_memorisation_without_mnist():
    """Synthetic sets: fewer training images than pixels or than the candidates, and a single one."""
    g = torch.Generator().manual_seed(0)
    for n_train in (5, 300):
        train = torch.rand(n_train, 1, 32, 32, generator=g) * 2 - 1
        samples = torch.cat([train[2:3], torch.rand(30, 1, 32, 32, generator=g) * 2 - 1, train[:20] * 0.9])
        d, i = metrics.nearest_train_distance(samples, train, return_index=True)
        assert d[0] == 0.0 and i[0] == 2
        np.testing.assert_allclose(d, brute_nearest(samples, train), atol=1e-6)
    one = metrics.nearest_train_distance(samples, train[:1])
    np.testing.assert_allclose(one, (samples - train[:1]).flatten(1).double().norm(dim=1).numpy(), atol=1e-6)


# --------------------------------------------------------------------------- the truncation trick


def test_truncated_noise_stays_inside_the_threshold_with_a_truncated_normals_spread():
    z = metrics.truncated_noise(20_000, 10, 1.0, torch.Generator().manual_seed(0))
    assert z.shape == (20_000, 10) and z.abs().max() <= 1.0
    # the variance of N(0, 1) truncated to [-1, 1] is 1 - 2 phi(1) / (2 Phi(1) - 1) = 0.2911
    assert float(z.var()) == pytest.approx(0.2911, abs=0.005)
    again = metrics.truncated_noise(20_000, 10, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)
    plain = metrics.truncated_noise(5, 3, None, torch.Generator().manual_seed(1))
    assert torch.equal(plain, torch.randn(5, 3, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1.0"])
def test_a_bad_truncation_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="truncation must be None"):
        metrics.truncated_noise(4, 2, bad)
    with pytest.raises(ValueError, match="truncation must be None"):
        metrics.truncation_sweep(BankGenerator(torch.zeros(4, 1, 32, 32)), [None, bad])


class NoisyDigits(nn.Module):
    """Real digits spoiled by noise whose strength is |z[1]|: truncating z cleans them."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.nz, self.n_classes, self.images = 8, 0, images
        self.pattern = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1

    def forward(self, z):
        index = ((z[:, 0] * 1e4).long() % len(self.images)).abs()
        strength = z[:, 1].abs().view(-1, 1, 1, 1)
        return (self.images[index] + 0.9 * strength * self.pattern).clamp(-1, 1)


def test_truncation_sweep_trades_variety_for_cleaner_samples(mnist_root, mnist_train, net):
    G = NoisyDigits(mnist_train[0][:4000])
    rows = metrics.truncation_sweep(G, [None, 0.3], n=1000, root=mnist_root, device="cpu", net=net)
    assert [row["truncation"] for row in rows] == [None, 0.3]
    assert rows[1]["precision"] > rows[0]["precision"] + 0.05 and rows[1]["fid"] < rows[0]["fid"]
    alone = metrics.evaluate(G, n=1000, root=mnist_root, device="cpu", net=net, truncation=0.3)
    assert alone["precision"] == rows[1]["precision"]  # a sweep row is evaluate at that threshold
    with pytest.raises(ValueError, match="at least one"):
        metrics.truncation_sweep(G, [])


def test_standing_statistics_keep_truncated_samples_from_fading():
    """Eval-mode BatchNorm with N(0, I)'s statistics fades truncated samples; recomputed statistics do not."""
    torch.manual_seed(0)
    G = models.DCGANGenerator(nz=32, ngf=8)
    G.train()
    with torch.no_grad():  # running statistics of N(0, I), as training leaves them
        for _ in range(100):  # momentum 0.1: 100 batches forget the initial statistics
            G(torch.randn(128, 32))
    G.eval()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    z = metrics.truncated_noise(512, 32, 0.3, torch.Generator().manual_seed(1))
    standing = metrics.standing_statistics(G, 0.3, seed=2)

    def first_norm_spread(model, noise):  # the spread of what G's first BatchNorm puts out
        norm = next(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
        out = []
        handle = norm.register_forward_hook(lambda _m, _i, o: out.append(o))
        with torch.no_grad():
            model(noise)
        handle.remove()
        return float(out[0].std())

    plain = first_norm_spread(G, torch.randn(512, 32, generator=torch.Generator().manual_seed(1)))
    stale, fresh = first_norm_spread(G, z), first_norm_spread(standing, z)
    assert stale < 0.4 * plain  # N(0, I)'s statistics shrink truncated activations: the images fade
    assert fresh == pytest.approx(plain, rel=0.2)
    assert not standing.training and all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    again = metrics.standing_statistics(G, 0.3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(standing.state_dict().values(), again.state_dict().values()))
