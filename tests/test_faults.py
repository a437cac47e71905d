"""Faults a student's laptop or a CI machine meets: a killed run, a damaged checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from labkit import train

# An explicit fast path: two processes timing "auto" could choose differently and differ in the last bits.
ARGS = ["--n-train", "1024", "--batch-size", "32", "--ngf", "8", "--ndf", "8", "--nz", "16", "--device", "cpu",
        "--fast-path", "off"]


def train_cli(run_dir: Path, epochs: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "LABKIT_PROGRESS": "off"}
    return subprocess.Popen([sys.executable, "-m", "labkit", "train", *ARGS, "--epochs", str(epochs),
                             "--run-dir", str(run_dir), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    epochs = 4
    finish(train_cli(tmp_path / "straight", epochs))

    killed = tmp_path / "killed"
    proc = train_cli(killed, epochs)
    checkpoint = killed / train.CHECKPOINT
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.02)  # into the next epoch (an epoch here takes a few tenths of a second)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    state = train.load_checkpoint(checkpoint)  # never the half-written one
    assert 1 <= state["epoch"] < epochs, "the kill should land before the run finished"

    finish(train_cli(killed, epochs, "--resume"))
    straight = json.loads((tmp_path / "straight" / train.HISTORY_JSON).read_text())
    resumed = json.loads((killed / train.HISTORY_JSON).read_text())
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm"):
        assert resumed[key] == straight[key], key
    a = train.load_run(tmp_path / "straight", device="cpu").G.state_dict()
    b = train.load_run(killed, device="cpu").G.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_during_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    """A save that dies half-way (here: torch.save raising) never replaces the good checkpoint."""
    config = train.TrainConfig(ngf=8, ndf=8, nz=8, batch_size=16, epochs=1, n_samples=4, device="cpu")
    data = (torch.rand(32, 1, 32, 32) * 2 - 1, torch.zeros(32, dtype=torch.long))
    G, D = train.build_models(config)
    train.fit(G, D, data, config, run_dir=tmp_path)
    good = (tmp_path / train.CHECKPOINT).read_bytes()

    def dying_save(obj, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train.fit(G, D, data, config.replace(epochs=2), run_dir=tmp_path, resume=True)
    assert (tmp_path / train.CHECKPOINT).read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_truncated_checkpoint_gives_a_clear_error_and_deletes_nothing(tmp_path):
    config = train.TrainConfig(ngf=8, ndf=8, nz=8, batch_size=16, epochs=1, n_samples=4, device="cpu")
    data = (torch.rand(32, 1, 32, 32) * 2 - 1, torch.zeros(32, dtype=torch.long))
    G, D = train.build_models(config)
    train.fit(G, D, data, config, run_dir=tmp_path)
    path = tmp_path / train.CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RuntimeError) as err:
        train.fit(G, D, data, config.replace(epochs=2), run_dir=tmp_path, resume=True)
    assert str(path) in str(err.value) and "train again" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
