"""The results of lab 2: every model of the pack, measured the same way, beside the reference.

Notebook 03 trains the vanilla GAN (default and tuned), the WGAN and the WGAN-GP, and finds
the DCGAN and conditional DCGAN that notebooks 01 and 02 saved under the same ``run_dir``.
Each becomes one row (:func:`make_row`): training time and speed from the run's
``History``, FID, precision, recall and class coverage from ``metrics.evaluate``. The table
is never typed in: :func:`markdown` and :func:`save` write it from those rows (CSV and
Markdown next to the runs), with the real-data floor as its last line.

:data:`REFERENCE` is the results table another course published for the same four models,
measured on that course's own platform: its FIDs come from another feature network and are
not on our scale, its precision and recall are comparable in kind. :func:`comparison_markdown`
puts our rows beside it, and :func:`target_report` says whether the pack's quality target
holds (WGAN-GP and the tuned GAN above every reference precision and recall; FID order
WGAN-GP < tuned GAN < WGAN).

Two measurements the notebook reads beside the table: :func:`score_images` scores any set of
images exactly as ``metrics.evaluate`` scores a generator (the known failures of section 2),
and :func:`class_shares` / :func:`run_figure` show a run's class histogram over training
(mode collapse as a measurement) next to D's outputs and G's gradient norm.

Memorisation, which none of the feature-space metrics sees (a copy of the training set
scores at their floor): :class:`MemorisationReference` holds the training images and the
test images' nearest-training distances, and :func:`run_memorisation` gives each run's
``memo_ratio`` and ``near_copy_share`` (as ``metrics.memorisation`` defines them) on
:data:`MEMO_SAMPLES` samples, cached in the run folder; :func:`make_row` takes them as
``memorisation=``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import tables
from .tables import METRIC_KEYS

#: The reference table: another course's results for these models, its platform, its own feature network.
REFERENCE: tuple[dict[str, Any], ...] = (
    {"key": "gan-default", "model": "vanilla GAN, default hyper-parameters", "wall_time": 106.2, "fid": 379.21,
     "precision": 0.00, "recall": 0.00},
    {"key": "gan-tuned", "model": "vanilla GAN, tuned (lr 1e-4, 200 epochs, batch 128)", "wall_time": 113.74,
     "fid": 42.5, "precision": 0.57, "recall": 0.22},
    {"key": "wgan", "model": "WGAN (clipping)", "wall_time": 116.8, "fid": 139.58, "precision": 0.59, "recall": 0.01},
    {"key": "wgan-gp", "model": "WGAN-GP", "wall_time": 110.79, "fid": 36.58, "precision": 0.52, "recall": 0.33},
)

#: Lab 1's runs, as notebooks 01 and 02 name them in ``train.fit_or_load(..., name=...)``: key -> (name, label).
LAB1_RUNS: dict[str, tuple[str, str]] = {
    "dcgan": ("dcgan-default", "DCGAN (lab 1)"),
    "cgan": ("cgan-default", "conditional DCGAN (lab 1)"),
}

#: key, header, format: the columns of the Markdown table (the CSV holds every field of a row).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "model", "{}"),
    ("epochs", "epochs", "{:d}"),
    ("wall_time", "wall time (s)", "{:.0f}"),
    ("images_per_second", "images/s", "{:.0f}"),
    ("fid", "FID", "{:.2f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("classes_covered", "classes >= 5 %", "{:d}"),
    ("class_max_share", "largest class", "{:.3f}"),
    ("memo_ratio", "memorisation ratio", "{:.2f}"),
    ("near_copy_share", "near copies", "{:.3f}"),
)
#: What a row keeps of a memorisation result (see :func:`memorisation_scores`).
MEMO_KEYS = ("memo_ratio", "near_copy_share", "memo_n")
FIELDS = ("key", "model", "epochs", "images", "wall_time", "images_per_second", *METRIC_KEYS, *MEMO_KEYS, "n_eval",
          "run_dir")
#: Samples per model behind the memorisation columns. Every sample is compared with every training
#: image (exactly, in pixel space): 10,000 samples against MNIST's 60,000 training images took 24 to
#: 46 s on a 2-core CPU shared with another job (samples far from every digit cost the most), so six
#: models would add minutes; 2,000 take a fifth of that, and a median of 2,000 distances is steady.
MEMO_SAMPLES = 2_000
TARGET_MODELS = ("gan-tuned", "wgan-gp")  # the rows that must beat every reference precision and recall
FID_ORDER = ("wgan-gp", "gan-tuned", "wgan")  # lowest FID first


# --------------------------------------------------------------------------- rows


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def make_row(key: str, model: str, run: Any = None, scores: Mapping[str, Any] | None = None, *,
             history: Any = None, run_dir: str | os.PathLike | None = None,
             memorisation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One row of the table from a trained run (``train.Run``) and its ``metrics.evaluate`` result.

    ``history`` (a ``train.History``) can be given instead of ``run``; ``memorisation`` is the
    run's :func:`run_memorisation` result. Fields a run did not measure (label accuracy of an
    unconditional G, metrics of an unevaluated run) are None.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string (e.g. 'wgan-gp'), got {key!r}")
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty label (e.g. 'WGAN-GP'), got {model!r}")
    if history is None and run is not None:
        history = getattr(run, "history", None)
    if history is None:
        raise ValueError("make_row needs the run (train.Run) or its history (train.History)")
    if scores is not None and not isinstance(scores, Mapping):
        raise ValueError(f"scores must be the dict returned by metrics.evaluate (or None), got {type(scores).__name__}")
    if memorisation is not None and not isinstance(memorisation, Mapping):
        raise ValueError(f"memorisation must be the dict returned by run_memorisation (or None), "
                         f"got {type(memorisation).__name__}")
    folder = run_dir if run_dir is not None else getattr(run, "run_dir", None)
    row: dict[str, Any] = {
        "key": key,
        "model": model,
        "epochs": int(history.epochs),
        "images": int(sum(history.epoch_images)),
        "wall_time": round(float(history.wall_time), 1),
        "images_per_second": round(float(history.images_per_second), 1),
    }
    for name in METRIC_KEYS:
        value = scores.get(name) if scores is not None else None
        row[name] = value if _number(value) else None
    for name in MEMO_KEYS:
        value = memorisation.get(name) if memorisation is not None else None
        row[name] = value if _number(value) else None
    row["n_eval"] = scores.get("n") if scores is not None else None
    row["run_dir"] = str(folder) if folder is not None else ""
    return row


def _check_rows(rows: Any) -> list[dict[str, Any]]:
    if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
        raise ValueError(f"rows must be a list of dicts made by make_row, got {type(rows).__name__}")
    rows = list(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or "key" not in row or "model" not in row:
            raise ValueError(f"rows[{i}] must be a dict made by make_row (with 'key' and 'model'), got {row!r}")
    return rows


# --------------------------------------------------------------------------- lab 1's runs


def _finished(folder: Path) -> dict[str, Any] | None:
    """The saved config of a finished run folder (checkpoint, config.json, history.json all epochs), else None."""
    try:
        config = json.loads((folder / "config.json").read_text())
        summary = json.loads((folder / "history.json").read_text())
    except (OSError, ValueError):
        return None
    if not (folder / "checkpoint.pt").is_file() or not isinstance(config, dict) or not isinstance(summary, dict):
        return None
    if not isinstance(config.get("epochs"), int) or summary.get("epochs") != config["epochs"]:
        return None
    return config


def find_run(run_dir: str | os.PathLike, name: str, dataset_size: int = 60_000) -> Path | None:
    """The finished run ``run_dir/<name>-<hash>`` that saw the most training images (the newest on a tie).

    Notebooks save runs as ``name-<hash of config>``, so one name can have several folders
    (notebook 01's five-epoch default and its one-epoch ablation baseline, a CI run...): the
    longest finished one stands for the model. None when there is none.
    """
    root = Path(run_dir)
    if not root.is_dir():
        return None
    best: tuple[int, float, Path] | None = None
    for folder in root.iterdir():
        prefix, _, suffix = folder.name.rpartition("-")
        if prefix != name or len(suffix) != 10 or not folder.is_dir():
            continue
        config = _finished(folder)
        if config is None:
            continue
        n_train = config.get("n_train") or dataset_size
        score = (int(config["epochs"]) * int(n_train), (folder / "checkpoint.pt").stat().st_mtime, folder)
        if best is None or score[:2] > best[:2]:
            best = score
    return best[2] if best is not None else None


def lab1_runs(run_dir: str | os.PathLike) -> dict[str, tuple[str, Path]]:
    """Lab 1's finished runs under ``run_dir``: key -> (label, folder), for the keys of :data:`LAB1_RUNS` found."""
    found = {}
    for key, (name, label) in LAB1_RUNS.items():
        folder = find_run(run_dir, name)
        if folder is not None:
            found[key] = (label, folder)
    return found


# --------------------------------------------------------------------------- tables


def markdown(rows: Sequence[Mapping[str, Any]], floor: Mapping[str, Any] | None = None) -> str:
    """The results as a Markdown table, one row per model, and the real-data floor as the last line."""
    return tables.markdown(tables.grid(_check_rows(rows), COLUMNS, floor))


def reference_markdown() -> str:
    """The reference table as Markdown (the other platform's FIDs are not on our scale)."""
    lines = ["| model | time (s) | FID (their scale) | precision | recall |", "|---|---|---|---|---|"]
    for ref in REFERENCE:
        lines.append(f"| {ref['model']} | {ref['wall_time']:.2f} | {ref['fid']:.2f} | {ref['precision']:.2f} | "
                     f"{ref['recall']:.2f} |")
    return "\n".join(lines)


def comparison_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Our precision and recall beside the reference's, model by model (rows without a reference are left out)."""
    rows = _check_rows(rows)
    by_key = {row["key"]: row for row in rows}
    lines = ["| model | precision: ours | precision: reference | recall: ours | recall: reference | "
             "time (s): ours | time (s): reference |", "|---|---|---|---|---|---|---|"]
    for ref in REFERENCE:
        ours = by_key.get(ref["key"], {})
        lines.append(f"| {ours.get('model', ref['model'])} | {tables.cell(ours.get('precision'), '{:.3f}')} | "
                     f"{ref['precision']:.2f} | {tables.cell(ours.get('recall'), '{:.3f}')} | {ref['recall']:.2f} | "
                     f"{tables.cell(ours.get('wall_time'), '{:.0f}')} | {ref['wall_time']:.0f} |")
    return "\n".join(lines)


def target_report(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, bool | None]]:
    """The quality target, claim by claim: (statement, True/False, or None when a row or metric is missing).

    WGAN-GP and the tuned GAN must each beat every precision and recall of :data:`REFERENCE`,
    and the FIDs must be ordered WGAN-GP < tuned GAN < WGAN.
    """
    rows = _check_rows(rows)
    by_key = {row["key"]: row for row in rows}
    best_p = max(ref["precision"] for ref in REFERENCE)
    best_r = max(ref["recall"] for ref in REFERENCE)
    claims: list[tuple[str, bool | None]] = []
    for key in TARGET_MODELS:
        row = by_key.get(key)
        label = row["model"] if row else key
        for metric, bound in (("precision", best_p), ("recall", best_r)):
            value = row.get(metric) if row else None
            if value is None:
                claims.append((f"{label}: {metric} > {bound:.2f} (not measured)", None))
            else:
                claims.append((f"{label}: {metric} {value:.3f} > {bound:.2f}", bool(value > bound)))
    fids = [by_key.get(k, {}).get("fid") for k in FID_ORDER]
    names = [by_key[k]["model"] if k in by_key else k for k in FID_ORDER]
    if any(f is None for f in fids):
        claims.append((f"FID order {' < '.join(names)} (not all measured)", None))
    else:
        text = " < ".join(f"{n} ({f:.2f})" for n, f in zip(names, fids))
        claims.append((f"FID order {text}", all(a < b for a, b in zip(fids, fids[1:]))))
    return claims


def format_target(claims: Sequence[tuple[str, bool | None]]) -> str:
    """The claims of :func:`target_report` as lines marked yes / NO / n/a."""
    marks = {True: "yes", False: "NO ", None: "n/a"}
    return "\n".join(f"[{marks[ok]}] {text}" for text, ok in claims)


def save(rows: Sequence[Mapping[str, Any]], folder: str | os.PathLike, floor: Mapping[str, Any] | None = None,
         stem: str = "results") -> tuple[Path, Path]:
    """Write ``stem.csv`` (every field, the floor as a last row) and ``stem.md`` (our table, then the reference).

    Both are written to a temporary name and renamed, so a reader never sees half a file.
    Returns the two paths.
    """
    rows = _check_rows(rows)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / f"{stem}.csv", folder / f"{stem}.md"
    fields = list(FIELDS) + sorted({k for row in rows for k in row} - set(FIELDS))
    table = [dict(row) for row in rows]
    if floor is not None:
        table.append({"key": "real-floor", "model": "real MNIST (floor)", **{k: floor.get(k) for k in METRIC_KEYS},
                      "n_eval": floor.get("n")})
    tmp = csv_path.with_name(f".{csv_path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        for row in table:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    os.replace(tmp, csv_path)
    text = ("## Results (this pack's runs, metrics on our digit features)\n\n" + markdown(rows, floor)
            + "\n\n## Reference (another course's table: its own platform and feature network)\n\n"
            + reference_markdown()
            + "\n\n## Precision and recall beside the reference\n\n" + comparison_markdown(rows) + "\n")
    tmp = md_path.with_name(f".{md_path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, md_path)
    return csv_path, md_path


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows saved by :func:`save` (numbers as numbers, empty cells as None; the floor row included)."""
    out = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if v == "":
                    row[k] = None
                elif k in ("key", "model", "run_dir"):
                    row[k] = v
                else:
                    try:
                        number = float(v)
                        row[k] = int(number) if number.is_integer() and "." not in v and "e" not in v.lower() else number
                    except ValueError:
                        row[k] = v
            out.append(row)
    return out


# --------------------------------------------------------------------------- measurements of runs and image sets


class _Replay(nn.Module):
    """A "generator" that hands out fixed images in order, so metrics.evaluate can score an image set."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images, self.nz, self.n_classes, self.position = images, 1, 0, 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.images[self.position:self.position + len(z)]
        self.position += len(z)
        return out.to(z.device)


def score_images(images: torch.Tensor, real: torch.Tensor | None = None, root: str | os.PathLike | None = None,
                 device: str | torch.device = "auto", batch_size: int = 500) -> dict[str, Any]:
    """``metrics.evaluate``'s scores for a fixed set of images (N, 1, 32, 32) in [-1, 1] instead of a generator.

    The same reference (the MNIST test set, or ``real``), the same features and k-NN balls as a
    generator's evaluation, so a hand-made failure (only 1s, blurred digits, noise) reads on the
    same scale as the GANs. All N images are scored.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (1, 32, 32):
        raise ValueError(f"images must be a tensor (N, 1, 32, 32) in [-1, 1], got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    from . import metrics

    return metrics.evaluate(_Replay(images.detach().cpu().float()), n=len(images), real=real, device=device,
                            batch_size=batch_size, root=root)


def class_shares(history: Any, net: Any = None) -> np.ndarray:
    """Share of each digit 0-9 among a run's fixed-noise samples, per epoch: (epochs + 1, 10), row 0 before training.

    ``history`` is a ``train.History`` (its ``samples``); ``net`` the feature network (loaded when None).
    A healthy G keeps every digit near 0.1; a collapse shows as one large share.
    """
    from . import metrics

    samples = getattr(history, "samples", None)
    if not samples:
        raise ValueError("history must be a train.History with samples (History.samples is empty)")
    net = net if net is not None else metrics.load_feature_net("cpu")
    return np.stack([metrics.class_histogram(s, net) for s in samples])


def epoch_means(history: Any, name: str) -> np.ndarray:
    """Mean of a per-step measurement of a ``train.History`` (``"d_loss"``, ``"d_real"``, ...) over each epoch."""
    if name not in getattr(history, "STEP_FIELDS", ()):
        raise ValueError(f"name must be one of {getattr(history, 'STEP_FIELDS', ())}, got {name!r}")
    values = np.asarray(getattr(history, name), dtype=float)
    epochs = np.asarray(history.epoch_of_step)
    return np.array([values[epochs == e].mean() for e in range(1, int(epochs.max(initial=0)) + 1)])


def loss_comparison(runs: Sequence[tuple[str, Any]]):
    """Per-epoch losses of GAN and Wasserstein runs side by side; returns (Figure, lines of text).

    Left: D's and G's losses of the runs trained with a GAN loss. Right: the critics'
    estimate of W, E f(x) - E f(G(z)) (mean over each epoch), of the Wasserstein runs.
    """
    import matplotlib.pyplot as plt

    fig, (ax_gan, ax_w) = plt.subplots(1, 2, figsize=(13, 3.6))
    lines = []
    for label, run in runs:
        h = run.history
        d, g = epoch_means(h, "d_loss"), epoch_means(h, "g_loss")
        x = np.arange(1, len(d) + 1)
        if run.config.loss.startswith("wgan"):
            gap = epoch_means(h, "d_real") - epoch_means(h, "d_fake")
            ax_w.plot(x, gap, marker=".", label=label)
            lines.append(f"{label:<38} critic loss {d[0]:+.3f} -> {d[-1]:+.3f}, G loss {g[0]:+.3f} -> {g[-1]:+.3f}; "
                         f"estimate of W {gap[0]:.3f} -> {gap[-1]:.3f} (largest {gap.max():.3f}, epoch {gap.argmax() + 1})")
        else:
            line, = ax_gan.plot(x, d, marker=".", label=f"{label}: D")
            ax_gan.plot(x, g, ls="--", color=line.get_color(), label=f"{label}: G")
            lines.append(f"{label:<38} D loss {d[0]:.3f} -> {d[-1]:.3f}, G loss {g[0]:.3f} -> {g[-1]:.3f} "
                         f"(D at the game's equilibrium: 2 log 2 = {2 * math.log(2):.3f})")
    ax_gan.axhline(2 * math.log(2), color="0.5", ls=":", lw=0.8)
    ax_gan.set(xlabel="epoch", ylabel="mean loss", title="GAN losses per epoch (dotted: 2 log 2)")
    ax_w.set(xlabel="epoch", ylabel="E f(x) - E f(G(z))", title="critics' estimate of W per epoch")
    for ax in (ax_gan, ax_w):
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, lines


def _moving_average(values: Sequence[float], window: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=float)
    window = max(1, min(window, len(values)))
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    return np.arange(len(smooth)) + (window + 1) / 2, smooth


def run_figure(run: Any, title: str, shares: np.ndarray | None = None, net: Any = None, smooth: int = 25):
    """One row for a run: final samples, the class histogram over epochs, D's outputs, and G's gradient norm
    (GAN losses) or the critic's estimate E f(x) - E f(G(z)) of W (Wasserstein losses). Returns the Figure."""
    import matplotlib.pyplot as plt

    from . import plots

    history = getattr(run, "history", run)
    config = getattr(run, "config", None)
    wasserstein = config is not None and str(getattr(config, "loss", "")).startswith("wgan")
    shares = class_shares(history, net) if shares is None else np.asarray(shares)
    fig, axes = plt.subplots(1, 4, figsize=(20, 3.8), gridspec_kw={"width_ratios": [1, 1.3, 1.6, 1.6]})
    plots.sample_grid(history.samples[-1][:36], nrow=6, ax=axes[0], title=f"{title}: epoch {history.epochs}")
    image = axes[1].imshow(shares.T, aspect="auto", cmap="magma", vmin=0, vmax=max(0.5, float(shares.max())),
                           origin="lower", interpolation="nearest")
    axes[1].set(xlabel="epoch (0 = before training)", ylabel="digit", yticks=range(10),
                title="share of each digit among the samples")
    fig.colorbar(image, ax=axes[1], fraction=0.05)
    if wasserstein:
        plots.d_output_curves(history, smooth=smooth, ax=axes[2], wasserstein=True, title="critic scores f(x), f(G(z))")
        estimate = np.asarray(history.d_real) - np.asarray(history.d_fake)
        axes[3].plot(np.arange(1, len(estimate) + 1), estimate, color="tab:purple", alpha=0.25, lw=0.6)
        axes[3].plot(*_moving_average(estimate, smooth), color="tab:purple", label="E f(x) - E f(G(z))")
        axes[3].set(xlabel="generator step", ylabel="estimate", title="the critic's estimate of W")
        axes[3].legend()
    else:
        plots.d_output_curves(history, smooth=smooth, ax=axes[2], title="D's confidence: D(x) and D(G(z))")
        plots.grad_norm_curves({"||grad G||": history.g_grad_norm}, smooth=smooth, ax=axes[3],
                               title="norm of G's gradient")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- memorisation


def sample_images(G: Any, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """n images (n, 1, 32, 32) from G on the CPU, drawn as ``metrics.evaluate`` draws them.

    The same noise for the same seed (its own ``torch.Generator``, the global RNG untouched);
    a conditional G gets each class equally often; G in eval mode under no_grad.
    """
    from . import metrics

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1 (images to draw), got {n!r}")
    metrics._check_generator(G)
    labels = metrics._balanced_labels(n, G.n_classes, torch.Generator().manual_seed(seed + 1)) if G.n_classes else None
    batches = metrics.generated_batches(G, n, labels, seed, batch_size, torch.device("cpu"))
    return torch.cat([x.float().cpu() for x in batches])


class MemorisationReference:
    """The training images and the test images' distances to them: what each sample set is read against.

    ``metrics.memorisation`` computes the test set's distances on every call; a results table
    scores several models against the same sets, so they are computed once here (lazily: a
    table whose runs are all cached never needs them).
    """

    def __init__(self, train: torch.Tensor, test: torch.Tensor, device: str | torch.device = "cpu"):
        for name, images in (("train", train), ("test", test)):
            if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (1, 32, 32):
                raise ValueError(f"{name} must be a tensor (N, 1, 32, 32) in [-1, 1], got "
                                 f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        self.train, self.test, self.device = train, test, device
        self._test_distances: np.ndarray | None = None

    @property
    def test_distances(self) -> np.ndarray:
        if self._test_distances is None:
            from . import metrics

            self._test_distances = metrics.nearest_train_distance(self.test, self.train, device=self.device)
        return self._test_distances

    def key(self) -> str:
        """Names the two sets in a cache file: their sizes (a subset of MNIST is another reference)."""
        return f"train{len(self.train)}-test{len(self.test)}"


def memorisation_scores(samples: torch.Tensor, reference: MemorisationReference) -> dict[str, Any]:
    """``metrics.memorisation``'s numbers for ``samples`` against a :class:`MemorisationReference`.

    ``memo_ratio``: the samples' median distance to their nearest training image over the test
    images' median (about 1 for new digits, near 0 for copies); ``near_copy_share``: the share of
    samples nearer to the training set than 99 % of the test images (about 0.01 for new digits,
    near 1 for copies); ``memo_n``: the number of samples; the medians and the threshold too.
    """
    from . import metrics

    if not isinstance(reference, MemorisationReference):
        raise ValueError(f"reference must be a MemorisationReference, got {type(reference).__name__}")
    d = metrics.nearest_train_distance(samples, reference.train, device=reference.device)
    d_test = reference.test_distances
    test_median = float(np.median(d_test))
    threshold = float(np.quantile(d_test, 0.01))
    return {"memo_ratio": float(np.median(d)) / test_median if test_median > 0 else math.inf,
            "near_copy_share": float((d < threshold).mean()), "memo_n": len(d),
            "sample_median": float(np.median(d)), "test_median": test_median, "near_copy_distance": threshold}


def run_memorisation(run: Any, reference: MemorisationReference, n: int = MEMO_SAMPLES, seed: int = 0
                     ) -> dict[str, Any]:
    """:func:`memorisation_scores` of n samples of a run's G (:func:`sample_images`), cached in its run folder.

    The cache file names n, the seed and the reference's sizes; ``seconds`` is what the
    computation took when it was made.
    """
    cache = (Path(run.run_dir) / f"memorisation-n{n}-seed{seed}-{reference.key()}.json"
             if getattr(run, "run_dir", None) is not None else None)
    if cache is not None and cache.is_file():
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass  # a damaged cache file: measure again
    start = time.perf_counter()
    result = memorisation_scores(sample_images(run.G, n, seed=seed), reference)
    result["seconds"] = time.perf_counter() - start
    if cache is not None:
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, cache)
    return result
