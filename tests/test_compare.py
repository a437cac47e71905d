"""labkit.compare: image budgets, the plan of question 5, tables, the figure, cached evaluation."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from pathlib import Path

import pytest
import torch

from labkit import compare, train
from labkit.claims import Spread
from labkit.train import TrainConfig

TINY = dict(nz=8, ngf=4, ndf=4, batch_size=16, epochs=1, n_samples=16, device="cpu")


def tiny_run(tmp_path, name="tiny", **changes) -> train.Run:
    config = TrainConfig(**{**TINY, **changes}, n_train=32)
    gen = torch.Generator().manual_seed(0)
    data = (torch.rand(32, 1, 32, 32, generator=gen) * 2 - 1, torch.randint(0, 10, (32,), generator=gen))
    return train.fit_or_load(config, runs_root=tmp_path, name=name, data=data)


FAKE_METRICS = {"fid": 12.5, "precision": 0.7, "recall": 0.4, "density": 0.9, "coverage": 0.5, "classes_covered": 10,
                "class_min_share": 0.06, "class_max_share": 0.14, "n": 100, "seconds": 1.0}


# ----------------------------------------------------------------------------- budgets


def test_budget_is_whole_epochs_or_a_subset():
    base = TrainConfig(epochs=5)
    assert compare.budget_config(base, 60_000) == base.replace(epochs=1)
    assert compare.budget_config(base, 120_000).epochs == 2
    small = compare.budget_config(base, 6_400)
    assert (small.n_train, small.epochs) == (6_400, 1)
    ci = TrainConfig(n_train=512, batch_size=64)
    assert compare.budget_config(ci, 512) == ci.replace(epochs=1)
    with pytest.raises(ValueError, match="images"):
        compare.budget_config(base, 0)
    with pytest.raises(ValueError, match="batch"):
        compare.budget_config(base, 100)


def test_lab1_plan_changes_one_thing_each_and_sizes_down_on_cpu(tmp_path):
    base = TrainConfig(device="cpu")
    default, plan, skipped = compare.lab1_plan(base, images=60_000, data_root=tmp_path)
    assert default.config == base.replace(epochs=1) and default.name == compare.DEFAULT_NAME
    names = [a.name for a in plan]
    assert names == ["nz-2", "nz-8", "nz-10000", "init-default", "narrow", "wide", "lr-high", "beta1-0.9",
                     "batch-small", "batch-large"]
    fields = set(TrainConfig.__dataclass_fields__)
    for a in plan:
        changed = {f for f in fields if getattr(a.config, f) != getattr(default.config, f)}
        assert changed and changed <= {"nz", "init", "ngf", "ndf", "lr", "beta1", "batch_size"}, (a.name, changed)
    wide = plan[names.index("wide")]
    assert (wide.config.ngf, wide.config.ndf) == (64, 64) and "sized down on CPU" in wide.note
    assert any("CIFAR-10 is not under" in s and "cifar-10-python.tar.gz" in s for s in skipped)
    assert "nz = 10000" in compare.describe(default, plan)


def test_lab1_plan_can_base_the_plan_on_another_lr_and_ablate_the_labs(tmp_path):
    base = TrainConfig(device="cpu", lr=1e-3)
    default, plan, _ = compare.lab1_plan(base, images=60_000, data_root=tmp_path, lr_ablation=2e-4,
                                         base_label="base: lr = 0.001")
    assert default.label == "base: lr = 0.001" and default.config.lr == 1e-3
    lr_rows = [a for a in plan if a.config.lr != 1e-3]
    assert [(a.name, a.label, a.config.lr) for a in lr_rows] == [("lr-low", "lr = 0.0002 (1/5)", 2e-4)]
    assert all(a.config.lr == 1e-3 for a in plan if a.name != "lr-low")  # every other row keeps the base's lr
    high = [a for a in compare.lab1_plan(TrainConfig(device="cpu"), images=60_000, data_root=tmp_path)[1]
            if a.name == "lr-high"]
    assert [(a.label, a.config.lr) for a in high] == [("lr = 0.001 (5x)", 1e-3)]
    for bad in (0, 1.5, 1e-3, True, "2e-4"):
        with pytest.raises(ValueError, match="lr_ablation"):
            compare.lab1_plan(base, images=60_000, data_root=tmp_path, lr_ablation=bad)


def test_cifar_ablation_joins_the_plan_when_its_data_is_there(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"x")
    _, plan, skipped = compare.lab1_plan(TrainConfig(device="cpu"), images=60_000, data_root=tmp_path)
    cifar = plan[-1]
    assert cifar.name == "cifar10" and cifar.config.dataset == "cifar10" and cifar.config.epochs == 1
    assert not any("CIFAR" in s for s in skipped)


def test_batch_larger_than_the_budget_is_skipped_with_a_reason(tmp_path):
    _, plan, skipped = compare.lab1_plan(TrainConfig(n_train=300, batch_size=128, device="cpu"), images=300,
                                         data_root=tmp_path)
    assert "batch-large" not in [a.name for a in plan]
    assert any(s.startswith("batch size 512: skipped") for s in skipped)


# ----------------------------------------------------------------------------- results


def test_tables_figure_and_nz_runs(tmp_path):
    default = tiny_run(tmp_path, "default")
    other = tiny_run(tmp_path, "nz-2", nz=2)
    wider = tiny_run(tmp_path, "wide", ngf=8)
    results = [compare.Result("default", default, dict(FAKE_METRICS), name="default"),
               compare.Result("nz = 2", other, dict(FAKE_METRICS, fid=40.0), name="nz-2"),
               compare.Result("wider", wider, None, note="no metrics here", name="wide"),
               compare.Result("lr 1", None, None, note="diverged: d_loss became nan", name="lr")]
    floor = dict(FAKE_METRICS, fid=0.9)
    table = compare.markdown_table(results, floor)
    lines = table.splitlines()
    assert lines[0].startswith("| run | images | time (s) | FID")
    assert "| nz = 2 | 32 |" in table and "40.00" in table and "real MNIST (floor)" in table
    assert "diverged" in table and "- wider: no metrics here" in table
    json_path, csv_path = compare.save_table(results, tmp_path / "out", stem="t", floor=floor)
    saved = json.loads(json_path.read_text())
    assert [r["label"] for r in saved["runs"]] == ["default", "nz = 2", "wider", "lr 1"]
    assert saved["runs"][1]["nz"] == 2 and saved["runs"][1]["images"] == 32 and saved["real_floor"]["fid"] == 0.9
    with open(csv_path) as f:
        assert len(list(csv.DictReader(f))) == 4
    fig = compare.comparison_figure(results)
    assert len(fig.axes) >= 12
    assert compare.runs_by_nz(results) == {2: other, 8: default}


def test_evaluate_run_is_cached_beside_the_run(tmp_path, monkeypatch):
    run = tiny_run(tmp_path)
    calls = []

    def fake_evaluate(G, n, seed, device, root):
        calls.append((n, seed))
        return dict(FAKE_METRICS, n=n)

    monkeypatch.setattr(compare.metrics, "evaluate", fake_evaluate)
    first = compare.evaluate_run(run, n=100, seed=3)
    again = compare.evaluate_run(run, n=100, seed=3)
    other = compare.evaluate_run(run, n=200, seed=3)
    assert first == again and other["n"] == 200 and calls == [(100, 3), (200, 3)]
    assert len(list(run.run_dir.glob("metrics-n100-seed3-*.json"))) == 1


def test_a_diverged_run_is_reported_not_raised(tmp_path, monkeypatch):
    def diverge(*args, **kwargs):
        raise train.TrainingDiverged("d_loss became nan at step 3")

    monkeypatch.setattr(compare.train, "fit_or_load", diverge)
    ablation = compare.Ablation("lr-high", "lr = 1", TrainConfig(**TINY))
    result = compare.run_one(ablation, tmp_path)
    assert not result.ok and "diverged" in result.note and result.name == "lr-high"


# ----------------------------------------------------------------------------- seeds and curves


def test_plan_with_seeds_trains_every_setting_once_per_seed(tmp_path):
    base = TrainConfig(device="cpu", seed=3)
    default, plan, _ = compare.lab1_plan(base, images=60_000, data_root=tmp_path, seeds=(3, 4))
    assert default.config.seed == 3 and default.config == base.replace(epochs=1)
    assert [(a.name, a.config.seed) for a in plan[:3]] == [(compare.DEFAULT_NAME, 4), ("nz-2", 3), ("nz-2", 4)]
    by_name = {}
    for a in plan:
        by_name.setdefault(a.name, []).append(a.config.seed)
    assert all(seeds == [3, 4] for name, seeds in by_name.items() if name != compare.DEFAULT_NAME)
    assert len({a.config.identity() for a in (default, *plan)}) == 1 + len(plan)  # every run its own folder
    assert "seed 4" in compare.describe(default, plan)
    for bad in ((), (1, 1), (-1,), (True,)):
        with pytest.raises(ValueError, match="seeds"):
            compare.lab1_plan(base, images=60_000, data_root=tmp_path, seeds=bad)
    single, single_plan, _ = compare.lab1_plan(base, images=60_000, data_root=tmp_path)
    assert single.config.seed == 3 and [a.name for a in single_plan][0] == "nz-2"  # one seed: as before


def test_summary_averages_seeds_and_says_which_differences_exceed_them(tmp_path):
    runs = [tiny_run(tmp_path, "default", seed=s) for s in (0, 1)] + [tiny_run(tmp_path, "nz-2", nz=2, seed=s)
                                                                      for s in (0, 1)]
    results = [compare.Result("default", runs[0], dict(FAKE_METRICS, fid=10.0, classes_covered=9, precision=0.7001),
                              name="default"),
               compare.Result("default", runs[1], dict(FAKE_METRICS, fid=14.0, classes_covered=10, precision=0.7004),
                              name="default"),
               compare.Result("nz = 2", runs[2], dict(FAKE_METRICS, fid=30.0, precision=0.65), name="nz-2"),
               compare.Result("nz = 2", runs[3], dict(FAKE_METRICS, fid=20.0, precision=0.75), name="nz-2"),
               compare.Result("lr 1", None, None, note="diverged: d_loss became nan", name="lr")]
    rows = {row["name"]: row for row in compare.summary(results)}
    default, nz2 = rows["default"], rows["nz-2"]
    assert default["seeds"] == [0, 1] and (default["fid"], default["fid_min"], default["fid_max"]) == (12.0, 10.0, 14.0)
    assert default["classes_covered"] == 9.5 and rows["lr"]["failed"] == ["diverged: d_loss became nan"]
    assert compare.separated(default, nz2, "fid") is True  # 10-14 against 20-30
    assert compare.separated(default, nz2, "precision") is False  # 0.7 inside 0.65-0.75
    assert compare.separated(default, rows["lr"], "fid") is None
    assert compare.spread(nz2, "fid") == Spread(25.0, 20.0, 30.0) and compare.spread(rows["lr"], "fid") is None
    table = compare.summary_markdown(list(rows.values()), floor=dict(FAKE_METRICS, fid=0.9))
    assert "| default | 32 |" in table and "12.00 (10.00–14.00)" in table and "9.5 (9–10)" in table
    assert "| 0, 1 |" in table and "(1 diverged)" in table and "real MNIST (floor)" in table
    assert not re.search(r"(\S+) \(\1–\1\)", table)  # seeds that print alike (precision 0.7001 and 0.7004) show no range


def test_curves_are_measured_while_training_and_drawn(tmp_path, monkeypatch):
    calls = []

    def fake_probe(n=1000, seed=0, device="auto", root=None):
        def measure(G):
            calls.append(seed)
            return {"fid": 50.0 / (len(calls) + 1), "precision": 0.1 * len(calls), "recall": 0.5}
        return measure

    monkeypatch.setattr(compare, "curve_probe", fake_probe)
    gen = torch.Generator().manual_seed(0)
    data = (torch.rand(32, 1, 32, 32, generator=gen) * 2 - 1, torch.randint(0, 10, (32,), generator=gen))
    monkeypatch.setattr(compare.train, "fit_or_load", functools.partial(train.fit_or_load, data=data))
    monkeypatch.setattr(compare, "evaluate_run", lambda run, *a, **k: dict(FAKE_METRICS))
    default = compare.Ablation("default", "default", TrainConfig(**{**TINY, "epochs": 2}, n_train=32))
    plan = [compare.Ablation("default", "default", default.config.replace(seed=1))]
    results = compare.run_plan(default, plan, runs_root=tmp_path, curve_every=16, workers=1)  # patched: this process
    assert [len(r.run.history.curve) for r in results] == [4, 4]  # every 16 of 2 x 32 images
    assert [p["images"] for p in results[0].run.history.curve] == [16, 32, 48, 64]
    fig = compare.curve_figure(results)
    assert len(fig.axes) == 3 and fig.axes[0].get_yscale() == "log"
    assert [ax.get_title() for ax in fig.axes] == ["FID along training", "precision along training", "recall along training"]
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].lines[1].get_linestyle() == "--"  # seed 1: dashed
    with pytest.raises(ValueError, match="curve_every"):
        compare.curve_figure([compare.Result("x", tiny_run(tmp_path, "plain"), None)])


def test_verdicts_name_only_differences_beyond_the_seeds_spread(tmp_path):
    runs = [tiny_run(tmp_path, "default", seed=s) for s in (0, 1)] + [tiny_run(tmp_path, "nz-2", nz=2, seed=s)
                                                                      for s in (0, 1)]
    results = [compare.Result("default", runs[0], dict(FAKE_METRICS, fid=10.0), name=compare.DEFAULT_NAME),
               compare.Result("default", runs[1], dict(FAKE_METRICS, fid=14.0), name=compare.DEFAULT_NAME),
               compare.Result("nz = 2", runs[2], dict(FAKE_METRICS, fid=30.0, precision=0.65), name="nz-2"),
               compare.Result("nz = 2", runs[3], dict(FAKE_METRICS, fid=20.0, precision=0.75), name="nz-2"),
               compare.Result("lr 1", None, None, note="diverged: d_loss became nan", name="lr")]
    table = compare.verdicts(compare.summary(results))
    nz2 = next(line for line in table.splitlines() if line.startswith("| nz = 2 |"))
    assert "higher (25.00 vs 12.00)" in nz2 and "within the seeds' spread (0.700 vs 0.700)" in nz2
    assert "| lr 1 | – |" in table and "One seed" not in table
    single = compare.verdicts(compare.summary(results[:1] + results[2:3]))
    assert "One seed for default" in single and "higher (30.00 vs 10.00)" in single
    with pytest.raises(ValueError, match="reference"):
        compare.verdicts(compare.summary(results), reference="nz-10000")


def test_runs_train_side_by_side_in_workers_then_reload_in_the_plans_order(tmp_path):
    data_root = os.environ.get("LABKIT_DATA") or str(Path(__file__).resolve().parents[1] / "data")
    base = TrainConfig(**TINY, n_train=64)
    default = compare.Ablation(compare.DEFAULT_NAME, "default", base)
    plan = [compare.Ablation(compare.DEFAULT_NAME, "default", base.replace(seed=1)),
            compare.Ablation("nz-2", "nz = 2", base.replace(nz=2))]
    results = compare.run_plan(default, plan, runs_root=tmp_path, data_root=data_root, n_eval=100,
                               curve_every=32, workers=2)
    names = [(r.name, r.run.config.seed) for r in results]
    assert names == [(compare.DEFAULT_NAME, 0), (compare.DEFAULT_NAME, 1), ("nz-2", 0)]
    assert all(r.ok and len(r.run.history.curve) == 2 for r in results)  # measured in the workers, every 32 of 64
    assert all(list(r.run.run_dir.glob("metrics-n100-seed0-*.json")) for r in results)  # evaluated there, cached
    assert all(train.is_finished(a.config, tmp_path, a.name) for a in (default, *plan))
    assert not train.is_finished(base.replace(seed=2), tmp_path, compare.DEFAULT_NAME)
    again = compare.run_plan(default, plan, runs_root=tmp_path, data_root=data_root, n_eval=100,
                             curve_every=32, workers=2)  # all finished: reloaded, nothing trains
    assert [r.run.history.wall_time for r in again] == [r.run.history.wall_time for r in results]
    assert [r.metrics for r in again] == [r.metrics for r in results]


def test_a_run_that_diverged_in_a_worker_is_reported_in_its_place(tmp_path, monkeypatch):
    base = TrainConfig(**TINY, n_train=64)
    default, lr = compare.Ablation("default", "default", base), compare.Ablation("lr-high", "lr x5", base.replace(lr=1.0))
    monkeypatch.setattr(compare.parallel, "run_jobs",
                        lambda fn, jobs, *a, **k: iter([(i, "diverged: d_loss became nan" if job[0] is lr else None)
                                                        for i, job in enumerate(jobs)]))
    monkeypatch.setattr(compare, "run_one", lambda a, *args: compare.Result(a.label, "a run", dict(FAKE_METRICS),
                                                                            name=a.name))
    results = compare.run_plan(default, [lr], runs_root=tmp_path, workers=2)
    assert [r.name for r in results] == ["default", "lr-high"]
    assert results[0].ok and not results[1].ok and results[1].note == "diverged: d_loss became nan"


def test_unfinished_runs_train_longest_first_counting_critic_steps_each_at_its_own_seed(tmp_path, monkeypatch):
    base = TrainConfig(**TINY, n_train=96)  # one critic step of 5: 80 images
    runs = [compare.Ablation("gan", "gan, 4 epochs", base.replace(epochs=4, seed=3)),
            compare.Ablation("wgan", "critic x5, 2 epochs", base.replace(epochs=2, n_critic=5, seed=7)),
            compare.Ablation("gan", "gan, 1 epoch", base.replace(epochs=1))]
    sent, shown = [], []

    def fake_run_jobs(fn, jobs, *args, name=str, **kwargs):
        sent.extend(jobs)
        shown.extend(name(job) for job in jobs)
        return iter([(i, "diverged: d_loss became nan" if job[0].name == "wgan" else None)
                     for i, job in enumerate(jobs)])

    monkeypatch.setattr(compare.parallel, "run_jobs", fake_run_jobs)
    diverged = compare.train_unfinished(runs, tmp_path, n_eval=100, seed=None, workers=2)
    assert [job[0].label for job in sent] == ["critic x5, 2 epochs", "gan, 4 epochs", "gan, 1 epoch"]  # 2 x 3 > 4 x 1
    assert [job[4] for job in sent] == [7, 3, 0]  # seed=None: each run evaluated at its own seed
    assert shown == ["critic x5, 2 epochs (seed 7)", "gan, 4 epochs (seed 3)", "gan, 1 epoch (seed 0)"]  # rows apart
    assert diverged == {1: "diverged: d_loss became nan"}  # by its place in the list given
    sent.clear()
    compare.train_unfinished(runs, tmp_path, n_eval=100, seed=5, workers=2)
    assert [job[4] for job in sent] == [5, 5, 5]
    sent.clear()
    assert compare.train_unfinished(runs, tmp_path, workers=1) == {} and sent == []  # one process: nothing here
