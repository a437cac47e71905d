"""Checking a notebook's parameters cell before any long work starts.

papermill injects ``-p`` values as Python literals without looking at them, so
``-p epochs two`` or ``-p lr -1`` would only fail deep inside training (or not
at all). Each notebook calls :func:`check_parameters` right after its
parameters cell; a wrong value stops the run there with a message naming the
parameter, the value and what is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .device import DEVICES

MNIST_TRAIN_SIZE = 60_000


def _int(low: int, high: int | None = None, none_ok: bool = False) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        if v is None:
            return none_ok
        return isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)

    text = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "") + (" or None" if none_ok else "")
    return ok, text


def _float(low: float, high: float | None = None, low_open: bool = True, high_open: bool = True
           ) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        above = v > low if low_open else v >= low
        below = high is None or (v < high if high_open else v <= high)
        return above and below

    left = ">" if low_open else ">="
    right = "" if high is None else (f" and {'<' if high_open else '<='} {high}")
    return ok, f"a number {left} {low}{right}"


def _path(none_ok: bool = False) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        return (none_ok and v is None) or (isinstance(v, (str, Path)) and str(v) != "")

    return ok, "a non-empty folder path (str)" + (" or None" if none_ok else "")


def _bool() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, bool)), "True or False"


def _choice(options: tuple) -> tuple[Callable[[Any], bool], str]:
    def ok(v: Any) -> bool:
        return isinstance(v, str) and (v in options or (v.startswith("cuda:") and "cuda" in options))

    return ok, f"one of {options}"


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": _int(1),
    "n_train": _int(1, MNIST_TRAIN_SIZE, none_ok=True),
    "batch_size": _int(1, 8192),
    "nz": _int(1),
    "ngf": _int(1),
    "ndf": _int(1),
    "lr": _float(0, 1),
    "beta1": _float(0, 1, low_open=False),
    "seed": _int(0),
    "device": _choice(DEVICES),
    "data_root": _path(none_ok=True),  # None: labkit.data.data_root() decides ($LABKIT_DATA, else ./data)
    "run_dir": _path(),
    "ablations": _bool(),
    "ablation_images": _int(1),
    "ablation_seeds": _int(1, 10),
    "ablation_lr": _float(0, 1),
    "n_eval": _int(100, 100_000),
    "n_critic": _int(1),
    "clip": _float(0),
    "gp_lambda": _float(0, low_open=False),
}


def check_parameters(**params: Any) -> dict[str, Any]:
    """Validate notebook parameters by name; return them unchanged when all are fine.

    Raises ``ValueError`` listing every bad parameter (name, value, what is
    accepted), or naming a parameter this function has no rule for.
    """
    unknown = sorted(set(params) - set(RULES))
    if unknown:
        raise ValueError(f"no rule for parameter(s) {unknown}; known parameters: {sorted(RULES)}")
    problems = []
    for name, value in params.items():
        ok, accepted = RULES[name]
        if not ok(value):
            problems.append(f"  {name} = {value!r} ({type(value).__name__}): expected {accepted}")
    if problems:
        raise ValueError("bad notebook parameter(s):\n" + "\n".join(problems)
                         + "\nFix the parameters cell (or the -p values given to papermill) and run again.")
    return params
