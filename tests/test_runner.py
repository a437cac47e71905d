"""`make run`: notebooks executed into a fresh folder, failures reported, unknown parameters refused early."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from labkit import runner

DATA = str(Path(os.environ.get("LABKIT_DATA", Path(__file__).resolve().parents[1] / "data")).resolve())


def notebook(path: Path, body: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('epochs = 1\nn_train = 128\nrun_dir = "runs"\ndata_root = "data"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from labkit import notebook\nnotebook.check_parameters(epochs=epochs, n_train=n_train, run_dir=run_dir, "
        "data_root=data_root);")] + [nbformat.v4.new_code_cell(src) for src in body]
    nbformat.write(nb, path)
    return path


TRAIN = """from pathlib import Path
from labkit import plots, train
run = train.fit_or_load(train.TrainConfig(ngf=8, ndf=8, nz=8, batch_size=32, n_train=n_train, epochs=epochs,
                        device="cpu", n_samples=16), runs_root=run_dir, name="tiny", data_root=data_root)
plots.save(plots.sample_grid(run.history.samples[-1]), Path(run_dir) / "tiny" / "samples.png")"""


@pytest.fixture()
def solutions(tmp_path) -> Path:
    folder = tmp_path / "solutions"
    folder.mkdir()
    notebook(folder / "01_ok.ipynb", [TRAIN])
    notebook(folder / "02_broken.ipynb", ["x = 1", "raise RuntimeError('this cell is broken')", "print('after')"])
    return folder


def test_parse_params():
    assert runner.parse_params('epochs=2 nz=64 device=cpu n_train=None lr=1e-3 ablations=False') == dict(
        epochs=2, nz=64, device="cpu", n_train=None, lr=1e-3, ablations=False)
    assert runner.parse_params("") == {}
    with pytest.raises(ValueError, match="name=value"):
        runner.parse_params("epochs")


def test_unknown_parameter_refused_before_anything_runs(solutions, tmp_path):
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['epoch'\]"):
        runner.run_pack("quick", "epoch=2", solutions=solutions, runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="profile must be one of"):
        runner.run_pack("fast", None, solutions=solutions, runs_root=tmp_path / "runs")


def test_run_pack_reports_results_and_failures(solutions, tmp_path):
    folder = runner.run_pack("quick", "n_train=128", solutions=solutions, runs_root=tmp_path / "runs", data_root=DATA)
    assert folder.parent == tmp_path / "runs" and folder.name.startswith("quick-")
    assert (folder / "01_ok.ipynb").exists() and (folder / "02_broken.ipynb").exists()
    md = (folder / "report.md").read_text()
    assert "| 01_ok | ok |" in md
    assert "**failed** in cell 5: RuntimeError: this cell is broken" in md
    assert "tiny (dcgan, gan)" in md  # the trained run's row
    page = (folder / "report.html").read_text()
    assert "<img src='runs/tiny/samples.png'" in page and "class='fail'" in page
    second = runner.run_pack("quick", "n_train=128", solutions=solutions, runs_root=tmp_path / "runs",
                             data_root=DATA, only=["02_broken"])
    assert second != folder and (folder / "report.md").read_text() == md  # an earlier run is never touched


def test_bad_parameter_value_fails_right_after_the_parameters_cell(solutions, tmp_path):
    folder = runner.run_pack("quick", "epochs=0", solutions=solutions, runs_root=tmp_path / "runs",
                             data_root=DATA, only=["01_ok"])
    md = (folder / "report.md").read_text()
    assert "failed** in cell 3" in md and "epochs = 0" in md  # cell 1: injected parameters, 2: defaults


def test_report_table_puts_the_floor_last_or_says_why_it_is_missing():
    from labkit import report

    row = {"model": "dcgan-default (dcgan, gan)", "epochs": 1, "fid": 12.5}
    cells = report.table([row], {"n": 2000, "fid": 0.31, "precision": 0.837})
    assert cells[-1][0] == "real MNIST vs real (floor, n=2000)" and "0.31" in cells[-1]
    failed = report.table([row], {"model": "floor unavailable: no MNIST test set"})
    assert failed[-1][0] == "floor unavailable: no MNIST test set"
    assert len(report.table([row], None)) == 2  # header and the row


def test_quick_profile_gives_lab_1_a_full_epoch_in_small_batches():
    solutions = sorted((Path(__file__).resolve().parents[1] / "solutions").glob("*.ipynb"))
    params = {nb.stem: p for nb, p in runner.plan(solutions, "quick", {}).items()}
    for stem in ("01_dcgan", "02_cgan"):
        assert params[stem]["n_train"] is None and params[stem]["batch_size"] == 32 and params[stem]["epochs"] == 1
        assert params[stem]["ablation_images"] == 4096
    assert params["03_wgan_metrics"]["n_train"] == 4096 and "batch_size" not in params["03_wgan_metrics"]
    mine = {nb.stem: p for nb, p in runner.plan(solutions, "quick", {"batch_size": 64}).items()}
    assert mine["01_dcgan"]["batch_size"] == 64 and mine["03_wgan_metrics"]["batch_size"] == 64  # PARAMS win
    assert {nb.stem: p for nb, p in runner.plan(solutions, "full", {}).items()}["01_dcgan"] == {}
