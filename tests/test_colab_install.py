"""A Colab-style install: the built wheel alone, in a fresh Python that has only torch and torchvision.

Colab gives a Python with PyTorch and torchvision installed and no checkout of
this repository. This test builds the wheel (``pip wheel . --no-deps``) from a
copy of the project, installs it into a fresh venv holding only torch,
torchvision and what they depend on, and runs notebook 01 from ``solutions/``
with papermill on quick parameters, from a folder outside the repository:
the feature network's weights, the data chain and the defaults must all come
from the installed package. MNIST is not downloaded: the folder's ``data/``
holds links to the raw files already fetched (``make data``), the first
source of the data chain.

Installing torch from the package index into the fresh venv takes ~1.5 min
here (the CUDA build and its ~5 GB of libraries), most of this test's budget;
the test venv instead gets the very files of this project's torch and
torchvision (the same versions, with their whole dependency closure, nothing
else) as hard links, which takes a second and is what ``pip install torch
torchvision`` would have put there. Without hard links (another file system)
it falls back to ``pip install torch==X torchvision==Y``.

The Colab set-up cell of every notebook is checked too: it does nothing outside
Colab; in Colab it asks pip, with ``--no-deps``, for the wheel of this very
version (the file ``pip wheel .`` builds, published under pyproject's
Repository URL), and nothing that would replace Colab's torch or ipywidgets.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import types
import zipfile
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

import labkit
from labkit import colab

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LABKIT_DATA", ROOT / "data")).resolve()
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "notebooks").glob("*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Quick settings for notebook 01; the ablations (and so the nz slider) are the browser test's business.
# ablation_images also sizes questions 1 and 3's short runs (100 and 200 steps by default).
QUICK = dict(epochs=1, n_train=64, batch_size=32, ngf=8, ndf=8, n_eval=100, ablations=False, ablation_images=64)
PREINSTALLED = ("torch", "torchvision")  # what Colab gives before the set-up cell runs


# --------------------------------------------------------------------------- the Colab set-up cell


def _colab_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "colab-setup" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged colab-setup, found {len(cells)}"
    assert nb.cells.index(cells[0]) <= 1, f"{path.name}: the Colab set-up cell must come first"
    return cells[0].source


class _Shell:
    """Stands in for IPython's shell: records the magics a cell runs instead of running them."""

    def __init__(self) -> None:
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        self.magics.append((name, line))

    def system(self, cmd: str) -> None:
        self.magics.append(("!", cmd))


def _run_cell(source: str, colab: bool) -> list[tuple[str, str]]:
    code = TransformerManager().transform_cell(source)  # %pip -> get_ipython().run_line_magic('pip', ...)
    shell = _Shell()
    saved = {name: sys.modules.get(name) for name in ("google", "google.colab")}
    try:
        for name in saved:
            sys.modules.pop(name, None)
        if colab:
            google = types.ModuleType("google")
            google.colab = types.ModuleType("google.colab")
            sys.modules.update({"google": google, "google.colab": google.colab})
        exec(compile(code, "<colab-setup>", "exec"), {"get_ipython": lambda: shell, "__name__": "__main__"})
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return shell.magics


def _colab_install(source: str) -> tuple[list[str], list[Requirement]]:
    """The options and requirements of the one ``%pip install`` the cell runs in Colab."""
    magics = _run_cell(source, colab=True)
    assert len(magics) == 1 and magics[0][0] == "pip", f"in Colab: one %pip call expected, got {magics}"
    args = shlex.split(magics[0][1])
    assert args[0] == "install", args
    return [a for a in args[1:] if a.startswith("-")], [Requirement(a) for a in args[1:] if not a.startswith("-")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_colab_cell_installs_this_versions_wheel_only_in_colab(path):
    source = _colab_cell(path)
    assert source == colab.setup_cell_source(), "the set-up cell is made by labkit.colab.setup_cell_source()"
    assert _run_cell(source, colab=False) == [], "outside Colab the set-up cell must do nothing"
    options, (req, *others) = _colab_install(source)
    # Colab's own torch, torchvision and ipywidgets stay: no dependency resolution, no upgrade, no editable install
    assert "--no-deps" in options and not {"-U", "--upgrade", "-e", "--force-reinstall"} & set(options), options
    assert canonicalize_name(req.name) == canonicalize_name(PYPROJECT["project"]["name"]) and req.url, req
    name, version, _, tags = parse_wheel_filename(req.url.rsplit("/", 1)[1])
    assert (name, str(version)) == ("labkit", labkit.__version__) and {str(t) for t in tags} == {"py3-none-any"}
    repository = PYPROJECT["project"]["urls"]["Repository"]
    assert req.url == f"{repository}/releases/download/v{version}/labkit-{version}-py3-none-any.whl"
    # whatever else the cell installs is a runtime need Colab lacks, never one of the packages Colab provides
    provided = {canonicalize_name(n) for n in colab.COLAB_PROVIDES}
    assert not {canonicalize_name(r.name) for r in others} & provided, others
    needed = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert needed <= provided | {canonicalize_name(r.name) for r in others}, needed - provided
    assert "drive.mount" in source and all(line.lstrip().startswith("#") for line in source.splitlines()
                                           if "drive" in line.lower()), "Google Drive: a commented, optional line"


def test_colab_links_open_the_handouts_of_this_release():
    readme = (ROOT / "README.md").read_text()
    assert colab.badge("notebooks/01_dcgan.ipynb") in readme, "the README's Open in Colab link"
    for path in NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0]
        assert colab.badge(f"{path.parent.name}/{path.name}") in first.source, path
        assert re.search(r"GPU", first.source), f"{path}: a line on choosing a GPU runtime"
    assert colab.open_url("notebooks/01_dcgan.ipynb") == (
        "https://colab.research.google.com/github/" + PYPROJECT["project"]["urls"]["Repository"].split("github.com/")[1]
        + f"/blob/v{labkit.__version__}/notebooks/01_dcgan.ipynb")


# --------------------------------------------------------------------------- the wheel in a fresh venv


def _run(cmd: list[str], timings: dict, label: str, **kwargs) -> subprocess.CompletedProcess:
    start = time.monotonic()
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    timings[label] = round(time.monotonic() - start, 1)
    assert result.returncode == 0, f"{label} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _project_copy(dest: Path) -> Path:
    """The files a clone would have (tracked and not ignored), so building writes nothing into the checkout."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.split("\0")):
            if (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
    else:  # not a git checkout (an sdist, say): everything but the usual local folders
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".venv", ".git", "data", "runs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    return dest


def _closure(names) -> list[md.Distribution]:
    """The installed distributions ``names`` need, with their dependencies (markers and extras honoured)."""
    env = default_environment()
    seen: dict[str, md.Distribution] = {}
    todo = [(n, frozenset()) for n in names]
    done: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in done:
            continue
        done.add(key)
        dist = md.distribution(name)
        seen[canonicalize_name(dist.metadata["Name"])] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            wanted = [""] + sorted(extras)
            if req.marker and not any(req.marker.evaluate(dict(env, extra=e)) for e in wanted):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return list(seen.values())


def _link_preinstalled(venv_site: Path, names=PREINSTALLED) -> bool:
    """Hard-link this project's ``names`` (torch, torchvision) and their dependencies into ``venv_site``.

    False when impossible (another file system): then pip installs them.
    """
    present = {canonicalize_name(d.metadata["Name"]) for d in md.distributions(path=[str(venv_site)])}
    dists = [d for d in _closure(names) if canonicalize_name(d.metadata["Name"]) not in present]
    here = Path(sysconfig.get_paths()["purelib"]).resolve()
    try:
        for dist in dists:
            for file in dist.files or []:
                source = Path(dist.locate_file(file)).resolve()
                if here not in source.parents or not source.is_file():
                    continue  # scripts in bin/ and the like: not needed to import
                target = venv_site / source.relative_to(here)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.link(source, target)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel . --no-deps`` builds from a copy of the project."""
    base = tmp_path_factory.mktemp("wheel")
    src = _project_copy(base / "src")
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", base / "wheels"], {}, "pip wheel",
         cwd=src)
    [wheel] = (base / "wheels").glob("labkit-*.whl")
    return wheel


def _fresh_venv(base: Path, timings: dict, also: tuple[str, ...] = ()) -> dict:
    """A venv holding only torch and torchvision (this project's, hard-linked), as Colab starts.

    ``also``: more of this project's packages to link in (with their dependencies), to save the time a
    download and install would take where that install is not what is tested.
    """
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", venv], timings, "python -m venv")
    py = venv / "bin" / "python"
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True, cwd=base).strip())
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith(("LABKIT_", "JUPYTER"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               JUPYTER_DATA_DIR=str(base / "jupyter-data"), JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
               PIP_DISABLE_PIP_VERSION_CHECK="1",
               # the CPU fast path's probe (tests/test_fastpath.py) would take longer than these 2-step runs
               LABKIT_FAST_PATH="off")
    pins = [f"{name}=={md.version(name)}" for name in PREINSTALLED + also]
    start = time.monotonic()
    if not _link_preinstalled(site, PREINSTALLED + also):
        _run([py, "-m", "pip", "install", "-q", *pins], timings, "pip install torch torchvision", env=env, cwd=base)
    timings["torch + torchvision in place"] = round(time.monotonic() - start, 1)
    before = _run([py, "-c", "import importlib.util as u; print([m for m in ('torch', 'torchvision', 'labkit', "
                   "'matplotlib', 'ipywidgets', 'papermill', 'nbformat') if u.find_spec(m)])"], timings, "check",
                  env=env, cwd=base)
    expected = ["torch", "torchvision"] + [m for m in ("matplotlib", "ipywidgets") if m in also]
    assert before.stdout.strip() == str(expected), f"the fresh venv is not fresh: {before.stdout}"
    constraints = base / "keep-torch.txt"  # installing labkit must not touch the preinstalled torch
    constraints.write_text("\n".join(pins[:len(PREINSTALLED)]) + "\n")
    return dict(venv=venv, py=py, env=env, site=site, constraints=constraints, timings=timings)


def _work_folder(base: Path) -> Path:
    """A folder with no repository beside it: only MNIST's raw files, linked."""
    work = base / "work"
    raw = work / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (DATA / "MNIST" / "raw").iterdir():
        if f.is_file() and not f.name.endswith(".gz"):
            (raw / f.name).symlink_to(f)
    assert list(raw.iterdir()), f"MNIST's raw files are missing under {DATA}: run `make data`"
    return work


@pytest.fixture(scope="module")
def colab_like(tmp_path_factory, built_wheel):
    """(venv, work folder, wheel, timings): the wheel installed into a venv that had only torch + torchvision."""
    base = tmp_path_factory.mktemp("colab")
    venv = _fresh_venv(base, {})
    _run([venv["py"], "-m", "pip", "install", "-q", "-c", venv["constraints"], built_wheel, "papermill", "ipykernel"],
         venv["timings"], "pip install wheel papermill ipykernel", env=venv["env"], cwd=base)
    return dict(venv, work=_work_folder(base), wheel=built_wheel)


def test_wheel_runs_notebook_01_without_the_checkout(colab_like):
    venv, py, env, work, timings = (colab_like[k] for k in ("venv", "py", "env", "work", "timings"))
    # the Colab set-up cell asks for the very file `pip wheel .` builds
    assert colab_like["wheel"].name == colab.wheel_name() and colab.wheel_url().endswith("/" + colab.wheel_name())
    names = zipfile.ZipFile(colab_like["wheel"]).namelist()
    assert "labkit/assets/digit_classifier.pt" in names, "the wheel lacks the feature network's weights"
    assert not [n for n in names if n.startswith(("tests/", "solutions/", "notebooks/", "benchmarks/"))]

    nb = nbformat.read(ROOT / "solutions" / "01_dcgan.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(  # where did everything come from?
        "import json, sys, labkit, labkit.metrics\n"
        "json.dump({'python': sys.executable, 'labkit': labkit.__file__, "
        "'weights': str(labkit.metrics.WEIGHTS_FILE)}, open('where.json', 'w'))"))
    nbformat.write(nb, work / "01_dcgan.ipynb")
    params = [a for k, v in QUICK.items() for a in ("-p", k, str(v))]
    _run([venv / "bin" / "papermill", "01_dcgan.ipynb", "01_dcgan.out.ipynb", "-k", "python3", "--no-progress-bar",
          *params], timings, "papermill 01_dcgan", cwd=work, env=env, timeout=600)
    print("Colab-style install, seconds per step:", json.dumps(timings))

    out = nbformat.read(work / "01_dcgan.out.ipynb", as_version=4)
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for c in out.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    where = json.loads((work / "where.json").read_text())
    assert Path(where["python"]).parent == venv / "bin", where
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True, cwd=work).strip())
    assert Path(where["labkit"]).is_relative_to(site), f"labkit was not imported from the installed wheel: {where}"
    assert Path(where["weights"]).is_file() and Path(where["weights"]).is_relative_to(site), where
    assert (work / "runs" / "01_dcgan" / "q4_samples.png").is_file(), "defaults: figures go to ./runs/01_dcgan"
    assert (work / "data" / "labkit-cache").is_dir(), "defaults: the data chain uses ./data"
    images = [o for c in out.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "the executed notebook should show its figures"


# --------------------------------------------------------------------------- the wheel alone: the command line


@pytest.fixture(scope="module")
def wheel_only(tmp_path_factory, built_wheel):
    """The wheel with its runtime dependencies only, in a venv that had torch + torchvision: no extra at all."""
    base = tmp_path_factory.mktemp("wheel-only")
    # labkit's runtime dependencies linked in too: resolving them from an index is colab_like's business
    venv = _fresh_venv(base, {}, also=("numpy", "matplotlib", "tqdm", "ipywidgets"))
    _run([venv["py"], "-m", "pip", "install", "-q", "-c", venv["constraints"], built_wheel], venv["timings"],
         "pip install wheel", env=venv["env"], cwd=base)
    return dict(venv, work=_work_folder(base))


def test_wheel_alone_runs_the_command_line(wheel_only):
    """fetch-data, train and evaluate work from the wheel alone; the instructors' commands name their extra."""
    py, env, work = wheel_only["py"], wheel_only["env"], wheel_only["work"]
    absent = _run([py, "-c", "import importlib.util as u; print([m for m in ('papermill', 'nbformat', 'nbclient', "
                   "'nbconvert', 'ipykernel', 'jupyterlab') if u.find_spec(m)])"], {}, "check", env=env, cwd=work)
    assert absent.stdout.strip() == "[]", f"not a wheel-only install: {absent.stdout}"
    transcript: list[str] = []

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        start = time.monotonic()
        done = subprocess.run([str(wheel_only["venv"] / "bin" / "labkit"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)
        lines = (done.stdout + done.stderr).strip().splitlines()
        transcript.append(f"$ labkit {' '.join(args)}   # exit {done.returncode}, {time.monotonic() - start:.0f} s\n"
                          + "\n".join(lines[:3] + (["..."] + lines[-3:] if len(lines) > 6 else lines[3:])))
        if ok:
            assert done.returncode == 0, f"labkit {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done

    try:
        assert "fetch-data" in cli("--help").stdout
        assert _run([py, "-m", "labkit", "--help"], {}, "python -m labkit", env=env, cwd=work).returncode == 0
        assert "source: existing" in cli("fetch-data").stdout
        assert "run saved in runs/dcgan" in cli("train", "--epochs", "1", "--n-train", "256", "--run-dir", "runs/dcgan",
                                                "--device", "cpu").stdout
        assert "FID" in cli("evaluate", "runs/dcgan", "--n", "1000", "--device", "cpu").stdout
        assert json.loads((work / "runs" / "dcgan" / "metrics.json").read_text())["model"]["n"] == 1000
        for args in (["handouts", "--check"], ["run", "--profile", "quick"], ["grade", "x.ipynb", "--out", "g"],
                     ["grade-one", "x.ipynb", "--out", "g"]):
            done = cli(*args, ok=False)
            said = (done.stdout + done.stderr).strip()
            # one line, naming the extra (it may go on to say which modules are missing)
            assert done.returncode != 0 and len(said.splitlines()) == 1, said
            assert said.startswith(f"labkit {args[0]} needs: pip install 'labkit[grade]'"), said
    finally:
        print("\n\n".join(transcript))


# --------------------------------------------------------------------------- ipywidgets 7, as on Colab


@pytest.fixture(scope="module")
def widgets7(tmp_path_factory, built_wheel):
    """A Colab-like venv: torch, torchvision, ipywidgets 7.7.1 on ipykernel 6; then the set-up cell's own install.

    widgetsnbextension (which would bring the classic notebook server) only serves the classic notebook's
    JavaScript, so ipywidgets is installed without it: the kernel side is what is tested here.
    """
    base = tmp_path_factory.mktemp("widgets7")
    # this project's matplotlib, numpy, tqdm and ipykernel's dependencies linked in; then Colab's ipykernel 6
    venv = _fresh_venv(base, {}, also=("numpy", "matplotlib", "tqdm", "ipykernel"))
    py, env, timings = venv["py"], venv["env"], venv["timings"]
    _run([py, "-m", "pip", "install", "-q", "-c", venv["constraints"], "ipykernel<7", "ipython-genutils",
          "jupyterlab-widgets<3"], timings, "pip install Colab's set", env=env, cwd=base)
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "ipywidgets==7.7.1"], timings, "pip install ipywidgets 7",
         env=env, cwd=base)
    freeze = [py, "-m", "pip", "list", "--format=json"]
    before = {p["name"].lower(): p["version"] for p in json.loads(_run(freeze, timings, "pip list", env=env).stdout)}
    # the set-up cell's own pip call, with the built wheel in place of the release URL
    options, (req, *others) = _colab_install(colab.setup_cell_source())
    _run([py, "-m", "pip", "install", *options, built_wheel, *map(str, others)], timings, "the set-up cell's install",
         env=env, cwd=base)
    after = {p["name"].lower(): p["version"] for p in json.loads(_run(freeze, timings, "pip list", env=env).stdout)}
    kernels = base / "jupyter" / "kernels" / "labkit-widgets7"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ipywidgets 7", "language": "python"}))
    return dict(venv, before=before, after=after, jupyter_path=base / "jupyter")


WIDGETS7_CELLS = [
    "import ipywidgets, torch\nfrom labkit import models, widgets\nfrom labkit.train import History\n"
    "assert ipywidgets.__version__.startswith('7.'), ipywidgets.__version__\n"
    "def history(value):\n"
    "    return History(d_loss=[1.0, 0.9], g_loss=[2.0, 1.9], d_real=[0.5] * 2, d_fake=[0.5] * 2,\n"
    "                   g_grad_norm=[1.0] * 2, gp=[0.0] * 2, epoch_of_step=[1, 1],\n"
    "                   samples=[torch.full((4, 1, 32, 32), value)], epoch_seconds=[1.0], epoch_images=[64])\n"
    "runs = {4: history(-0.5), 16: history(0.5)}\n"
    "torch.manual_seed(0)\nG = models.DCGANGenerator(nz=8, ngf=8, n_classes=10)",
    # build and update: the slider redraws the Output area
    "nz = widgets.nz_explorer(runs, n=4, force='widget')\n"
    "png = nz.output.outputs[0]['data']['image/png']\nnz.slider.value = 16\n"
    "assert nz.renders == 2 and nz.output.outputs[0]['data']['image/png'] != png",
    "cls = widgets.class_explorer(G, n=2, force='widget')\ncls.slider.value = 3\nassert cls.renders == 2",
    "walk = widgets.latent_walk(G, steps=3, force='both')\nwalk.controls[0].value = 1.0\n"
    "assert walk.renders == 2 and walk.static_figure is not None",
    # the static figure, rendered
    "fig = widgets.nz_explorer(runs, n=4, force='static')",
    # nbclient drives this kernel (ipykernel 6): it finds out by itself that nobody watches
    "from labkit import frontend\nassert frontend.frontend() == 'headless', frontend.signals()\n"
    "print('ok', ipywidgets.__version__)",
]


def test_explorers_work_with_ipywidgets_7_in_a_kernel(widgets7, monkeypatch):
    """Colab's ipywidgets 7: the set-up cell keeps it, and the explorers build, update and draw there."""
    before, after = widgets7["before"], widgets7["after"]
    kept = {n: before[n] for n in ("torch", "torchvision", "ipywidgets", "ipykernel", "numpy", "matplotlib")}
    assert {n: after[n] for n in kept} == kept, "the set-up cell changed what Colab had"
    assert after["labkit"] == labkit.__version__ and before["ipywidgets"] == "7.7.1"

    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JUPYTER_PATH", str(widgets7["jupyter_path"]))
    monkeypatch.delenv("LABKIT_FRONTEND", raising=False)
    for name, value in widgets7["env"].items():
        if name.startswith("LABKIT_") or name in ("PATH", "VIRTUAL_ENV"):
            monkeypatch.setenv(name, value)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in WIDGETS7_CELLS])
    nbclient.NotebookClient(nb, kernel_name="labkit-widgets7", timeout=300).execute()
    mimes = [set(o.get("data", {})) for c in nb.cells for o in c.outputs]
    widget_view = "application/vnd.jupyter.widget-view+json"
    assert [widget_view in m for m in mimes[:3]] == [True] * 3, mimes  # nz, class, walk: shown as widgets
    assert "image/png" in mimes[3] and "image/png" in mimes[4], mimes  # the walk's static figure; the static nz
    assert nb.cells[-1].outputs[0]["text"].strip() == "ok 7.7.1"
