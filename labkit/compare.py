"""Comparisons of trained runs: the ablations of lab 1 (question 5) and notebook 02's comparisons.

An :class:`Ablation` is the default :class:`~labkit.train.TrainConfig` with one thing
changed (nz, the initialisation, the widths, lr, beta1, the batch size, the dataset).
Every ablation of a plan gets the same *image budget* as the default run it is compared
with: on a CPU the lab's full settings would take hours (ngf = 128 / ndf = 256 alone costs
about 68 minutes per epoch of MNIST on 2 cores), so the comparison is made at a stated
number of training images, and the plan says when a setting was sized down.

:func:`run_plan` trains (or reloads) every run with ``train.fit_or_load`` and evaluates
it with ``labkit.metrics`` (results cached beside the run), :func:`comparison_figure`
draws samples, losses and D's outputs of every run in one figure, and
:func:`markdown_table` / :func:`save_table` give the table (time, FID, precision, recall,
class coverage) for the notebook and for a report.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from . import data, metrics, parallel, plots, tables, train
from .claims import Spread
from .device import resolve_device
from .tables import METRIC_KEYS
from .train import Run, TrainConfig, TrainingDiverged

DATASET_SIZES = {"mnist": 60_000, "cifar10": 50_000}
SMALL_NZ = (2, 8)
LARGE_NZ = 10_000
LAB_WIDE = (128, 256)  # the lab's wider networks (ngf, ndf), meant for GPUs
DEFAULT_NAME = "dcgan-default"


@dataclass(frozen=True)
class Ablation:
    """One run of a comparison: a run-folder ``name``, a ``label`` saying what changed, its config."""

    name: str
    label: str
    config: TrainConfig
    note: str = ""


@dataclass
class Result:
    """A trained run with its metrics (None where they do not apply, e.g. CIFAR-10 or a diverged run)."""

    label: str
    run: Run | None
    metrics: dict[str, Any] | None = None
    note: str = ""
    name: str = ""

    @property
    def ok(self) -> bool:
        return self.run is not None


# --------------------------------------------------------------------------- budgets and plans


def _available(config: TrainConfig) -> int:
    return config.n_train if config.n_train is not None else DATASET_SIZES[config.dataset]


def budget_config(config: TrainConfig, images: int) -> TrainConfig:
    """``config`` trained on about ``images`` images: a subset when that is less than the data, else whole epochs.

    With the default 60,000 images and full MNIST that is one epoch; a CI run with
    ``n_train=512`` and ``images=512`` is one epoch of its 512 images.
    """
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be a positive integer (a number of training images), got {images!r}")
    available = _available(config)
    if images < available:
        if images < config.batch_size:
            raise ValueError(f"images={images} is smaller than one batch (batch_size={config.batch_size})")
        return config.replace(n_train=images, epochs=1)
    return config.replace(epochs=max(1, round(images / available)))


def cifar10_present(root: str | os.PathLike | None = None) -> bool:
    """True when CIFAR-10 is on disk under ``root`` (extracted, or its archive), so no download is needed."""
    from torchvision import datasets

    folder = Path(data.data_root(root))
    return (folder / datasets.CIFAR10.base_folder / "data_batch_1").is_file() or (folder / datasets.CIFAR10.filename).is_file()


def cifar10_instructions(root: str | os.PathLike | None = None) -> str:
    """How to get CIFAR-10 into ``root`` (printed when the CIFAR-10 ablation is skipped)."""
    root = data.data_root(root)
    return (f"CIFAR-10 is not under {root!s}, so its ablation is skipped. With internet, run\n"
            f"    python -c \"from labkit import data; data.cifar10({str(root)!r})\"\n"
            f"(downloads 170 MB once), then run this cell again. "
            + data._cifar_help(str(root)))


def _check_seeds(seeds: Any) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) < len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, at least one, got {seeds!r}")
    return seeds


def lab1_plan(base: TrainConfig, images: int, data_root: str | os.PathLike | None = None,
              cifar: bool = True, seeds: Any = None, lr_ablation: float | None = None,
              base_label: str = "default") -> tuple[Ablation, list[Ablation], list[str]]:
    """The default run and the ablations of question 5, each trained on ``images`` images.

    Returns ``(default, ablations, skipped)``: ``skipped`` holds one message per ablation
    left out (CIFAR-10 without its data, a batch larger than the budget). On a CPU the
    wide networks are 2x the default widths instead of the lab's ngf=128 / ndf=256.

    ``seeds`` (default: ``base.seed`` alone) trains every run once per seed; ``default``
    is the run with the first seed, the default's other seeds open the list of ablations,
    and each run keeps its name, so :func:`summary` can average the seeds of a name.

    ``lr_ablation`` is the learning rate of the learning-rate row (default: 5x ``base.lr``,
    run ``lr-high``; a lower one is run ``lr-low``). Notebook 01 bases question 5 on a higher
    lr than the lab's and puts the lab's in this row; ``base_label`` then names the base row.
    """
    seeds = _check_seeds(seeds if seeds is not None else (base.seed,))
    if lr_ablation is None:
        lr_ablation = base.lr * 5
    if isinstance(lr_ablation, bool) or not isinstance(lr_ablation, (int, float)) or not 0 < lr_ablation < 1 \
            or lr_ablation == base.lr:
        raise ValueError(f"lr_ablation must be a learning rate in (0, 1) other than base.lr={base.lr:g}, "
                         f"got {lr_ablation!r}")
    base = base.replace(seed=seeds[0])
    default_cfg = budget_config(base, images)
    default = Ablation(DEFAULT_NAME, base_label, default_cfg,
                       f"nz={base.nz}, ngf={base.ngf}, ndf={base.ndf}, lr={base.lr:g}, beta1={base.beta1:g}, "
                       f"batch {base.batch_size}, {base.init} init")
    accelerator = resolve_device(base.device).type != "cpu"
    candidates: list[tuple[str, str, dict[str, Any], str]] = []
    for nz in (*SMALL_NZ, LARGE_NZ):
        candidates.append((f"nz-{nz}", f"nz = {nz}", {"nz": nz}, ""))
    candidates.append(("init-default", "PyTorch's default init", {"init": "default"}, ""))
    narrow = (max(1, base.ngf // 2), max(1, base.ndf // 2))
    candidates.append(("narrow", f"narrower: ngf = {narrow[0]}, ndf = {narrow[1]}", {"ngf": narrow[0], "ndf": narrow[1]}, ""))
    if accelerator:
        wide, note = LAB_WIDE, ""
    else:
        wide = (base.ngf * 2, base.ndf * 2)
        note = (f"sized down on CPU: the lab's ngf = {LAB_WIDE[0]} / ndf = {LAB_WIDE[1]} costs about 68 minutes "
                f"per 60k images on 2 cores; a GPU run uses them")
    candidates.append(("wide", f"wider: ngf = {wide[0]}, ndf = {wide[1]}", {"ngf": wide[0], "ndf": wide[1]}, note))
    ratio = lr_ablation / base.lr
    candidates.append(("lr-high" if ratio > 1 else "lr-low",
                       f"lr = {lr_ablation:g} ({ratio:.3g}x)" if ratio > 1 else f"lr = {lr_ablation:g} (1/{1 / ratio:.3g})",
                       {"lr": lr_ablation}, ""))
    beta1 = 0.9 if base.beta1 != 0.9 else 0.5
    candidates.append((f"beta1-{beta1:g}", f"Adam beta1 = {beta1:g}", {"beta1": beta1}, ""))
    candidates.append(("batch-small", f"batch size {max(1, base.batch_size // 4)}",
                       {"batch_size": max(1, base.batch_size // 4)}, ""))
    candidates.append(("batch-large", f"batch size {base.batch_size * 4}", {"batch_size": base.batch_size * 4}, ""))

    plan: list[Ablation] = [Ablation(DEFAULT_NAME, default.label, default_cfg.replace(seed=s), default.note)
                             for s in seeds[1:]]
    skipped: list[str] = []
    for name, label, changes, note in candidates:
        try:
            config = budget_config(base.replace(**changes), images)
        except ValueError as exc:
            skipped.append(f"{label}: skipped ({exc})")
            continue
        if config == default_cfg:
            continue  # the default already has this setting
        plan.extend(Ablation(name, label, config.replace(seed=s), note) for s in seeds)
    if not cifar:
        skipped.append("CIFAR-10: not requested")
    elif cifar10_present(data_root):
        plan.append(Ablation("cifar10", "CIFAR-10 (3 channels)", budget_config(base.replace(dataset="cifar10"), images),
                             "the digit metrics do not apply to CIFAR-10: compare the samples"))  # one seed: costly
    else:
        skipped.append(cifar10_instructions(data_root))
    return default, plan, skipped


def describe(default: Ablation, plan: list[Ablation]) -> str:
    """One line per run: name, what changed, training images, seed, notes."""
    lines = []
    for a in (default, *plan):
        images = a.config.epochs * _available(a.config)
        line = f"{a.name:<14} {a.label:<58} {images:>7,} images  seed {a.config.seed}"
        lines.append(line + (f"  ({a.note})" if a.note else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------- running and evaluating


def evaluate_run(run: Run, n: int = 10_000, seed: int = 0, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """``metrics.evaluate`` for a run's G, cached as JSON in its run folder (reopening a notebook is instant).

    The cache key holds n, the seed and the feature network's hash, so new weights or
    another sample size evaluate again.
    """
    weights = metrics.file_sha256(metrics.WEIGHTS_FILE)[:12] if metrics.WEIGHTS_FILE.is_file() else "none"
    cache = Path(run.run_dir) / f"metrics-n{n}-seed{seed}-{weights}.json" if run.run_dir is not None else None
    if cache is not None and cache.is_file():
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass  # a damaged cache file: evaluate again
    result = metrics.evaluate(run.G, n=n, seed=seed, device=run.config.device, root=root)
    if cache is not None:
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, cache)
    return result


CURVE_SAMPLES = 1_000
CURVE_KEYS = ("fid", "precision", "recall", "coverage", "classes_covered")


def curve_probe(n: int = CURVE_SAMPLES, seed: int = 0, device: str = "auto",
                root: str | os.PathLike | None = None):
    """A ``measure(G)`` for ``train.fit``: FID, precision, recall, coverage and classes covered of ``n`` samples.

    Drawn from its own seeded generator with G in eval mode, so measuring leaves the run
    unchanged; about a second on a CPU at n = 1,000. FID on 1,000 samples sits above the
    10,000-sample figure (FID is biased upwards at small n): compare curves with curves.
    """
    from .progress import quiet

    net = metrics.load_feature_net(device)

    def measure(G) -> dict[str, float]:
        with quiet():
            scores = metrics.evaluate(G, n=n, seed=seed, device=device, root=root, net=net)
        return {key: scores[key] for key in CURVE_KEYS}

    return measure


def run_one(ablation: Ablation, runs_root: str | os.PathLike, data_root: str | os.PathLike | None = None,
            n_eval: int = 10_000, seed: int = 0, curve_every: int | None = None, measure=None) -> Result:
    """Train (or reload) one run and evaluate it; a diverged run is reported, not raised.

    ``curve_every``: measure the run every that many images while it trains, with ``measure``
    (default: a :func:`curve_probe`), for :func:`curve_figure`. Digit metrics only: CIFAR-10
    runs are never measured.
    """
    if curve_every is None or ablation.config.dataset != "mnist":
        measure = None
    elif measure is None:
        measure = curve_probe(n=min(CURVE_SAMPLES, n_eval), seed=seed, device=ablation.config.device, root=data_root)
    try:
        run = train.fit_or_load(ablation.config, runs_root=runs_root, name=ablation.name, data_root=data_root,
                                measure=measure, measure_every=curve_every)
    except TrainingDiverged as exc:
        return Result(ablation.label, None, None, f"diverged: {exc}", ablation.name)
    scores = evaluate_run(run, n_eval, seed, data_root) if ablation.config.dataset == "mnist" else None
    return Result(ablation.label, run, scores, ablation.note, ablation.name)


def run_plan(default: Ablation, plan: list[Ablation], runs_root: str | os.PathLike,
             data_root: str | os.PathLike | None = None, n_eval: int = 10_000, seed: int = 0,
             curve_every: int | None = None, workers: int | None = None) -> list[Result]:
    """The default run and every ablation, trained or reloaded, with their metrics. Default first.

    ``curve_every`` measures each run along the way (see :func:`run_one`), on
    ``min(CURVE_SAMPLES, n_eval)`` samples with one probe for all runs.

    The runs not yet finished first train side by side (:func:`train_unfinished`;
    ``workers`` overrides the number of processes, 1 trains them here one by one), then
    every result is read back in the plan's order.
    """
    ablations = [default, *plan]
    diverged = train_unfinished(ablations, runs_root, data_root, n_eval, seed, curve_every, workers)
    measure = _lazy_probe(n=min(CURVE_SAMPLES, n_eval), seed=seed, device=default.config.device, root=data_root)
    results = []
    for i, ablation in enumerate(ablations):
        print(f"[{i + 1}/{len(ablations)}] {ablation.name} (seed {ablation.config.seed}): {ablation.label}")
        if i in diverged:
            results.append(Result(ablation.label, None, None, diverged[i], ablation.name))
        else:
            results.append(run_one(ablation, runs_root, data_root, n_eval, seed, curve_every, measure))
    return results


def train_unfinished(ablations: list[Ablation], runs_root: str | os.PathLike,
                     data_root: str | os.PathLike | None = None, n_eval: int = 10_000, seed: int | None = 0,
                     curve_every: int | None = None, workers: int | None = None) -> dict[int, str]:
    """Train the runs of ``ablations`` not yet finished side by side in worker processes, longest first.

    Each worker also evaluates its run (:func:`evaluate_run` on ``n_eval`` samples drawn
    at ``seed``, or at the run's own seed when ``seed`` is None) and caches the scores in
    the run folder, so reading the runs back afterwards is quick. Returns why each run
    that diverged did, by its index in ``ablations``.

    The pool is sized by :func:`labkit.parallel.choose_workers` (``workers`` overrides
    it). With one process (a GPU, a single core, ``workers=1``) nothing trains here:
    :func:`run_one` then trains each run in this process, with its progress bar.
    """
    todo = sorted((i for i, a in enumerate(ablations) if not train.is_finished(a.config, runs_root, a.name)),
                  key=lambda i: -_relative_cost(ablations[i].config))
    if not todo:
        return {}
    processes, threads = parallel.choose_workers(len(todo), ablations[todo[0]].config.device, workers)
    if processes < 2:
        return {}
    jobs = [(ablations[i], runs_root, data_root, n_eval, ablations[i].config.seed if seed is None else seed,
             curve_every) for i in todo]
    diverged = {}
    for index, note in parallel.run_jobs(_train_in_worker, jobs, processes, threads, desc="training runs",
                                         name=lambda job: f"{job[0].label} (seed {job[0].config.seed})"):
        if note is not None:
            diverged[todo[index]] = note
    return diverged


def _relative_cost(config: TrainConfig) -> float:
    """Training cost of a config, up to a constant: images times the nets' multiply-adds per image.

    A step trains D ``n_critic`` times and G once, each pass through both nets, so a WGAN
    critic at n_critic = 5 costs three times a GAN's step of the same nets.
    """
    per_image = 768 * (config.ngf ** 2 + config.ndf ** 2) + config.nz * config.ngf  # conv layers + G's first layer
    return config.epochs * _available(config) * per_image * (config.n_critic + 1) / 2


def _lazy_probe(**probe_args: Any):
    """A :func:`curve_probe` built on its first call: a plan whose runs all reload never pays for one."""
    probe = None

    def measure(G) -> dict[str, float]:
        nonlocal probe
        if probe is None:
            probe = curve_probe(**probe_args)
        return probe(G)

    return measure


def _train_in_worker(job: tuple) -> str | None:
    """A worker's part of :func:`run_plan`: train and evaluate one run (both kept on disk); why it diverged, or None."""
    ablation, runs_root, data_root, n_eval, seed, curve_every = job
    key = (min(CURVE_SAMPLES, n_eval), seed, ablation.config.device, data_root)
    if key not in _worker_probes:
        _worker_probes[key] = _lazy_probe(n=key[0], seed=seed, device=key[2], root=data_root)
    result = run_one(ablation, runs_root, data_root, n_eval, seed, curve_every, _worker_probes[key])
    return None if result.ok else result.note


_worker_probes: dict[tuple, Any] = {}  # one probe per worker process and setting


def runs_by_nz(results: list[Result]) -> dict[int, Run]:
    """{nz: run} for the default and the runs that differ from it in nz only (for widgets.nz_explorer)."""
    if not results or not results[0].ok:
        raise ValueError("results must start with a trained default run (as run_plan returns them)")
    base = results[0].run.config
    out = {base.nz: results[0].run}
    for r in results[1:]:
        if r.ok and r.run.config.replace(nz=base.nz).identity() == base.identity():
            out[r.run.config.nz] = r.run
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- tables


COLUMNS = (  # key, header, format
    ("label", "run", "{}"),
    ("images", "images", "{:,}"),
    ("train_seconds", "time (s)", "{:.0f}"),
    ("fid", "FID", "{:.2f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("classes_covered", "classes >= 5 %", "{:d}"),
    ("class_max_share", "largest class", "{:.3f}"),
    ("label_accuracy", "label accuracy", "{:.3f}"),
)


def _tail_mean(values: list[float], share: float = 0.1) -> float:
    if not values:
        return float("nan")
    k = max(1, int(len(values) * share))
    return float(np.mean(values[-k:]))


def rows(results: list[Result]) -> list[dict[str, Any]]:
    """One flat dict per result: what changed, budget, time, metrics, last D outputs (JSON/CSV-ready)."""
    out = []
    for r in results:
        row: dict[str, Any] = {"name": r.name, "label": r.label, "note": r.note}
        if r.ok:
            h, c = r.run.history, r.run.config
            row.update({"seed": c.seed, "dataset": c.dataset, "nz": c.nz, "ngf": c.ngf, "ndf": c.ndf, "init": c.init, "lr": c.lr,
                        "beta1": c.beta1, "batch_size": c.batch_size, "conditional": c.conditional,
                        "d_uses_labels": c.d_uses_labels, "epochs": h.epochs, "images": int(sum(h.epoch_images)),
                        "steps": h.steps, "train_seconds": round(h.wall_time, 1),
                        "images_per_second": round(h.images_per_second, 1),
                        "final_d_real": round(_tail_mean(h.d_real), 4), "final_d_fake": round(_tail_mean(h.d_fake), 4),
                        "final_d_loss": round(_tail_mean(h.d_loss), 4), "final_g_loss": round(_tail_mean(h.g_loss), 4),
                        "run_dir": str(r.run.run_dir) if r.run.run_dir is not None else ""})
        for key in METRIC_KEYS:
            if r.metrics is not None and key in r.metrics:
                row[key] = r.metrics[key]
        out.append(row)
    return out


SUMMARY_KEYS = ("images", "train_seconds", "fid", "precision", "recall", "density", "coverage", "classes_covered",
                "class_max_share", "label_accuracy", "final_d_real", "final_d_fake")


def summary(results: list[Result]) -> list[dict[str, Any]]:
    """One row per run name, over its seeds: the mean of each number of :func:`rows`, with its range.

    ``row[key]`` is the mean over the seeds that measured it, ``row[key + "_min"]`` and
    ``row[key + "_max"]`` the lowest and highest; ``seeds`` lists the seeds trained and
    ``failed`` the notes of runs that diverged. Names keep the order of their first run.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows(results):
        groups.setdefault(row["name"] or row["label"], []).append(row)
    out = []
    for name, group in groups.items():
        row: dict[str, Any] = {"name": name, "label": group[0]["label"], "note": group[0]["note"],
                               "seeds": [r["seed"] for r in group if "seed" in r],
                               "failed": [r["note"] for r in group if "seed" not in r]}
        for key in SUMMARY_KEYS:
            values = [r[key] for r in group if r.get(key) is not None]
            if values:
                row[key], row[f"{key}_min"], row[f"{key}_max"] = float(np.mean(values)), min(values), max(values)
        out.append(row)
    return out


def spread(row: dict[str, Any], key: str) -> Spread | None:
    """A :func:`summary` row's number over its seeds (mean, lowest, highest); None when no seed measured it."""
    if row.get(key) is None:
        return None
    return Spread(row[key], row[f"{key}_min"], row[f"{key}_max"])


def separated(a: dict[str, Any], b: dict[str, Any], key: str) -> bool | None:
    """Whether two :func:`summary` rows differ in ``key`` by more than their seeds spread: their ranges do not overlap.

    None when either row lacks the number. With one seed each the ranges are points, so any
    difference counts: read a single-seed verdict as exactly that.
    """
    first, second = spread(a, key), spread(b, key)
    if first is None or second is None:
        return None
    return first.above(second) or first.below(second)


VERDICT_KEYS = (("fid", "FID", "{:.2f}"), ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
                ("classes_covered", "classes >= 5 %", "{:g}"), ("train_seconds", "time (s)", "{:.0f}"))


def verdicts(summary_rows: list[dict[str, Any]], reference: str = DEFAULT_NAME,
             keys: tuple[tables.Column, ...] = VERDICT_KEYS) -> str:
    """A Markdown table: each setting against ``reference`` (a :func:`summary` name), number by number.

    A cell says "higher" or "lower" only when the two settings' ranges over their seeds do not
    overlap (:func:`separated`), and "within the seeds' spread" otherwise; both means follow.
    With one seed per setting every difference counts, and the table says so.
    """
    by_name = {row["name"]: row for row in summary_rows}
    if reference not in by_name:
        raise ValueError(f"reference must be one of the summary's names {list(by_name)}, got {reference!r}")
    base = by_name[reference]
    grid = [["setting", *(header for _, header, _ in keys)]]
    for row in summary_rows:
        if row["name"] == reference:
            continue
        cells = [row["label"]]
        for key, _, fmt in keys:
            apart = separated(row, base, key)
            if apart is None:
                cells.append(tables.cell(None, fmt))
                continue
            word = ("higher" if row[key] > base[key] else "lower") if apart else "within the seeds' spread"
            cells.append(f"{word} ({tables.cell(row[key], fmt)} vs {tables.cell(base[key], fmt)})")
        grid.append(cells)
    table = tables.markdown(grid)
    if len(base["seeds"]) < 2:
        table += f"\n\nOne seed for {base['label']}: every difference counts, even one a second seed would undo."
    return table


def summary_markdown(summary_rows: list[dict[str, Any]], floor: dict[str, Any] | None = None) -> str:
    """A Markdown table of :func:`summary` rows: each number as its mean over the seeds, with (lowest–highest)."""
    keys = [c for c in COLUMNS if c[0] == "label" or any(c[0] in row for row in summary_rows)]
    lines = ["| " + " | ".join(h for _, h, _ in keys) + " | seeds |", "|" + "---|" * (len(keys) + 1)]
    for row in summary_rows:
        cells = []
        for key, _, fmt in keys:
            if key == "label":
                cells.append(row["label"] + (f" ({len(row['failed'])} diverged)" if row["failed"] else ""))
            elif row.get(key) is None:
                cells.append("–")
            else:
                mean = tables.cell(row[key], fmt)
                if fmt in ("{:d}", "{:,}"):  # counts: a mean over seeds may fall between two
                    mean = fmt.format(int(row[key])) if float(row[key]).is_integer() else f"{row[key]:,.1f}"
                lo, hi = tables.cell(row[f"{key}_min"], fmt), tables.cell(row[f"{key}_max"], fmt)
                spread = "" if lo == hi else f" ({lo}–{hi})"  # seeds that print alike show no range
                cells.append(mean + spread)
        lines.append("| " + " | ".join(cells) + f" | {', '.join(map(str, row['seeds'])) or '–'} |")
    if floor is not None:
        lines.append("| real MNIST (floor) | " + " | ".join(
            "–" if key in ("images", "train_seconds") or floor.get(key) is None else tables.cell(floor[key], fmt)
            for key, _, fmt in keys[1:]) + " | – |")
    return "\n".join(lines)


def markdown_table(results: list[Result], floor: dict[str, Any] | None = None) -> str:
    """A Markdown table of the results (one row each), with the real-data floor as the last row."""
    table = rows(results)
    keys = [c for c in COLUMNS if any(c[0] in row for row in table) or c[0] == "label"]
    lines = ["| " + " | ".join(h for _, h, _ in keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    for row in table:
        cells = [tables.cell(row.get(key), fmt) for key, _, fmt in keys]
        if not row.get("images"):
            cells[0] += f" ({row['note'][:80]})" if row.get("note") else ""
        lines.append("| " + " | ".join(cells) + " |")
    if floor is not None:
        real = {"label": "real MNIST (floor)", **{k: floor.get(k) for k in METRIC_KEYS}}
        lines.append("| " + " | ".join(tables.cell(real.get(key), fmt) if key not in ("images", "train_seconds") else "–"
                                       for key, _, fmt in keys) + " |")
    notes = [f"{row['label']}: {row['note']}" for row in table if row.get("note") and row.get("images")]
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


def save_table(results: list[Result], folder: str | os.PathLike, stem: str = "ablations",
               floor: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the rows as ``stem.json`` (with the floor) and ``stem.csv`` in ``folder``; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = rows(results)
    json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
    floor_out = {k: floor[k] for k in METRIC_KEYS if floor is not None and k in floor} if floor else None
    json_path.write_text(json.dumps({"runs": table, "real_floor": floor_out}, indent=1))
    columns: list[str] = []
    for row in table:
        columns.extend(k for k in row if k not in columns)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    return json_path, csv_path


# --------------------------------------------------------------------------- figure


def curve_figure(results: list[Result], keys: tuple[str, ...] = ("fid", "precision", "recall")) -> Figure:
    """Each measured run's curve (``History.curve``) against training images: one panel per key.

    One colour per run name, one line style per seed, so the seeds of a setting read as a band
    and a difference smaller than it is visibly noise. FID is drawn on a log scale.
    """
    measured = [r for r in results if r.ok and r.run.history.curve]
    if not measured:
        raise ValueError("no run has a curve: train them with run_plan(..., curve_every=images)")
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.8), squeeze=False)
    names = list(dict.fromkeys(r.name or r.label for r in measured))
    colours = {name: plt.get_cmap("tab20")(i % 20) for i, name in enumerate(names)}
    styles = ("-", "--", ":", "-.")
    seen_seeds: dict[str, list[int]] = {}
    for r in measured:
        name = r.name or r.label
        seeds = seen_seeds.setdefault(name, [])
        seeds.append(r.run.config.seed)
        curve = r.run.history.curve
        x = [point["images"] for point in curve]
        for ax, key in zip(axes[0], keys):
            ax.plot(x, [point.get(key) for point in curve], styles[(len(seeds) - 1) % len(styles)],
                    color=colours[name], marker=".", lw=1.2, label=r.label if len(seeds) == 1 else None)
    headers = {key: header for key, header, _ in COLUMNS}  # the tables' names: "FID", "classes >= 5 %"
    for ax, key in zip(axes[0], keys):
        shown = headers.get(key, key)
        ax.set(xlabel="training images", ylabel=shown, title=f"{shown} along training")
        if key == "fid":
            ax.set_yscale("log")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def comparison_figure(results: list[Result], n: int = 16, smooth: int = 25) -> Figure:
    """One row per run: final samples, both losses, D(x) and D(G(z)). The first row is the reference run."""
    if not results:
        raise ValueError("results must not be empty")
    fig, axes = plt.subplots(len(results), 3, figsize=(13, 2.9 * len(results)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6, 1.6]})
    for (ax_s, ax_l, ax_d), r in zip(axes, results):
        if not r.ok:
            for ax in (ax_s, ax_l, ax_d):
                ax.set_axis_off()
            ax_s.set_title(r.label, loc="left", fontsize=10)
            ax_l.text(0, 0.5, r.note[:140], fontsize=9, wrap=True)
            continue
        h = r.run.history
        images = h.samples[-1][:n]
        nrow = 10 if h.sample_labels is not None and len(images) >= 10 else int(np.ceil(np.sqrt(len(images))))
        plots.sample_grid(images, nrow=nrow, ax=ax_s)
        ax_s.set_title(f"{r.label}\n{sum(h.epoch_images):,} images, {h.wall_time:.0f} s", fontsize=9)
        plots.loss_curves(h, smooth=smooth, ax=ax_l, title=None)
        plots.d_output_curves(h, smooth=smooth, ax=ax_d, title="")
        if r.metrics is not None:
            ax_l.set_title(f"FID {r.metrics['fid']:.1f}, precision {r.metrics['precision']:.2f}, "
                           f"recall {r.metrics['recall']:.2f}", fontsize=9)
        for ax in (ax_l, ax_d):
            ax.legend(fontsize=7, loc="upper right")
            ax.xaxis.label.set_size(8)
            ax.yaxis.label.set_size(8)
    fig.tight_layout()
    return fig
