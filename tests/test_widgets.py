"""Explorers: a static figure showing every choice headless, a live slider + Output otherwise."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from labkit import frontend, metrics, models, train, widgets
from labkit.train import History, TrainConfig


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _history(value: float, n_samples: int = 16, steps: int = 6) -> History:
    """A hand-made History whose samples are all ``value``, so each run's images are recognisable."""
    return History(
        d_loss=[1.0 - 0.1 * i for i in range(steps)], g_loss=[2.0 - 0.1 * i for i in range(steps)],
        d_real=[0.5] * steps, d_fake=[0.5] * steps, g_grad_norm=[1.0] * steps, gp=[0.0] * steps,
        epoch_of_step=[1] * (steps // 2) + [2] * (steps - steps // 2),
        samples=[torch.zeros(n_samples, 1, 32, 32), torch.full((n_samples, 1, 32, 32), value)],
        epoch_seconds=[1.0, 1.0], epoch_images=[64, 64],
    )


@pytest.fixture(scope="module")
def runs() -> dict[int, History]:
    return {16: _history(0.5), 4: _history(-0.5), 8: _history(0.0)}  # unsorted on purpose


@pytest.fixture(scope="module")
def cond_G() -> models.DCGANGenerator:
    torch.manual_seed(0)
    return models.DCGANGenerator(nz=8, ngf=8, n_classes=10)


@pytest.fixture(scope="module")
def plain_G() -> models.DCGANGenerator:
    torch.manual_seed(1)
    return models.DCGANGenerator(nz=8, ngf=8)


def _count(fig: Figure) -> tuple[int, int]:
    return len(fig.axes), sum(len(ax.images) for ax in fig.axes)


def _png(explorer: widgets.Explorer) -> str:
    (output,) = explorer.output.outputs
    assert output["output_type"] == "display_data"
    return output["data"]["image/png"]


def _check_slider(slider, description: str) -> None:
    assert slider.description == description and slider.continuous_update is False


# --------------------------------------------------------------------------- nz explorer


def test_nz_explorer_static_has_a_row_per_nz(runs):
    fig = widgets.nz_explorer(runs, n=9, force="static")
    assert isinstance(fig, Figure)
    assert _count(fig) == (6, 3)  # samples + losses per nz; one image per nz
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("nz = 4") and titles[2].startswith("nz = 8") and titles[4].startswith("nz = 16")


def test_nz_explorer_widget_redraws_on_slider_change(runs):
    explorer = widgets.nz_explorer(runs, n=9, force="widget")
    assert isinstance(explorer, ipywidgets.Widget)
    slider = explorer.slider
    assert isinstance(slider, ipywidgets.SelectionSlider) and slider in explorer.children[0].children
    _check_slider(slider, "nz")
    assert [value for _, value in slider.options] == [4, 8, 16] and slider.value == 4
    assert explorer.renders == 1 and torch.equal(explorer.images, runs[4].samples[-1][:9])
    before = _png(explorer)

    slider.value = 16
    assert explorer.renders == 2
    assert torch.equal(explorer.images, runs[16].samples[-1][:9])
    assert _png(explorer) != before


def test_nz_explorer_takes_runs_from_fit():
    config = TrainConfig(nz=8, ngf=8, ndf=8, epochs=1, batch_size=64, n_samples=8, device="cpu")
    G, D = train.build_models(config)
    images = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    history = train.fit(G, D, (images, torch.zeros(64, dtype=torch.long)), config)
    run = train.Run(G=G, D=D, history=history, config=config, run_dir=None)
    fig = widgets.nz_explorer({8: run}, force="static")
    assert _count(fig) == (2, 1)
    with pytest.raises(ValueError, match=r"runs\[4\].*nz=8"):
        widgets.nz_explorer({4: run}, force="static")


@pytest.mark.parametrize("bad, match", [
    ({}, "runs must be a non-empty dict"),
    ([], "runs must be a non-empty dict"),
    ({0: None}, "key of runs"),
    ({8: "a run"}, r"runs\[8\] must be a train.Run or train.History"),
    ({8: History()}, r"runs\[8\] has no samples"),
])
def test_nz_explorer_rejects_bad_runs(bad, match):
    with pytest.raises(ValueError, match=match):
        widgets.nz_explorer(bad, force="static")


def test_nz_explorer_rejects_bad_n_and_force(runs):
    with pytest.raises(ValueError, match="n must be"):
        widgets.nz_explorer(runs, n=0)
    with pytest.raises(ValueError, match="force must be"):
        widgets.nz_explorer(runs, force="slider")


# --------------------------------------------------------------------------- class explorer


def test_class_explorer_static_one_row_per_class(cond_G):
    fig = widgets.class_explorer(cond_G, n=6, force="static")
    assert isinstance(fig, Figure) and _count(fig) == (10, 10)


def test_class_explorer_widget_shows_the_chosen_class(cond_G):
    cond_G.train()
    explorer = widgets.class_explorer(cond_G, n=4, seed=3, force="widget")
    assert cond_G.training, "G's training mode must be restored"
    slider = explorer.slider
    assert isinstance(slider, ipywidgets.IntSlider) and (slider.min, slider.max) == (0, 9)
    _check_slider(slider, "class")
    first, png = explorer.images, _png(explorer)

    slider.value = 7
    assert explorer.renders == 2 and _png(explorer) != png
    assert not torch.equal(explorer.images, first)
    # the shown images are G(z, 7) for the fixed, seeded z batch, in eval mode
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    cond_G.eval()
    with torch.no_grad():
        expected = cond_G(z, torch.full((4,), 7))
    cond_G.train()
    torch.testing.assert_close(explorer.images, expected)


def test_class_explorer_needs_a_conditional_G(plain_G):
    with pytest.raises(ValueError, match=r"G must be conditional \(G.n_classes > 0\)"):
        widgets.class_explorer(plain_G, force="static")
    with pytest.raises(ValueError, match="G must be a labkit generator"):
        widgets.class_explorer(torch.nn.Linear(2, 2), force="static")


# --------------------------------------------------------------------------- latent walk


def test_slerp_keeps_the_norm_and_hits_the_ends():
    gen = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    z1 = z1 / z1.norm() * z0.norm()
    torch.testing.assert_close(widgets.slerp(z0, z1, 0.0), z0)
    torch.testing.assert_close(widgets.slerp(z0, z1, 1.0), z1)
    mid = widgets.slerp(z0, z1, 0.5)
    assert abs(mid.norm() - z0.norm()) < 1e-4 * z0.norm()
    assert (0.5 * (z0 + z1)).norm() < 0.9 * z0.norm()  # what a straight line would lose
    torch.testing.assert_close(widgets.slerp(z0, z0, 0.3), z0)  # parallel: no division by zero


def test_latent_walk_static_strips(plain_G, cond_G):
    fig = widgets.latent_walk(plain_G, steps=5, force="static")
    assert _count(fig) == (1, 1) and fig.axes[0].images[0].get_array().shape[1] == 2 + 5 * 34
    fig = widgets.latent_walk(cond_G, steps=5, force="static")
    assert _count(fig) == (widgets.STATIC_WALK_CLASSES, widgets.STATIC_WALK_CLASSES)
    fig = widgets.latent_walk(cond_G, steps=5, label=3, force="static")
    assert _count(fig) == (1, 1)


def test_latent_walk_widget_moves_along_t(plain_G):
    explorer = widgets.latent_walk(plain_G, steps=5, seed=2, force="widget")
    assert len(explorer.controls) == 1
    _check_slider(explorer.slider, "t")
    start, png = explorer.images, _png(explorer)
    explorer.slider.value = 1.0
    assert explorer.renders == 2 and _png(explorer) != png
    assert not torch.equal(explorer.images, start)
    z0, z1 = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    plain_G.eval()
    with torch.no_grad():
        torch.testing.assert_close(start, plain_G(z0[None]))
        torch.testing.assert_close(explorer.images, plain_G(z1[None]))


def test_latent_walk_widget_has_a_class_slider_for_conditional_G(cond_G):
    explorer = widgets.latent_walk(cond_G, steps=4, label=2, force="widget")
    t_slider, class_slider = explorer.controls
    _check_slider(class_slider, "class")
    assert class_slider.value == 2 and class_slider.max == 9
    before = explorer.images
    class_slider.value = 5
    assert explorer.renders == 2 and not torch.equal(explorer.images, before)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 1}, "steps must be an integer >= 2"),
    ({"steps": 2.5}, "steps must be"),
    ({"label": 10}, r"label must be None or an integer in \[0, 10\)"),
    ({"seed": "0"}, "seed must be"),
    ({"force": "gui"}, "force must be"),
])
def test_latent_walk_rejects_bad_input(cond_G, kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.latent_walk(cond_G, **kwargs)


def test_latent_walk_label_needs_a_conditional_G(plain_G):
    with pytest.raises(ValueError, match="label must be None for an unconditional G"):
        widgets.latent_walk(plain_G, label=1, force="static")


# --------------------------------------------------------------------------- mode and model state


def test_front_end_decides_without_force(plain_G, monkeypatch):
    monkeypatch.setattr(frontend, "widget_mode", lambda: "widget")
    assert isinstance(widgets.latent_walk(plain_G, steps=3), ipywidgets.Widget)
    monkeypatch.setattr(frontend, "widget_mode", lambda: "static")
    assert isinstance(widgets.latent_walk(plain_G, steps=3), Figure)
    monkeypatch.setattr(frontend, "widget_mode", lambda: "both")
    both = widgets.latent_walk(plain_G, steps=3)
    assert isinstance(both, ipywidgets.Widget) and isinstance(both.static_figure, Figure)


def test_both_gives_the_live_widget_and_its_static_figure(runs, cond_G):
    """A front end that cannot be told gets both, never neither: the widget, and the very static figure."""
    calls = {
        "nz": lambda force: widgets.nz_explorer(runs, n=9, force=force),
        "class": lambda force: widgets.class_explorer(cond_G, n=3, force=force),
        "walk": lambda force: widgets.latent_walk(cond_G, steps=4, force=force),
        "walk, one label": lambda force: widgets.latent_walk(cond_G, steps=4, label=7, force=force),
    }
    for name, call in calls.items():
        both, static, widget = call("both"), call("static"), call("widget")
        assert isinstance(both, widgets.Explorer) and both.renders == 1, name
        assert widget.static_figure is None, name
        assert _count(both.static_figure) == _count(static), name
        for a, b in zip(both.static_figure.axes, static.axes):
            assert [ax_im.get_array().tolist() for ax_im in a.images] == \
                   [ax_im.get_array().tolist() for ax_im in b.images], name
        assert [c.description for c in both.controls] == [c.description for c in widget.controls], name
        assert torch.equal(both.images, widget.images), name


def test_generation_leaves_G_as_it_was(cond_G):
    cond_G.train()
    before = {k: v.clone() for k, v in cond_G.state_dict().items()}
    widgets.latent_walk(cond_G, steps=3, force="static")
    widgets.class_explorer(cond_G, n=2, force="static")
    assert cond_G.training
    after = cond_G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # eval mode: BN running stats untouched


def test_in_a_kernel_each_call_displays_exactly_once(monkeypatch):
    """Under papermill/nbclient the call shows its figure (or widget) once, also as a cell's last line."""
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.delenv("LABKIT_FRONTEND", raising=False)  # the kernel must find out by itself that it is headless
    from nbformat import v4

    cells = [
        "import torch\nfrom labkit import models, widgets\ntorch.manual_seed(0)\n"
        "G = models.DCGANGenerator(nz=8, ngf=8, n_classes=10)",
        "widgets.latent_walk(G, steps=3)",  # headless kernel: static figure
        "fig = widgets.class_explorer(G, n=2)",
        "fig",  # a later cell can still show the returned figure
        "widgets.class_explorer(G, n=2, force='widget')",
    ]
    nb = v4.new_notebook(cells=[v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    kinds = [[(out.output_type, "image/png" in out.get("data", {}),
               "application/vnd.jupyter.widget-view+json" in out.get("data", {})) for out in cell.outputs]
             for cell in nb.cells[1:]]
    assert kinds == [[("display_data", True, False)], [("display_data", True, False)],
                     [("execute_result", True, False)], [("display_data", False, True)]]


# --------------------------------------------------------------------------- truncation explorer

SWEEP = [{"truncation": None, "precision": 0.4, "recall": 0.8}, {"truncation": 1.0, "precision": 0.6, "recall": 0.6},
         {"truncation": 0.5, "precision": 0.75, "recall": 0.3}]


def test_truncation_explorer_static_rows_and_the_trade_off_curve(plain_G):
    fig = widgets.truncation_explorer(plain_G, SWEEP, n=8, floor={"precision": 0.84, "recall": 0.85}, force="static")
    assert isinstance(fig, Figure)
    assert _count(fig) == (4, 3)  # a row of samples per threshold, plus the curve
    curve = fig.axes[-1]
    assert curve.get_xlabel().startswith("recall") and curve.get_ylabel().startswith("precision")
    assert {t.get_text() for t in curve.texts} == {"none", "1", "0.5"}


def test_truncation_explorer_widget_shows_the_chosen_threshold(plain_G):
    plain_G.train()
    explorer = widgets.truncation_explorer(plain_G, SWEEP, n=9, seed=4, force="widget")
    assert plain_G.training
    slider = explorer.slider
    assert isinstance(slider, ipywidgets.SelectionSlider) and [label for label, _ in slider.options] == ["none", "1", "0.5"]
    _check_slider(slider, "truncation")
    png = _png(explorer)
    slider.value = 2
    assert explorer.renders == 2 and _png(explorer) != png
    z = metrics.truncated_noise(9, 8, 0.5, torch.Generator().manual_seed(4))
    assert z.abs().max() <= 0.5
    plain_G.eval()
    with torch.no_grad():
        expected = plain_G(z).clamp(-1, 1)
    plain_G.train()
    torch.testing.assert_close(explorer.images, expected)


@pytest.mark.parametrize("sweep, match", [
    ([], "non-empty list"),
    ([{"truncation": None, "precision": 0.5}], "'truncation', 'precision' and 'recall'"),
    ([SWEEP[0], SWEEP[0]], "each truncation once"),
])
def test_truncation_explorer_rejects_a_bad_sweep(plain_G, sweep, match):
    with pytest.raises(ValueError, match=match):
        widgets.truncation_explorer(plain_G, sweep, force="static")


def test_truncation_explorer_needs_an_unconditional_G(cond_G):
    with pytest.raises(ValueError, match="unconditional"):
        widgets.truncation_explorer(cond_G, SWEEP, force="static")
