"""Plots draw what they are given and save PNGs a report can show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from labkit import plots, tables, train
from labkit.train import TrainConfig


@pytest.fixture(scope="module")
def history():
    config = TrainConfig(ngf=8, ndf=8, nz=8, batch_size=16, epochs=2, n_samples=8, device="cpu")
    G, D = train.build_models(config)
    images = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return train.fit(G, D, (images, torch.zeros(64, dtype=torch.long)), config)


def test_image_grid_maps_range_and_tiles():
    images = torch.stack([torch.full((1, 4, 4), -1.0), torch.full((1, 4, 4), 1.0), torch.zeros(1, 4, 4)])
    grid = plots.image_grid(images, nrow=2, padding=1)
    assert grid.shape == (1 + 2 * 5, 1 + 2 * 5, 1)
    assert grid[1, 1, 0] == 0.0 and grid[1, 6, 0] == 1.0 and grid[6, 1, 0] == 0.5
    with pytest.raises(ValueError, match="images"):
        plots.image_grid(torch.zeros(2, 2, 4, 4))


def test_each_plot_draws_and_saves(history, tmp_path):
    ax = plots.sample_grid(history.samples[-1], title="x")
    assert ax.images and ax.get_title() == "x"
    ax = plots.loss_curves(history)
    assert len(ax.lines) >= 4 and ax.get_legend() is not None
    ax = plots.d_output_curves(history)
    assert ax.get_ylim() == (-0.02, 1.02)
    ax = plots.grad_norm_curves({"minimax": history.g_grad_norm, "non-saturating": history.g_grad_norm})
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    fig = plots.samples_over_epochs(history)
    assert len(fig.axes) == 3
    path = plots.save(fig, tmp_path / "sub" / "over.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close("all")


def test_plot_on_given_axes(history):
    fig, (a, b) = plt.subplots(1, 2)
    assert plots.loss_curves(history, ax=a) is a
    assert plots.d_output_curves(history, ax=b, wasserstein=True) is b
    plt.close(fig)


def test_samples_over_epochs_rejects_unknown_epoch(history):
    with pytest.raises(ValueError, match="epochs must be among"):
        plots.samples_over_epochs(history, epochs=[0, 7])


def test_smoothing_is_a_moving_average():
    values = np.arange(10.0)
    assert np.allclose(plots._smooth(values, 3), np.arange(1.0, 9.0))


def test_counts_read_as_english():
    assert plots.count(1, "epoch") == "1 epoch"
    assert [plots.count(n, "epoch") for n in (0, 2, 30)] == ["0 epochs", "2 epochs", "30 epochs"]
    assert plots.count is tables.count  # one wording for figures, tables and log lines
