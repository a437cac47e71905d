"""Progress reporting that reads well everywhere.

In JupyterLab, Colab or a terminal, :func:`progress` is a live ``tqdm.auto`` bar.
Headless (papermill, nbclient, CI logs) a widget bar would be saved frozen at 0 %
and a terminal bar fills logs with carriage returns, so there — and in a kernel
whose front end cannot be told — it prints plain lines instead: one at the
start, then at most one every ``interval`` seconds, and one at the end.

``LABKIT_PROGRESS=bar|text|off`` overrides the automatic choice (see :mod:`labkit.frontend`).

A worker process (:mod:`labkit.parallel`) shows nothing itself: :func:`report_to` hands
its bars' state to a callback, and the process that started it shows them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .frontend import frontend

MODES = ("auto", "bar", "text", "off")


def choose_mode() -> str:
    """Return ``"bar"``, ``"text"`` or ``"off"`` for this process (see module docstring)."""
    mode = os.environ.get("LABKIT_PROGRESS", "auto").strip().lower()
    if mode not in MODES:
        raise ValueError(f"LABKIT_PROGRESS must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    return "bar" if frontend() in ("notebook", "terminal") else "text"  # "unknown": lines read well anywhere


class TextProgress:
    """A minimal tqdm look-alike that prints whole lines, for logs and saved notebooks."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, interval: float, unit: str):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc = desc
        self.interval = interval
        self.unit = unit
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self.start = time.perf_counter()
        self._last_print = self.start
        self._print("start")

    def _print(self, when: str) -> None:
        elapsed = time.perf_counter() - self.start
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" {100 * self.n / self.total:3.0f}%" if self.total else ""
        eta = ""
        if self.total and 0 < self.n < self.total:
            eta = f", eta {elapsed / self.n * (self.total - self.n):.0f}s"
        post = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc}:{pct} {done} {self.unit} [{elapsed:.0f}s{eta}{post}]" + (" done" if when == "end" else ""),
              flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last_print >= self.interval and (not self.total or self.n < self.total):
            self._last_print = now
            self._print("update")

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}
        self.postfix = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in self.postfix.items()}

    def close(self) -> None:
        if self.n or self.total == 0:
            self._print("end")

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> "TextProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Silent(TextProgress):
    def _print(self, when: str) -> None:  # noqa: D401 - nothing to show
        pass


class _Reporting(TextProgress):
    """Hands ``(desc, n, total)`` to the process's reporter instead of printing (see :func:`report_to`)."""

    def _print(self, when: str) -> None:
        if _reporter is not None:
            _reporter(self.desc, self.n, self.total)


_quiet_depth = 0
_reporter: Callable[[str, int, int | None], None] | None = None
REPORT_SECONDS = 2.0


def report_to(reporter: Callable[[str, int, int | None], None] | None) -> None:
    """From now on, :func:`progress` in this process shows nothing and calls ``reporter(desc, n, total)``
    instead: at a bar's start, at most every :data:`REPORT_SECONDS` and at its end. ``None`` undoes it.

    For worker processes, whose own output would be lost or interleaved: their parent shows
    what they report (:func:`labkit.parallel.run_jobs`).
    """
    global _reporter
    _reporter = reporter


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Inside this block :func:`progress` shows nothing: for short work repeated inside a longer
    one (the measurements a training run takes along the way), whose bars would bury the run's own."""
    global _quiet_depth
    _quiet_depth += 1
    try:
        yield
    finally:
        _quiet_depth -= 1


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "",
             interval: float = 15.0, unit: str = "it", leave: bool = True):
    """Wrap ``iterable`` (or count with ``update``) with a progress display fit for where we run.

    Returns an object with tqdm's ``update``, ``set_postfix`` and ``close`` methods,
    usable as an iterator and as a context manager.
    """
    if _reporter is not None and not _quiet_depth:
        return _Reporting(iterable, total, desc, min(interval, REPORT_SECONDS), unit)
    mode = "off" if _quiet_depth else choose_mode()
    if mode == "bar":
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
    if mode == "off":
        return _Silent(iterable, total, desc, interval, unit)
    return TextProgress(iterable, total, desc, interval, unit)
