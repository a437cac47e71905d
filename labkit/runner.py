"""Run the whole course headless: every solution notebook into one new run folder.

``python -m labkit run --profile quick|full [--params "epochs=2 nz=64"]`` (what
``make run`` calls) executes each notebook in ``solutions/`` with papermill into
``runs/<profile>-<timestamp>/``, then writes ``report.md`` and ``report.html``
there. A notebook that fails is recorded with the cell and error papermill
reports, and the others still run. Parameter names are checked against what the
notebooks declare *before* anything runs: papermill itself would inject an
unknown name with only a warning.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    # The real lab: each notebook's own defaults.
    "full": {},
    # The whole pack in minutes on 2 CPU cores: a real MNIST subset, one epoch, fewer samples.
    "quick": {"epochs": 1, "n_train": 4096, "n_eval": 2000, "ablation_images": 4096},
}
# On top of its profile, per notebook. Lab 1's main runs (the DCGAN, the conditional DCGAN)
# get all of MNIST for their one epoch, in batches of 32: a GAN progresses by steps, and
# 1,875 steps of 32 images draw digits where 32 steps of 128 draw noise. The ablations keep
# the small budget (ablation_images). The notebooks' introductions say so.
NOTEBOOK_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {"01_dcgan": {"n_train": None, "batch_size": 32}, "02_cgan": {"n_train": None, "batch_size": 32}},
}


@dataclass
class NotebookResult:
    """How one notebook's execution went."""

    name: str
    output: str
    seconds: float
    ok: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    error_cell: int | None = None
    error: str | None = None
    error_source: str | None = None


def parse_params(text: str | None) -> dict[str, Any]:
    """``"epochs=2 nz=64 device=cpu n_train=None"`` -> a dict of Python values.

    Values are read as Python literals when they are one (numbers, True, None,
    quoted strings) and kept as plain strings otherwise.
    """
    params: dict[str, Any] = {}
    for item in (text or "").split():
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"PARAMS entries must look like name=value, got {item!r}")
        try:
            params[name] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[name] = raw
    return params


def declared_parameters(notebook: Path) -> set[str]:
    """The names a notebook's ``parameters`` cell declares, as papermill reads them."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def plan(notebooks: list[Path], profile: str, overrides: dict[str, Any]) -> dict[Path, dict[str, Any]]:
    """The parameters each notebook gets; refuses names that no notebook declares."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
    if not notebooks:
        raise ValueError("no notebooks to run")
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    known = set().union(*declared.values())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}: the notebooks declare {sorted(known)}")
    per_notebook = NOTEBOOK_PROFILES.get(profile, {})
    out = {}
    for nb, names in declared.items():
        wanted = {**PROFILES[profile], **per_notebook.get(nb.stem, {}), **overrides}
        out[nb] = {k: v for k, v in wanted.items() if k in names}
    return out


def new_run_folder(runs_root: Path, profile: str) -> Path:
    """``runs_root/<profile>-<timestamp>``, made fresh: an earlier run is never reused or overwritten."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", *(f"-{i}" for i in range(2, 100))):
        folder = runs_root / f"{profile}-{stamp}{suffix}"
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"could not make a new run folder under {runs_root}")


@contextlib.contextmanager
def _headless():
    """``LABKIT_FRONTEND=headless`` for the kernels started meanwhile: nobody watches them (static figures)."""
    from . import frontend

    before = os.environ.get(frontend.ENV)
    os.environ[frontend.ENV] = frontend.HEADLESS
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(frontend.ENV, None)
        else:
            os.environ[frontend.ENV] = before


def execute(notebook: Path, folder: Path, parameters: dict[str, Any], data_root: str | None) -> NotebookResult:
    """Run one notebook with papermill (its kernel told it is headless); never raises for a failure inside it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    params = {"run_dir": str((folder / "runs").resolve()), **parameters}
    if data_root is not None:
        params.setdefault("data_root", str(Path(data_root).resolve()))
    params = {k: v for k, v in params.items() if k in declared_parameters(notebook)}
    output = folder / notebook.name
    start = time.perf_counter()
    result = NotebookResult(notebook.stem, output.name, 0.0, True, params)
    try:
        with _headless():
            papermill.execute_notebook(str(notebook), str(output), parameters=params, kernel_name="python3",
                                       cwd=str(folder), progress_bar=False)
    except PapermillExecutionError as exc:
        result.ok = False
        result.error_cell = exc.exec_count
        result.error = f"{exc.ename}: {exc.evalue}"
        result.error_source = exc.source
    except Exception as exc:  # the kernel died, the notebook could not be read...
        result.ok = False
        result.error = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc(limit=3))
    result.seconds = time.perf_counter() - start
    return result


def run_pack(profile: str = "full", params: str | None = None, solutions: str | Path = "solutions",
             runs_root: str | Path = "runs", data_root: str | None = None,
             only: list[str] | None = None) -> Path:
    """Execute every solution notebook (or those named in ``only``) and write the report; returns the folder."""
    from . import report

    notebooks = sorted(Path(solutions).glob("*.ipynb"))
    if only:
        missing = sorted(set(only) - {nb.stem for nb in notebooks})
        if missing:
            raise ValueError(f"unknown notebook(s) {missing}; available: {[nb.stem for nb in notebooks]}")
        notebooks = [nb for nb in notebooks if nb.stem in only]
    per_notebook = plan(notebooks, profile, parse_params(params))
    folder = new_run_folder(Path(runs_root), profile)
    print(f"running {len(notebooks)} notebook(s), profile {profile!r}, into {folder}", flush=True)
    results = []
    for nb, nb_params in per_notebook.items():
        print(f"- {nb.name} {nb_params}", flush=True)
        result = execute(nb, folder, nb_params, data_root)
        results.append(result)
        status = "ok" if result.ok else f"FAILED in cell {result.error_cell}: {result.error}"
        print(f"  {status} ({result.seconds:.0f} s)", flush=True)
        (folder / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    paths = report.write_report(folder, results, profile, data_root=data_root)
    print(f"report: {paths[0]} and {paths[1]}")
    return folder
