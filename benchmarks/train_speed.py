"""Training speed: a plain hand-written PyTorch loop, labkit's ``fit`` on the plain path, and the fast path.

All three train the default DCGAN (nz 100, ngf = ndf = 32, batch 128) on the
same real MNIST images held in memory, in one process, taking turns so that a
busy neighbour slows each alike. Prints the host (CPU capability, native bf16
or not), images/s of each, the ratios, and the share of the host's float32
matrix-multiply (sgemm) throughput that each reaches, measured in the same run.

    python benchmarks/train_speed.py [--steps 60] [--repeats 3]
    python benchmarks/train_speed.py --quality [--quality-seeds 2]

``--quality`` also trains one full MNIST epoch on the plain path and on the fast
path for each seed and compares FID / precision / recall (10k samples): the
fast path must stay within the spread between seeds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from labkit import data, fastpath, metrics, train
from labkit.train import TrainConfig


def plain_loop(images: torch.Tensor, steps: int, batch_size: int, seed: int) -> float:
    """The classic DCGAN loop written out by hand in float32; returns images/s."""
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


def labkit_fit(images: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int, seed: int,
               fast_path: str) -> tuple[float, str]:
    """labkit.train.fit for exactly ``steps`` steps; returns (images/s, the path it trained with)."""
    config = TrainConfig(batch_size=batch_size, seed=seed, device="cpu", epochs=1, fast_path=fast_path)
    n = steps * batch_size
    G, D = train.build_models(config)
    history = train.fit(G, D, (images[:n], labels[:n]), config)
    return history.images_per_second, history.fast_path


def flops_per_image(batch_size: int) -> float:
    """Floating-point operations of one training step of the default DCGAN, per real image."""
    config = TrainConfig(batch_size=batch_size, device="cpu")
    G, D = train.build_models(config)
    real = torch.rand(batch_size, 1, 32, 32) * 2 - 1
    opt_d = torch.optim.Adam(D.parameters())
    opt_g = torch.optim.Adam(G.parameters())
    with FlopCounterMode(display=False) as counter:
        train._d_step(G, D, real, None, config, opt_d, torch.Generator())
        train._g_step(G, D, batch_size, config, opt_g, torch.Generator(), torch.device("cpu"))
    return counter.get_total_flops() / batch_size


def gemm_flops_per_second(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 1.0) -> float:
    """Sustained matrix-multiply throughput of this host with torch's threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return n * 2 * size ** 3 / (time.perf_counter() - start)


def quality(images: torch.Tensor, labels: torch.Tensor, seeds: int, fast_name: str) -> None:
    """One epoch per (path, seed); FID / precision / recall of each on 10k samples."""
    print(f"\nquality after one epoch of full MNIST (10k samples; plain float32 path against {fast_name}):")
    for seed in range(seeds):
        for path in ("off", fast_name):
            config = TrainConfig(epochs=1, seed=seed, device="cpu", fast_path=path)
            G, D = train.build_models(config)
            history = train.fit(G, D, (images, labels), config)
            scores = metrics.evaluate(G.eval(), n=10_000, seed=seed)
            print(f"  seed {seed} {path:>20}: {history.images_per_second:5.0f} images/s  FID {scores['fid']:7.2f}  "
                  f"precision {scores['precision']:.3f}  recall {scores['recall']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--quality", action="store_true", help="also compare sample quality after one epoch")
    parser.add_argument("--quality-seeds", type=int, default=2)
    args = parser.parse_args()

    images, labels = data.as_tensors(data.mnist(train=True, n=None if args.quality else args.steps * args.batch_size))
    print(f"host: {fastpath.host_description()}")
    print(f"DCGAN nz 100 ngf 32 ndf 32, batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats")
    plain_loop(images, 5, args.batch_size, seed=0)  # warm-up: allocator, kernels
    # What fast_path="auto" picks for a full-length run (a short one like these is never probed).
    config = TrainConfig(batch_size=args.batch_size, device="cpu", epochs=100)
    G, D = train.build_models(config)
    fast_name = train.choose_fast_path(G, D, images, labels, config, torch.device("cpu")).name
    plain, default, fast = [], [], []
    for r in range(args.repeats):
        plain.append(plain_loop(images, args.steps, args.batch_size, seed=r))
        default.append(labkit_fit(images, labels, args.steps, args.batch_size, r, "off")[0])
        fast.append(labkit_fit(images, labels, args.steps, args.batch_size, r, fast_name)[0])
        print(f"  repeat {r + 1}: plain loop {plain[-1]:.0f} | labkit, plain path {default[-1]:.0f} | "
              f"labkit, fast path ({fast_name}) {fast[-1]:.0f} images/s", flush=True)
    p, d, f = (statistics.median(x) for x in (plain, default, fast))
    per_image = flops_per_image(args.batch_size)
    sgemm = gemm_flops_per_second(torch.float32)
    bf16_gemm = gemm_flops_per_second(torch.bfloat16) if fastpath.bf16_native() else float("nan")
    print(f"median images/s: plain loop {p:.0f} | labkit plain path {d:.0f} ({d / p:.3f}x) | "
          f"labkit fast path {fast_name} {f:.0f} ({f / p:.2f}x the plain loop)")
    print(f"one training step = {per_image / 1e6:.1f} MFLOP per image; host sgemm {sgemm / 1e9:.0f} GFLOP/s, "
          f"bf16 gemm {bf16_gemm / 1e9:.0f} GFLOP/s")
    for name, speed in (("plain loop", p), ("labkit plain path", d), ("labkit fast path", f)):
        print(f"  {name:>18}: {speed * per_image / 1e9:6.1f} GFLOP/s = {speed * per_image / sgemm:.0%} of sgemm")
    if args.quality:
        quality(images, labels, args.quality_seeds, fast_name)


if __name__ == "__main__":
    main()
