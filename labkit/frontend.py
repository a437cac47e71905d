"""Where is this code running, and is anybody watching?

Widgets and live progress bars only make sense when a person looks at them:
JupyterLab, Jupyter Notebook, VS Code, Colab, or a terminal. Under papermill,
nbclient, nbval or pytest a kernel runs with nobody watching, so labkit draws
static figures and prints plain progress lines there instead.
"""

from __future__ import annotations

import os
import sys

KINDS = ("notebook", "terminal", "headless")
_FRONT_ENDS = ("jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyter_server", "jupyterlab",
               "vscode", "code-server")


def _parent_cmdline() -> str:
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def in_kernel() -> bool:
    """True inside a Jupyter (ZMQ) kernel, watched or not."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def frontend() -> str:
    """``"notebook"`` (a live notebook front end), ``"terminal"`` (a tty) or ``"headless"``.

    ``LABKIT_FRONTEND`` overrides the guess, e.g. for a front end it does not know.
    """
    forced = os.environ.get("LABKIT_FRONTEND", "").strip().lower()
    if forced:
        if forced not in KINDS:
            raise ValueError(f"LABKIT_FRONTEND must be one of {KINDS}, got {forced!r}")
        return forced
    if in_kernel():
        if "google.colab" in sys.modules:
            return "notebook"
        # A kernel started by a notebook server has that server as parent;
        # papermill, nbclient and pytest start kernels themselves.
        parent = _parent_cmdline()
        return "notebook" if any(name in parent for name in _FRONT_ENDS) else "headless"
    return "terminal" if sys.stderr.isatty() else "headless"


def interactive() -> bool:
    """True when widgets will be seen and used (a live notebook front end)."""
    return frontend() == "notebook"
