"""The quality benchmark runs end to end on a tiny budget, reuses its runs, and refuses bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ROOT / "benchmarks" / "quality.py"
DATA = str(Path(os.environ.get("LABKIT_DATA", ROOT / "data")).resolve())  # as the other tests, not a fresh download


def quality(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(QUALITY), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def seeds_of(report: dict, model: str) -> dict[int, float]:
    return {r["seed"]: r["fid"] for r in report["rows"] if r["model"] == model}


def test_quality_benchmark_reports_every_seed_and_target_and_reuses_its_runs(tmp_path):
    args = ("--quick", "--runs", str(tmp_path / "runs"), "--n-eval", "200", "--data-root", DATA,
            "--models", "dcgan-default", "cgan-default", "--seeds", "0", "1", "--change", "dcgan-default", "lr=1e-3")
    first = quality(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "runs" / "quality.json").read_text())
    assert sorted((r["model"], r["seed"]) for r in report["rows"]) == [
        ("cgan-default", 0), ("cgan-default", 1), ("dcgan-default", 0), ("dcgan-default", 1),
        ("dcgan-default lr=0.001", 0), ("dcgan-default lr=0.001", 1)]
    assert seeds_of(report, "dcgan-default lr=0.001")[0] != seeds_of(report, "dcgan-default")[0], "the variant trained the default's run"
    assert sum(t["model"] == "dcgan-default lr=0.001" for t in report["targets"]) == 3, "the variant is held to its model's targets"
    seeds_differ = seeds_of(report, "dcgan-default")
    assert seeds_differ[0] != seeds_differ[1], "the two seeds trained the same run"
    targets = {t["target"]: t for t in report["targets"]}
    assert set(targets) == {"precision >= 0.6", "recall >= 0.8", "fid_over_floor <= 10", "label_accuracy >= 0.95"}
    assert all(t["seeds"] == 2 and t["holds"] == (t["seeds_meeting"] == 2) for t in targets.values())
    assert "| dcgan-default | 1 | 0, 1 |" in first.stdout and "of 2 seeds" in first.stdout

    again = quality(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("loaded finished run") == 6  # nothing trained twice
    assert json.loads((tmp_path / "runs" / "quality.json").read_text())["rows"] == report["rows"]


def test_quality_benchmark_refuses_a_bad_epochs_override(tmp_path):
    result = quality("--quick", "--epochs", "dcgan=3", "--runs", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0 and "MODEL=EPOCHS" in result.stderr and "dcgan-default" in result.stderr
    assert not list(tmp_path.iterdir()), "nothing may be trained before the arguments are checked"


def test_quality_benchmark_refuses_a_change_that_names_no_config_field(tmp_path):
    result = quality("--quick", "--change", "dcgan-default", "lrr=1e-3", "--runs", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0 and "lrr=1e-3" in result.stderr and "beta1" in result.stderr
    bad_value = quality("--quick", "--change", "dcgan-default", "lr=-1", "--runs", str(tmp_path), cwd=tmp_path)
    assert bad_value.returncode != 0 and "lr" in bad_value.stderr
    nothing = quality("--quick", "--models", "--runs", str(tmp_path), cwd=tmp_path)
    assert nothing.returncode != 0 and "--change" in nothing.stderr
    assert not list(tmp_path.iterdir()), "nothing may be trained before the arguments are checked"


def test_a_seed_that_diverged_misses_every_target_of_its_model():
    spec = importlib.util.spec_from_file_location("quality", QUALITY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    good = {"model": "dcgan-default", "base": "dcgan-default", "seed": 0, "epochs": 5, "precision": 0.7,
            "recall": 0.9, "fid_over_floor": 2.0}
    diverged = {"model": "dcgan-default", "base": "dcgan-default", "seed": 1, "epochs": 5,
                "note": "diverged: d_loss became nan"}
    table, verdicts = module.summarise([good, diverged])
    assert "| dcgan-default | 5 | 0, 1 | 2.0 | 0.700 |" in table  # the seed that trained, alone
    assert len(verdicts) == 3 and all(v["seeds_meeting"] == 1 and not v["holds"] for v in verdicts)
