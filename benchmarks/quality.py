"""Quality targets of the pack's models, measured over seeds: mean and range, target by target.

Trains (or reloads) each model of the labs with every seed given, evaluates it on
``--n-eval`` samples against the real-data floor, and prints one table: per model the
mean and the range (lowest-highest over the seeds) of FID / floor, precision, recall,
coverage, classes covered and label accuracy, then each quality target with the number
of seeds that meet it. A target holds only when every seed meets it.

The configs are the notebooks' own (``labkit.labs``): pointing ``--runs`` at the run
folder the notebooks used reuses their seed-0 runs instead of training them again.

    python benchmarks/quality.py [--runs runs/quality] [--seeds 0 1] [--models dcgan-default wgan-gp]
    python benchmarks/quality.py --epochs dcgan-default=20      # the DCGAN at another length
    python benchmarks/quality.py --change dcgan-default "lr=1e-3 epochs=20"   # and a variant beside it, same targets
    python benchmarks/quality.py --models --change wgan-gp "n_critic=2"  # the variant alone
    python benchmarks/quality.py --quick                         # 512 images, 1 epoch: a smoke test

On a CPU the runs not yet trained train side by side in worker processes (one per core,
``LABKIT_WORKERS`` overrides it, as in question 5's plan), longest first; they are then
reloaded and evaluated in the table's order.

Writes ``quality.json`` and ``quality.md`` into ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from labkit import compare, fastpath, labs, metrics
from labkit.runner import parse_params
from labkit.train import TrainConfig

NOTEBOOK_OF = {"dcgan-default": "01_dcgan", "cgan-default": "02_cgan", "gan-default": "03_wgan_metrics",
               "gan-tuned": "03_wgan_metrics", "wgan": "03_wgan_metrics", "wgan-gp": "03_wgan_metrics"}
#: (metric, comparison, bound) per model; a target holds when every seed meets it.
TARGETS: dict[str, list[tuple[str, str, float]]] = {
    "dcgan-default": [("precision", ">=", 0.60), ("recall", ">=", 0.80), ("fid_over_floor", "<=", 10.0)],
    "cgan-default": [("label_accuracy", ">=", 0.95)],
    "wgan-gp": [("precision", ">=", 0.65), ("recall", ">=", 0.80)],
    "gan-tuned": [("precision", ">", 0.59), ("recall", ">", 0.33)],  # the reference table's best figures
}
COLUMNS = (("fid_over_floor", "FID / floor", "{:.1f}"), ("precision", "precision", "{:.3f}"),
           ("recall", "recall", "{:.3f}"), ("coverage", "coverage", "{:.3f}"),
           ("classes_covered", "classes >= 5 %", "{:.0f}"), ("label_accuracy", "label accuracy", "{:.3f}"),
           ("wall_time", "training (s)", "{:.0f}"))
QUICK = dict(n_train=512, epochs=1)


def meets(value: float, comparison: str, bound: float) -> bool:
    return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[comparison]


def parse_epochs(pairs: list[str]) -> dict[str, int]:
    """``["dcgan-default=20"]`` -> ``{"dcgan-default": 20}``, with a clear error for anything else."""
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in NOTEBOOK_OF or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--epochs takes MODEL=EPOCHS with MODEL one of {tuple(NOTEBOOK_OF)} and EPOCHS >= 1, "
                             f"got {pair!r}")
        out[name] = int(value)
    return out


def parse_changes(pairs: list[list[str]]) -> list[tuple[str, dict[str, Any]]]:
    """``[["dcgan-default", "lr=1e-3 epochs=10"]]`` -> ``[("dcgan-default", {"lr": 0.001, "epochs": 10})]``.

    Each change must name a model and TrainConfig fields; the configs are built (and so
    validated) in :func:`plan` before anything trains.
    """
    fields = set(TrainConfig.__dataclass_fields__) - {"seed", "device"}
    out = []
    for model, text in pairs:
        if model not in NOTEBOOK_OF:
            raise SystemExit(f"--change takes MODEL SETTINGS with MODEL one of {tuple(NOTEBOOK_OF)}, got {model!r}")
        try:
            changes = parse_params(text)
        except ValueError as exc:
            raise SystemExit(f"--change {model}: {exc}") from None
        unknown = sorted(set(changes) - fields)
        if not changes or unknown:
            raise SystemExit(f"--change {model} needs settings such as \"lr=1e-3 epochs=10\" naming TrainConfig "
                             f"fields ({', '.join(sorted(fields))}); got {text!r}")
        out.append((model, changes))
    return out


def variant_name(model: str, changes: dict[str, Any]) -> str:
    return model + "".join(f" {k}={v}" for k, v in changes.items())


def plan(args: argparse.Namespace, epochs: dict[str, int],
         changes: list[tuple[str, dict[str, Any]]]) -> list[compare.Ablation]:
    """Every model (and variant) at every seed, in the table's order.

    Each run's ``name`` is its model (the run folder's name, and the targets it is held to),
    its ``label`` the row it belongs to.
    """
    rows = []
    for name, model, change in [(m, m, {}) for m in args.models] + [(variant_name(m, c), m, c) for m, c in changes]:
        for seed in args.seeds:
            parameters: dict[str, Any] = dict(seed=seed, device=args.device)
            if args.quick:
                parameters.update(QUICK)
            if model in epochs:
                parameters["epochs"] = epochs[model]
            config = labs.configs(NOTEBOOK_OF[model], **parameters)[model]
            try:
                config = config.replace(**change)
            except (TypeError, ValueError) as exc:
                raise SystemExit(f"--change {model} {change}: {exc}") from None
            rows.append(compare.Ablation(model, name, config))
    return rows


def measure(ablation: compare.Ablation, args: argparse.Namespace, floor: dict[str, Any],
            diverged: str | None = None) -> dict[str, Any]:
    """Reload (or train) one row's run and evaluate it at its own seed; returns the row.

    ``ablation.name`` is the model (its run folder), ``ablation.label`` the row's name. A
    run that diverged keeps its row, with no metrics and the reason, so it misses every target.
    """
    name, config = ablation.label, ablation.config
    result = (compare.Result(name, None, None, diverged, ablation.name) if diverged is not None else
              compare.run_one(ablation, args.runs, args.data_root, args.n_eval, seed=config.seed))
    row = {"model": name, "base": ablation.name, "seed": config.seed, "epochs": config.epochs}
    if not result.ok:
        print(f"{name} seed {config.seed}: {result.note}", flush=True)
        return {**row, "note": result.note}
    run, scores = result.run, result.metrics
    row.update({"run_dir": str(run.run_dir), "wall_time": run.history.wall_time,
                "images_per_second": run.history.images_per_second, "fast_path": run.history.fast_path,
                "fid_over_floor": scores["fid"] / max(floor["fid"], 1e-12),
                **{k: scores.get(k) for k in ("fid", "precision", "recall", "density", "coverage", "classes_covered",
                                              "class_max_share", "label_accuracy")}})
    print(f"{name} seed {config.seed}: FID {row['fid']:.2f} ({row['fid_over_floor']:.1f}x the floor), precision "
          f"{row['precision']:.3f}, recall {row['recall']:.3f}, {row['wall_time']:.0f} s of training", flush=True)
    return row


def summarise(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The Markdown table (mean and range per model) and the target verdicts."""
    by_model: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault((row["model"], row["epochs"]), []).append(row)
    header = "| model | epochs | seeds | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (3 + len(COLUMNS))]
    verdicts = []
    for (name, epochs), group in by_model.items():
        cells = []
        for key, _, fmt in COLUMNS:
            values = [r[key] for r in group if r.get(key) is not None]
            if not values:
                cells.append("–")
                continue
            mean = fmt.format(statistics.fmean(values))
            cells.append(mean if len(values) == 1 else f"{mean} ({fmt.format(min(values))}–{fmt.format(max(values))})")
        seeds = ", ".join(str(r["seed"]) for r in group)
        lines.append(f"| {name} | {epochs} | {seeds} | " + " | ".join(cells) + " |")
        for metric, comparison, bound in TARGETS.get(group[0].get("base", name), []):
            values = [r.get(metric) for r in group]
            met = sum(v is not None and meets(v, comparison, bound) for v in values)
            verdicts.append({"model": name, "epochs": epochs, "target": f"{metric} {comparison} {bound:g}",
                             "values": values, "seeds_meeting": met, "seeds": len(group),
                             "holds": met == len(group)})
    return "\n".join(lines), verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/quality", help="run folder; a notebook's run_dir reuses its runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="*", default=list(TARGETS), choices=list(NOTEBOOK_OF),
                        help="models at the notebooks' settings; none (`--models` alone) runs only the --change variants")
    parser.add_argument("--epochs", nargs="*", default=[], metavar="MODEL=EPOCHS", help="another length for a model")
    parser.add_argument("--change", nargs=2, action="append", default=[], metavar=("MODEL", "SETTINGS"),
                        help='a variant of MODEL beside it, e.g. --change dcgan-default "lr=1e-3 epochs=10"')
    parser.add_argument("--n-eval", type=int, default=10_000, help="generated samples per evaluation")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="512 training images, 1 epoch: checks the script only")
    args = parser.parse_args()
    epochs = parse_epochs(args.epochs)
    if args.n_eval < 100:
        raise SystemExit(f"--n-eval must be at least 100, got {args.n_eval}")
    runs = plan(args, epochs, parse_changes(args.change))
    if not runs:
        raise SystemExit("nothing to measure: give --models, --change or both")

    start = time.perf_counter()
    print(f"host: {fastpath.host_description()}")
    diverged = compare.train_unfinished(runs, args.runs, args.data_root, args.n_eval, seed=None)  # each at its seed
    floor = metrics.real_floor(args.data_root, n=args.n_eval)
    rows = [measure(run, args, floor, diverged.get(i)) for i, run in enumerate(runs)]
    table, verdicts = summarise(rows)
    floor_line = (f"real-data floor ({args.n_eval:,} real training images against the test set): FID {floor['fid']:.3f}, "
                  f"precision {floor['precision']:.3f}, recall {floor['recall']:.3f}")
    target_lines = [f"- {'✓' if v['holds'] else '✗'} {v['model']} ({v['epochs']} epochs): {v['target']}: "
                    f"{v['seeds_meeting']} of {v['seeds']} seeds ("
                    + ", ".join("–" if x is None else f"{x:.3f}" for x in v["values"]) + ")" for v in verdicts]
    report = "\n".join([table, "", floor_line, "", "Targets (each must hold on every seed):", *target_lines,
                        "", f"{time.perf_counter() - start:.0f} s in all"])
    print("\n" + report)
    folder = Path(args.runs)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "quality.md").write_text(report + "\n")
    (folder / "quality.json").write_text(json.dumps({"host": fastpath.host_description(), "floor": {
        k: floor[k] for k in ("fid", "precision", "recall", "density", "coverage")}, "rows": rows,
        "targets": verdicts, "quick": args.quick}, indent=1))


if __name__ == "__main__":
    main()
