"""One training loop for every GAN of the pack.

``fit(G, D, data, config)`` trains the non-saturating GAN, the minimax GAN of
question 3, the WGAN with weight clipping and the WGAN-GP; each is a
:class:`TrainConfig`, never a copy of the loop. It returns a :class:`History`
of per-step measurements and per-epoch samples from a fixed noise batch.

With a ``run_dir`` it writes a checkpoint after every epoch (model, optimisers,
history, config and random-number state), so ``resume=True`` continues exactly
where the last checkpoint stopped: same numbers as an uninterrupted run on CPU.
:func:`fit_or_load` is what notebooks call: it reuses a finished run whose
config equals the requested one, resumes an unfinished one, and trains
otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import torch
from filelock import FileLock, Timeout
from torch import nn

from . import fastpath, losses
from .device import DEVICES, resolve_device
from .progress import progress
from .tables import count

CHECKPOINT = "checkpoint.pt"
TRAINING_LOCK = ".training.lock"  # held while a process trains the run folder; the OS frees it if the process dies
CONFIG_JSON = "config.json"
HISTORY_JSON = "history.json"
OPTIMIZERS = ("adam", "rmsprop")
MODELS = ("dcgan", "mlp")
DATASETS = ("mnist", "cifar10")
CRITIC_NORMS = ("batch", "layer", "none")
G_NORMS = ("batch", "none")  # the MLP generator's hidden layers; DCGAN's G always uses BatchNorm
INITS = ("dcgan", "default")
HOST_FIELDS = ("device", "fast_path")  # how a run is executed, not what it is


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Validated on creation.

    The model fields (``model`` to ``critic_norm``) are used by :func:`fit_or_load`
    to build G and D; :func:`fit` itself uses the optimisation fields and stores
    the whole config with the run so a finished run can be recognised.
    """

    model: str = "dcgan"
    dataset: str = "mnist"
    n_train: int | None = None
    conditional: bool = False
    d_uses_labels: bool = True
    nz: int = 100
    ngf: int = 32
    ndf: int = 32
    init: str = "dcgan"
    critic_norm: str = "batch"
    g_norm: str = "none"
    loss: str = "gan"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-4
    lr_d: float | None = None
    beta1: float = 0.5
    beta2: float = 0.999
    optimizer: str = "adam"
    n_critic: int = 1
    clip: float = 0.01
    gp_lambda: float = 10.0
    seed: int = 0
    device: str = "auto"
    n_samples: int = 64
    data_seed: int = 0
    fast_path: str = "auto"

    def __post_init__(self) -> None:
        def choice(name: str, accepted: tuple) -> None:
            if getattr(self, name) not in accepted:
                raise ValueError(f"{name} must be one of {accepted}, got {getattr(self, name)!r}")

        def positive_int(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                extra = " or None" if allow_none else ""
                raise ValueError(f"{name} must be a positive integer{extra}, got {value!r}")

        def positive_float(name: str, allow_none: bool = False, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if allow_none and value is None:
                return
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (value == 0 and not allow_zero):
                bound = ">= 0" if allow_zero else "> 0"
                raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")

        choice("model", MODELS)
        choice("dataset", DATASETS)
        choice("loss", losses.LOSSES)
        choice("optimizer", OPTIMIZERS)
        choice("init", INITS)
        choice("critic_norm", CRITIC_NORMS)
        choice("g_norm", G_NORMS)
        choice("fast_path", fastpath.CHOICES)
        if not isinstance(self.device, str) or self.device.split(":")[0] not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES} (or 'cuda:N'), got {self.device!r}")
        for name in ("nz", "ngf", "ndf", "epochs", "batch_size", "n_critic", "n_samples"):
            positive_int(name)
        positive_int("n_train", allow_none=True)
        positive_float("lr")
        positive_float("lr_d", allow_none=True)
        positive_float("clip")
        positive_float("gp_lambda", allow_zero=True)
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("conditional", "d_uses_labels"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.conditional and self.model != "dcgan":
            raise ValueError(f"conditional=True needs model='dcgan', got model={self.model!r}")
        if self.dataset == "cifar10" and self.model == "mlp":
            raise ValueError("model='mlp' is for MNIST; use dataset='mnist' or model='dcgan'")
        if self.n_train is not None and self.n_train < self.batch_size * self.n_critic:
            raise ValueError(
                f"n_train={self.n_train} is smaller than one training step needs "
                f"(batch_size * n_critic = {self.batch_size * self.n_critic}); use a larger n_train or smaller batch_size"
            )

    @property
    def nc(self) -> int:
        """Image channels of the dataset."""
        return 3 if self.dataset == "cifar10" else 1

    @property
    def n_classes(self) -> int:
        """Number of classes G is conditioned on (0 = unconditional)."""
        return 10 if self.conditional else 0

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> str:
        """A short hash of the fields that define the experiment.

        Where it runs (``device``, ``fast_path``) changes the numbers only as much
        as hardware does, so it is left out. Only fields set away from their
        default enter the hash, so adding a new field with a default later keeps
        every saved run recognisable.
        """
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in HOST_FIELDS and getattr(self, f.name) != f.default}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class History:
    """What a run measured.

    Per step (one generator update, after ``n_critic`` discriminator updates):
    ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake`` (mean D(x) and D(G(z)):
    probabilities for the GAN losses, raw critic scores for the Wasserstein
    ones), ``g_grad_norm`` (norm of G's whole gradient) and ``gp`` (gradient
    penalty, 0 without one). Per epoch: ``samples`` (fixed-noise images, index 0
    is before training), ``epoch_seconds`` and ``epoch_images``. ``fast_path``
    names the CPU fast path the run trained with (see :mod:`labkit.fastpath`).
    ``curve`` holds what ``fit(measure=...)`` measured along the run, one dict per
    point: ``images`` and ``step`` reached, ``seconds`` of training, then the measures.
    """

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    d_real: list[float] = field(default_factory=list)
    d_fake: list[float] = field(default_factory=list)
    g_grad_norm: list[float] = field(default_factory=list)
    gp: list[float] = field(default_factory=list)
    epoch_of_step: list[int] = field(default_factory=list)
    samples: list[torch.Tensor] = field(default_factory=list)
    sample_labels: torch.Tensor | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_images: list[int] = field(default_factory=list)
    fast_path: str = "off"
    curve: list[dict[str, Any]] = field(default_factory=list)

    STEP_FIELDS = ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm", "gp")

    @property
    def epochs(self) -> int:
        return len(self.epoch_seconds)

    @property
    def steps(self) -> int:
        return len(self.g_loss)

    @property
    def wall_time(self) -> float:
        """Seconds spent training (snapshots and checkpoints excluded)."""
        return float(sum(self.epoch_seconds))

    @property
    def images_per_second(self) -> float:
        """Real images seen by D per second of training."""
        return sum(self.epoch_images) / self.wall_time if self.wall_time > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain containers and tensors only, so ``torch.load(weights_only=True)`` reads it."""
        out = {name: list(getattr(self, name)) for name in (*self.STEP_FIELDS, "epoch_of_step",
                                                            "epoch_seconds", "epoch_images")}
        out["samples"] = [s.clone() for s in self.samples]
        out["sample_labels"] = self.sample_labels
        out["fast_path"] = self.fast_path
        out["curve"] = [dict(point) for point in self.curve]
        return out

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> "History":
        return cls(**state)

    def summary(self) -> dict[str, Any]:
        """Scalars for tables and JSON: no tensors."""
        last = {name: getattr(self, name)[-1] for name in self.STEP_FIELDS if getattr(self, name)}
        return {
            "epochs": self.epochs,
            "steps": self.steps,
            "wall_time": round(self.wall_time, 2),
            "images_per_second": round(self.images_per_second, 1),
            "fast_path": self.fast_path,
            **{f"last_{k}": v for k, v in last.items()},
        }


@dataclass
class Run:
    """A trained (or loaded) run: the models, what they measured, and where they live."""

    G: nn.Module
    D: nn.Module
    history: History
    config: TrainConfig
    run_dir: Path | None
    loaded: bool = False


# --------------------------------------------------------------------------- steps


def _d_step(G: nn.Module, D: nn.Module, real: torch.Tensor, labels: torch.Tensor | None, config: TrainConfig,
            opt_d: torch.optim.Optimizer, gen: torch.Generator,
            path: fastpath.FastPath = fastpath.FastPath(), keep_fake: bool = False) -> tuple[Any, ...]:
    """One discriminator (critic) update. Returns (loss, mean D(x), mean D(G(z)), penalty, kept).

    With ``keep_fake`` G's images are drawn with their graph and ``kept`` is
    ``(fake, labels)``, for :func:`_g_step` to reuse instead of drawing a second batch;
    otherwise they are drawn without a graph and ``kept`` is None.
    """
    b = real.shape[0]
    z = torch.randn(b, config.nz, generator=gen).to(real.device)
    d_labels = labels if config.d_uses_labels else None
    with path.autocast(real.device):
        with torch.set_grad_enabled(keep_fake):
            fake = G(z, labels) if labels is not None else G(z)
        seen = fake.detach()
        real_out = (D(real, d_labels) if d_labels is not None else D(real)).float()
        fake_out = (D(seen, d_labels) if d_labels is not None else D(seen)).float()
        penalty = real_out.new_zeros(())
        if config.loss in ("gan", "gan-minimax"):
            loss = losses.d_loss_gan(real_out, fake_out)
            d_real, d_fake = torch.sigmoid(real_out).mean(), torch.sigmoid(fake_out).mean()
        else:
            loss = losses.d_loss_wgan(real_out, fake_out)
            d_real, d_fake = real_out.mean(), fake_out.mean()
            if config.loss == "wgan-gp":
                penalty, _ = losses.gradient_penalty(D, real, seen, y=d_labels, generator=gen)
                loss = loss + config.gp_lambda * penalty
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()
    if config.loss == "wgan":
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-config.clip, config.clip)
    return loss.detach(), d_real.detach(), d_fake.detach(), penalty.detach(), (fake, labels) if keep_fake else None


def _g_step(G: nn.Module, D: nn.Module, batch_size: int, config: TrainConfig, opt_g: torch.optim.Optimizer,
            gen: torch.Generator, device: torch.device,
            path: fastpath.FastPath = fastpath.FastPath(),
            kept: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One generator update. Returns (loss, norm of G's gradient).

    ``kept``: the ``(fake, labels)`` the D step just drew with their graph (:func:`_d_step`
    with ``keep_fake``). G's loss is then taken on that batch, scored by the updated D,
    instead of on a new one.
    """
    fake, labels = kept if kept is not None else (None, None)
    if fake is None:
        z = torch.randn(batch_size, config.nz, generator=gen).to(device)
        if config.conditional:
            labels = torch.randint(0, config.n_classes, (batch_size,), generator=gen).to(device)
    # G's update needs D's gradient with respect to its input only. D's own weight gradients would be
    # computed and thrown away (D's next step starts from zero), so D's weights are taken out of the
    # graph for this step: G's gradient is the same, the backward pass does less work.
    d_weights = [p for p in D.parameters() if p.requires_grad]
    for p in d_weights:
        p.requires_grad_(False)
    try:
        with path.autocast(device):
            if fake is None:
                fake = G(z, labels) if labels is not None else G(z)
            d_labels = labels if config.d_uses_labels else None
            out = (D(fake, d_labels) if d_labels is not None else D(fake)).float()
            if config.loss == "gan":
                loss = losses.g_loss_nonsaturating(out)
            elif config.loss == "gan-minimax":
                loss = losses.g_loss_minimax(out)
            else:
                loss = losses.g_loss_wgan(out)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
    finally:
        for p in d_weights:
            p.requires_grad_(True)
    grads = [p.grad for p in G.parameters() if p.grad is not None]
    grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    opt_g.step()
    return loss.detach(), grad_norm.detach()


def _train_step(G: nn.Module, D: nn.Module, reals: list[tuple[torch.Tensor, torch.Tensor | None]], config: TrainConfig,
                opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer, gen: torch.Generator,
                device: torch.device, path: fastpath.FastPath) -> tuple[torch.Tensor, ...]:
    """One step: a D update per ``(images, labels)`` batch of ``reals``, then one G update.

    Returns (d_loss, g_loss, d_real, d_fake, g_grad_norm, penalty), D's values from its last
    update. With one D update per step (``n_critic`` 1, the GAN losses' setting) G's update
    reuses the fake batch that D was just trained on, as in pytorch/examples' DCGAN: one
    pass of G per step instead of two, about a tenth of a default DCGAN step. A critic
    trained several times per step (WGAN) gets a new batch for G's update, as in the
    WGAN papers' algorithm.
    """
    reuse = config.n_critic == 1
    for real, labels in reals:
        d_loss, d_real, d_fake, penalty, kept = _d_step(G, D, real, labels, config, opt_d, gen, path, keep_fake=reuse)
    g_loss, g_grad = _g_step(G, D, config.batch_size, config, opt_g, gen, device, path, kept=kept)
    return d_loss, g_loss, d_real, d_fake, g_grad, penalty


# --------------------------------------------------------------------------- helpers


def adam_fuses(device: torch.device) -> bool:
    """Whether torch has Adam's fused kernel for ``device``: CUDA, and the CPU from torch 2.4."""
    if device.type == "cuda":
        return True
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return device.type == "cpu" and (major, minor) >= (2, 4)


def _make_optimizer(params, lr: float, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        # The fused kernel makes Adam's update one pass over the weights instead of a dozen: the same
        # update, 5x faster on one CPU core for question 5's nz = 10000 generator (20M weights in its first
        # layer), where the unfused update took a third of each step.
        return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=adam_fuses(device) or None)
    return torch.optim.RMSprop(params, lr=lr)


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Load a checkpoint's optimizer state, keeping this machine's choice of kernel.

    A run may resume on another machine or torch (an unfinished run folder copied from a GPU
    to a laptop): the saved ``fused`` flag is replaced by the one this machine supports, and
    Adam's step counters move where that kernel wants them (the weights' device when fused,
    the CPU otherwise).
    """
    fused = [group.get("fused") for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, flag in zip(optimizer.param_groups, fused):
        if "fused" not in group:
            continue
        group["fused"] = flag
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(param.device if flag else "cpu", torch.float32)


def _fixed_noise(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise batch whose images are saved each epoch; independent of the training stream."""
    gen = torch.Generator().manual_seed(config.seed + 10_000)
    z = torch.randn(config.n_samples, config.nz, generator=gen)
    labels = torch.arange(config.n_samples) % config.n_classes if config.conditional else None
    return z, labels


@torch.no_grad()
def _snapshot(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """G's images for the fixed noise, drawn in training mode (BatchNorm on batch statistics).

    Training mode shows what G learned even before its running statistics settle
    (in eval mode an untrained G draws flat grey, not noise); the running
    statistics are put back afterwards so a snapshot never changes training.
    """
    buffers = {name: b.clone() for name, b in G.named_buffers()}
    was_training = G.training
    G.train()
    out = G(z.to(device), labels.to(device)) if labels is not None else G(z.to(device))
    G.train(was_training)
    for name, b in G.named_buffers():
        b.copy_(buffers[name])
    return out.float().clamp(-1, 1).cpu()


def _atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit`, with a clear error when it is damaged."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several kinds for truncated or foreign files
        raise RuntimeError(
            f"checkpoint {path} is damaged or not a labkit checkpoint ({type(exc).__name__}: {exc}). "
            f"Move it away (or delete it) and train again, or resume from an earlier copy."
        ) from exc
    missing = {"G", "D", "opt_g", "opt_d", "history", "config", "rng", "epoch"} - set(state)
    if missing:
        raise RuntimeError(f"checkpoint {path} lacks {sorted(missing)}: it was not written by labkit.train.fit")
    return state


def epoch_batches(n: int, batch_size: int, n_critic: int = 1) -> list[list[tuple[int, int]]]:
    """How one epoch of ``n`` images is cut: per generator step, the ``(start, stop)`` of its critic batches.

    Every image is used once per epoch, whatever the batch size, so runs that differ
    only in ``batch_size`` see the same number of images (question 5 compares them at
    one image budget). The images left over after the full batches form one last,
    smaller batch; when they are fewer than half a batch they join the batch before
    instead, so that no BatchNorm statistics come from a handful of images. The last
    generator step may follow fewer than ``n_critic`` critic batches.
    """
    full, left = divmod(n, batch_size)
    if full == 0:
        raise ValueError(f"n={n} images are fewer than one batch (batch_size={batch_size})")
    bounds = [(i * batch_size, (i + 1) * batch_size) for i in range(full)]
    if left * 2 >= batch_size:
        bounds.append((full * batch_size, n))
    elif left:
        bounds[-1] = (bounds[-1][0], n)
    return [bounds[i:i + n_critic] for i in range(0, len(bounds), n_critic)]


def _check_finite(values: dict[str, list[float]], history: History, epoch: int) -> None:
    """Raise :class:`TrainingDiverged` at the first step of this epoch whose losses are not finite."""
    for i, (d, g) in enumerate(zip(values["d_loss"], values["g_loss"])):
        if math.isfinite(d) and math.isfinite(g):
            continue
        which = "d_loss" if not math.isfinite(d) else "g_loss"
        d_seen, g_seen = history.d_loss + values["d_loss"][:i], history.g_loss + values["g_loss"][:i]
        raise TrainingDiverged(
            f"{which} became {d if which == 'd_loss' else g} at step {history.steps + i + 1} (epoch {epoch}); "
            f"last finite values: d_loss={d_seen[-1] if d_seen else 'none'}, g_loss={g_seen[-1] if g_seen else 'none'}. "
            "Training stopped and the last good checkpoint was kept; a lower lr usually helps."
        )


def choose_fast_path(G: nn.Module, D: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
                     config: TrainConfig, device: torch.device) -> fastpath.FastPath:
    """The fast path :func:`fit` would use for ``config`` on these data and device.

    A named ``config.fast_path`` is checked and returned; "auto" times real training steps on
    copies of G and D (left untouched) unless the run is too short to pay for the probe.
    """
    real = images[:config.batch_size]
    batch_labels = labels[:config.batch_size] if config.conditional else None
    optimizers: dict[int, tuple[torch.optim.Optimizer, torch.optim.Optimizer]] = {}

    def probe_step(g: nn.Module, d: nn.Module, path: fastpath.FastPath, gen: torch.Generator) -> None:
        if id(g) not in optimizers:
            optimizers[id(g)] = (_make_optimizer(g.parameters(), config.lr, config, device),
                                 _make_optimizer(d.parameters(), config.lr_d or config.lr, config, device))
        opt_g, opt_d = optimizers[id(g)]
        x = path.prepare_images(real)
        _train_step(g, d, [(x, batch_labels)] * config.n_critic, config, opt_d, opt_g, gen, device, path)

    path, timings = fastpath.choose(config.fast_path, G, D, device, probe_step,
                                    images=config.epochs * images.shape[0],  # every epoch sees every image
                                    key=(config.batch_size, config.loss, config.n_critic, config.conditional))
    if timings:
        print(fastpath.describe(path, timings), flush=True)
    return path


# --------------------------------------------------------------------------- fit


def _check_watch(watch: Any, watch_every: Any, measure: Any = None, measure_every: Any = None) -> None:
    if watch is not None and not callable(watch):
        raise ValueError(f"watch must be None or a callable watch(step, seconds, images), got {type(watch).__name__}")
    if isinstance(watch_every, bool) or not isinstance(watch_every, int) or watch_every < 1:
        raise ValueError(f"watch_every must be a positive number of steps, got {watch_every!r}")
    if measure is not None and not callable(measure):
        raise ValueError(f"measure must be None or a callable measure(G) -> dict, got {type(measure).__name__}")
    if measure is not None and (isinstance(measure_every, bool) or not isinstance(measure_every, int) or measure_every < 1):
        raise ValueError(f"measure needs measure_every, a positive number of training images, got {measure_every!r}")


def _measure_point(measure: Callable[[nn.Module], dict[str, Any]], G: nn.Module, images: int, step: int,
                   seconds: float) -> dict[str, Any]:
    """``measure(G)`` with G in eval mode (no BatchNorm statistics updated), then back in training mode."""
    G.eval()
    try:
        values = measure(G)
    finally:
        G.train()
    if not isinstance(values, dict):
        raise ValueError(f"measure(G) must return a dict of numbers, got {type(values).__name__}")
    values = {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}  # numpy and torch scalars
    return {"images": images, "step": step, "seconds": round(seconds, 3), **values}


def fit(G: nn.Module, D: nn.Module, data, config: TrainConfig | None = None, run_dir: str | Path | None = None,
        resume: bool = False, watch: Callable[[int, float, torch.Tensor], None] | None = None,
        watch_every: int = 50, measure: Callable[[nn.Module], dict[str, Any]] | None = None,
        measure_every: int | None = None, **overrides: Any) -> History:
    """Train ``G`` against ``D`` on ``data`` (a dataset, or an ``(images, labels)`` pair of tensors).

    ``config`` defaults to :class:`TrainConfig`; keyword arguments override its
    fields (``fit(G, D, ds, epochs=1, loss="wgan-gp")``). With ``run_dir`` a
    checkpoint is written after every epoch; ``resume=True`` continues the run
    found there. An existing run is never overwritten: without ``resume`` a
    run folder that already holds a checkpoint raises ``FileExistsError``.

    ``watch(step, seconds, images)`` is called every ``watch_every`` steps (and after
    the last) with the step count, the seconds of training so far and G's images for
    the fixed noise of ``History.samples``: samples seen while they form (e.g.
    :class:`labkit.plots.LiveSamples`). Watching changes nothing in the run, and its
    time is not counted as training time.

    ``measure(G)`` is called each time the run has seen another ``measure_every`` real
    images, and after the last step, with G in eval mode; what it returns is kept in
    ``History.curve`` with the images, step and seconds reached (for curves of FID
    against images seen: :func:`labkit.compare.curve_probe`). It must leave G's
    parameters alone and draw from its own random generator: then the run is the same
    as without it, and its time is not counted as training time either.
    """
    _check_watch(watch, watch_every, measure, measure_every)
    config = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
    device = resolve_device(config.device)
    run_path = Path(run_dir) if run_dir is not None else None
    checkpoint_path = run_path / CHECKPOINT if run_path is not None else None
    if resume and run_path is None:
        raise ValueError("resume=True needs a run_dir holding the checkpoint to continue")
    if checkpoint_path is not None and checkpoint_path.exists() and not resume:
        raise FileExistsError(
            f"run folder {run_path} already holds a run; pass resume=True to continue it, "
            f"or choose another run_dir (nothing was overwritten)"
        )

    if isinstance(data, (tuple, list)):
        images, labels = data
    else:
        from .data import as_tensors

        images, labels = as_tensors(data)
    if images.ndim != 4 or images.shape[1] != config.nc:
        raise ValueError(f"data images must be (N, {config.nc}, H, W) for dataset={config.dataset!r}, got {tuple(images.shape)}")
    if config.conditional and labels is None:
        raise ValueError("conditional=True needs labelled data")
    per_step = config.batch_size * config.n_critic
    if images.shape[0] < per_step:
        raise ValueError(f"data has {images.shape[0]} images, fewer than one step needs (batch_size * n_critic = {per_step})")
    step_batches = epoch_batches(images.shape[0], config.batch_size, config.n_critic)
    steps_per_epoch = len(step_batches)
    images = images.to(device)
    labels = labels.to(device) if labels is not None else None

    G.to(device).train()
    D.to(device).train()
    state = load_checkpoint(checkpoint_path) if resume and checkpoint_path is not None and checkpoint_path.exists() else None
    if state is not None:
        saved = TrainConfig(**state["config"])
        differing = {k for k, v in saved.to_dict().items() if getattr(config, k) != v} - {"epochs", *HOST_FIELDS}
        if differing:
            raise ValueError(f"cannot resume {run_path}: its config differs in {sorted(differing)}; "
                             f"saved {[(k, getattr(saved, k)) for k in sorted(differing)]}")
        # The path the run started with, so a resumed run continues with the same numerics.
        path = fastpath.FastPath(state["history"].get("fast_path", "off"))
    else:
        path = choose_fast_path(G, D, images, labels, config, device)
    path.prepare_model(G)
    path.prepare_model(D)
    images = path.prepare_images(images)
    opt_g = _make_optimizer(G.parameters(), config.lr, config, device)
    opt_d = _make_optimizer(D.parameters(), config.lr_d or config.lr, config, device)
    gen = torch.Generator().manual_seed(config.seed)
    history = History(fast_path=path.name)
    fixed_z, fixed_labels = _fixed_noise(config)
    history.sample_labels = fixed_labels
    start_epoch = 0

    if state is not None:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        _load_optimizer(opt_g, state["opt_g"])
        _load_optimizer(opt_d, state["opt_d"])
        gen.set_state(state["rng"])
        history = History.from_dict({**state["history"], "fast_path": path.name})
        start_epoch = state["epoch"]
    if run_path is not None:
        run_path.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(json.dumps(config.to_dict(), indent=2), run_path / CONFIG_JSON)
    if not history.samples:
        history.samples.append(_snapshot(G, fixed_z, fixed_labels, device))

    n = images.shape[0]
    trained_seconds = sum(history.epoch_seconds)
    for epoch in range(start_epoch, config.epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        stats: list[torch.Tensor] = []
        t0 = time.perf_counter()
        watched = 0.0  # seconds spent in watch and measure, left out of the epoch's training time
        images_done = sum(history.epoch_images)
        seen_before = 0  # images of this epoch before the current step
        pending: list[dict[str, Any]] = []  # this epoch's measured points, added to history when it ends
        bar = progress(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step")
        for step, batches in enumerate(step_batches):
            reals = []
            for start, stop in batches:
                idx = perm[start:stop]
                reals.append((images[idx], labels[idx] if config.conditional else None))
            d_loss, g_loss, d_real, d_fake, g_grad, gp = _train_step(G, D, reals, config, opt_d, opt_g, gen, device, path)
            stats.append(torch.stack([d_loss, g_loss, d_real, d_fake, g_grad, gp]))
            bar.update()
            if step % 25 == 0 or step == steps_per_epoch - 1:
                bar.set_postfix(d_loss=float(d_loss), g_loss=float(g_loss), d_x=float(d_real), d_gz=float(d_fake))
                if not (math.isfinite(float(d_loss)) and math.isfinite(float(g_loss))):
                    break
            if watch is not None:
                done = len(history.d_loss) + len(stats)
                if done % watch_every == 0 or (epoch + 1 == config.epochs and step + 1 == steps_per_epoch):
                    w0 = time.perf_counter()
                    watch(done, trained_seconds + w0 - t0 - watched, _snapshot(G, fixed_z, fixed_labels, device))
                    watched += time.perf_counter() - w0
            if measure is not None:
                seen = seen_before + sum(stop - start for start, stop in batches)
                last = epoch + 1 == config.epochs and step + 1 == steps_per_epoch
                if (images_done + seen) // measure_every > (images_done + seen_before) // measure_every or last:
                    w0 = time.perf_counter()
                    history_steps = len(history.d_loss) + len(stats)
                    pending.append(_measure_point(measure, G, images_done + seen, history_steps,
                                                  trained_seconds + w0 - t0 - watched))
                    watched += time.perf_counter() - w0
                seen_before = seen
        bar.close()
        seconds = time.perf_counter() - t0 - watched
        trained_seconds += seconds
        columns = torch.stack(stats).double().cpu().T.tolist()
        values = dict(zip(History.STEP_FIELDS, columns))
        _check_finite(values, history, epoch + 1)
        for name in History.STEP_FIELDS:
            getattr(history, name).extend(values[name])
        history.epoch_of_step.extend([epoch + 1] * len(stats))
        history.epoch_seconds.append(seconds)
        history.epoch_images.append(sum(stop - start for batches in step_batches[:len(stats)] for start, stop in batches))
        history.curve.extend(pending)
        history.samples.append(_snapshot(G, fixed_z, fixed_labels, device))
        if run_path is not None:
            _atomic_save({
                "G": G.state_dict(), "D": D.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "history": history.to_dict(), "config": config.to_dict(),
                "rng": gen.get_state(), "epoch": epoch + 1,
            }, checkpoint_path)
            _atomic_write_text(json.dumps(history.summary() | {
                "d_loss": history.d_loss, "g_loss": history.g_loss, "d_real": history.d_real,
                "d_fake": history.d_fake, "g_grad_norm": history.g_grad_norm, "gp": history.gp,
                "epoch_seconds": history.epoch_seconds, "epoch_images": history.epoch_images,
                "curve": history.curve}), run_path / HISTORY_JSON)
    return history


# --------------------------------------------------------------------------- runs


def build_models(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """G and D as ``config`` describes them, freshly initialised from ``config.seed``."""
    from . import models

    torch.manual_seed(config.seed)
    G, D = models.build_models(
        config.model, nz=config.nz, ngf=config.ngf, ndf=config.ndf, nc=config.nc,
        n_classes=config.n_classes, init=config.init, critic_norm=config.critic_norm, g_norm=config.g_norm,
    )
    if config.conditional and not config.d_uses_labels:
        D = models.build_models(config.model, nz=config.nz, ngf=config.ngf, ndf=config.ndf, nc=config.nc,
                                n_classes=0, init=config.init, critic_norm=config.critic_norm)[1]
    return G, D


def run_folder(runs_root: str | Path, name: str, config: TrainConfig) -> Path:
    """``runs_root/name-<config hash>``: a different config never lands in the same folder."""
    return Path(runs_root) / f"{name}-{config.identity()}"


def load_run(run_dir: str | Path, device: str = "auto") -> Run:
    """Load a run written by :func:`fit` (finished or not)."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT)
    config = TrainConfig(**state["config"]).replace(device=device)
    G, D = build_models(config)
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    dev = resolve_device(device)
    return Run(G.to(dev).eval(), D.to(dev).eval(), History.from_dict(state["history"]), config, run_dir, loaded=True)


def is_finished(config: TrainConfig, runs_root: str | Path = "runs", name: str | None = None) -> bool:
    """Whether ``runs_root`` holds a finished run of ``config`` under ``name``: :func:`fit_or_load` would load it."""
    checkpoint = run_folder(runs_root, name or config.model, config) / CHECKPOINT
    if not checkpoint.exists():
        return False
    state = load_checkpoint(checkpoint)
    return state["epoch"] >= config.epochs and TrainConfig(**state["config"]).identity() == config.identity()


def fit_or_load(config: TrainConfig | None = None, runs_root: str | Path = "runs", name: str | None = None,
                data=None, data_root: str | None = None, watch: Callable[[int, float, torch.Tensor], None] | None = None,
                watch_every: int = 50, measure: Callable[[nn.Module], dict[str, Any]] | None = None,
                measure_every: int | None = None, **overrides: Any) -> Run:
    """Return a trained run for ``config``: loaded when ``runs_root`` already has it, trained otherwise.

    The run lives in ``runs_root/<name>-<hash of config>``; a finished run there
    is loaded without training, an unfinished one (a kill, a closed laptop) is
    resumed. ``data`` defaults to the config's dataset with ``n_train`` images.
    ``watch``, ``watch_every``, ``measure`` and ``measure_every`` go to :func:`fit` when
    it trains (a reloaded run keeps the curve it was trained with, if any).
    """
    _check_watch(watch, watch_every, measure, measure_every)
    config = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
    folder = run_folder(runs_root, name or config.model, config)
    if is_finished(config, runs_root, name):
        return _load_finished(folder, config)
    with training_lock(folder):
        if is_finished(config, runs_root, name):  # another process finished it while this one waited
            return _load_finished(folder, config)
        if data is None:
            from .data import load_dataset

            data = load_dataset(config.dataset, root=data_root, train=True, n=config.n_train, seed=config.data_seed)
        G, D = build_models(config)
        resume = (folder / CHECKPOINT).exists()
        if resume:
            print(f"resuming unfinished run {folder}")
        history = fit(G, D, data, config, run_dir=folder, resume=resume, watch=watch, watch_every=watch_every,
                      measure=measure, measure_every=measure_every)
    G.eval()
    D.eval()
    return Run(G, D, history, config, folder)


def _load_finished(folder: Path, config: TrainConfig) -> Run:
    run = load_run(folder, device=config.device)
    print(f"loaded finished run {folder} ({count(config.epochs, 'epoch')}, trained in "
          f"{run.history.wall_time:.0f} s); delete the folder to train again")
    return run


@contextlib.contextmanager
def training_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s training lock: one process at a time trains (or resumes) a run folder.

    Two notebooks with the same ``run_dir``, or a notebook beside a script, would otherwise
    both train the same run and overwrite each other's checkpoints. A second process waits,
    saying so, and then finds the run finished (:func:`fit_or_load` loads it). The lock is
    the operating system's, so a process that dies leaves nothing to clean up.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / TRAINING_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting: another process is training {folder} (a second notebook or script with the same runs "
              f"folder); this one continues when it is done", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
