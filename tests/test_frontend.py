"""Who watches a kernel: decided from what the kernel sees, on any OS, with or without /proc.

Fake kernels stand in for JupyterLab, JupyterHub, VS Code, Colab and the headless
runners (their requests copy what labkit.frontend's docstring measured); real
nbclient and papermill kernels, with ``LABKIT_FRONTEND`` unset and no ``/proc``
to read, must still be told headless (static figures).
"""

from __future__ import annotations

import json
import os
import sys
import types

import nbformat
import pytest

from labkit import frontend, progress, runner

SESSION = "c4133cd4-914c4f9c54ac619ff01f4640"


def execute_request(msg_id: str, allow_stdin: bool, metadata: dict | None = None) -> dict:
    return {"header": {"msg_id": msg_id, "msg_type": "execute_request", "session": SESSION, "version": "5.4"},
            "metadata": metadata or {}, "content": {"code": "...", "silent": False, "store_history": True,
                                                     "allow_stdin": allow_stdin, "stop_on_error": True}}


# What each client sent, as measured (see labkit/frontend.py): JupyterLab's browser, nbclient (and so papermill, nbval).
JUPYTERLAB = execute_request("af9f121f-855e-4a7d-8275-a320d209b022", True,
                             {"trusted": False, "deletedCells": [], "recordTiming": False, "cellId": "34a90426"})
NBCLIENT = execute_request(f"{SESSION}_4242_3", False)
OTHER = execute_request("0f8e3c1a-5b1e-4b8e-9d1a-3c2b1a0f9e8d", True)  # a front end that says nothing more


class _Kernel:
    def __init__(self, request: dict) -> None:
        self.request = request

    def get_parent(self, channel: str = "shell") -> dict:
        return self.request


class ZMQInteractiveShell:  # the class name of ipykernel's shell, which frontend.in_kernel looks for
    def __init__(self, request: dict, user_ns: dict | None = None) -> None:
        self.kernel = _Kernel(request)
        self.user_ns = user_ns or {}


class ColabShell(ZMQInteractiveShell):  # google.colab._shell.Shell subclasses ipykernel's shell
    pass


@pytest.fixture
def kernel(monkeypatch, tmp_path):
    """Install a fake kernel: ``kernel(request, parent=cmdline or None, user_ns=..., shell_class=...)``.

    ``parent=None`` leaves no /proc to read (macOS, Windows, a sandbox); a string is the parent's command line.
    """
    monkeypatch.delenv(frontend.ENV, raising=False)
    for name in list(os.environ):
        if name.startswith(("JPY_", "JUPYTERHUB_", "BINDER_")):
            monkeypatch.delenv(name)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("JPY_PARENT_PID", "4242")

    def install(request: dict, parent: str | None = None, user_ns: dict | None = None,
                shell_class=ZMQInteractiveShell):
        proc = tmp_path / "proc"
        if parent is not None:
            (proc / str(os.getppid())).mkdir(parents=True, exist_ok=True)
            (proc / str(os.getppid()) / "cmdline").write_bytes(parent.replace(" ", "\0").encode() + b"\0")
        monkeypatch.setattr(frontend, "PROC_ROOT", str(proc))
        shell = shell_class(request, user_ns)
        monkeypatch.setattr(frontend, "_shell", lambda: shell)
        return shell

    return install


# --------------------------------------------------------------------------- live front ends


def test_jupyterlab_without_proc_is_live(kernel, monkeypatch):
    """macOS, Windows: no /proc at all. JupyterLab's own request and server still say so."""
    kernel(JUPYTERLAB, parent=None)
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/student/notebooks/01_dcgan.ipynb")
    assert frontend._parent_cmdline() is None
    assert frontend.frontend() == "notebook" and frontend.interactive() and frontend.widget_mode() == "widget"
    assert len(frontend.signals()["live"]) == 2 and not frontend.signals()["headless"]


def test_jupyterhub_singleuser_parent_is_live(kernel):
    kernel(OTHER, parent="/opt/conda/bin/python3.11 /opt/conda/bin/jupyterhub-singleuser --ip=0.0.0.0 --port=8888")
    assert frontend.frontend() == "notebook"
    assert "jupyterhub-singleuser" in frontend.signals()["live"][0]


def test_jupyterhub_and_binder_variables_are_live(kernel, monkeypatch):
    kernel(OTHER, parent=None)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://hub:8081/hub/api")
    assert frontend.frontend() == "notebook"


def test_vscode_is_live(kernel):
    kernel(OTHER, parent=None, user_ns={"__vsc_ipynb_file__": "c:\\Users\\student\\01_dcgan.ipynb"})
    assert frontend.frontend() == "notebook"


def test_colab_is_live(kernel):
    kernel(OTHER, parent=None, shell_class=ColabShell)
    assert frontend.in_kernel()
    sys.modules["google.colab"] = types.ModuleType("google.colab")  # removed again by the fixture
    assert frontend.frontend() == "notebook"


# --------------------------------------------------------------------------- headless runners


def test_papermill_parent_is_headless(kernel, monkeypatch):
    kernel(OTHER, parent="/venv/bin/python /venv/bin/papermill 01_dcgan.ipynb out.ipynb -p epochs 1")
    monkeypatch.setenv("JPY_SESSION_NAME", "inherited from the notebook papermill was started in")
    assert frontend.frontend() == "headless" and frontend.widget_mode() == "static"
    assert "papermill" in frontend.signals()["headless"][0]


def test_nbclient_request_is_headless_without_proc(kernel, monkeypatch):
    """nbclient, papermill and nbval forbid input() and drive the kernel they launched: headless on any OS."""
    kernel(NBCLIENT, parent=None)
    monkeypatch.setenv("JPY_SESSION_NAME", "inherited")  # headless evidence wins over live evidence
    assert frontend.frontend() == "headless"
    assert len(frontend.signals()["headless"]) == 2


def test_the_launchers_message_id_alone_says_headless(kernel, monkeypatch):
    kernel(execute_request(f"{SESSION}_4242_7", True), parent=None)
    assert frontend.frontend() == "headless"
    monkeypatch.setenv("JPY_PARENT_PID", "999")  # a client other than the launcher: no verdict from the id
    assert frontend.frontend() == "unknown"


def test_a_kernel_that_cannot_tell_shows_both(kernel, monkeypatch):
    kernel(OTHER, parent=None)
    assert frontend.frontend() == "unknown" and frontend.widget_mode() == "both" and not frontend.interactive()
    monkeypatch.delenv("LABKIT_PROGRESS", raising=False)
    assert progress.choose_mode() == "text"


# --------------------------------------------------------------------------- the override


@pytest.mark.parametrize("value, kind", [("live", "notebook"), ("notebook", "notebook"), ("headless", "headless"),
                                         (" Headless ", "headless"), ("terminal", "terminal")])
def test_labkit_frontend_overrides_every_signal(kernel, monkeypatch, value, kind):
    kernel(NBCLIENT if kind == "notebook" else JUPYTERLAB, parent=None)
    monkeypatch.setenv("LABKIT_FRONTEND", value)
    assert frontend.frontend() == kind


def test_labkit_frontend_rejects_unknown_values(kernel, monkeypatch):
    kernel(JUPYTERLAB)
    monkeypatch.setenv("LABKIT_FRONTEND", "gui")
    with pytest.raises(ValueError, match="LABKIT_FRONTEND must be one of"):
        frontend.frontend()


def test_headless_env_for_labkits_own_runners():
    env = frontend.headless_env({"PATH": "/bin", "LABKIT_FRONTEND": "live"})
    assert env == {"PATH": "/bin", "LABKIT_FRONTEND": "headless"} and frontend.ENV == "LABKIT_FRONTEND"
    assert frontend.headless_env()["PATH"] == os.environ["PATH"]


def test_make_run_tells_its_kernels_they_are_headless(monkeypatch, tmp_path):
    import papermill

    seen = {}
    monkeypatch.delenv("LABKIT_FRONTEND", raising=False)
    monkeypatch.setattr(runner, "declared_parameters", lambda nb: set())
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: seen.update(env=os.environ.get(frontend.ENV)))
    assert runner.execute(tmp_path / "x.ipynb", tmp_path, {}, None).ok
    assert seen["env"] == "headless" and frontend.ENV not in os.environ


# --------------------------------------------------------------------------- real kernels


PROBE = ("from labkit import frontend\n"
         "frontend.PROC_ROOT = '/nonexistent'  # as on macOS or Windows: the parent process is not visible\n"
         "import json; print(json.dumps([frontend.frontend(), frontend.signals()]))")


def _probe_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _verdict(nb: nbformat.NotebookNode) -> tuple[str, dict]:
    (out,) = nb.cells[0].outputs
    return tuple(json.loads(out["text"]))


def test_real_nbclient_kernel_is_headless_without_proc_or_override(monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.delenv("LABKIT_FRONTEND", raising=False)
    nb = _probe_notebook()
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    kind, found = _verdict(nb)
    assert kind == "headless", found
    assert any("allow_stdin=False" in s for s in found["headless"]), found
    assert any("launched the kernel" in s for s in found["headless"]), found


def test_real_papermill_kernel_is_headless_without_proc_or_override(monkeypatch, tmp_path):
    papermill = pytest.importorskip("papermill")
    monkeypatch.delenv("LABKIT_FRONTEND", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "as if papermill were started from a JupyterLab terminal")
    nbformat.write(_probe_notebook(), tmp_path / "probe.ipynb")
    papermill.execute_notebook(str(tmp_path / "probe.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    kind, found = _verdict(nbformat.read(tmp_path / "out.ipynb", as_version=4))
    assert kind == "headless" and len(found["headless"]) == 2 and found["live"], found
