"""The student's real path: JupyterLab in a real browser, run all cells, move the sliders.

papermill runs the notebooks headless, where the explorers fall back to static
figures; this test is the one place where the live widgets are seen working.
It drives Debian's Chromium (``/usr/bin/chromium``; ``make browser`` installs
it) with Python Playwright, on a JupyterLab server started with `make lab`'s own
command (read with ``make -n lab`` and checked: localhost only, token auth,
``notebooks/``; run in the test's own folder, with a free port and a random token)
and the project's kernel ("Python 3 (labkit)"), on copies of the notebooks set
to quick parameters:

- each notebook is run through the UI (Run > Run All Cells) until the kernel is
  idle, and then saved from the UI so its outputs can be read back;
- 01: the nz slider (focus its handle, arrow keys) changes the shown samples
  and curves, and the latent walk's t slider moves along the walk;
- 02: the class slider changes the shown digits, and so does the latent walk;
- any console error from the widgets, or "Error displaying widget" on the
  page, fails the test;
- the handouts, untouched, show "not done yet" / ``NotImplementedError``
  messages naming each exercise and no traceback from inside labkit.

A screenshot of each step goes into the test's tmp_path and into
``$LABKIT_BROWSER_SHOTS`` (default ``/tmp/labkit-browser-shots/``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LABKIT_DATA", ROOT / "data")).resolve()
CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("LABKIT_BROWSER_SHOTS", "/tmp/labkit-browser-shots"))
KERNEL_DISPLAY_NAME = "Python 3 (labkit)"  # what `make setup` registers; see the Makefile
# The smallest settings the notebooks accept that still train every run they show.
# The default runs take 60 steps: after only a few, G's eval-mode output is a flat grey in which the classes
# and the steps of the latent walk differ by a grey level or two; after 60 they differ visibly (G draws no
# digits yet). The ablation runs behind the nz slider take 2 steps each: they differ enough.
QUICK = {
    "01_dcgan": dict(epochs=1, n_train=1920, batch_size=32, ngf=8, ndf=8, n_eval=100, ablation_images=64),
    "02_cgan": dict(epochs=1, n_train=1920, batch_size=32, ngf=8, ndf=8, n_eval=100, ablations=False),
}
RUN_ALL_TIMEOUT = 240  # seconds for one notebook's Run All through the UI
WIDGET_ERRORS = re.compile(r"widget|model not found|jupyter-widgets|ipywidgets", re.I)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (as root it runs "
                    f"`apt-get install -y chromium`), or set LABKIT_CHROMIUM to a Chromium executable.",
                    pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python Playwright is missing: it is part of the dev extra (`pip install -e '.[dev]'`, "
                    "or `make setup`)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quick_copy(source: Path, dest: Path, run_dir: Path) -> None:
    nb = load_notebook_node(str(source))  # papermill's loader: adds the metadata its parameterizer reads
    params = dict(QUICK[source.stem], data_root=str(DATA), run_dir=str(run_dir))
    nb = parameterize_notebook(nb, params)  # papermill's "injected-parameters" cell after `parameters`
    nbformat.write(nb, dest)


def _served_path(kind: str, stem: str) -> str:
    return f"solutions/{stem}.ipynb" if kind == "solutions" else f"{stem}.ipynb"


def _make_lab_command() -> list[str]:
    """The JupyterLab command `make lab` runs (read with `make -n lab`): localhost only, token auth, notebooks/."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(["make", "-n", "lab"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = [line for line in dry.stdout.splitlines() if "jupyter lab" in line]
    assert len(lines) == 1, f"`make lab` should run one `jupyter lab`:\n{dry.stdout}"
    cmd = shlex.split(lines[0])
    assert cmd[0].endswith("jupyter") and cmd[1] == "lab", cmd
    assert "--ip" in cmd and cmd[cmd.index("--ip") + 1] == "127.0.0.1", f"`make lab` must bind to localhost: {cmd}"
    assert not [a for a in cmd if re.search(r"token=|password|disable_check_xsrf", a, re.I)], \
        f"`make lab` must keep JupyterLab's token authentication: {cmd}"
    assert cmd[-1].rstrip("/") == "notebooks", f"`make lab` should open notebooks/: {cmd}"
    return [sys.executable, "-m", "jupyter", *cmd[1:]]  # this venv's jupyter, as .venv/bin/jupyter is


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free localhost port with a random token, serving quick copies."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "root"
    run_dir = home / "runs"  # shared: the handouts reload the runs the solutions trained
    # `make lab` serves notebooks/ (its path argument becomes the server's root): the handouts, and here
    # the solutions in a subfolder of it
    served = root / "notebooks"
    for kind in ("solutions", "notebooks"):
        for stem in QUICK:
            copy = served / _served_path(kind, stem)
            copy.parent.mkdir(parents=True, exist_ok=True)
            _quick_copy(ROOT / kind / f"{stem}.ipynb", copy, run_dir)
    settings = home / "user-settings"
    # The news prompt is a notification toast that could cover a cell; nothing else is changed.
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_FRONTEND"}  # the kernel must guess "notebook"
    # The CPU fast path's probe times each new model for a few seconds (tests/test_fastpath.py covers it);
    # here the runs take 2 to 60 steps and the probe would cost more than all of them.
    env["LABKIT_FAST_PATH"] = "off"
    env.update(JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), PYTHONUNBUFFERED="1")
    log = open(home / "jupyter.log", "w")
    server = subprocess.Popen(  # `make lab`'s own command, run in the test's folder; port and token are the test's
        _make_lab_command() + [f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                               "--LabApp.news_url=None",
                               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (home / "jupyter.log").read_text()[-3000:])
            time.sleep(0.3)
        # token auth is on: without the token the API refuses
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/api/contents", timeout=5)
        yield dict(url=url, token=token, served=served, home=home)
    finally:
        try:  # a clean stop: the server shuts its kernels down first
            urllib.request.urlopen(urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST"),
                                   timeout=10)
        except OSError:
            server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# --------------------------------------------------------------------------- page helpers


class Shots:
    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.stable = folder, SHOTS / name
        shutil.rmtree(self.stable, ignore_errors=True)
        self.stable.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def take(self, target, label: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{label}.png"
        target.screenshot(path=str(path))
        shutil.copy(path, self.stable / path.name)
        return path


def _prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-Notebook .jp-CodeCell .jp-InputPrompt",
                                     "els => els.map(e => e.textContent.trim())")


def _run_all(page, timeout: float) -> float:
    """Run > Run All Cells from the menu bar; wait until no cell is queued or running and the kernel is idle."""
    start = time.monotonic()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    page.wait_for_function("() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]"
                           ".some(e => e.textContent.includes('*'))", timeout=30_000)
    idle_since = None
    while time.monotonic() - start < timeout:
        busy = any("*" in p for p in _prompts(page))
        status = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
        if not busy and status == "idle":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1.5:
                return time.monotonic() - start
        else:
            idle_since = None
        time.sleep(0.5)
    pytest.fail(f"Run All did not finish within {timeout} s; prompts: {_prompts(page)}")


def _save(page, path: Path) -> nbformat.NotebookNode:
    before = path.stat().st_mtime_ns
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before:
        if time.monotonic() > deadline:
            pytest.fail("the notebook was not saved from the UI (Ctrl+S)")
        time.sleep(0.2)
    time.sleep(0.5)
    return nbformat.read(path, as_version=4)


def _explorer(page, label: str, index: int = 0):
    """The explorer (VBox: sliders above an Output) whose slider is labelled ``label``."""
    box = page.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator(".widget-slider .widget-label", has_text=re.compile(f"^{label}$")))
    return box.nth(index)


def _slider(explorer, label: str):
    return explorer.locator(".widget-slider").filter(has=explorer.page.locator(".widget-label",
                                                                               has_text=re.compile(f"^{label}$")))


def _image(explorer) -> bytes:
    src = explorer.locator(".widget-output img").first.get_attribute("src")
    assert src and src.startswith("data:image/png;base64,"), f"no PNG in the explorer's output: {src!r:.80}"
    return base64.b64decode(src.split(",", 1)[1])


def _changed_share(a: bytes, b: bytes) -> float:
    """Share of the pixels below the title that differ by more than 2 grey levels between two PNGs."""
    import numpy as np
    from PIL import Image

    x, y = (np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16) for png in (a, b))
    if x.shape != y.shape:
        return 1.0
    top = int(0.15 * x.shape[0])  # the title says which value is shown; the picture itself must change too
    return float((np.abs(x[top:] - y[top:]) > 2).mean())


def _readout(slider) -> str:
    return (slider.locator(".widget-readout").text_content() or "").strip()


def _press(explorer, label: str, key: str, old_image: bytes) -> bytes:
    """Focus the slider's handle, press ``key``, wait for the Output to show a new picture."""
    slider = _slider(explorer, label)
    handle = slider.locator(".noUi-handle")
    handle.focus()
    handle.press(key)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            image = _image(explorer)
        except AssertionError:
            image = b""
        if image and image != old_image:
            return image
        time.sleep(0.2)
    pytest.fail(f"moving the {label} slider with {key} did not change the picture (readout {_readout(slider)})")


def _walk_slider(page, explorer, shots: Shots, label: str, keys: int, name: str) -> list[str]:
    """Move ``label`` right ``keys`` times and back: each step a new picture, back to the first one exactly."""
    explorer.scroll_into_view_if_needed()
    slider = _slider(explorer, label)
    first = _image(explorer)
    readouts, images = [_readout(slider)], [first]
    shots.take(explorer, f"{name}-{label}-{readouts[0]}")
    for _ in range(keys):
        images.append(_press(explorer, label, "ArrowRight", images[-1]))
        readouts.append(_readout(slider))
        shots.take(explorer, f"{name}-{label}-{readouts[-1]}")
    assert len(set(readouts)) == len(readouts), f"the {label} readout did not follow the keys: {readouts}"
    assert len(set(images)) == len(images), f"two {label} values showed the same picture: {readouts}"
    shares = [_changed_share(a, b) for a, b in zip(images, images[1:])]
    print(f"{name} {label} {readouts}: share of changed pixels per step {[round(x, 4) for x in shares]}")
    assert min(shares) > 0.01, f"moving {label} ({readouts}) changed only the title, not the picture: {shares}"
    image = images[-1]
    for _ in range(keys):
        image = _press(explorer, label, "ArrowLeft", image)
    assert _readout(slider) == readouts[0]
    assert image == first, f"back at {label} = {readouts[0]}, the picture is not the one shown first"
    return readouts


def _text_outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", "") if "text" in out else out.get("data", {}).get("text/plain", ""))
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


# --------------------------------------------------------------------------- the test


CASES = [(kind, stem) for kind in ("solutions", "notebooks") for stem in QUICK]


@pytest.mark.parametrize("kind, stem", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_notebook_in_jupyterlab(kind, stem, lab, browser, tmp_path):
    console: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    shots = Shots(tmp_path, f"{kind}-{stem}")
    try:
        # a workspace of its own: JupyterLab would otherwise reopen the notebooks of the tests before
        page.goto(f"{lab['url']}/lab/workspaces/{kind}-{stem}/tree/{_served_path(kind, stem)}"
                  f"?reset&token={lab['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        kernel = page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName").first
        try:
            page.wait_for_function(
                "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                " const k = document.querySelector('.jp-NotebookPanel-toolbar .jp-Toolbar-kernelName');"
                " return s && s.dataset.status === 'idle' && k && !/No Kernel|Starting/.test(k.textContent); }",
                timeout=60_000)
        finally:
            shots.take(page, "opened")
        assert KERNEL_DISPLAY_NAME in kernel.inner_text(), \
            f"the notebook opened on kernel {kernel.inner_text()!r}, not the project's {KERNEL_DISPLAY_NAME!r}"

        seconds = _run_all(page, RUN_ALL_TIMEOUT)
        print(f"{kind}/{stem}: Run All Cells took {seconds:.0f} s through the UI")
        nb = _save(page, lab["served"] / _served_path(kind, stem))
        shots.take(page, "ran-all")
        assert not _errors(nb), f"cells failed: {_errors(nb)}"
        unrun = [c.source[:60] for c in nb.cells if c.cell_type == "code" and c.execution_count is None]
        assert not unrun, f"Run All left cells unrun: {unrun}"
        text = _text_outputs(nb)
        assert "Traceback" not in text and "labkit/" not in text, "a traceback from inside labkit reached the student"

        if kind == "notebooks":  # the untouched handout: one clear message per exercise, pointing at it
            exercises = [c.metadata["labkit"]["exercise"] for c in nb.cells
                         if c.metadata.get("labkit", {}).get("exercise")]
            assert exercises
            for exercise in exercises:
                assert f"exercise {exercise} not done yet" in text, f"no 'not done yet' message for {exercise}"
                assert f"NotImplementedError: exercise {exercise}: not done yet" in text
            check = page.locator(".jp-CodeCell", has=page.locator(".jp-OutputArea-output",
                                                                  has_text="not done yet")).first
            check.scroll_into_view_if_needed()
            check.wait_for(state="visible")
            page.wait_for_timeout(1000)  # the windowed notebook draws the cells around it
            shots.take(check, "not-done-yet")  # the check cell under the first exercise, with its message

        page.wait_for_selector(".jp-OutputArea-output .widget-slider .noUi-handle", timeout=30_000)
        keys = 2 if kind == "solutions" else 1  # the handouts show the same explorers: one step each is enough
        if stem == "01_dcgan":
            nz = _walk_slider(page, _explorer(page, "nz"), shots, "nz", keys=keys, name="nz")
            assert nz[:2] == ["2", "8"], f"nz slider readouts {nz}"
            _walk_slider(page, _explorer(page, "t"), shots, "t", keys=keys, name="walk")
        else:
            digits = _walk_slider(page, _explorer(page, "class"), shots, "class", keys=keys + 1, name="class")
            assert digits == [str(c) for c in range(keys + 2)]
            walk = _explorer(page, "t")
            _walk_slider(page, walk, shots, "t", keys=keys, name="walk")
            _walk_slider(page, walk, shots, "class", keys=1, name="walk")

        body = page.locator("body").inner_text()
        for bad in ("Error displaying widget", "model not found"):
            assert bad not in body, f"the page shows {bad!r}"
        widget_errors = [m for m in console if WIDGET_ERRORS.search(m)]
        assert not widget_errors, "console errors from the widgets:\n" + "\n".join(widget_errors)
    finally:
        (tmp_path / "console.txt").write_text("\n".join(console))
        shutil.copy(tmp_path / "console.txt", shots.stable / "console.txt")
        context.close()
        _shutdown_kernels(lab)


def _shutdown_kernels(lab) -> None:
    """The notebook's kernel outlives the page: stop every kernel, as closing the notebook would."""
    api = f"{lab['url']}/api/kernels"
    with urllib.request.urlopen(f"{api}?token={lab['token']}", timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        request = urllib.request.Request(f"{api}/{k['id']}?token={lab['token']}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()
