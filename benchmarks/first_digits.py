"""How long until a student's first run draws digits: the default DCGAN, watched while it trains.

The clock starts when this script starts (as a student's starts when they press run: Python,
torch, MNIST and the models all load inside it). The run is watched as the notebook watches it:
G's samples of a fixed z (64) are drawn every 50 steps and rendered as the notebook's
``plots.LiveSamples`` renders them. Every ``--probe-every`` steps the benchmark's own probe also
draws 1,000 samples (training mode, as the live view) and the digit classifier reads them. The
run counts as drawing digits once

- all ten classes hold at least 5 % of the samples (the classifier's reading), and
- at least ``--readable`` of the samples are read with confidence >= 0.9 (a blob that the
  classifier calls a 3 at 40 % is not a readable 3).

Prints one line per probe and three times: seconds of training; seconds since the script
started as a student would wait them (everything but the probes: start-up, training and the
live view); and the wall time with the probes. Also the host's CPU kind (with or without
native bf16), so a result says where it was measured.

    python benchmarks/first_digits.py [--batch-size 128] [--budget 600] [--probe-every 25] [--save samples.png]

``--save`` writes the last probe's first 100 samples as a grid, titled with the step, the
seconds and the classifier's reading: look at the digits the criterion counted.
``--save-at 120 at-2-minutes.png`` also writes the first probe at or after 120 s of the student's clock.
"""

from __future__ import annotations

import time

START = time.perf_counter()  # before torch is imported: the student's clock

import argparse  # noqa: E402

import torch  # noqa: E402

from labkit import data, fastpath, metrics, plots, train  # noqa: E402
from labkit.train import TrainConfig  # noqa: E402

CONFIDENT = 0.9
PROBE_SAMPLES = 1000  # the classifier reads this many samples at each probe
LIVE_EVERY = 50  # steps between two redraws of the notebook's live view (``fit``'s default watch_every)


class Reached(Exception):
    """Raised from the watch hook to end training once the criterion holds."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128, help="the lab's default is 128")
    parser.add_argument("--budget", type=float, default=600.0, help="give up after this many seconds of training")
    parser.add_argument("--probe-every", type=int, default=25, help="steps between two probes")
    parser.add_argument("--readable", type=float, default=0.6, help="share of samples read with confidence >= 0.9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--save", default=None, help="PNG of the last probe's samples")
    parser.add_argument("--save-at", nargs=2, metavar=("SECONDS", "PNG"), default=None,
                        help="PNG of the first probe at least SECONDS after the start")
    args = parser.parse_args()
    save_at = (float(args.save_at[0]), args.save_at[1]) if args.save_at else None

    config = TrainConfig(batch_size=args.batch_size, seed=args.seed, device=args.device,
                         epochs=max(1, int(args.budget // 30)))  # far more epochs than the budget allows
    images, labels = data.as_tensors(data.mnist(train=True))
    G, D = train.build_models(config)
    net = metrics.load_feature_net(config.device)
    device = next(net.parameters()).device
    probe_z = torch.randn(PROBE_SAMPLES, config.nz, generator=torch.Generator().manual_seed(args.seed + 1))
    live = plots.LiveSamples()
    probes: list[dict] = []
    last_samples: list[torch.Tensor] = []
    saved_at: list = []
    probing = [0.0]  # seconds spent in the probes: the benchmark's cost, not the student's

    def save_grid(samples: torch.Tensor, row: dict, path: str):
        title = (f"batch {config.batch_size}, step {row['step']}: {row['student_s']:.0f} s since start, "
                 f"{row['classes']} classes >= 5 %, {row['readable']:.0%} readable")
        print("samples:", plots.save(plots.sample_grid(samples, nrow=10, title=title), path), flush=True)
        return path

    def watch(step: int, seconds: float, shown: torch.Tensor) -> None:
        if step % LIVE_EVERY == 0:
            live.png(shown)  # what the notebook's live view does with them
        entered = time.perf_counter()
        try:
            probe(step, seconds, entered)
        finally:
            probing[0] += time.perf_counter() - entered

    def probe(step: int, seconds: float, entered: float) -> None:
        with torch.no_grad():
            samples = train._snapshot(G, probe_z, None, device)
            probs = torch.softmax(net(samples.to(device)), dim=1).cpu()
        confidence, digit = probs.max(dim=1)
        shares = torch.bincount(digit, minlength=10).double() / len(digit)
        row = {"step": step, "train_s": seconds, "student_s": entered - START - probing[0],
               "wall_s": entered - START, "classes": int((shares >= metrics.COVERED_SHARE).sum()),
               "min_share": float(shares.min()), "readable": float((confidence >= CONFIDENT).double().mean())}
        probes.append(row)
        last_samples[:] = [samples[:100]]
        if save_at and row["student_s"] >= save_at[0] and not saved_at:
            saved_at.append(save_grid(samples[:100], row, save_at[1]))
        print(f"step {step:5d}  training {seconds:6.1f} s  since start {row['student_s']:6.1f} s "
              f"(wall {row['wall_s']:6.1f} s)  classes >= 5 %: {row['classes']:2d}  "
              f"smallest share {row['min_share']:.3f}  readable {row['readable']:.2f}", flush=True)
        if row["classes"] == 10 and row["readable"] >= args.readable:
            raise Reached
        if seconds > args.budget:
            raise TimeoutError

    print(f"host: {fastpath.host_description()}; batch {config.batch_size}")
    outcome = "reached"
    try:
        history = train.fit(G, D, (images, labels), config, watch=watch, watch_every=args.probe_every)
        outcome = f"not reached in {history.epochs} epochs"
    except Reached:
        pass
    except TimeoutError:
        outcome = f"not reached within {args.budget:.0f} s of training"
    last = probes[-1] if probes else None
    if outcome == "reached" and last:
        print(f"\ndigits of all ten classes (>= 5 % each, {args.readable:.0%} read with confidence >= {CONFIDENT}) "
              f"after {last['step']} steps: {last['train_s']:.0f} s of training, {last['student_s']:.0f} s since start "
              f"({last['wall_s']:.0f} s with the benchmark's {len(probes)} probes)")
    else:
        print(f"\n{outcome}")
    if args.save and last_samples and last:
        save_grid(last_samples[0], last, args.save)


if __name__ == "__main__":
    main()
