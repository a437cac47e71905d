"""Why a trained G's precision is low: which samples fall outside the real manifold, and what does not fix it.

For a run folder (e.g. lab 1's default DCGAN) this draws ``--n`` samples and prints:

- precision overall, and by the digit classifier's confidence in each sample (are the
  samples outside the real digits' k-NN balls the ambiguous ones, or confident digits too?);
- how far outside they are: quantiles of each sample's distance to its nearest real
  feature, divided by that real feature's k-NN radius (<= 1 counts for precision);
- precision after pixel-level changes to the samples (contrast, gamma, blur) and, for
  scale, what the same kind of changes do to real training digits. If a pixel-level
  change lifted precision, G's strokes (intensity, sharpness) would be the limit; if
  none does, the limit is in the shapes G draws.

    python benchmarks/precision_diagnosis.py runs/dcgan-default-<hash> [--n 10000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from labkit import data, metrics, train

BINOMIAL = torch.tensor([1.0, 2.0, 1.0])
BLUR = (BINOMIAL[:, None] * BINOMIAL[None, :] / 16)[None, None]  # a 3x3 binomial blur


def blur(images: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(images, (1, 1, 1, 1), value=-1.0), BLUR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    run = train.load_run(args.run_dir, device="cpu")
    G = run.G.eval()
    if getattr(G, "n_classes", 0):
        raise SystemExit("this diagnosis is for unconditional generators")
    net = metrics.load_feature_net("cpu")
    real, _ = metrics._real_test_images(args.data_root)
    real_feats = torch.as_tensor(metrics.features(real, net))
    radii = torch.as_tensor(metrics.knn_radii(real_feats.numpy(), k=metrics.PR_K))
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        z = torch.randn(args.n, G.nz, generator=gen)
        fake = torch.cat([G(z[i:i + 500]) for i in range(0, args.n, 500)]).clamp(-1, 1)
        fake_feats = torch.as_tensor(metrics.features(fake, net))
        confidence = torch.cat([torch.softmax(net(fake[i:i + 500]), 1) for i in range(0, args.n, 500)]).max(1).values
    ratio = torch.cat([(torch.cdist(fake_feats[i:i + 1000], real_feats) / radii[None, :]).min(1).values
                       for i in range(0, args.n, 1000)])
    inside = ratio <= 1

    def pr(images: torch.Tensor) -> str:
        p, r = metrics.precision_recall(real_feats.numpy(), metrics.features(images, net))
        return f"precision {p:.3f}, recall {r:.3f}"

    print(f"run {args.run_dir}: {run.history.epochs} epochs; {args.n:,} samples")
    print(f"precision {inside.double().mean():.3f}")
    print("by the classifier's confidence in the sample:")
    for lo, hi in ((0.0, 0.5), (0.5, 0.9), (0.9, 0.99), (0.99, 1.01)):
        chosen = (confidence >= lo) & (confidence < hi)
        share = chosen.double().mean()
        inside_share = inside[chosen].double().mean() if chosen.any() else float("nan")
        print(f"  confidence in [{lo:.2f}, {min(hi, 1):.2f}): {share:.3f} of the samples, precision {inside_share:.3f}")
    quantiles = np.quantile(ratio.numpy(), [0.1, 0.25, 0.5, 0.75, 0.9])
    print("distance to the nearest real feature / its k-NN radius, quantiles 10-25-50-75-90 %: "
          + ", ".join(f"{q:.2f}" for q in quantiles))
    print("the samples after a pixel-level change:")
    print(f"  as drawn: {pr(fake)}")
    for a in (1.25, 1.5):
        print(f"  contrast x{a}: {pr(((fake + 1) * a - 1).clamp(-1, 1))}")
    print(f"  gamma 0.7 (brighter strokes): {pr(((fake + 1) / 2) ** 0.7 * 2 - 1)}")
    print(f"  half blurred: {pr(0.5 * fake + 0.5 * blur(fake))}")
    images, _ = data.as_tensors(data.mnist(root=args.data_root, train=True))
    real_train = images[torch.randperm(len(images), generator=gen)[:args.n]]
    print("real training digits after the same kind of change (the floor, and how much each costs):")
    print(f"  as they are: {pr(real_train)}")
    print(f"  fully blurred: {pr(blur(real_train))}")
    print(f"  dimmer (x0.9): {pr((real_train + 1) * 0.9 - 1)}")
    noisy = (real_train + 0.1 * torch.randn(real_train.shape, generator=gen)).clamp(-1, 1)
    print(f"  pixel noise of std 0.1: {pr(noisy)}")
    hf_fake = float(((fake - blur(fake)) ** 2).mean())
    hf_real = float(((real_train - blur(real_train)) ** 2).mean())
    print(f"high-frequency energy (mean squared difference to the blurred image): samples {hf_fake:.4f}, "
          f"real digits {hf_real:.4f}")


if __name__ == "__main__":
    main()
