"""How long does `metrics.evaluate(G, n=10_000)` take, and where does the time go?

    python benchmarks/eval_speed.py [RUN_DIR] [--n N] [--device DEVICE]

Without RUN_DIR it times a default (untrained) DCGANGenerator: the cost of evaluation does not
depend on training. The first call also pays for the real reference (features and k-NN radii of
the 10,000 MNIST test images), which later calls reuse; both calls are shown, then the real
floor. Target: <= 10 s for a warm call on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from labkit import data, metrics, models

STEPS = (
    ("real_features", "real reference (features + radii, first call only)"),
    ("generation", "generation (G forward)"),
    ("features", "features of the samples"),
    ("fid", "FID"),
    ("knn_radii", "k-NN radii of the samples (for recall)"),
    ("cross_distances", "samples x real distances: P, R, density, coverage"),
)


def show(title: str, result: dict) -> None:
    timings = result["timings"]
    print(f"\n{title}: {result['seconds']:.2f} s in all")
    for key, label in STEPS:
        if key in timings:
            print(f"  {label:52s} {timings[key]:6.2f} s")
    other = result["seconds"] - sum(timings.values())
    print(f"  {'other (loading weights, checks)':52s} {other:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a run folder written by labkit (default: an untrained DCGAN)")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"CPU capability {capability}, device {args.device}")
    data.mnist(args.data_root, train=False)  # fetch outside the timings if needed
    if args.run_dir:
        from labkit import train

        G = train.load_run(args.run_dir, device=args.device).G
        print(f"G from {args.run_dir}: {type(G).__name__}, nz={G.nz}, n_classes={G.n_classes}")
    else:
        torch.manual_seed(0)
        G = models.DCGANGenerator().to(args.device)
        print("G: default DCGANGenerator() (nz=100, ngf=32), untrained")

    cold = metrics.evaluate(G, n=args.n, device=args.device, root=args.data_root)
    show(f"evaluate(G, n={args.n}), first call", cold)
    warm = metrics.evaluate(G, n=args.n, device=args.device, root=args.data_root)
    show(f"evaluate(G, n={args.n}), second call", warm)

    start = time.perf_counter()
    floor = metrics.real_floor(root=args.data_root, n=args.n, device=args.device, cache=False)
    print(f"\nreal_floor(n={args.n}, cache=False): {time.perf_counter() - start:.2f} s "
          f"(a cached floor returns at once)\n")
    print(metrics.format_metrics(warm, floor))


if __name__ == "__main__":
    main()
