"""Interactive explorers for trained generators, with a static fallback.

Three questions the labs ask of a generator, each answered by one function:

- :func:`nz_explorer` — how does the size of z change what a DCGAN learns?
- :func:`class_explorer` — does a conditional G draw the digit it is asked for,
  and does z keep the style while the label changes the digit?
- :func:`latent_walk` — is the latent space smooth between two points?
- :func:`truncation_explorer` — what does the truncation trick trade: how much
  variety for how much cleaner samples?

In a live notebook (``labkit.frontend.widget_mode()`` is ``"widget"``) each
returns an ipywidgets container: a slider above an Output area that is redrawn
when the slider moves. With nobody watching (papermill, nbclient, nbval,
pytest) the same call draws one static matplotlib figure showing every choice,
so executed notebooks carry meaningful figures. In a kernel whose front end
cannot be told (``"both"``) it shows the widget and then the static figure,
and returns the widget with the figure as its ``static_figure``: never
neither. ``force="widget"``, ``"static"`` or ``"both"`` overrides the guess.
Works with ipywidgets 7 and 8.

Every image is generated once, up front (under ``torch.no_grad()``, G in eval
mode, then G's mode restored), so moving a slider only redraws. In a kernel the
result is displayed right away and also returned; ending a cell with the call
does not show it twice.
"""

from __future__ import annotations

import base64
import io
from typing import Callable, Sequence

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from . import frontend, plots
from .metrics import standing_statistics, truncated_noise
from .device import resolve_device
from .train import History, Run

FORCES = ("widget", "static", "both")
STATIC_WALK_CLASSES = 5  # rows of a conditional latent walk drawn statically


# --------------------------------------------------------------------------- helpers


def _mode(force: str | None) -> str:
    """"widget", "static" or "both": ``force``, else what :func:`labkit.frontend.widget_mode` says."""
    if force is None:
        return frontend.widget_mode()
    if force not in FORCES:
        raise ValueError(f"force must be None or one of {FORCES}, got {force!r}")
    return force


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_generator(G) -> None:
    if not isinstance(G, nn.Module) or not isinstance(getattr(G, "nz", None), int):
        raise ValueError(f"G must be a labkit generator (an nn.Module with an integer nz), got {type(G).__name__}")


def _n_classes(G) -> int:
    return int(getattr(G, "n_classes", 0) or 0)


def _device_of(G: nn.Module) -> torch.device:
    for tensor in G.parameters():
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def _generate(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None, device=None) -> torch.Tensor:
    """G(z, labels) in eval mode on ``device`` (None: where G is), as CPU float images in [-1, 1].

    G's training mode and device are restored afterwards: exploring never changes the model.
    """
    home = _device_of(G)
    device = home if device is None else resolve_device(device)
    was_training = G.training
    G.eval()
    try:
        if device != home:
            G.to(device)
        out = G(z.to(device)) if labels is None else G(z.to(device), labels.to(device))
    finally:
        G.train(was_training)
        if device != home:
            G.to(home)
    return out.float().clamp(-1, 1).cpu()


def _noise(n: int, nz: int, seed: int) -> torch.Tensor:
    """Seeded z on the CPU, so the same seed gives the same z on every device."""
    return torch.randn(n, nz, generator=torch.Generator().manual_seed(seed))


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from z0 (t=0) to z1 (t=1) along the great circle between them.

    Why not a straight line: in nz dimensions, z ~ N(0, I) lies almost surely near the
    sphere of radius sqrt(nz); the midpoint of a straight line between two such points
    has norm about sqrt(nz / 2), a z that G never saw in training, so linear walks fade
    in the middle. Slerp keeps the norm on the shell (White, "Sampling Generative
    Networks", 2016). Nearly parallel vectors fall back to the straight line.
    """
    a, b = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.arccos((a * b).sum().clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buffer.getvalue()


def _kernel_shell():
    """The IPython shell of a Jupyter kernel, or None (plain Python, pytest, terminal IPython)."""
    if not frontend.in_kernel():
        return None
    from IPython import get_ipython

    return get_ipython()


def _present(obj):
    """Display ``obj`` now when running in a kernel, and return it.

    The call is often a cell's last expression, whose value Jupyter shows too: until
    the cell ends, ``obj`` answers that second display with nothing. Figures are
    closed after display so the inline backend does not show them again either.
    """
    shell = _kernel_shell()
    if shell is None:
        return obj
    from IPython.display import display

    display(obj)
    if isinstance(obj, Figure):
        plt.close(obj)
    obj._ipython_display_ = _already_shown

    def forget(*_args) -> None:
        obj.__dict__.pop("_ipython_display_", None)
        shell.events.unregister("post_execute", forget)

    shell.events.register("post_execute", forget)
    return obj


def _already_shown() -> None:
    """Stands in for a second display of an object this module displayed in the same cell."""


def _finish(fig: Figure, explorer: "Explorer | None"):
    """Show the static figure alone, or (mode "both") below the widget, which is then what the call returns."""
    if explorer is None:
        return _present(fig)
    explorer.static_figure = fig
    _present(explorer)
    _present(fig)
    return explorer


class Explorer(ipywidgets.VBox):
    """Controls above an Output area redrawn whenever a control's value changes.

    ``draw(*values)`` returns ``(figure, images)``; the figure is rendered to PNG into
    ``output`` (this works in any front end and with any matplotlib backend) and closed.
    ``images`` keeps the images last shown and ``renders`` counts redraws: what a test
    (or a curious student) can inspect without a browser.
    """

    def __init__(self, controls: Sequence[ipywidgets.ValueWidget],
                 draw: Callable[..., tuple[Figure, torch.Tensor]]) -> None:
        output = ipywidgets.Output()
        super().__init__(children=[ipywidgets.HBox(list(controls)), output])
        self.controls = list(controls)
        self.slider = self.controls[0]
        self.output = output
        self.images: torch.Tensor | None = None
        self.static_figure: Figure | None = None  # set when shown together with its static figure ("both")
        self.renders = 0
        self._draw = draw
        for control in self.controls:
            control.observe(self._changed, names="value")
        self.redraw()

    def _changed(self, _change) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Draw for the controls' current values and show the result in ``output``."""
        fig, images = self._draw(*(control.value for control in self.controls))
        png = _png(fig)
        plt.close(fig)
        self.images = images
        self.output.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": repr(fig)},
            "metadata": {},
        },)
        self.renders += 1


# --------------------------------------------------------------------------- nz explorer


def _history_of(nz: int, run) -> History:
    if isinstance(run, Run):
        config_nz = getattr(run.config, "nz", nz)
        if config_nz != nz:
            raise ValueError(f"runs[{nz}] is a run trained with nz={config_nz}; key each run by its own nz")
        run = run.history
    if not isinstance(run, History):
        raise ValueError(f"runs[{nz}] must be a train.Run or train.History, got {type(run).__name__}")
    if not run.samples:
        raise ValueError(f"runs[{nz}] has no samples to show (History.samples is empty)")
    return run


def _sample_nrow(history: History, n: int) -> int:
    """10 columns for conditional samples (labels cycle 0..9), a square grid otherwise."""
    if history.sample_labels is not None and n >= 10:
        return 10
    return int(np.ceil(np.sqrt(n)))


def _draw_run(nz: int, history: History, n: int, ax_samples, ax_losses) -> torch.Tensor:
    images = history.samples[-1][:n]
    plots.sample_grid(images, nrow=_sample_nrow(history, len(images)), ax=ax_samples,
                      title=f"nz = {nz}: after {plots.count(history.epochs, 'epoch')}")
    if history.steps:
        plots.loss_curves(history, ax=ax_losses, title=f"nz = {nz}: losses")
    else:
        ax_losses.set_axis_off()
        ax_losses.set_title(f"nz = {nz}: no training steps recorded")
    return images


def nz_explorer(runs: dict[int, Run | History], n: int = 36, force: str | None = None):
    """Final samples and loss curves of runs that differ in nz, one nz at a time.

    ``runs`` maps nz to a trained ``Run`` (or its ``History``); ``n`` samples are shown
    (at most as many as each run saved). Widget: a SelectionSlider over the sorted nz
    values. Static: one row per nz (samples left, losses right).
    """
    if not isinstance(runs, dict) or not runs:
        raise ValueError(f"runs must be a non-empty dict {{nz: Run or History}}, got {runs!r}")
    for nz in runs:
        _positive_int("every key of runs (an nz value)", nz)
    n = _positive_int("n", n)
    mode = _mode(force)
    histories = {nz: _history_of(nz, runs[nz]) for nz in sorted(runs)}

    explorer = None
    if mode != "static":
        def draw(nz: int):
            fig, (ax_s, ax_l) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1.8]})
            images = _draw_run(nz, histories[nz], n, ax_s, ax_l)
            fig.tight_layout()
            return fig, images

        slider = ipywidgets.SelectionSlider(options=[(str(nz), nz) for nz in histories], value=next(iter(histories)),
                                            description="nz", continuous_update=False)
        explorer = Explorer([slider], draw)
        if mode == "widget":
            return _present(explorer)

    fig, axes = plt.subplots(len(histories), 2, figsize=(10, 3.4 * len(histories)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.8]})
    for row, (nz, history) in zip(axes, histories.items()):
        _draw_run(nz, history, n, row[0], row[1])
    fig.tight_layout()
    return _finish(fig, explorer)


# --------------------------------------------------------------------------- class explorer


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def _row_label(ax, text: str) -> None:
    ax.text(-0.01, 0.5, text, transform=ax.transAxes, ha="right", va="center", fontsize=11)


def class_explorer(G: nn.Module, n: int = 16, seed: int = 0, device=None, force: str | None = None):
    """``n`` samples of a conditional G for one class at a time, the same z batch for every class.

    Since z is fixed, what changes with the class is the digit and what stays is the
    style (slant, stroke width): what conditioning separates. Widget: an IntSlider over
    the classes. Static: one row per class. ``device``: where to generate (None: G's).
    """
    _check_generator(G)
    n_classes = _n_classes(G)
    if n_classes <= 0:
        raise ValueError("G must be conditional (G.n_classes > 0) for class_explorer; "
                         "for an unconditional G use latent_walk or plots.sample_grid")
    n = _positive_int("n", n)
    seed = _check_seed(seed)
    mode = _mode(force)

    z = _noise(n, G.nz, seed).repeat(n_classes, 1)
    labels = torch.arange(n_classes).repeat_interleave(n)
    out = _generate(G, z, labels, device)
    images = out.view(n_classes, n, *out.shape[1:])  # (class, sample, C, H, W)

    explorer = None
    if mode != "static":
        def draw(label: int):
            fig, ax = plt.subplots(figsize=(4.2, 4.5))
            plots.sample_grid(images[label], ax=ax, title=f"class {label}: {n} samples, the same z for every class")
            return fig, images[label]

        slider = ipywidgets.IntSlider(value=0, min=0, max=n_classes - 1, step=1, description="class",
                                      continuous_update=False)
        explorer = Explorer([slider], draw)
        if mode == "widget":
            return _present(explorer)

    fig, axes = plt.subplots(n_classes, 1, figsize=(max(4.0, 0.5 * n + 0.8), 0.55 * n_classes + 0.6),
                             squeeze=False)
    for label, ax in enumerate(axes[:, 0]):
        plots.sample_grid(images[label], nrow=n, ax=ax)
        _row_label(ax, str(label))
    axes[0, 0].set_title(f"{n} samples per class (rows), the same z in every column")
    return _finish(fig, explorer)


# --------------------------------------------------------------------------- latent walk


def _static_walk_classes(n_classes: int) -> list[int]:
    count = min(n_classes, STATIC_WALK_CLASSES)
    return sorted({int(round(c)) for c in np.linspace(0, n_classes - 1, count)})


def latent_walk(G: nn.Module, steps: int = 10, label: int | None = None, seed: int = 0, device=None,
                force: str | None = None):
    """Images along a spherical path (:func:`slerp`) between two fixed z.

    A smooth latent space turns one image into the other gradually; sudden jumps or
    broken images half-way suggest G memorised a few points. For a conditional G the
    label stays fixed along the walk: ``label`` picks it (widget: the start value of an
    extra class slider; None = class 0). Static: the whole walk as one strip, per class
    for a conditional G (``label`` or a few classes spread over the range).
    ``device``: where to generate (None: G's).
    """
    _check_generator(G)
    steps = _positive_int("steps", steps, minimum=2)
    seed = _check_seed(seed)
    n_classes = _n_classes(G)
    if label is not None:
        if n_classes == 0:
            raise ValueError(f"label must be None for an unconditional G (G.n_classes == 0), got {label!r}")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
            raise ValueError(f"label must be None or an integer in [0, {n_classes}), got {label!r}")
        label = int(label)
    mode = _mode(force)

    z0, z1 = _noise(2, G.nz, seed)
    ts = torch.linspace(0, 1, steps)
    path = torch.stack([slerp(z0, z1, float(t)) for t in ts])  # (steps, nz)
    if n_classes:
        static_classes = [label] if label is not None else _static_walk_classes(n_classes)
        classes = static_classes if mode == "static" else list(range(n_classes))  # the widget's slider: every class
        z = path.repeat(len(classes), 1)
        labels = torch.tensor(classes).repeat_interleave(steps)
        out = _generate(G, z, labels, device)
        walk = out.view(len(classes), steps, *out.shape[1:])  # (class, step, C, H, W)
    else:
        static_classes = classes = [None]
        walk = _generate(G, path, None, device).unsqueeze(0)  # (1, steps, C, 32, 32)
    title = f"latent walk, {steps} steps from z0 to z1 (spherical interpolation, seed {seed})"

    explorer = None
    if mode != "static":
        def draw(t: float, label_value: int | None = None):
            row = 0 if label_value is None else classes.index(label_value)
            i = int(round(t * (steps - 1)))
            fig, (ax_one, ax_strip) = plt.subplots(1, 2, figsize=(11, 2.6),
                                                   gridspec_kw={"width_ratios": [1, max(2.0, steps / 3)]})
            suffix = "" if label_value is None else f", class {label_value}"
            plots.sample_grid(walk[row, i:i + 1], ax=ax_one, title=f"t = {ts[i]:.2f}{suffix}")
            plots.sample_grid(walk[row], nrow=steps, ax=ax_strip, title=title)
            cell = 32 + 2  # image size + padding of plots.image_grid
            ax_strip.add_patch(Rectangle((1 + i * cell, 1), cell, cell, fill=False, edgecolor="tab:red", lw=2))
            fig.tight_layout()
            return fig, walk[row, i:i + 1]

        controls = [ipywidgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=1 / (steps - 1), readout_format=".2f",
                                           description="t", continuous_update=False)]
        if n_classes:
            controls.append(ipywidgets.IntSlider(value=label or 0, min=0, max=n_classes - 1, step=1,
                                                 description="class", continuous_update=False))
        explorer = Explorer(controls, draw)
        if mode == "widget":
            return _present(explorer)

    fig, axes = plt.subplots(len(static_classes), 1,
                             figsize=(max(4.0, 0.55 * steps + 0.8), 0.7 * len(static_classes) + 0.8), squeeze=False)
    for c, ax in zip(static_classes, axes[:, 0]):
        plots.sample_grid(walk[classes.index(c)], nrow=steps, ax=ax)
        if c is not None:
            _row_label(ax, str(c))
    axes[0, 0].set_title(f"{title}: t = 0 left, 1 right")
    return _finish(fig, explorer)


# --------------------------------------------------------------------------- truncation explorer


def _truncation_label(t: float | None) -> str:
    return "none" if t is None else f"{t:g}"


def _check_sweep(sweep) -> list[dict]:
    if not isinstance(sweep, (list, tuple)) or not sweep:
        raise ValueError("sweep must be the non-empty list metrics.truncation_sweep returns")
    for row in sweep:
        if not isinstance(row, dict) or not {"truncation", "precision", "recall"} <= set(row):
            raise ValueError("every row of sweep must be a dict with 'truncation', 'precision' and 'recall' "
                             "(what metrics.truncation_sweep returns)")
    labels = [_truncation_label(row["truncation"]) for row in sweep]
    if len(set(labels)) != len(labels):
        raise ValueError(f"sweep must hold each truncation once, got {labels}")
    return list(sweep)


def _draw_trade_off(ax, sweep: list[dict], current: int | None, floor: dict | None) -> None:
    recall = [row["recall"] for row in sweep]
    precision = [row["precision"] for row in sweep]
    ax.plot(recall, precision, "-o", color="tab:blue", ms=4, label="G at each truncation")
    for row, r, p in zip(sweep, recall, precision):
        ax.annotate(_truncation_label(row["truncation"]), (r, p), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if current is not None:
        ax.plot([recall[current]], [precision[current]], "o", ms=11, mfc="none", mec="tab:red", mew=2,
                label=f"shown: truncation {_truncation_label(sweep[current]['truncation'])}")
    if floor and "precision" in floor and "recall" in floor:
        ax.plot([floor["recall"]], [floor["precision"]], "*", ms=12, color="0.3", label="real digits (floor)")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="recall (variety)", ylabel="precision (quality)",
           title="precision against recall, one point per truncation")
    ax.legend(fontsize=8, loc="lower left")


def truncation_explorer(G: nn.Module, sweep, n: int = 36, seed: int = 0, floor: dict | None = None, device=None,
                        force: str | None = None):
    """Samples of an unconditional G under the truncation trick, beside the precision-recall trade-off.

    ``sweep`` is what :func:`labkit.metrics.truncation_sweep` returned for G (its thresholds are
    the slider's stops; a row measured with standing statistics is drawn with them too); ``n`` samples are drawn from the same seed at every threshold, so the
    images change by the truncation alone; ``floor`` (the real floor's metrics) marks where real
    digits sit. Widget: a slider over the thresholds, the samples at the shown one, and the
    trade-off curve with that point circled. Static: a row of samples per threshold, and the curve.
    """
    _check_generator(G)
    if _n_classes(G):
        raise ValueError("G must be unconditional for truncation_explorer (G.n_classes == 0)")
    sweep = _check_sweep(sweep)
    n = _positive_int("n", n)
    seed = _check_seed(seed)
    mode = _mode(force)
    images = []
    for row in sweep:  # each threshold drawn by the generator its metrics were measured on
        model = standing_statistics(G, row["truncation"], seed=row.get("standing_seed", 0)) if row.get("standing") else G
        z = truncated_noise(n, G.nz, row["truncation"], torch.Generator().manual_seed(seed))
        images.append(_generate(model, z, None, device))

    def caption(i: int) -> str:
        row = sweep[i]
        return (f"truncation {_truncation_label(row['truncation'])}: precision {row['precision']:.2f}, "
                f"recall {row['recall']:.2f}")

    explorer = None
    if mode != "static":
        def draw(i: int):
            fig, (ax_s, ax_c) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
            plots.sample_grid(images[i], ax=ax_s, title=caption(i))
            _draw_trade_off(ax_c, sweep, i, floor)
            fig.tight_layout()
            return fig, images[i]

        slider = ipywidgets.SelectionSlider(options=[(_truncation_label(row["truncation"]), i)
                                                     for i, row in enumerate(sweep)],
                                            value=0, description="truncation", continuous_update=False)
        explorer = Explorer([slider], draw)
        if mode == "widget":
            return _present(explorer)

    rows, shown = len(sweep), min(n, 16)
    fig = plt.figure(figsize=(0.55 * shown + 5.5, max(4.5, 0.6 * rows + 0.8)))
    grid = fig.add_gridspec(rows, 2, width_ratios=[0.55 * shown, 4.5])
    for i in range(rows):
        ax = fig.add_subplot(grid[i, 0])
        plots.sample_grid(images[i][:shown], nrow=shown, ax=ax)
        _row_label(ax, _truncation_label(sweep[i]["truncation"]))
        if i == 0:
            ax.set_title("the same z at every truncation (rows)")
    _draw_trade_off(fig.add_subplot(grid[:, 1]), sweep, None, floor)
    fig.tight_layout()
    return _finish(fig, explorer)
