"""Progress reads well headless; the device is chosen automatically and checked when named."""

from __future__ import annotations

import pytest
import torch

from labkit import progress
from labkit.device import resolve_device


def test_text_progress_prints_whole_lines(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_PROGRESS", "text")
    bar = progress.progress(total=4, desc="epoch 1/1", unit="step", interval=0.0)
    for _ in range(4):
        bar.update()
    bar.set_postfix(d_loss=0.123456)
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch 1/1:   0% 0/4 step")
    assert lines[-1].startswith("epoch 1/1: 100% 4/4 step") and lines[-1].endswith("done")
    assert "d_loss=0.1235" in lines[-1] and not any("\r" in line for line in lines)


def test_text_progress_wraps_iterables(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_PROGRESS", "text")
    assert list(progress.progress(range(3), desc="x")) == [0, 1, 2]
    assert "3/3" in capsys.readouterr().out


def test_headless_and_overrides(monkeypatch):
    monkeypatch.delenv("LABKIT_PROGRESS", raising=False)
    assert progress.choose_mode() == "text"  # pytest's stderr is captured, not a terminal
    monkeypatch.setenv("LABKIT_PROGRESS", "off")
    assert progress.choose_mode() == "off"
    monkeypatch.setenv("LABKIT_PROGRESS", "loud")
    with pytest.raises(ValueError, match="LABKIT_PROGRESS"):
        progress.choose_mode()


def test_resolve_device():
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
