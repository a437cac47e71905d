"""labkit.compare: image budgets, the plan of question 5, tables, the figure, cached evaluation."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from labkit import compare, train
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
