"""Training speed: labkit's ``fit`` against a plain hand-written PyTorch loop.

Both train the default DCGAN (nz 100, ngf = ndf = 32, batch 128) on the same
real MNIST images held in memory, in one process, alternating so that a busy
neighbour slows both alike. Prints images/s of each and their ratio.

    python benchmarks/train_speed.py [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from labkit import data, train
from labkit.train import TrainConfig


def plain_loop(images: torch.Tensor, steps: int, batch_size: int, seed: int) -> float:
    """The classic DCGAN loop written out by hand; returns images/s."""
    config = TrainConfig(batch_size=batch_size, seed=seed, device="cpu")
    G, D = train.build_models(config)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(images.shape[0], generator=gen)
    ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
    start = time.perf_counter()
    for step in range(steps):
        real = images[perm[step * batch_size:(step + 1) * batch_size]]
        fake = G(torch.randn(batch_size, 100, generator=gen))
        d_loss = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(D(G(torch.randn(batch_size, 100, generator=gen))), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return steps * batch_size / (time.perf_counter() - start)


def labkit_fit(images: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int, seed: int) -> float:
    """labkit.train.fit for exactly ``steps`` steps (one epoch of steps * batch images); returns images/s."""
    config = TrainConfig(batch_size=batch_size, seed=seed, device="cpu", epochs=1)
    n = steps * batch_size
    G, D = train.build_models(config)
    history = train.fit(G, D, (images[:n], labels[:n]), config)
    return history.images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    images, labels = data.as_tensors(data.mnist(train=True, n=args.steps * args.batch_size, seed=0))
    print(f"host: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; DCGAN nz 100 ngf 32 ndf 32, batch {args.batch_size}, "
          f"{args.steps} steps x {args.repeats} repeats")
    plain_loop(images, 5, args.batch_size, seed=0)  # warm-up: allocator, kernels
    plain, fit = [], []
    for r in range(args.repeats):
        plain.append(plain_loop(images, args.steps, args.batch_size, seed=r))
        fit.append(labkit_fit(images, labels, args.steps, args.batch_size, seed=r))
        print(f"  repeat {r + 1}: plain {plain[-1]:.0f} images/s, labkit fit {fit[-1]:.0f} images/s")
    p, f = statistics.median(plain), statistics.median(fit)
    print(f"median: plain loop {p:.0f} images/s | labkit fit {f:.0f} images/s | ratio {f / p:.3f}")


if __name__ == "__main__":
    main()
