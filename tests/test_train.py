"""The training loop: every loss runs, runs repeat, resume is exact, bad input and damage are caught."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from labkit import train
from labkit.train import TrainConfig, TrainingDiverged

TINY = dict(ngf=8, ndf=8, nz=16, batch_size=16, epochs=1, n_samples=8, device="cpu")


def tiny_data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
    labels = torch.randint(0, 10, (n,), generator=gen)
    return images, labels


def run(config: TrainConfig, data=None, **kwargs):
    G, D = train.build_models(config)
    history = train.fit(G, D, data or tiny_data(), config, **kwargs)
    return G, D, history


@pytest.mark.parametrize("loss", ["gan", "gan-minimax", "wgan", "wgan-gp"])
def test_every_loss_trains_and_records(loss):
    config = TrainConfig(**TINY, loss=loss, n_critic=2 if loss.startswith("wgan") else 1,
                         critic_norm="none" if loss == "wgan-gp" else "batch")
    G, D, history = run(config)
    steps = 64 // (16 * config.n_critic)
    assert history.steps == steps and history.epochs == 1
    for name in history.STEP_FIELDS:
        values = getattr(history, name)
        assert len(values) == steps and all(math.isfinite(v) for v in values), name
    assert len(history.samples) == 2 and history.samples[0].shape == (8, 1, 32, 32)
    assert history.images_per_second > 0
    if loss in ("gan", "gan-minimax"):
        assert all(0 <= v <= 1 for v in history.d_real + history.d_fake)
    if loss == "wgan":
        assert max(p.abs().max().item() for p in D.parameters()) <= config.clip + 1e-7
    if loss == "wgan-gp":
        assert any(v > 0 for v in history.gp)
    else:
        assert all(v == 0 for v in history.gp)


def test_conditional_and_label_blind_discriminator():
    config = TrainConfig(**TINY, conditional=True)
    G, D, history = run(config)
    assert G.n_classes == 10 and D.n_classes == 10
    blind = TrainConfig(**TINY, conditional=True, d_uses_labels=False)
    G2, D2, _ = run(blind)
    assert G2.n_classes == 10 and D2.n_classes == 0


def test_same_seed_same_numbers_different_seed_different():
    config = TrainConfig(**TINY)
    _, _, a = run(config)
    _, _, b = run(config)
    _, _, c = run(config.replace(seed=1))
    assert a.d_loss == b.d_loss and a.g_loss == b.g_loss
    assert a.g_loss != c.g_loss


def test_resume_continues_exactly(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 3})
    G_full, _, full = run(config, run_dir=tmp_path / "full")

    run(config.replace(epochs=1), run_dir=tmp_path / "split")
    G2, D2 = train.build_models(config)
    resumed = train.fit(G2, D2, tiny_data(), config, run_dir=tmp_path / "split", resume=True)

    assert resumed.epochs == 3 and resumed.d_loss == full.d_loss and resumed.g_grad_norm == full.g_grad_norm
    for p, q in zip(G_full.state_dict().values(), G2.state_dict().values()):
        assert torch.equal(p, q)
    assert torch.equal(resumed.samples[-1], full.samples[-1])
    saved = json.loads((tmp_path / "split" / train.HISTORY_JSON).read_text())
    assert saved["epoch_images"] == [64] * 3 and len(saved["epoch_seconds"]) == 3  # what make run's report reads


def test_existing_run_is_never_overwritten(tmp_path):
    config = TrainConfig(**TINY)
    run(config, run_dir=tmp_path)
    before = (tmp_path / train.CHECKPOINT).read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        run(config, run_dir=tmp_path)
    assert (tmp_path / train.CHECKPOINT).read_bytes() == before


def test_adam_runs_fused_where_torch_has_the_kernel_with_the_same_update():
    assert train.adam_fuses(torch.device("cuda")) and not train.adam_fuses(torch.device("mps"))
    config = TrainConfig(**TINY)
    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(32)]
    grads = [torch.randn_like(w) for w in weights]
    updated = {}
    for kind in ("unfused", "labkit's"):
        params = [w.clone().requires_grad_() for w in weights]
        if kind == "unfused":
            opt = torch.optim.Adam(params, lr=1e-3, betas=(config.beta1, config.beta2), fused=False)
        else:
            opt = train._make_optimizer(params, 1e-3, config, torch.device("cpu"))
        for _ in range(3):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
        updated[kind] = params
    assert opt.param_groups[0]["fused"] is (True if train.adam_fuses(torch.device("cpu")) else None)
    for a, b in zip(updated["unfused"], updated["labkit's"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("extra", [{}, {"conditional": True}, {"loss": "wgan-gp"}])
def test_g_step_gives_g_the_gradient_of_a_plain_backward_and_leaves_d_as_it_was(extra):
    config = TrainConfig(**TINY, **extra)
    torch.manual_seed(0)
    G, D = train.build_models(config)
    frozen = next(D.parameters())
    frozen.requires_grad_(False)  # a weight someone froze stays frozen
    opt_g = torch.optim.SGD(G.parameters(), lr=0.0)  # lr 0: the step leaves G's weights, the gradient is kept
    train._g_step(G, D, 8, config, opt_g, torch.Generator().manual_seed(1), torch.device("cpu"))
    labkit_grads = [p.grad.clone() for p in G.parameters()]
    assert all(p.grad is None for p in D.parameters())  # D's weight gradients were never computed
    assert [p.requires_grad for p in D.parameters()] == [p is not frozen for p in D.parameters()]

    # the same step written plainly, D's weights in the graph
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(8, config.nz, generator=gen)
    labels = torch.randint(0, config.n_classes, (8,), generator=gen) if config.conditional else None
    fake = G(z, labels) if labels is not None else G(z)
    out = D(fake, labels) if labels is not None else D(fake)
    loss = train.losses.g_loss_wgan(out) if config.loss == "wgan-gp" else train.losses.g_loss_nonsaturating(out)
    G.zero_grad(set_to_none=True)
    loss.backward()
    for mine, plain in zip(labkit_grads, (p.grad for p in G.parameters())):
        torch.testing.assert_close(mine, plain, rtol=0, atol=0)


@pytest.mark.parametrize("conditional", [False, True])
def test_a_gan_step_updates_g_on_the_fake_batch_d_was_trained_on(conditional):
    """n_critic 1: the step is pytorch/examples' DCGAN step (one G pass); compared with that loop written plainly."""
    config = TrainConfig(**TINY, conditional=conditional)
    real, labels = tiny_data(n=16)
    labels = labels if conditional else None
    models, opts = {}, {}
    for kind in ("labkit", "plain"):
        torch.manual_seed(0)
        models[kind] = train.build_models(config)
        opts[kind] = [torch.optim.SGD(net.parameters(), lr=0.05) for net in models[kind]]
    G, D = models["labkit"]
    opt_g, opt_d = opts["labkit"]
    out = train._train_step(G, D, [(real, labels)], config, opt_d, opt_g, torch.Generator().manual_seed(3),
                            torch.device("cpu"), train.fastpath.FastPath())

    G, D = models["plain"]
    opt_g, opt_d = opts["plain"]
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(16, config.nz, generator=gen)
    fake = G(z, labels) if conditional else G(z)
    score = (lambda x: D(x, labels)) if conditional else D
    loss_d = train.losses.d_loss_gan(score(real), score(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = train.losses.g_loss_nonsaturating(score(fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    assert float(out[0]) == pytest.approx(loss_d.item(), abs=1e-6)
    assert float(out[1]) == pytest.approx(loss_g.item(), abs=1e-6)
    for mine, plain in zip([*models["labkit"][0].parameters(), *models["labkit"][1].parameters()],
                           [*G.parameters(), *D.parameters()]):
        torch.testing.assert_close(mine, plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss,n_critic,g_passes", [("gan", 1, 1), ("wgan-gp", 1, 1), ("wgan", 3, 4)])
def test_g_runs_once_a_step_unless_the_critic_trains_several_times(loss, n_critic, g_passes):
    """One G pass per GAN step (the fake batch is reused); a WGAN step with n_critic updates draws G's own batch."""
    config = TrainConfig(**{**TINY, "batch_size": 8}, loss=loss, n_critic=n_critic,
                         critic_norm="none" if loss == "wgan-gp" else "batch")
    G, D = train.build_models(config)
    calls = []
    G.register_forward_hook(lambda *_: calls.append(1))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.01), torch.optim.SGD(D.parameters(), lr=0.01)
    real, _ = tiny_data(n=8)
    train._train_step(G, D, [(real, None)] * n_critic, config, opt_d, opt_g, torch.Generator().manual_seed(0),
                      torch.device("cpu"), train.fastpath.FastPath())
    assert len(calls) == g_passes


def test_a_checkpoint_of_the_other_adam_kernel_resumes():
    """A run saved by an unfused Adam (an older labkit, or a machine without the kernel) resumes here, and back."""
    config = TrainConfig(**TINY)
    params = [torch.randn(8, 4, requires_grad=True)]
    for saved_fused, here in ((False, torch.device("cpu")), (True, torch.device("meta"))):
        opt = torch.optim.Adam(params, lr=1e-3, fused=saved_fused or None)
        params[0].grad = torch.ones_like(params[0])
        if saved_fused and not train.adam_fuses(torch.device("cpu")):
            continue  # this torch cannot make a fused checkpoint on the CPU
        opt.step()
        fresh = train._make_optimizer(params, 1e-3, config, here)  # "meta": a device without the kernel
        train._load_optimizer(fresh, opt.state_dict())
        assert fresh.param_groups[0]["fused"] == (train.adam_fuses(here) or None)
        assert fresh.state[params[0]]["step"].device.type == "cpu" and fresh.state[params[0]]["step"].item() == 1
        fresh.step()  # the loaded state is usable by this machine's kernel
        assert fresh.state[params[0]]["step"].item() == 2


def test_resume_refuses_a_different_config(tmp_path):
    config = TrainConfig(**TINY)
    run(config, run_dir=tmp_path)
    G, D = train.build_models(config)
    with pytest.raises(ValueError, match="lr"):
        train.fit(G, D, tiny_data(), config.replace(lr=1e-3), run_dir=tmp_path, resume=True)


def test_fit_or_load_trains_once_then_loads(tmp_path):
    config = TrainConfig(**TINY)
    first = train.fit_or_load(config, runs_root=tmp_path, name="dcgan", data=tiny_data())
    assert not first.loaded and first.run_dir.name == f"dcgan-{config.identity()}"
    second = train.fit_or_load(config, runs_root=tmp_path, name="dcgan", data=tiny_data())
    assert second.loaded and second.history.g_loss == first.history.g_loss
    other = train.fit_or_load(config.replace(nz=8), runs_root=tmp_path, name="dcgan", data=tiny_data())
    assert not other.loaded and other.run_dir != first.run_dir
    saved = json.loads((first.run_dir / train.CONFIG_JSON).read_text())
    assert saved["nz"] == 16


def test_damaged_checkpoint_names_the_file(tmp_path):
    config = TrainConfig(**TINY)
    run(config, run_dir=tmp_path)
    path = tmp_path / train.CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match=str(path)):
        train.load_run(tmp_path, device="cpu")
    assert path.exists()


def test_nan_loss_stops_with_message_and_keeps_checkpoint(tmp_path):
    config = TrainConfig(**TINY)
    run(config, run_dir=tmp_path)
    good = (tmp_path / train.CHECKPOINT).read_bytes()
    images, labels = tiny_data()
    images[5] = float("nan")
    G, D = train.build_models(config)
    with pytest.raises(TrainingDiverged, match=r"d_loss became nan at step \d+ \(epoch 2\)"):
        train.fit(G, D, (images, labels), config.replace(epochs=2), run_dir=tmp_path, resume=True)
    assert (tmp_path / train.CHECKPOINT).read_bytes() == good


@pytest.mark.parametrize("field, value", [
    ("loss", "hinge"), ("model", "resnet"), ("dataset", "svhn"), ("device", "tpu"), ("nz", 0),
    ("ngf", -1), ("ndf", 0), ("epochs", 0), ("batch_size", 0), ("lr", 0.0), ("lr", float("nan")),
    ("beta1", 1.0), ("n_critic", 0), ("clip", 0.0), ("gp_lambda", -1.0), ("seed", -1), ("n_train", 0),
    ("init", "xavier"), ("critic_norm", "spectral"), ("g_norm", "layer"), ("optimizer", "sgd"), ("conditional", "yes"),
    ("fast_path", "fp16"),
])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_n_train_smaller_than_a_step_is_refused():
    with pytest.raises(ValueError, match="n_train"):
        TrainConfig(n_train=100, batch_size=128)


def test_conditional_mlp_is_refused():
    with pytest.raises(ValueError, match="conditional"):
        TrainConfig(model="mlp", conditional=True)


def test_wrong_channel_count_is_refused_before_training():
    with pytest.raises(ValueError, match="data images"):
        run(TrainConfig(**TINY), data=(torch.zeros(32, 3, 32, 32), torch.zeros(32, dtype=torch.long)))


def test_snapshot_leaves_batchnorm_statistics_alone():
    config = TrainConfig(**TINY)
    G, _ = train.build_models(config)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    images = train._snapshot(G, torch.randn(8, config.nz), None, torch.device("cpu"))
    assert images.std() > 0.05  # an untrained G draws noise, not flat grey
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_watching_sees_samples_form_and_changes_nothing(tmp_path):
    """watch is called every watch_every steps and after the last, with G's fixed-noise images; the run is identical."""
    config = TrainConfig(**{**TINY, "epochs": 2})  # 64 images / 16 = 4 steps per epoch, 8 in all
    seen = []
    G, _, watched = run(config, watch=lambda step, seconds, images: seen.append((step, seconds, images.clone())),
                        watch_every=3)
    _, _, plain = run(config)
    assert [s for s, _, _ in seen] == [3, 6, 8]
    assert watched.d_loss == plain.d_loss and watched.g_loss == plain.g_loss
    seconds = [t for _, t, _ in seen]
    assert seconds == sorted(seconds) and 0 < seconds[-1] <= watched.wall_time + 1e-6
    assert seen[-1][2].shape == (config.n_samples, 1, 32, 32)
    torch.testing.assert_close(seen[-1][2], watched.samples[-1])  # the last watch shows the final samples


@pytest.mark.parametrize("kwargs, match", [({"watch": "plot"}, "watch must be None or a callable"),
                                           ({"watch": print, "watch_every": 0}, "watch_every must be a positive")])
def test_a_bad_watch_is_refused_before_training(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train.fit_or_load(TrainConfig(**TINY), runs_root=tmp_path, data=tiny_data(), **kwargs)
    assert not list(tmp_path.iterdir())


def test_live_samples_keeps_the_last_images_and_draws_a_png():
    from labkit import plots

    live = plots.LiveSamples(n=4, nrow=2, scale=2)
    images = torch.linspace(-1, 1, 4 * 32 * 32).view(4, 1, 32, 32)
    live(10, 1.5, images)
    assert live.updates == 1 and torch.equal(live.images, images)
    png = live.png(images)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import io

    import matplotlib.pyplot as plt

    assert plt.imread(io.BytesIO(png)).shape[:2] == (2 * (2 * 34 + 2), 2 * (2 * 34 + 2))
    with pytest.raises(ValueError, match="nrow must be a positive integer"):
        plots.LiveSamples(nrow=0)


@pytest.mark.parametrize("n, batch_size, n_critic", [(60_000, 128, 1), (60_000, 512, 1), (60_000, 32, 1),
                                                     (60_000, 64, 5), (100, 16, 1), (100, 48, 2), (64, 64, 1)])
def test_every_batch_size_uses_every_image_once_per_epoch(n, batch_size, n_critic):
    steps = train.epoch_batches(n, batch_size, n_critic)
    bounds = [b for step in steps for b in step]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous: each image once
    sizes = [stop - start for start, stop in bounds]
    assert all(batch_size // 2 <= s < batch_size * 3 // 2 for s in sizes)  # no tiny batch, none much larger
    assert all(len(step) == n_critic for step in steps[:-1]) and 1 <= len(steps[-1]) <= n_critic


def test_batch_sizes_that_do_not_divide_the_data_train_on_all_of_it():
    config = TrainConfig(**{**TINY, "batch_size": 24})  # 64 = 2 * 24 + 16: the last 16 images are a batch of their own
    _, _, history = run(config)
    assert history.epoch_images == [64] and history.steps == 3
    small = TrainConfig(**{**TINY, "batch_size": 28})  # 64 = 2 * 28 + 8: the last 8 join the batch before
    _, _, history = run(small)
    assert history.epoch_images == [64] and history.steps == 2


def test_measuring_along_the_run_changes_nothing_and_is_kept(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 2, "batch_size": 24})  # 3 steps of 24, 24 and 16 images per epoch
    seen = []

    def measure(G):
        assert not G.training  # eval mode: BatchNorm statistics untouched
        seen.append(len(seen))
        with torch.no_grad():
            out = G(torch.randn(4, G.nz, generator=torch.Generator().manual_seed(5)))
        return {"mean": out.mean(), "calls": len(seen)}  # a tensor scalar is stored as a number

    G_plain, _, plain = run(config)
    G_measured, _, measured = run(config, run_dir=tmp_path / "m", measure=measure, measure_every=40)
    assert measured.d_loss == plain.d_loss and measured.g_loss == plain.g_loss
    for p, q in zip(G_plain.state_dict().values(), G_measured.state_dict().values()):
        assert torch.equal(p, q)
    # images seen after each step: 24, 48, 64 | 88, 112, 128; a point when a multiple of 40 is passed, and at the end
    assert [(p["images"], p["step"]) for p in measured.curve] == [(48, 2), (88, 4), (128, 6)]
    assert all(isinstance(p["mean"], float) and p["seconds"] >= 0 for p in measured.curve)
    loaded = train.load_run(tmp_path / "m", device="cpu")
    assert loaded.history.curve == measured.curve
    assert json.loads((tmp_path / "m" / train.HISTORY_JSON).read_text())["curve"] == measured.curve


def test_a_resumed_run_measures_the_same_curve(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 3})

    def measure(G):
        with torch.no_grad():
            return {"mean": float(G(torch.randn(4, G.nz, generator=torch.Generator().manual_seed(1))).mean())}

    _, _, full = run(config, run_dir=tmp_path / "full", measure=measure, measure_every=32)
    run(config.replace(epochs=1), run_dir=tmp_path / "split", measure=measure, measure_every=32)
    G, D = train.build_models(config)
    resumed = train.fit(G, D, tiny_data(), config, run_dir=tmp_path / "split", resume=True, measure=measure,
                        measure_every=32)
    strip = lambda curve: [{k: v for k, v in p.items() if k != "seconds"} for p in curve]
    assert strip(resumed.curve) == strip(full.curve) and len(full.curve) == 6


@pytest.mark.parametrize("kwargs, message", [(dict(measure=lambda G: {}, measure_every=None), "measure_every"),
                                             (dict(measure=lambda G: {}, measure_every=0), "measure_every"),
                                             (dict(measure="fid", measure_every=10), "measure must be")])
def test_bad_measure_arguments_are_refused_before_training(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(TrainConfig(**TINY), **kwargs)


def test_a_run_folder_in_training_elsewhere_is_waited_for_then_loaded(tmp_path, capsys):
    """A second notebook on the same runs folder must not train the run again over the first one's checkpoints."""
    config = TrainConfig(**TINY)
    folder = train.run_folder(tmp_path, "dcgan", config)
    other = (
        "import sys, time, torch\n"
        "from pathlib import Path\n"
        "from labkit import train\n"
        "from labkit.train import TrainConfig\n"
        f"config = TrainConfig(**{TINY!r})\n"
        f"folder, go = Path({str(folder)!r}), Path({str(tmp_path / 'go')!r})\n"
        "with train.training_lock(folder):\n"
        "    print('held', flush=True)\n"
        "    while not go.exists():\n"
        "        time.sleep(0.05)\n"
        "    G, D = train.build_models(config)\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    train.fit(G, D, (torch.rand(64, 1, 32, 32, generator=g) * 2 - 1, torch.zeros(64, dtype=torch.long)),\n"
        "              config, run_dir=folder)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    holder = subprocess.Popen([sys.executable, "-c", other], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert holder.stdout.readline().strip() == "held"
        result = {}
        second = threading.Thread(target=lambda: result.update(run=train.fit_or_load(config, tmp_path, data=tiny_data())))
        second.start()
        time.sleep(1.0)
        assert second.is_alive() and not (folder / train.CHECKPOINT).exists(), "the second process did not wait"
        (tmp_path / "go").touch()
        assert holder.wait(timeout=120) == 0
        trained = (folder / train.CHECKPOINT).stat().st_mtime_ns
        second.join(timeout=120)
        assert not second.is_alive()
    finally:
        holder.kill()
    out = capsys.readouterr().out
    assert "waiting: another process is training" in out and "loaded finished run" in out
    assert (folder / train.CHECKPOINT).stat().st_mtime_ns == trained, "the waiting process trained the run again"
    assert result["run"].loaded and result["run"].history.steps == train.load_run(folder).history.steps
