"""``python -m labkit``: training into a run folder on real MNIST, and refusing bad input early."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from labkit.__main__ import main

TINY = ["--n-train", "256", "--batch-size", "64", "--ngf", "8", "--ndf", "8", "--nz", "16", "--epochs", "1",
        "--device", "cpu"]


def test_train_writes_a_run_folder_then_resumes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY, "--run-dir", str(run_dir)]) == 0
    for name in ("checkpoint.pt", "config.json", "history.json", "samples.png", "losses.png", "d_outputs.png",
                 "samples_over_epochs.png"):
        assert (run_dir / name).exists(), name
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epochs"] == 1 and len(history["g_loss"]) == 4
    assert "run saved in" in capsys.readouterr().out

    assert main(["train", *TINY, "--run-dir", str(run_dir)]) == 2
    assert "--resume" in capsys.readouterr().err

    args = [a if a != "1" else "2" for a in TINY]  # --epochs 2
    assert main(["train", *args, "--run-dir", str(run_dir), "--resume"]) == 0
    assert json.loads((run_dir / "history.json").read_text())["epochs"] == 2


@pytest.mark.parametrize("flag, value, name", [("--nz", "0", "nz"), ("--loss", "hinge", "loss"),
                                               ("--dataset", "svhn", "dataset"), ("--n-train", "70000", "n")])
def test_bad_values_fail_before_training(tmp_path, capsys, flag, value, name):
    assert main(["train", *TINY, flag, value, "--run-dir", str(tmp_path / "r")]) == 2
    assert name in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_fetch_data_reports_its_source():
    out = subprocess.run([sys.executable, "-m", "labkit", "fetch-data"], capture_output=True, text=True, check=True)
    assert "source: existing" in out.stdout
