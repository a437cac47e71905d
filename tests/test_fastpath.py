"""The CPU fast path: candidates per host, the timing choice, numerics, and resume keeping the choice."""

from __future__ import annotations

import time

import pytest
import torch

from labkit import fastpath, train
from labkit.train import TrainConfig

TINY = dict(ngf=8, ndf=8, nz=16, batch_size=16, epochs=1, n_samples=8, device="cpu")


def tiny_data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1, torch.randint(0, 10, (n,), generator=gen)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(fastpath, "_cache", {})
    monkeypatch.delenv(fastpath.ENV, raising=False)


def models(config: TrainConfig = TrainConfig(**TINY)):
    return train.build_models(config)


def sleeper(seconds_by_path: dict[str, float]):
    """A probe step that takes a known time per path, to test the choice itself."""
    def step(g, d, path, gen):
        time.sleep(seconds_by_path[path.name])
    return step


def test_bad_names_are_refused_with_the_accepted_values(monkeypatch):
    with pytest.raises(ValueError, match=r"fast_path must be one of .*'auto'.*'bf16'"):
        fastpath.FastPath("fp16")
    with pytest.raises(ValueError, match="fast_path"):
        TrainConfig(fast_path="turbo")
    monkeypatch.setenv(fastpath.ENV, "turbo")
    G, D = models()
    with pytest.raises(ValueError, match=fastpath.ENV):
        fastpath.choose("auto", G, D, torch.device("cpu"), sleeper({}))


def test_candidates_follow_the_host_and_the_models(monkeypatch):
    G, D = models()
    monkeypatch.setattr(fastpath, "bf16_native", lambda: False)
    assert fastpath.candidates(G, D, torch.device("cpu")) == ("off", "channels_last")
    monkeypatch.setattr(fastpath, "bf16_native", lambda: True)
    assert fastpath.candidates(G, D, torch.device("cpu")) == ("off", "channels_last", "bf16", "bf16+channels_last")
    G, D = models(TrainConfig(**TINY, model="mlp"))
    assert fastpath.candidates(G, D, torch.device("cpu")) == ("off", "bf16")  # no convolutions: layout is moot
    assert fastpath.candidates(G, D, torch.device("cuda")) == ("off",)


def test_auto_keeps_the_fastest_only_when_it_wins_clearly(monkeypatch):
    monkeypatch.setattr(fastpath, "bf16_native", lambda: True)
    G, D = models()
    cpu = torch.device("cpu")
    times = {"off": 0.02, "channels_last": 0.019, "bf16": 0.008, "bf16+channels_last": 0.012}
    path, timings = fastpath.choose("auto", G, D, cpu, sleeper(times), warmup=0, timed=2)
    assert path.name == "bf16" and set(timings) == set(times)
    assert "bf16" in fastpath.describe(path, timings)

    fastpath._cache.clear()
    barely = {"off": 0.02, "channels_last": 0.0195, "bf16": 0.0195, "bf16+channels_last": 0.0195}
    path, _ = fastpath.choose("auto", G, D, cpu, sleeper(barely), warmup=0, timed=2)
    assert path.name == "off", "a win inside the probe's noise must not change the numerics"


def test_short_runs_are_not_probed(monkeypatch):
    monkeypatch.setattr(fastpath, "bf16_native", lambda: True)
    G, D = models()
    never = sleeper({})  # KeyError if called
    short = fastpath.MIN_IMAGES_TO_PROBE - 1
    assert fastpath.choose("auto", G, D, torch.device("cpu"), never, images=short) == (fastpath.FastPath("off"), {})
    assert fastpath.choose("bf16", G, D, torch.device("cpu"), never, images=short)[0].name == "bf16"  # asked for


def test_a_run_is_long_enough_to_probe_by_its_images_whatever_its_batch_size(monkeypatch):
    """Two epochs of MNIST in batches of 512 are 234 steps, and as long a run as 938 steps of 128."""
    asked = []

    def choose(*args, **kwargs):
        asked.append(kwargs["images"])
        return fastpath.FastPath("off"), {}

    monkeypatch.setattr(fastpath, "choose", choose)
    images, labels = tiny_data(n=100)
    for batch_size in (16, 32, 64):
        config = TrainConfig(**{**TINY, "batch_size": batch_size, "epochs": 3})
        train.choose_fast_path(*models(config), images, labels, config, torch.device("cpu"))
    assert asked == [300, 300, 300]
    assert 2 * 60_000 >= fastpath.MIN_IMAGES_TO_PROBE, "question 5's runs of two MNIST epochs are probed"


def test_explicit_names_and_the_environment_skip_the_probe(monkeypatch):
    G, D = models()
    never = sleeper({})  # KeyError if called
    assert fastpath.choose("channels_last", G, D, torch.device("cpu"), never) == (fastpath.FastPath("channels_last"), {})
    monkeypatch.setenv(fastpath.ENV, "off")
    assert fastpath.choose("auto", G, D, torch.device("cpu"), never)[0].name == "off"


def test_the_decision_is_remembered_for_the_same_models(monkeypatch):
    monkeypatch.setattr(fastpath, "bf16_native", lambda: False)
    G, D = models()
    calls = []

    def step(g, d, path, gen):
        calls.append(path.name)
        time.sleep(0.01 if path.channels_last else 0.03)

    first, timings = fastpath.choose("auto", G, D, torch.device("cpu"), step, key=(16,), warmup=0, timed=1)
    n = len(calls)
    again, none_timed = fastpath.choose("auto", G, D, torch.device("cpu"), step, key=(16,), warmup=0, timed=1)
    assert again == first and first.name == "channels_last" and timings and not none_timed
    assert len(calls) == n


@pytest.mark.parametrize("name", fastpath.PATHS)
@pytest.mark.parametrize("loss", ["gan", "wgan-gp"])
def test_every_path_trains_close_to_the_plain_loop(name, loss):
    config = TrainConfig(**TINY, loss=loss, critic_norm="none" if loss == "wgan-gp" else "batch")
    histories = {}
    for path in ("off", name):
        G, D = train.build_models(config)
        histories[path] = train.fit(G, D, tiny_data(), config.replace(fast_path=path))
        assert G.project.weight.dtype == torch.float32  # autocast never changes the stored weights
    assert histories[name].fast_path == name
    for key in ("d_loss", "g_loss"):
        plain, fast = histories["off"].__dict__[key], histories[name].__dict__[key]
        assert all(torch.isfinite(torch.tensor(fast)))
        # Same first step up to bf16 rounding (8 bits of mantissa): the path changes speed, not the algorithm.
        assert fast[0] == pytest.approx(plain[0], rel=0.05, abs=0.05), key


def test_the_probe_leaves_models_and_random_stream_untouched(monkeypatch):
    monkeypatch.setattr(fastpath, "MIN_IMAGES_TO_PROBE", 1)  # probe even this tiny run
    config = TrainConfig(**TINY)
    G, D = train.build_models(config)
    auto = train.fit(G, D, tiny_data(), config)  # times the candidates first
    G2, D2 = train.build_models(config)
    forced = train.fit(G2, D2, tiny_data(), config.replace(fast_path=auto.fast_path))
    assert auto.d_loss == forced.d_loss and auto.g_loss == forced.g_loss
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))


def test_resume_keeps_the_path_the_run_started_with(tmp_path):
    config = TrainConfig(**TINY, fast_path="channels_last")
    G, D = train.build_models(config)
    train.fit(G, D, tiny_data(), config, run_dir=tmp_path)
    G, D = train.build_models(config)
    history = train.fit(G, D, tiny_data(), config.replace(epochs=2, fast_path="off"), run_dir=tmp_path, resume=True)
    assert history.fast_path == "channels_last" and history.epochs == 2
    assert train.load_run(tmp_path, device="cpu").history.fast_path == "channels_last"


def test_host_description_names_capability_and_bf16():
    line = fastpath.host_description()
    assert torch.backends.cpu.get_cpu_capability() in line and "bf16" in line
