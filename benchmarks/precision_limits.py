"""What limits the default DCGAN's precision: curves of FID, precision and recall for changes one at a time.

Trains (or reloads) lab 1's default DCGAN and variants that each change one thing the
literature blames for low precision, measuring every run along the way
(``compare.curve_probe``: 1,000 samples every ``--every`` images), then evaluates each
final G on ``--n-eval`` samples. Prints, per run, the curve and the final scores, and a
comparison at equal training time: each variant's last point beside the default's point
closest to the same training time (give the default more epochs, ``--default-epochs``, so
that its curve reaches the slower variants' times).

    python benchmarks/precision_limits.py [--runs runs/precision] [--epochs 5] [--variants default d-layer-norm]
    python benchmarks/precision_limits.py --variants default --default-epochs 20   # precision against epochs

Variants (see ``VARIANTS``): the default; D without BatchNorm (LayerNorm or nothing);
the two-time-scale rule (D's lr 4e-4, G's 1e-4); G twice as wide; G and D twice as wide;
more or larger steps (lr x 5, batch 32), which question 5 finds reach the five-epoch
default's quality in two epochs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from labkit import compare, fastpath, labs, train

VARIANTS: dict[str, tuple[str, dict]] = {
    "default": ("lab 1's default DCGAN", {}),
    "d-layer-norm": ("D with LayerNorm instead of BatchNorm", {"critic_norm": "layer"}),
    "d-no-norm": ("D without normalisation", {"critic_norm": "none"}),
    "ttur": ("two time scales: lr_D 4e-4, lr_G 1e-4", {"lr": 1e-4, "lr_d": 4e-4}),
    "g-wide": ("G twice as wide (ngf 64)", {"ngf": 64}),
    "both-wide": ("G and D twice as wide (ngf = ndf = 64)", {"ngf": 64, "ndf": 64}),
    "lr-5x": ("lr 1e-3 for G and D (5x): larger steps", {"lr": 1e-3}),
    "batch-32": ("batch 32: four times the steps per epoch", {"batch_size": 32}),
}


def at_time(run: dict, seconds: float) -> dict:
    """The point of ``run``'s curve closest to ``seconds`` of its training, at its typical speed.

    The run's speed is the median images per second over its epochs, so that an epoch slowed
    by another job on the same core does not shift the comparison.
    """
    rates = [images / s for images, s in zip(run["epoch_images"], run["epoch_seconds"]) if s > 0]
    images = seconds * sorted(rates)[len(rates) // 2]
    return min(run["curve"], key=lambda p: abs(p["images"] - images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/precision")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each variant")
    parser.add_argument("--default-epochs", type=int, default=None, help="epochs of the default (--epochs if unset)")
    parser.add_argument("--every", type=int, default=30_000, help="images between two points of a curve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-eval", type=int, default=10_000)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    default_epochs = args.default_epochs or args.epochs
    if min(args.epochs, default_epochs) < 1 or args.every < 1000:
        raise SystemExit(f"--epochs and --default-epochs must be >= 1 and --every >= 1000, "
                         f"got {args.epochs}, {default_epochs} and {args.every}")

    print(f"host: {fastpath.host_description()}")
    base = labs.lab1(epochs=args.epochs, seed=args.seed, device=args.device)[compare.DEFAULT_NAME]
    probe = compare.curve_probe(seed=args.seed, device=args.device, root=args.data_root)
    results = []
    for key in args.variants:
        label, changes = VARIANTS[key]
        config = base.replace(**changes, epochs=default_epochs if key == "default" else args.epochs)
        start = time.perf_counter()
        run = train.fit_or_load(config, runs_root=args.runs, name=f"precision-{key}", data_root=args.data_root,
                                measure=probe, measure_every=args.every)
        scores = compare.evaluate_run(run, n=args.n_eval, seed=args.seed, root=args.data_root)
        results.append({"key": key, "label": label, "run_dir": str(run.run_dir), "curve": run.history.curve,
                        "wall_time": run.history.wall_time, "epoch_images": run.history.epoch_images,
                        "epoch_seconds": run.history.epoch_seconds, "final": {k: scores[k] for k in (
                            "fid", "precision", "recall", "density", "coverage", "classes_covered")}})
        print(f"\n{label} ({time.perf_counter() - start:.0f} s here, {run.history.wall_time:.0f} s of training)")
        for p in run.history.curve:
            print(f"  {p['images']:>9,} images {p['seconds']:>7.0f} s  FID {p['fid']:7.2f}  precision "
                  f"{p['precision']:.3f}  recall {p['recall']:.3f}  coverage {p['coverage']:.3f}  "
                  f"classes {p['classes_covered']}")
        f = results[-1]["final"]
        print(f"  final, {args.n_eval:,} samples: FID {f['fid']:.2f}, precision {f['precision']:.3f}, recall "
              f"{f['recall']:.3f}, density {f['density']:.3f}, coverage {f['coverage']:.3f}")

    by_key = {r["key"]: r for r in results}
    if "default" in by_key:
        print("\nat equal training time (1,000-sample points): each variant's last point, and the default's point "
              "closest to the variant's training time at the default's median speed")
        for r in results:
            if r["key"] == "default":
                continue
            mine = r["curve"][-1]
            theirs = at_time(by_key["default"], r["wall_time"])
            for who, p in ((r["label"], mine), ("  default", theirs)):
                print(f"  {who:<45} {p['images']:>9,} images {p['seconds']:>6.0f} s  FID {p['fid']:7.2f}  "
                      f"precision {p['precision']:.3f}  recall {p['recall']:.3f}")
    out = Path(args.runs) / "precision_limits.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"host": fastpath.host_description(), "results": results}, indent=1))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
