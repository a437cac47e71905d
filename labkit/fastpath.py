"""The CPU fast path: channels_last and bf16 autocast, chosen at run time per host.

Hosts differ too much to pick one setting for everyone: on a CPU with native
bf16 (AVX-512 BF16 or AMX) bf16 autocast trains the default DCGAN ~1.7x faster,
while on an AVX2-only CPU the same setting is ~18x *slower*; channels_last helps
convolutions a little on some hosts and not on others. So ``fit`` asks
:func:`choose` for a :class:`FastPath`: it lists the candidates this host can
run natively, times a few real training steps of each on throw-away copies of
the models (a second or two in all), and keeps the fastest, falling back to the
plain float32 loop unless a candidate wins clearly. The choice is stored with
the run, so resuming a run uses the same numerics.

``TrainConfig.fast_path`` selects: ``"auto"`` (the timing above), ``"off"``
(plain float32), or one candidate by name. The environment variable
``LABKIT_FAST_PATH`` overrides ``"auto"`` (e.g. ``off`` for tests that compare
seeded numbers across processes).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

PATHS = ("off", "channels_last", "bf16", "bf16+channels_last")
CHOICES = ("auto", *PATHS)
ENV = "LABKIT_FAST_PATH"
# A candidate replaces the plain loop only when this much faster in the probe:
# the probe is short, and a noisy 3 % "win" is not worth different numerics.
MIN_SPEEDUP = 1.10
# The probe costs a few dozen steps plus the kernels' first-call compilation (seconds for
# bf16); a run shorter than this cannot win that back, so "auto" stays on the plain path.
# Counted in images, not steps: a step's cost grows with its batch, so 234 steps of 512
# (question 5's large-batch run) are worth probing as much as 938 steps of 128.
MIN_IMAGES_TO_PROBE = 400 * 128


@dataclass(frozen=True)
class FastPath:
    """How the training steps run: memory layout and autocast dtype."""

    name: str = "off"

    def __post_init__(self) -> None:
        if self.name not in PATHS:
            raise ValueError(f"fast_path must be one of {CHOICES}, got {self.name!r}")

    @property
    def channels_last(self) -> bool:
        return "channels_last" in self.name

    @property
    def bf16(self) -> bool:
        return self.name.startswith("bf16")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The context the forward passes and losses run in."""
        if self.bf16:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Convert a model's layout in place (parameters stay the same objects)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images


def bf16_native() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX); emulated bf16 is very slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def host_description() -> str:
    """One line about the host, printed beside every timing."""
    return (f"cpu capability {torch.backends.cpu.get_cpu_capability()}, "
            f"bf16 {'native' if bf16_native() else 'emulated'}, {torch.get_num_threads()} threads, torch {torch.__version__}")


def candidates(G: nn.Module, D: nn.Module, device: torch.device) -> tuple[str, ...]:
    """The paths worth timing on this host for these models.

    Only the CPU has a fast path: on CUDA and MPS the plain loop is already what
    cuDNN/Metal tune for, and this pack has no GPU to measure other choices on.
    """
    if device.type != "cpu":
        return ("off",)
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in (*G.modules(), *D.modules()))
    paths = ["off"] + (["channels_last"] if has_conv else [])
    if bf16_native():
        paths += ["bf16"] + (["bf16+channels_last"] if has_conv else [])
    return tuple(paths)


StepFn = Callable[[nn.Module, nn.Module, FastPath, torch.Generator], None]

_cache: dict[tuple, str] = {}


def choose(requested: str, G: nn.Module, D: nn.Module, device: torch.device, step: StepFn,
           key: tuple = (), warmup: int = 2, timed: int = 4,
           images: int | None = None) -> tuple[FastPath, dict[str, float]]:
    """Resolve ``requested`` (a name in :data:`CHOICES`) to a :class:`FastPath`.

    For ``"auto"`` (unless ``LABKIT_FAST_PATH`` names a path) each candidate runs
    ``warmup + timed`` calls of ``step(G_copy, D_copy, path, generator)`` on deep
    copies of the models; the fastest wins if it beats the plain loop by
    :data:`MIN_SPEEDUP`. Returns the path and the seconds per step measured (empty
    when nothing was timed now). A decision is remembered for the process under
    ``key``, so a notebook's many runs of the same models pay for one probe.
    A run that trains on fewer than :data:`MIN_IMAGES_TO_PROBE` ``images`` (all its epochs) is
    not probed: plain path.
    The real models, their optimisers and the training random stream are never touched.
    """
    if requested not in CHOICES:
        raise ValueError(f"fast_path must be one of {CHOICES}, got {requested!r}")
    if requested == "auto":
        forced = os.environ.get(ENV, "").strip()
        if forced and forced != "auto":
            if forced not in PATHS:
                raise ValueError(f"{ENV} must be one of {CHOICES}, got {forced!r}")
            requested = forced
    if requested != "auto":
        return FastPath(requested), {}

    options = candidates(G, D, device)
    if options == ("off",) or (images is not None and images < MIN_IMAGES_TO_PROBE):
        return FastPath("off"), {}
    cache_key = (device.type, type(G).__name__, type(D).__name__,
                 sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters()), *key)
    if cache_key in _cache:
        return FastPath(_cache[cache_key]), {}

    # Candidates take turns, one step each per round, and each keeps its fastest step:
    # a neighbour's burst of load then slows one round of every candidate, not one candidate.
    prepared = {}
    for name in options:
        path = FastPath(name)
        g, d = path.prepare_model(copy.deepcopy(G)), path.prepare_model(copy.deepcopy(D))
        gen = torch.Generator().manual_seed(0)
        for _ in range(warmup):  # first calls pay for kernel selection and allocation
            step(g, d, path, gen)
        prepared[name] = (path, g, d, gen)
    timings = {name: float("inf") for name in options}
    for _ in range(timed):
        for name, (path, g, d, gen) in prepared.items():
            start = time.perf_counter()
            step(g, d, path, gen)
            timings[name] = min(timings[name], time.perf_counter() - start)
    best = min(timings, key=timings.get)
    if timings["off"] / timings[best] < MIN_SPEEDUP:
        best = "off"
    _cache[cache_key] = best
    return FastPath(best), timings


def describe(path: FastPath, timings: dict[str, float]) -> str:
    """A line saying what was chosen and why, for the training log."""
    if not timings:
        return f"fast path: {path.name}"
    plain = timings["off"]
    measured = ", ".join(f"{name} {plain / seconds:.2f}x" for name, seconds in timings.items())
    return f"fast path: {path.name} (probe, speed against the plain loop: {measured}; {host_description()})"
