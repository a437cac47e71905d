"""Where is this code running, and is anybody watching?

Widgets and live progress bars only make sense when a person looks at them:
JupyterLab, Jupyter Notebook 7, VS Code, JupyterHub, Binder, Colab (on Linux,
macOS or Windows), or a terminal. Under papermill, nbclient, nbval or pytest a
kernel runs with nobody watching, so labkit draws static figures and prints
plain progress lines there instead. :func:`frontend` decides from what the
*kernel* can see, not from the operating system.

What differs, measured on this project's venv (ipykernel 7.4, jupyter_client
8.10, nbclient 0.11, papermill 2.7, nbval 0.11, JupyterLab 4.6 driven by
Chromium; each run dumped the kernel's environment and the header, metadata and
content of the ``execute_request`` being run):

================================  =================  ==========================  ==================  ================
the kernel was run by             ``allow_stdin``    ``msg_id`` of the request   request metadata    ``JPY_SESSION_NAME``
================================  =================  ==========================  ==================  ================
papermill (CLI and API)           False              ``<session>_<pid>_<n>``     ``{}``              unset
nbclient, ``jupyter execute``     False              ``<session>_<pid>_<n>``     ``{}``              unset
``jupyter nbconvert --execute``   False              ``<session>_<pid>_<n>``     ``{}``              unset
nbval (``pytest --nbval-lax``)    False              ``<session>_<pid>_<n>``     ``{}``              unset
JupyterLab (Run All, Chromium)    True               a UUID (the browser's)      ``cellId``, ...     the notebook
================================  =================  ==========================  ==================  ================

- ``allow_stdin`` is False because nbclient sets ``kc.allow_stdin = False`` and
  nbval passes ``allow_stdin=False``: nobody is there to answer ``input()``.
  Every live front end lets ``input()`` ask the person (True).
- ``<pid>`` in the message id is the pid of the Python ``jupyter_client`` that
  sent the request, and it equals the kernel's ``JPY_PARENT_PID`` (set by
  ``jupyter_client`` for every kernel it launches, the server's kernels too):
  the process that started the kernel also drives it. A server never sends
  execute requests of its own; it forwards the browser's, whose ids are UUIDs.
- Every kernel had ``JPY_PARENT_PID``, ``MPLBACKEND`` and the same ``TERM``, so
  these tell nothing. nbval adds ``PYTEST_*`` variables and papermill's CLI
  ``PYDEVD_DISABLE_FILE_VALIDATION``; neither holds for the other runners.
- ``JPY_SESSION_NAME`` is set by jupyter_server (JupyterLab, Notebook 7, and so
  JupyterHub's ``jupyterhub-singleuser`` and Binder) for the kernels of its
  sessions; JupyterLab's requests carry ``cellId`` in their metadata.
- Not measured here (no such front end on this machine): Colab imports
  ``google.colab`` into the kernel; VS Code's Jupyter extension defines
  ``__vsc_ipynb_file__`` in the kernel's namespace; JupyterHub sets
  ``JUPYTERHUB_*`` variables and Binder ``BINDER_*``.
- On Linux ``/proc/<parent pid>/cmdline`` names the parent: ``papermill``,
  ``pytest``, ``jupyter-lab``, ``jupyterhub-singleuser``... It is one signal
  among the others, never needed: macOS and Windows have no ``/proc``.

The decision, in a kernel (first match wins):

1. ``LABKIT_FRONTEND`` set: ``live`` (or ``notebook``), ``headless``, ``terminal``.
2. Colab: live.
3. Headless evidence — the request forbids stdin, or its id says it came from
   the process that launched the kernel, or the parent process is a known
   headless runner: ``"headless"`` (static figures).
4. Live evidence — ``cellId`` in the request's metadata, ``JPY_SESSION_NAME``,
   VS Code's ``__vsc_ipynb_file__``, ``JUPYTERHUB_*`` / ``BINDER_*``, or a known
   server as parent process: ``"notebook"`` (live widgets).
5. Otherwise ``"unknown"``: the explorers show the live widget *and* its static
   figure, so a person sees sliders and a saved notebook keeps a picture.

Headless evidence comes first: a papermill started from a notebook's terminal
inherits that server's variables. Voilà runs notebooks through nbclient and so
looks headless; set ``LABKIT_FRONTEND=live`` there. labkit's own headless
runners (``python -m labkit run``, the grader, the test suite) set
``LABKIT_FRONTEND=headless`` themselves: :func:`headless_env`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

ENV = "LABKIT_FRONTEND"  #: the variable that overrides the guess
HEADLESS = "headless"  #: its value for labkit's own headless runners (see :func:`headless_env`)
KINDS = ("notebook", "terminal", "headless", "unknown")
_ALIASES = {"live": "notebook", "notebook": "notebook", "headless": "headless", "terminal": "terminal"}

#: Where the parent process's command line is read (Linux only; elsewhere the path does not exist).
PROC_ROOT = "/proc"
_HEADLESS_PARENTS = ("papermill", "nbclient", "pytest", "py.test", "nbconvert", "jupyter-execute", "jupyter_execute",
                     "nbval")
_LIVE_PARENTS = ("jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyter_server", "jupyterlab",
                 "jupyterhub-singleuser", "jupyterhub", "voila", "vscode", "code-server")
_LIVE_ENV_PREFIXES = ("JUPYTERHUB_", "BINDER_")
# jupyter_client's Session.msg_id: f"{session}_{pid}_{count}" (the browser's ids are UUIDs)
_CLIENT_MSG_ID = re.compile(r"^[0-9a-f-]+_(\d+)_\d+$")


def headless_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) with ``LABKIT_FRONTEND=headless``, for a kernel nobody watches."""
    return {**(os.environ if env is None else env), ENV: HEADLESS}


def _parent_cmdline() -> str | None:
    """The parent process's command line, or None where ``/proc`` cannot tell (macOS, Windows, a sandbox)."""
    try:
        with open(os.path.join(PROC_ROOT, str(os.getppid()), "cmdline"), "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _shell():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def in_kernel() -> bool:
    """True inside a Jupyter (ZMQ) kernel, watched or not; Colab's shell subclasses ipykernel's."""
    shell = _shell()
    return shell is not None and any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


def _request() -> dict:
    """The message the kernel is handling now (an ``execute_request`` while a cell runs), or {}."""
    kernel = getattr(_shell(), "kernel", None)
    try:
        parent = kernel.get_parent("shell")  # ipykernel >= 6
    except Exception:
        parent = getattr(kernel, "_parent_header", None)  # older ipykernel
    return parent if isinstance(parent, dict) else {}


def signals() -> dict[str, list[str]]:
    """The evidence :func:`frontend` weighs in a kernel: ``{"headless": [...], "live": [...]}``, each a reason."""
    headless: list[str] = []
    live: list[str] = []
    request = _request()
    header = request.get("header") or {}
    if header.get("msg_type") == "execute_request":
        if (request.get("content") or {}).get("allow_stdin") is False:
            headless.append("the request forbids input() (allow_stdin=False: nbclient, papermill, nbval)")
        match = _CLIENT_MSG_ID.match(str(header.get("msg_id", "")))
        if match and match.group(1) == os.environ.get("JPY_PARENT_PID"):
            headless.append("the request came from the process that launched the kernel (jupyter_client's msg_id)")
        if "cellId" in (request.get("metadata") or {}):
            live.append("the request carries a cellId (JupyterLab, Notebook 7)")
    parent = _parent_cmdline()
    if parent:
        words = parent.split()
        names = " ".join(os.path.basename(w) for w in words[:3])  # the program, or python + its script/module
        if any(name in names for name in _HEADLESS_PARENTS):
            headless.append(f"parent process: {' '.join(words[:3])}")
        elif any(name in names for name in _LIVE_PARENTS):
            live.append(f"parent process: {' '.join(words[:3])}")
    if os.environ.get("JPY_SESSION_NAME"):
        live.append("JPY_SESSION_NAME is set (a jupyter_server session)")
    shell = _shell()
    if shell is not None and "__vsc_ipynb_file__" in getattr(shell, "user_ns", {}):
        live.append("__vsc_ipynb_file__ is defined (VS Code)")
    hub = sorted(k for k in os.environ if k.startswith(_LIVE_ENV_PREFIXES))
    if hub:
        live.append(f"{hub[0]} is set (JupyterHub, Binder)")
    return {"headless": headless, "live": live}


def frontend() -> str:
    """``"notebook"`` (a live front end), ``"terminal"``, ``"headless"`` or ``"unknown"`` (a kernel that cannot tell).

    ``LABKIT_FRONTEND`` (``live``, ``headless``, ``terminal``) overrides the guess; see the module docstring.
    """
    forced = os.environ.get(ENV, "").strip().lower()
    if forced:
        if forced not in _ALIASES:
            raise ValueError(f"{ENV} must be one of {tuple(_ALIASES)}, got {forced!r}")
        return _ALIASES[forced]
    if in_kernel():
        if "google.colab" in sys.modules:
            return "notebook"
        found = signals()
        if found["headless"]:
            return "headless"
        return "notebook" if found["live"] else "unknown"
    return "terminal" if sys.stderr.isatty() else "headless"


def interactive() -> bool:
    """True when widgets will be seen and used (a live notebook front end)."""
    return frontend() == "notebook"


def widget_mode() -> str:
    """How the explorers show themselves here: ``"widget"``, ``"static"`` or ``"both"`` (a kernel that cannot tell)."""
    kind = frontend()
    return {"notebook": "widget", "unknown": "both"}.get(kind, "static")
