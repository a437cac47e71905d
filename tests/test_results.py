"""labkit.results: rows from runs and metrics, the tables, saving, finding lab 1's runs, the target."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit import results
from labkit.train import History, Run

FLOOR = {"fid": 0.9, "precision": 0.85, "recall": 0.86, "density": 0.99, "coverage": 0.95, "classes_covered": 10,
         "class_min_share": 0.09, "class_max_share": 0.11, "label_accuracy": 0.99, "n": 500}


def history(epochs: int = 2, seconds: float = 10.0, images: int = 1000) -> History:
    h = History()
    h.epoch_seconds = [seconds] * epochs
    h.epoch_images = [images] * epochs
    h.g_loss = [1.0] * (3 * epochs)
    return h


def scores(fid: float, p: float, r: float, covered: int = 10, max_share: float = 0.12) -> dict:
    return {"fid": fid, "precision": p, "recall": r, "density": 0.8, "coverage": 0.7, "classes_covered": covered,
            "class_min_share": 0.05, "class_max_share": max_share, "n": 500, "seconds": 3.0, "timings": {}}


def rows() -> list[dict]:
    return [
        results.make_row("gan-default", "vanilla GAN, default", history=history(), scores=scores(180.0, 0.02, 0.0, 2, 0.7)),
        results.make_row("gan-tuned", "vanilla GAN, tuned", history=history(4), scores=scores(20.0, 0.7, 0.4)),
        results.make_row("wgan", "WGAN (clipping)", history=history(), scores=scores(60.0, 0.5, 0.1)),
        results.make_row("wgan-gp", "WGAN-GP", history=history(), scores=scores(10.0, 0.65, 0.45)),
    ]


# ----------------------------------------------------------------------------- rows


def test_make_row_takes_time_and_speed_from_the_history_and_metrics_from_scores():
    run = Run(G=None, D=None, history=history(epochs=3, seconds=20.0, images=600), config=None, run_dir=Path("runs/x"))
    row = results.make_row("wgan-gp", "WGAN-GP", run, scores(12.5, 0.66, 0.41))
    assert row["epochs"] == 3 and row["images"] == 1800
    assert row["wall_time"] == 60.0 and row["images_per_second"] == 30.0
    assert (row["fid"], row["precision"], row["recall"], row["classes_covered"]) == (12.5, 0.66, 0.41, 10)
    assert row["label_accuracy"] is None  # unconditional: not measured
    assert row["n_eval"] == 500 and row["run_dir"] == str(Path("runs/x"))


def test_make_row_without_scores_leaves_the_metrics_empty():
    row = results.make_row("wgan", "WGAN", history=history())
    assert all(row[k] is None for k in results.METRIC_KEYS + results.MEMO_KEYS)


def test_make_row_keeps_the_memorisation_columns():
    memo = {"memo_ratio": 0.93, "near_copy_share": 0.012, "memo_n": 2000, "sample_median": 8.1, "seconds": 4.0}
    row = results.make_row("wgan", "WGAN", history=history(), scores=scores(60.0, 0.5, 0.1), memorisation=memo)
    assert (row["memo_ratio"], row["near_copy_share"], row["memo_n"]) == (0.93, 0.012, 2000)
    assert "sample_median" not in row
    assert "| 0.93 | 0.012 |" in results.markdown([row])
    with pytest.raises(ValueError, match="memorisation"):
        results.make_row("wgan", "WGAN", history=history(), memorisation=[0.9])


@pytest.mark.parametrize("kwargs, word", [
    (dict(key="", model="m", history=History()), "key"),
    (dict(key="k", model=None, history=History()), "model"),
    (dict(key="k", model="m"), "history"),
    (dict(key="k", model="m", history=History(), scores=[1, 2]), "scores"),
])
def test_make_row_rejects_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        results.make_row(**kwargs)


# ----------------------------------------------------------------------------- tables


def test_markdown_has_one_line_per_model_and_the_floor_last():
    text = results.markdown(rows(), FLOOR)
    lines = text.splitlines()
    assert lines[0].startswith("| model | epochs | wall time (s) | images/s | FID | precision | recall")
    assert len(lines) == 2 + 4 + 1
    assert "| WGAN-GP | 2 | 20 | 100 | 10.00 | 0.650 | 0.450 |" in text
    assert lines[-1].startswith("| real MNIST (floor) | – | – | – | 0.90 | 0.850 | 0.860 |")


def test_markdown_shows_missing_values_as_dashes():
    text = results.markdown([results.make_row("wgan", "WGAN", history=history())])
    assert text.splitlines()[-1].count("–") == 9  # seven metrics and the two memorisation columns


def test_markdown_rejects_something_else_than_rows():
    with pytest.raises(ValueError, match="rows"):
        results.markdown({"key": "wgan"})
    with pytest.raises(ValueError, match="rows\\[0\\]"):
        results.markdown([{"fid": 1.0}])


def test_reference_table_is_the_labs():
    text = results.reference_markdown()
    assert "| WGAN-GP | 110.79 | 36.58 | 0.52 | 0.33 |" in text
    assert "| vanilla GAN, default hyper-parameters | 106.20 | 379.21 | 0.00 | 0.00 |" in text
    assert [r["key"] for r in results.REFERENCE] == ["gan-default", "gan-tuned", "wgan", "wgan-gp"]


def test_comparison_puts_ours_beside_the_reference():
    text = results.comparison_markdown(rows())
    assert "| WGAN-GP | 0.650 | 0.52 | 0.450 | 0.33 | 20 | 111 |" in text
    partial = results.comparison_markdown(rows()[:1])
    assert "| WGAN-GP | – | 0.52 | – | 0.33 | – | 111 |" in partial


def test_target_report_holds_for_good_rows_and_names_failures():
    claims = results.target_report(rows())
    assert [ok for _, ok in claims] == [True, True, True, True, True]
    assert "WGAN-GP: recall 0.450 > 0.33" in [text for text, _ in claims]
    bad = rows()
    bad[3] = results.make_row("wgan-gp", "WGAN-GP", history=history(), scores=scores(30.0, 0.58, 0.45))
    claims = dict(results.target_report(bad))
    assert claims["WGAN-GP: precision 0.580 > 0.59"] is False
    order = [ok for text, ok in results.target_report(bad) if text.startswith("FID order")]
    assert order == [False]  # 30 (WGAN-GP) is not below 20 (tuned GAN)
    missing = results.target_report(rows()[:2])
    assert missing[-1][1] is None and "not all measured" in missing[-1][0]
    assert "[NO ]" in results.format_target(results.target_report(bad))


# ----------------------------------------------------------------------------- saving


def test_save_writes_csv_and_markdown_that_read_back(tmp_path):
    csv_path, md_path = results.save(rows(), tmp_path / "runs", FLOOR)
    assert csv_path == tmp_path / "runs" / "results.csv" and md_path.name == "results.md"
    back = results.read_csv(csv_path)
    assert [r["key"] for r in back] == ["gan-default", "gan-tuned", "wgan", "wgan-gp", "real-floor"]
    assert back[3]["fid"] == 10.0 and back[3]["epochs"] == 2 and back[3]["label_accuracy"] is None
    assert back[-1]["precision"] == 0.85 and back[-1]["wall_time"] is None
    text = md_path.read_text()
    assert "| WGAN-GP | 2 | 20 |" in text and "| WGAN-GP | 110.79 | 36.58 |" in text
    assert "real MNIST (floor)" in text
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_save_keeps_extra_fields(tmp_path):
    extra = rows()
    extra[0]["note"] = "collapsed"
    csv_path, _ = results.save(extra, tmp_path)
    assert results.read_csv(csv_path)[0]["note"] == "collapsed"


# ----------------------------------------------------------------------------- lab 1's runs


def fake_run(root: Path, name: str, epochs: int, n_train: int | None, done: int | None = None, checkpoint: bool = True,
             digest: str = "0123456789") -> Path:
    folder = root / f"{name}-{digest}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"epochs": epochs, "n_train": n_train}))
    (folder / "history.json").write_text(json.dumps({"epochs": epochs if done is None else done}))
    if checkpoint:
        (folder / "checkpoint.pt").write_bytes(b"x")
    return folder


def test_find_run_picks_the_longest_finished_run(tmp_path):
    fake_run(tmp_path, "dcgan-default", 1, None, digest="aaaaaaaaaa")  # notebook 01's one-epoch ablation baseline
    longest = fake_run(tmp_path, "dcgan-default", 5, None, digest="bbbbbbbbbb")
    fake_run(tmp_path, "dcgan-default", 9, None, done=4, digest="cccccccccc")  # unfinished
    fake_run(tmp_path, "dcgan-default", 9, None, checkpoint=False, digest="dddddddddd")  # no checkpoint
    fake_run(tmp_path, "dcgan-default", 50, 512, digest="eeeeeeeeee")  # a CI run: 25,600 images
    fake_run(tmp_path, "dcgan-default-nz", 20, None, digest="ffffffffff")  # another name
    assert results.find_run(tmp_path, "dcgan-default") == longest


def test_find_run_prefers_the_newest_of_equal_runs(tmp_path):
    old = fake_run(tmp_path, "cgan-default", 1, 512, digest="aaaaaaaaaa")
    new = fake_run(tmp_path, "cgan-default", 1, 512, digest="bbbbbbbbbb")
    now = time.time()
    os.utime(old / "checkpoint.pt", (now - 100, now - 100))
    os.utime(new / "checkpoint.pt", (now, now))
    assert results.find_run(tmp_path, "cgan-default") == new


def test_lab1_runs_finds_what_exists(tmp_path):
    assert results.lab1_runs(tmp_path / "missing") == {}
    folder = fake_run(tmp_path, "cgan-default", 5, None)
    (tmp_path / "cgan-default-broken").mkdir()  # not a run folder: ignored
    assert results.lab1_runs(tmp_path) == {"cgan": ("conditional DCGAN (lab 1)", folder)}


def test_damaged_json_is_not_a_finished_run(tmp_path):
    folder = fake_run(tmp_path, "dcgan-default", 5, None)
    (folder / "history.json").write_text("{not json")
    assert results.find_run(tmp_path, "dcgan-default") is None


# ----------------------------------------------------------------------------- measurements


def blobs(n: int, seed: int) -> torch.Tensor:
    """Small bright squares at random places on a dark background: digit-sized, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    out = torch.full((n, 1, 32, 32), -1.0)
    for i, (r, c) in enumerate(torch.randint(4, 20, (n, 2), generator=g).tolist()):
        out[i, 0, r:r + 9, c:c + 6] = 1.0
    return out


def test_score_images_scores_a_set_like_a_generator():
    real = blobs(40, 0)
    same = results.score_images(real, real=real, device="cpu")
    assert same["n"] == 40
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    noise = results.score_images(torch.rand(40, 1, 32, 32) * 2 - 1, real=real, device="cpu")
    assert noise["fid"] > 10 and noise["recall"] < 0.5


def test_score_images_rejects_other_shapes():
    with pytest.raises(ValueError, match="images"):
        results.score_images(torch.zeros(4, 32, 32))


def test_class_shares_has_one_row_per_snapshot():
    h = history()
    h.samples = [blobs(8, 1), blobs(8, 2), torch.full((8, 1, 32, 32), -1.0)]
    shares = results.class_shares(h)
    assert shares.shape == (3, 10)
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert shares[2].max() == 1.0  # eight identical blank images: one class
    with pytest.raises(ValueError, match="samples"):
        results.class_shares(History())


@pytest.mark.parametrize("loss, title", [("gan", "norm of G's gradient"), ("wgan-gp", "the critic's estimate of W")])
def test_run_figure_draws_four_panels(loss, title):
    import matplotlib.pyplot as plt

    from labkit.train import TrainConfig

    h = history(epochs=2)
    h.samples = [blobs(8, s) for s in range(3)]
    steps = len(h.g_loss)
    h.d_loss, h.d_real, h.d_fake, h.g_grad_norm, h.gp = ([0.5] * steps for _ in range(5))
    h.epoch_of_step = [1] * (steps // 2) + [2] * (steps - steps // 2)
    run = Run(G=None, D=None, history=h, config=TrainConfig(model="mlp", loss=loss, critic_norm="none"), run_dir=None)
    fig = results.run_figure(run, "test", shares=np.full((3, 10), 0.1))
    titles = [ax.get_title() for ax in fig.axes]
    assert "test: epoch 2" in titles and title in titles
    plt.close(fig)


def _history_of(d_loss, g_loss, d_real, d_fake, steps_per_epoch):
    n = len(d_loss)
    return History(d_loss=list(d_loss), g_loss=list(g_loss), d_real=list(d_real), d_fake=list(d_fake),
                   g_grad_norm=[1.0] * n, gp=[0.0] * n,
                   epoch_of_step=[1 + i // steps_per_epoch for i in range(n)])


def test_epoch_means_average_each_epoch_and_refuse_unknown_fields():
    h = _history_of([1, 3, 5, 7], [0, 0, 0, 0], [0] * 4, [0] * 4, steps_per_epoch=2)
    assert results.epoch_means(h, "d_loss").tolist() == [2.0, 6.0]
    with pytest.raises(ValueError, match="name must be one of"):
        results.epoch_means(h, "fid")


def test_loss_comparison_reports_the_critics_estimate_of_w():
    from types import SimpleNamespace

    gan = SimpleNamespace(history=_history_of([1.2, 1.0], [0.9, 1.1], [0.6] * 2, [0.4] * 2, 1),
                          config=SimpleNamespace(loss="gan"))
    wgan = SimpleNamespace(history=_history_of([-3, -1], [5, 4], [4, 2], [1, 1.5], 1),
                           config=SimpleNamespace(loss="wgan-gp"))
    fig, lines = results.loss_comparison([("vanilla", gan), ("gp", wgan)])
    assert "D loss 1.200 -> 1.000" in lines[0]
    assert "estimate of W 3.000 -> 0.500" in lines[1]
    assert len(fig.axes[0].lines) == 3 and len(fig.axes[1].lines) == 1  # D, G, the 2 log 2 line; one critic


# ----------------------------------------------------------------------------- memorisation


def noise(n: int, seed: int) -> torch.Tensor:
    """Uniform noise images: no two alike, so a new set lies about as far from a training set as a test set."""
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class _Copier(torch.nn.Module):
    """A "generator" that returns training images (its noise picks which) or, with fresh=True, new blobs."""

    nz, n_classes = 4, 0

    def __init__(self, images: torch.Tensor, fresh: bool = False):
        super().__init__()
        self.images, self.fresh = images, fresh
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pick = (z[:, 0].abs() * 1000).long() % len(self.images)
        if self.fresh:
            return noise(len(z), int(pick[0]) + 10_000)
        return self.images[pick] * self.scale


def test_memorisation_scores_tell_copies_from_new_images():
    train, test = noise(300, 1), noise(100, 2)
    ref = results.MemorisationReference(train, test)
    copies = results.memorisation_scores(train[:50], ref)
    assert copies["memo_ratio"] == 0.0 and copies["near_copy_share"] == 1.0 and copies["memo_n"] == 50
    new = results.memorisation_scores(noise(100, 3), ref)
    assert new["memo_ratio"] > 0.5 and new["near_copy_share"] < 0.2
    assert new["test_median"] == copies["test_median"] > 0
    with pytest.raises(ValueError, match="reference"):
        results.memorisation_scores(train, None)
    with pytest.raises(ValueError, match="test"):
        results.MemorisationReference(train, torch.zeros(3, 32, 32))


def test_sample_images_is_seeded_and_leaves_the_global_rng_alone():
    G = _Copier(blobs(20, 4))
    G.train()
    state = torch.random.get_rng_state()
    a, b = results.sample_images(G, 12, seed=5), results.sample_images(G, 12, seed=5)
    assert a.shape == (12, 1, 32, 32) and torch.equal(a, b) and G.training
    assert results.sample_images(G, 12, seed=5, batch_size=5).shape == (12, 1, 32, 32)
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(ValueError, match="n must be"):
        results.sample_images(G, 0)


def test_run_memorisation_is_cached_in_the_run_folder(tmp_path):
    train, test = noise(200, 6), noise(60, 7)
    ref = results.MemorisationReference(train, test)
    run = Run(G=_Copier(train), D=None, history=history(), config=None, run_dir=tmp_path)
    first = results.run_memorisation(run, ref, n=40)
    assert first["memo_ratio"] == 0.0 and first["near_copy_share"] == 1.0
    files = list(tmp_path.glob("memorisation-n40-seed0-train200-test60.json"))
    assert len(files) == 1
    run.G = _Copier(train, fresh=True)  # the cache answers, not the new G
    assert results.run_memorisation(run, ref, n=40) == first
    fresh = results.run_memorisation(Run(G=run.G, D=None, history=history(), config=None, run_dir=None), ref, n=40)
    assert fresh["memo_ratio"] > 0.5
