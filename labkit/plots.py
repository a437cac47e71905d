"""Figures the notebooks show: sample grids, loss and D-output curves, samples over epochs.

Every function draws on ``ax`` (a new figure when ``None``) and returns the Axes
(or the Figure, for multi-panel plots), so a notebook can compose figures.
:func:`save` writes a figure next to a run so reports can show it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .tables import count  # noqa: F401  (figure titles in the notebooks: plots.count(history.epochs, "epoch"))
from .train import History


def _axes(ax, figsize=(5, 5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile ``images`` (N, C, H, W) in [-1, 1] into one (H', W', C) array in [0, 1]."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
    images = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    grid = torch.ones(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid.permute(1, 2, 0).numpy()


def sample_grid(images: torch.Tensor, nrow: int | None = None, title: str | None = None, ax=None):
    """Show generated (or real) images as one grid."""
    ax = _axes(ax)
    grid = image_grid(images, nrow)
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def _step_axis(n: int, smoothed: int, window: int) -> np.ndarray:
    offset = (window - 1) / 2 if smoothed < n else 0
    return np.arange(smoothed) + 1 + offset


def _epoch_ticks(ax, history: History) -> None:
    """Dotted lines where each epoch ends, so curves read against epochs too."""
    ends = np.cumsum([history.epoch_of_step.count(e) for e in sorted(set(history.epoch_of_step))])
    for end in ends[:-1]:
        ax.axvline(end, color="0.85", lw=0.8, ls=":", zorder=0)


def loss_curves(history: History, smooth: int = 25, ax=None, title: str | None = "losses"):
    """G's and D's loss per step (moving average over ``smooth`` steps, raw values faint)."""
    ax = _axes(ax, (7, 3.5))
    for name, label, color in (("d_loss", "D loss", "tab:blue"), ("g_loss", "G loss", "tab:orange")):
        raw = getattr(history, name)
        ax.plot(np.arange(1, len(raw) + 1), raw, color=color, alpha=0.2, lw=0.6)
        sm = _smooth(raw, smooth)
        ax.plot(_step_axis(len(raw), len(sm), smooth), sm, color=color, label=label)
    _epoch_ticks(ax, history)
    ax.set_xlabel("generator step")
    ax.set_ylabel("loss")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def d_output_curves(history: History, smooth: int = 25, ax=None, wasserstein: bool = False,
                    title: str | None = None):
    """Mean D(x) on real and D(G(z)) on generated images per step; 1/2 is the equilibrium.

    For a WGAN critic (``wasserstein=True``) the values are raw scores and their
    gap estimates the Wasserstein distance, so no 1/2 line is drawn.
    """
    ax = _axes(ax, (7, 3.5))
    for name, label, color in (("d_real", "D(x)", "tab:green"), ("d_fake", "D(G(z))", "tab:red")):
        raw = getattr(history, name)
        sm = _smooth(raw, smooth)
        ax.plot(np.arange(1, len(raw) + 1), raw, color=color, alpha=0.2, lw=0.6)
        ax.plot(_step_axis(len(raw), len(sm), smooth), sm, color=color, label=label)
    if not wasserstein:
        ax.axhline(0.5, color="0.5", ls="--", lw=0.8, label="1/2 (equilibrium)")
        ax.set_ylim(-0.02, 1.02)
    _epoch_ticks(ax, history)
    ax.set_xlabel("generator step")
    ax.set_ylabel("critic score" if wasserstein else "mean D output")
    ax.legend()
    ax.set_title(title or ("critic scores" if wasserstein else "D(x) and D(G(z))"))
    return ax


def grad_norm_curves(curves: dict[str, Sequence[float]], smooth: int = 1, ax=None, log: bool = True,
                     title: str | None = "generator gradient norm"):
    """One line per named sequence of G gradient norms (e.g. minimax vs non-saturating)."""
    ax = _axes(ax, (7, 3.5))
    for label, values in curves.items():
        sm = _smooth(values, smooth)
        ax.plot(_step_axis(len(values), len(sm), smooth), sm, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("||grad G||")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def samples_over_epochs(history: History, epochs: Sequence[int] | None = None, n: int = 16, nrow: int = 4):
    """One small grid per epoch (0 = before training), left to right: noise becoming digits."""
    available = list(range(len(history.samples)))
    epochs = list(epochs) if epochs is not None else available
    bad = [e for e in epochs if e not in available]
    if bad:
        raise ValueError(f"epochs must be among {available}, got {bad}")
    fig, axes = plt.subplots(1, len(epochs), figsize=(2.2 * len(epochs), 2.5), squeeze=False)
    for ax, e in zip(axes[0], epochs):
        sample_grid(history.samples[e][:n], nrow=nrow, ax=ax, title=f"epoch {e}")
    fig.tight_layout()
    return fig


def save(fig_or_ax, path: str | Path, dpi: int = 110) -> Path:
    """Save a figure (or the figure of an Axes) as PNG, creating folders; returns the path."""
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


class LiveSamples:
    """G's samples shown while they form: pass it as ``watch`` to ``train.fit`` / ``fit_or_load``.

    In a notebook it shows one image of the fixed-noise samples, with the step and the
    seconds of training, and replaces it in place at every call: a student watches blobs
    turn into digits during the first epoch instead of waiting for the epoch's end. Outside
    a notebook kernel nothing is displayed. ``updates`` counts the calls and ``images``
    keeps the last images, for tests and for a look after training.
    """

    def __init__(self, n: int = 64, nrow: int = 8, scale: int = 3, title: str = "samples while G trains"):
        for name, value in (("n", n), ("nrow", nrow), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.n, self.nrow, self.scale, self.title = n, nrow, scale, title
        self.updates = 0
        self.images: torch.Tensor | None = None
        self._handle = None

    def png(self, images: torch.Tensor) -> bytes:
        """The samples as one grey-scale PNG, each pixel ``scale`` pixels wide."""
        import io

        grid = image_grid(images[: self.n], self.nrow)
        grid = grid[..., 0] if grid.shape[-1] == 1 else grid
        grid = np.kron(grid, np.ones((self.scale, self.scale) + (() if grid.ndim == 2 else (1,))))
        buffer = io.BytesIO()
        plt.imsave(buffer, grid, cmap="gray", vmin=0, vmax=1, format="png")
        return buffer.getvalue()

    def __call__(self, step: int, seconds: float, images: torch.Tensor) -> None:
        from . import frontend

        self.updates += 1
        self.images = images[: self.n]
        if not frontend.in_kernel():
            return
        from IPython.display import HTML, Image, display

        caption = HTML(f"<b>{self.title}</b>: step {step:,}, {seconds:.0f} s of training")
        content = (caption, Image(data=self.png(images), format="png"))
        if self._handle is None:
            self._handle = [display(item, display_id=True) for item in content]
        else:
            for handle, item in zip(self._handle, content):
                handle.update(item)
