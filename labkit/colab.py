"""Google Colab: the notebooks' set-up cell and "Open in Colab" links, made from one place.

The repository's address is ``Repository`` in pyproject.toml's ``[project.urls]``
and the version is ``labkit.__version__`` (pyproject reads it from there). From
them:

- :func:`wheel_url`: the wheel of this version, published as an asset of the
  repository's release ``v<version>`` (the README says how to publish it);
- :func:`setup_cell_source`: the first code cell of every notebook. In Colab it
  installs that wheel with ``--no-deps``, so Colab's own torch, torchvision and
  ipywidgets stay as they are (Colab already has every runtime dependency of
  labkit, :data:`COLAB_PROVIDES`; one it lacked would be named in the cell);
  anywhere else it does nothing. It also holds a commented line that mounts
  Google Drive, for a ``run_dir`` that outlives the Colab session (off by
  default);
- :func:`open_url`: the Colab address of a notebook of the same release; the
  handouts (``notebooks/``) link to themselves: :func:`handout_link` rewrites a
  solution's link when ``python -m labkit handouts`` generates them.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__

SETUP_TAG = "colab-setup"
#: What a Colab runtime has installed already: labkit's runtime dependencies it does not reinstall.
COLAB_PROVIDES = ("torch", "torchvision", "numpy", "matplotlib", "tqdm", "ipywidgets", "filelock")  # filelock: torch needs it
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _pyproject() -> dict | None:
    """The checkout's pyproject.toml, or None for an installed wheel (no checkout beside it)."""
    if not _PYPROJECT.is_file():
        return None
    import tomllib

    data = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8"))
    return data if data.get("project", {}).get("name") == "labkit" else None


def repository() -> str:
    """``Repository`` of pyproject's ``[project.urls]`` (from the installed metadata outside a checkout)."""
    data = _pyproject()
    if data is not None:
        return data["project"]["urls"]["Repository"].rstrip("/")
    from importlib.metadata import metadata

    for entry in metadata("labkit").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip().rstrip("/")
    raise LookupError("labkit's metadata names no Repository URL")


def runtime_requirements() -> list[str]:
    """labkit's runtime dependencies (pyproject's ``dependencies``, or the installed metadata's)."""
    data = _pyproject()
    if data is not None:
        return list(data["project"]["dependencies"])
    from importlib.metadata import requires

    return [r for r in requires("labkit") or [] if "extra ==" not in r]


def wheel_name(version: str = __version__) -> str:
    return f"labkit-{version}-py3-none-any.whl"


def wheel_url(version: str = __version__) -> str:
    """Where this version's wheel is published: an asset of the GitHub release ``v<version>``."""
    return f"{repository()}/releases/download/v{version}/{wheel_name(version)}"


def missing_in_colab() -> list[str]:
    """Runtime requirements Colab does not provide, which the set-up cell must install itself."""
    names = [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in runtime_requirements()]
    return [r for r, n in zip(runtime_requirements(), names) if n.lower().replace("_", "-") not in COLAB_PROVIDES]


def setup_cell_source(version: str = __version__) -> str:
    """The source of the notebooks' first code cell (tagged ``colab-setup``)."""
    extra = "".join(f' "{r}"' for r in missing_in_colab())
    return "\n".join([
        f"# Colab only: install labkit {version} there (this cell does nothing anywhere else).",
        "# --no-deps: Colab's own torch, torchvision and ipywidgets stay as they are.",
        "import sys",
        'if "google.colab" in sys.modules:',
        f'    %pip install -q --no-deps "labkit @ {wheel_url(version)}"{extra}',
        "    # Optional: keep run_dir in Google Drive across Colab sessions. Uncomment the next line, then set",
        '    # run_dir = "/content/drive/MyDrive/labkit-runs" in the parameters cell below.',
        '    # from google.colab import drive; drive.mount("/content/drive")',
    ])


def open_url(path: str, version: str = __version__) -> str:
    """Colab's address of ``path`` (e.g. ``notebooks/01_dcgan.ipynb``) in the release ``v<version>``."""
    repo = repository()
    prefix = "https://github.com/"
    if not repo.startswith(prefix):
        raise ValueError(f"Colab opens notebooks from GitHub only; the Repository URL is {repo!r}")
    return f"https://colab.research.google.com/github/{repo[len(prefix):]}/blob/v{version}/{path}"


def badge(path: str, version: str = __version__) -> str:
    """The Markdown "Open in Colab" badge linking to ``path``."""
    return f"[![Open In Colab]({BADGE})]({open_url(path, version)})"


_LINK = re.compile(r"(https://colab\.research\.google\.com/github/[^)\s]*?/blob/[^/)\s]+/)solutions/([\w.-]+\.ipynb)")


def handout_link(markdown: str) -> str:
    """A solution's markdown with its Colab links pointing to the handout of the same name (``notebooks/``)."""
    return _LINK.sub(r"\1notebooks/\2", markdown)
