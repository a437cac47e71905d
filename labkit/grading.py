"""Instructors' grading: every submitted notebook runs apart, its results are judged outside it.

How one submission is graded (:func:`grade_notebook`):

1. Its exercise cells are found by metadata id (``{"labkit": {"exercise": id, "points": n}}``),
   never by position. A missing id, an id in several cells (joined in notebook order) or an
   id the lab does not know is reported in the feedback.
2. The frame is the instructor's solution notebook (set-up cells, grading parameters: 1 epoch,
   a data subset), up to its last exercise; labkit's student-feedback check cells are left out.
   Each exercise cell is replaced by the student's cell(s) for that id. Only those cells of the
   submission run: the student's other cells never do.
3. It runs in a fresh kernel in a fresh temporary working folder, cell by cell, with a per-cell
   and a whole-notebook time limit. After each student cell, a grader cell (sent only then, so
   the student's code cannot read it in advance) calls the student's functions/classes on inputs
   drawn from a secret seed chosen at grading time and writes the results as JSON to a random
   file outside the working folder.
4. The grader process runs the same probe on labkit's reference implementations (and the
   instructor's solution cells) in its own process and compares. Any exercise that did not pass
   is replaced in the kernel by the solution code, so later exercises still run and are graded.

Printing "passed", patching ``labkit.checks`` or writing files gains nothing: no check of the
student's kernel is trusted, and files changed in the output folder while grading are restored.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import html
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = ROOT / "solutions"
#: the notebooks' smallest useful parameters; each notebook gets those it declares
GRADING_PARAMS: dict[str, Any] = dict(epochs=1, n_train=512, n_eval=500, ablation_images=512, batch_size=64,
                                      ablations=False)
OUTCOMES = ("passed", "partial", "failed", "not attempted", "error", "timed out", "missing")
CHECK_CELL = re.compile(r"=\s*\w*checks\.\w+\(")
KERNEL = "python3"

# --------------------------------------------------------------------------- probes (run in both processes)

#: helpers every probe may use; plain torch only (no labkit code the student could have patched)
PROBE_HELPERS = r'''
import torch as _t
from torch.overrides import TorchFunctionMode as _Mode

_LAYER_OPS = ("linear", "conv2d", "conv_transpose2d", "batch_norm", "instance_norm", "layer_norm", "group_norm",
              "relu", "relu_", "leaky_relu", "leaky_relu_", "tanh", "sigmoid", "hardtanh", "clamp", "elu", "selu",
              "gelu", "silu", "softplus")

class _Trace(_Mode):
    def __init__(self):
        super().__init__()
        self.ops = []
    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in _LAYER_OPS:
            self.ops.append(name.rstrip("_"))
        return func(*args, **(kwargs or {}))

def _seeded_weights(module, seed):
    g = _t.Generator().manual_seed(seed)
    with _t.no_grad():
        for p in module.parameters():
            p.copy_(_t.randn(p.shape, generator=g) * 0.1)

def _tensor(x):
    if isinstance(x, _t.Tensor):
        x = x.detach().double().cpu()
        return {"shape": list(x.shape), "values": x.flatten().tolist()}
    return x

def _module_probe(cls, kwargs_list, make_input, seed):
    out = {}
    for k, kwargs in enumerate(kwargs_list):
        _t.manual_seed(seed + k)
        m = cls(**kwargs)
        out[f"params{k}"] = int(sum(p.numel() for p in m.parameters()))
        out[f"shapes{k}"] = [list(p.shape) for p in m.parameters()]
        _seeded_weights(m, seed + k)
        x = make_input(kwargs, _t.Generator().manual_seed(seed + 100 + k))
        x = x if isinstance(x, tuple) else (x,)
        trace = _Trace()
        with trace:
            y = m(*x)
        out[f"ops{k}"] = trace.ops
        out[f"out{k}"] = _tensor(y)
    return out

def _loss_probe(fn, n_args, seed):
    g = _t.Generator().manual_seed(seed)
    sizes = (7, 5, 6)[:n_args]
    out = {}
    args = [(_t.randn(s, generator=g) * 2).requires_grad_(True) for s in sizes]
    value = fn(*args)
    out["value"] = _tensor(value)
    grads = _t.autograd.grad(value, args, allow_unused=True)
    out["grad"] = [_tensor(gr if gr is not None else _t.zeros_like(a)) for gr, a in zip(grads, args)]
    extreme = [_t.tensor([30.0, -30.0, 0.0, 25.0])[: s].clone() * (1 if i == 0 else -1) for i, s in enumerate([4] * n_args)]
    out["extreme"] = _tensor(fn(*extreme))
    return out

def _labels(n, g):
    return _t.randint(0, 10, (n,), generator=g)

def _flat(params):
    return _tensor(_t.cat([p.detach().flatten() for p in params]))

def _grads(params):
    return _tensor(_t.cat([(p.grad if p.grad is not None else _t.zeros_like(p)).flatten() for p in params]))
'''

PROBE_SOURCES: dict[str, str] = {
    "generator": r'''
def _probe(ns, seed):
    cls = ns["Generator"]
    return _module_probe(cls, [dict(nz=12, ngf=4), dict(nz=7, ngf=8)],
                         lambda kw, g: _t.randn(5, kw["nz"], generator=g), seed)
''',
    "discriminator": r'''
def _probe(ns, seed):
    cls = ns["Discriminator"]
    return _module_probe(cls, [dict(ndf=4), dict(ndf=8)],
                         lambda kw, g: _t.rand(5, 1, 32, 32, generator=g) * 2 - 1, seed)
''',
    "d_loss": r'''
def _probe(ns, seed):
    return _loss_probe(ns["d_loss"], 2, seed)
''',
    "g_loss": r'''
def _probe(ns, seed):
    return _loss_probe(ns["g_loss"], 1, seed)
''',
    "train_step": r'''
def _probe(ns, seed):
    from labkit import models
    _t.manual_seed(seed)
    G, D = models.DCGANGenerator(nz=8, ngf=4), models.DCGANDiscriminator(ndf=4)
    _seeded_weights(G, seed + 1)
    _seeded_weights(D, seed + 2)
    # Plain SGD, not Adam: Adam's first step is about lr * sign(gradient), so float noise in a gradient
    # near zero (summation order differs between runs) became a full-size difference and failed a correct step.
    opt_g = _t.optim.SGD(G.parameters(), lr=0.1)
    opt_d = _t.optim.SGD(D.parameters(), lr=0.1)
    gen = _t.Generator().manual_seed(seed + 3)
    data = _t.rand(2, 6, 1, 32, 32, generator=_t.Generator().manual_seed(seed + 4)) * 2 - 1
    losses = [list(map(float, ns["train_step"](G, D, real, opt_g, opt_d, gen))) for real in data]
    return {"losses": losses,
            "D": _tensor(_t.cat([p.detach().flatten() for p in D.parameters()])),
            "G": _tensor(_t.cat([p.detach().flatten() for p in G.parameters()]))}
''',
    "cgan_generator": r'''
def _probe(ns, seed):
    return _module_probe(ns["ConditionalGenerator"], [dict(nz=12, ngf=4), dict(nz=7, ngf=8)],
                         lambda kw, g: (_t.randn(5, kw["nz"], generator=g), _labels(5, g)), seed)
''',
    "cgan_discriminator": r'''
def _probe(ns, seed):
    return _module_probe(ns["ConditionalDiscriminator"], [dict(ndf=4), dict(ndf=8)],
                         lambda kw, g: (_t.rand(5, 1, 32, 32, generator=g) * 2 - 1, _labels(5, g)), seed)
''',
    "cgan_d_loss": r'''
def _probe(ns, seed):
    from labkit import models
    G, D = models.DCGANGenerator(nz=8, ngf=4, n_classes=10), models.DCGANDiscriminator(ndf=4, n_classes=10)
    _seeded_weights(G, seed + 1)
    _seeded_weights(D, seed + 2)
    g = _t.Generator().manual_seed(seed + 3)
    real, y, z = _t.rand(6, 1, 32, 32, generator=g) * 2 - 1, _labels(6, g), _t.randn(6, 8, generator=g)
    value = ns["cgan_d_loss"](D, G, real, y, z)
    value.backward()
    return {"value": _tensor(value), "D_grad": _grads(D.parameters()), "G_grad": _grads(G.parameters())}
''',
    "cgan_style_grid": r'''
def _probe(ns, seed):
    from labkit import models
    G = models.DCGANGenerator(nz=8, ngf=4, n_classes=10)
    _seeded_weights(G, seed + 1)
    G.train()
    images = ns["style_grid"](G, n_styles=3, seed=seed % 1000)
    return {"images": _tensor(images), "eval_mode": not G.training}
''',
    "wgan_critic_loss": r'''
def _probe(ns, seed):
    return _loss_probe(ns["critic_loss"], 2, seed)
''',
    "wgan_clip": r'''
def _probe(ns, seed):
    torch = _t
    critic = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    _seeded_weights(critic, seed)
    before = [p for p in critic.parameters()]
    ns["clip_weights"](critic, 0.05)
    return {"params": _flat(critic.parameters()),
            "in_place": all(a is b for a, b in zip(before, critic.parameters()))}
''',
    "wgan_gp": r'''
def _probe(ns, seed):
    torch = _t
    gp = ns["gradient_penalty"]
    g = torch.Generator().manual_seed(seed)
    out = {}
    # real == fake: every interpolate is `real`, whatever eps the student draws
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    _seeded_weights(critic, seed + 1)
    real = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    _t.manual_seed(seed + 2)
    value = gp(critic, real, real.clone())
    out["same_value"] = _tensor(value)
    value.backward()
    out["critic_grad"] = _grads(critic.parameters())
    # a linear critic: the gradient is its weight at every x_hat, whatever eps
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 1))
    _seeded_weights(lin, seed + 3)
    fake = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1
    _t.manual_seed(seed + 4)
    out["linear_value"] = _tensor(gp(lin, real, fake))
    return out
''',
}


def _compare_parts(spec: list[tuple[str, tuple[str, ...], str]]) -> Callable[[dict, dict], list[Part]]:
    """A comparison whose parts each check some keys of the probe's result (floats within tolerance)."""
    def compare(got: dict, ref: dict) -> list[Part]:
        parts: list[Part] = []
        for label, keys, hint in spec:
            ok = all(_close(got.get(k), ref[k], 1e-3, 1e-5) for k in keys)
            why = "; ".join(f"{k}: expected {_describe(ref[k])}, got {_describe(got.get(k))}" for k in keys
                            if not _close(got.get(k), ref[k], 1e-3, 1e-5))
            parts.append((label, ok, why + (f" ({hint})" if hint else "")))
        return parts
    return compare


def _close(a: Any, b: Any, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Nested JSON values equal, floats within tolerance."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a != a or b != b:  # NaN
            return False
        return abs(a - b) <= atol + rtol * abs(b)
    return a == b


def _describe(t: Any, limit: int = 4) -> str:
    """Short text for a probed tensor (shape and first values) or any JSON value."""
    if isinstance(t, dict) and "shape" in t and "values" in t:
        values = ", ".join(f"{v:.4g}" for v in t["values"][:limit])
        more = ", ..." if len(t["values"]) > limit else ""
        return f"shape {tuple(t['shape'])}, values [{values}{more}]"
    text = json.dumps(t)
    return text if len(text) < 120 else text[:117] + "..."


Part = tuple[str, bool, str]  # (what is checked, passed, message when not)


def _compare_module(kind: str) -> Callable[[dict, dict], list[Part]]:
    def compare(got: dict, ref: dict) -> list[Part]:
        parts: list[Part] = []
        n = sum(1 for k in ref if k.startswith("params"))
        shape_ok = all(_close(got.get(f"out{k}", {}).get("shape") if isinstance(got.get(f"out{k}"), dict) else None,
                              ref[f"out{k}"]["shape"]) for k in range(n))
        parts.append(("output shape", shape_ok, "; ".join(
            f"expected output {tuple(ref[f'out{k}']['shape'])}, got {_describe(got.get(f'out{k}'))}" for k in range(n))))
        if kind == "generator":
            rng = all(isinstance(got.get(f"out{k}"), dict) and got[f"out{k}"]["values"]
                      and max(abs(v) for v in got[f"out{k}"]["values"]) <= 1.0 + 1e-6 for k in range(n))
            parts.append(("output in [-1, 1] (Tanh last)", bool(rng), "expected every value in [-1, 1], got values outside"))
        params_ok = all(got.get(f"params{k}") == ref[f"params{k}"] for k in range(n))
        parts.append(("parameter count", params_ok, "; ".join(
            f"expected {ref[f'params{k}']:,} parameters, got {got.get(f'params{k}')}" for k in range(n))))
        ops_ok = all(got.get(f"ops{k}") == ref[f"ops{k}"] for k in range(n))
        parts.append(("layers, in order", ops_ok,
                      f"expected {' > '.join(ref['ops0'])}; got {' > '.join(map(str, got.get('ops0') or []))}"))
        same = all(got.get(f"shapes{k}") == ref[f"shapes{k}"] and _close(got.get(f"out{k}"), ref[f"out{k}"], 1e-3, 1e-4)
                   for k in range(n))
        parts.append(("same output as the reference for the same (seeded) weights", same,
                      f"expected {_describe(ref['out0'])}; got {_describe(got.get('out0'))}"))
        return parts
    return compare


def _compare_loss(got: dict, ref: dict) -> list[Part]:
    return [
        ("value on seeded logits", _close(got.get("value"), ref["value"]),
         f"expected {_describe(ref['value'])}; got {_describe(got.get('value'))}"),
        ("gradient w.r.t. the logits", _close(got.get("grad"), ref["grad"]),
         f"expected {_describe(ref['grad'][0])}; got {_describe((got.get('grad') or [None])[0])}"),
        ("finite and right on extreme logits (+-30)", _close(got.get("extreme"), ref["extreme"]),
         f"expected {_describe(ref['extreme'])}; got {_describe(got.get('extreme'))} "
         "(use F.binary_cross_entropy_with_logits rather than log(sigmoid(.)))"),
    ]


def _compare_step(got: dict, ref: dict) -> list[Part]:
    return [
        ("returned losses (d_loss, g_loss) of two steps", _close(got.get("losses"), ref["losses"], 1e-3, 1e-4),
         f"expected {_describe(ref['losses'])}; got {_describe(got.get('losses'))}"),
        ("D's parameters after two steps", _close(got.get("D"), ref["D"], 1e-3, 1e-4),
         f"expected {_describe(ref['D'])}; got {_describe(got.get('D'))} (D: one update per step on real and "
         "detached fake images)"),
        ("G's parameters after two steps", _close(got.get("G"), ref["G"], 1e-3, 1e-4),
         f"expected {_describe(ref['G'])}; got {_describe(got.get('G'))} (G: fresh noise from gen, judged by the "
         "updated D)"),
    ]


@dataclass(frozen=True)
class Probe:
    """How to probe one exercise: the probe's source (shared by kernel and grader) and the comparison."""

    source: str
    compare: Callable[[dict, dict], list[Part]]
    names: tuple[str, ...]  # what the exercise cell must define
    # Other correct answers, as reference namespaces made from the solution's: the probe's result
    # on any of them earns full points, as the exercise's own check in the notebook accepts them too.
    variants: Callable[[dict], list[dict]] = lambda ns: []


def _train_step_variants(ns: dict) -> list[dict]:
    from .checks import dcgan  # the form the notebook's check accepts too: G's step reuses D's fake batch

    return [dict(ns, train_step=dcgan.reuse_fake_train_step)]


#: exercise id -> probe. Exercises not listed here are reported "error: no grader probe".
PROBES: dict[str, Probe] = {
    "dcgan-generator": Probe(PROBE_SOURCES["generator"], _compare_module("generator"), ("Generator",)),
    "dcgan-discriminator": Probe(PROBE_SOURCES["discriminator"], _compare_module("discriminator"), ("Discriminator",)),
    "dcgan-d-loss": Probe(PROBE_SOURCES["d_loss"], _compare_loss, ("d_loss",)),
    "dcgan-g-loss": Probe(PROBE_SOURCES["g_loss"], _compare_loss, ("g_loss",)),
    "dcgan-train-step": Probe(PROBE_SOURCES["train_step"], _compare_step, ("train_step",), _train_step_variants),
    "cgan-generator": Probe(PROBE_SOURCES["cgan_generator"], _compare_module("generator"), ("ConditionalGenerator",)),
    "cgan-discriminator": Probe(PROBE_SOURCES["cgan_discriminator"], _compare_module("discriminator"),
                                ("ConditionalDiscriminator",)),
    "cgan-d-loss": Probe(PROBE_SOURCES["cgan_d_loss"], _compare_parts([
        ("value on seeded models and data", ("value",), "D judges (real, y) and (G(z, y), y)"),
        ("D's gradient", ("D_grad",), ""),
        ("no gradient into G (fake detached)", ("G_grad",), "detach G(z, y): this loss trains D only"),
    ]), ("cgan_d_loss",)),
    "cgan-style-grid": Probe(PROBE_SOURCES["cgan_style_grid"], _compare_parts([
        ("images: class per row, the same z per column", ("images",), "z.repeat for rows, labels repeat_interleave"),
        ("G put in eval mode", ("eval_mode",), "call G.eval() before drawing"),
    ]), ("style_grid",)),
    "wgan-critic-loss": Probe(PROBE_SOURCES["wgan_critic_loss"], _compare_loss, ("critic_loss",)),
    "wgan-clip": Probe(PROBE_SOURCES["wgan_clip"], _compare_parts([
        ("every parameter clamped into [-c, c]", ("params",), "clamp each weight and bias, do not rescale"),
        ("in place (the same parameter objects)", ("in_place",), "p.clamp_(-c, c) under torch.no_grad()"),
    ]), ("clip_weights",)),
    "wgan-gradient-penalty": Probe(PROBE_SOURCES["wgan_gp"], _compare_parts([
        ("penalty when every interpolate is known", ("same_value",),
         "one L2 norm per sample over all its dimensions: grad.flatten(1).norm(2, dim=1)"),
        ("penalty of a linear critic", ("linear_value",), "mean over the batch of (norm - 1) ** 2"),
        ("differentiable w.r.t. the critic (create_graph=True)", ("critic_grad",),
         "torch.autograd.grad(..., create_graph=True)"),
    ]), ("gradient_penalty",)),
}

_REFERENCE_PRELUDE = """
import torch
import torch.nn.functional as F
from torch import nn
from labkit import losses, models
"""


def reference_namespace(solution: nbformat.NotebookNode) -> dict[str, Any]:
    """The grader's own references: the solution's exercise cells run here, labkit's references on top."""
    from . import checks

    ns: dict[str, Any] = {"__name__": "labkit_grading_reference"}
    exec(_REFERENCE_PRELUDE, ns)
    for cell in solution.cells:
        ex = _exercise_of(cell)
        if ex is not None and cell.cell_type == "code":
            exec(compile(cell.source, f"<solution {ex}>", "exec"), ns)
            ref = checks.EXERCISES.get(ex, (None, None))[1]
            probe = PROBES.get(ex)
            if probe and callable(ref) and not isinstance(ref, type) and len(probe.names) == 1:
                ns[probe.names[0]] = ref  # labkit's reference function (e.g. losses.d_loss_gan)
    return ns


def run_probe_here(exercise: str, ns: dict[str, Any], seed: int) -> dict:
    """Run one exercise's probe in this process on the namespace ``ns``; JSON-ready result."""
    import torch

    probe_ns: dict[str, Any] = {}
    exec(PROBE_HELPERS + PROBES[exercise].source, probe_ns)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            return json.loads(json.dumps(probe_ns["_probe"](ns, seed)))
    finally:
        torch.set_num_threads(threads)


def _probe_cell(exercise: str, seed: int, path: Path) -> str:
    """The grader cell sent to the kernel after the student's cell: probe, write JSON outside the workdir."""
    token = secrets.token_hex(6)
    body = PROBE_HELPERS + PROBES[exercise].source
    return f'''def _labkit_grader_{token}():
    import json as _json, traceback as _tb, torch as _torch
    _ns = {{}}
    exec({body!r}, _ns)
    _threads = _torch.get_num_threads()
    _torch.set_num_threads(1)
    try:
        with _torch.random.fork_rng(devices=[]):
            _res = {{"status": "ok", "result": _ns["_probe"](globals(), {seed})}}
    except NotImplementedError as _e:
        _res = {{"status": "not attempted", "message": str(_e)}}
    except Exception as _e:
        _res = {{"status": "error", "message": "".join(_tb.format_exception_only(type(_e), _e)).strip(),
                "traceback": "".join(_tb.format_exc().splitlines(True)[-8:])}}
    finally:
        _torch.set_num_threads(_threads)
    _objs = [globals().get(n) for n in {list(PROBES[exercise].names)!r}]
    _res["modules"] = [getattr(o, "__module__", None) for o in _objs]
    with open({str(path)!r}, "w") as _f:
        _json.dump(_res, _f)
_labkit_grader_{token}()
del _labkit_grader_{token}
'''


# --------------------------------------------------------------------------- submissions


def _exercise_of(cell) -> str | None:
    labkit = cell.get("metadata", {}).get("labkit", {})
    ex = labkit.get("exercise") if isinstance(labkit, dict) else None
    return str(ex) if ex is not None else None


def exercises_of(nb: nbformat.NotebookNode) -> dict[str, int]:
    """exercise id -> points, in notebook order (the instructor's solution is the authority)."""
    out: dict[str, int] = {}
    for cell in nb.cells:
        ex = _exercise_of(cell)
        if ex is not None and cell.cell_type == "code":
            out[ex] = cell.metadata["labkit"].get("points", 1)
    return out


def student_cells(nb: nbformat.NotebookNode) -> tuple[dict[str, str], list[str]]:
    """exercise id -> the student's code (cells with that id joined in order), and notes to report."""
    found: dict[str, list[str]] = {}
    for cell in nb.cells:
        ex = _exercise_of(cell)
        if ex is not None:
            if cell.cell_type != "code":
                continue
            found.setdefault(ex, []).append(cell.source)
    notes = [f"exercise {ex}: found in {len(srcs)} cells; they were joined in notebook order and graded together"
             for ex, srcs in found.items() if len(srcs) > 1]
    return {ex: "\n\n".join(srcs) for ex, srcs in found.items()}, notes


def find_solution(nb: nbformat.NotebookNode, solutions_dir: Path = SOLUTIONS_DIR) -> Path:
    """The solution notebook sharing most exercise ids with the submission (never matched by position)."""
    ids = set(student_cells(nb)[0])
    best, score = None, 0
    for path in sorted(Path(solutions_dir).glob("*.ipynb")):
        common = len(ids & set(exercises_of(nbformat.read(path, as_version=4))))
        if common > score:
            best, score = path, common
    if best is None:
        raise ValueError(f"no solution notebook in {solutions_dir} shares an exercise id with the submission "
                         f"(ids found: {sorted(ids) or 'none'}); pass solution=... explicitly")
    return best


def _declared_parameters(nb: nbformat.NotebookNode) -> list[str]:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return re.findall(r"^(\w+)\s*=", cell.source, flags=re.M)
    return []


@dataclass
class Step:
    kind: str  # "frame" | "exercise"
    source: str
    exercise: str | None = None


def build_frame(solution: nbformat.NotebookNode, params: dict[str, Any]) -> list[Step]:
    """The solution's code cells up to its last exercise, grading parameters injected, check cells left out."""
    cells = [c for c in solution.cells if c.cell_type == "code"]
    last = max((i for i, c in enumerate(cells) if _exercise_of(c)), default=-1)
    declared = _declared_parameters(solution)
    unknown = sorted(set(params) - set(GRADING_PARAMS) - set(declared))
    if unknown:
        raise ValueError(f"params: {unknown} are not parameters of the solution notebook (it declares {declared})")
    steps: list[Step] = []
    for i, cell in enumerate(cells[: last + 1]):
        ex = _exercise_of(cell)
        if ex is not None:
            steps.append(Step("exercise", cell.source, ex))
        elif not CHECK_CELL.search(cell.source):
            steps.append(Step("frame", cell.source))
        if "parameters" in cell.metadata.get("tags", []):
            chosen = {k: v for k, v in params.items() if k in declared}
            steps.append(Step("frame", "\n".join(f"{k} = {v!r}" for k, v in chosen.items())))
    return steps


def _last_lines(text: str, n: int = 6) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "\n".join(text.strip().splitlines()[-n:])


@dataclass
class ExerciseResult:
    exercise: str
    outcome: str
    points: float
    max_points: float
    message: str = ""
    parts: list = field(default_factory=list)


def reference_results(exercise: str, ns: dict[str, Any], seed: int) -> list[dict]:
    """The probe's results for the solution's namespace ``ns``, then for each accepted variant."""
    return [run_probe_here(exercise, v, seed) for v in (ns, *PROBES[exercise].variants(ns))]


def _judge(exercise: str, max_points: float, raw: dict, refs: list[dict]) -> ExerciseResult:
    """Score a probe result against the accepted references (:func:`reference_results`)."""
    if raw.get("status") == "not attempted":
        return ExerciseResult(exercise, "not attempted", 0, max_points,
                              "the NotImplementedError placeholder is still there: " + raw.get("message", ""))
    if raw.get("status") != "ok":
        return ExerciseResult(exercise, "error", 0, max_points,
                              "calling your code on the grader's inputs failed:\n" + raw.get("traceback", raw.get("message", "")))
    if any(m and str(m).startswith("labkit") for m in raw.get("modules", [])):
        return ExerciseResult(exercise, "failed", 0, max_points,
                              "your exercise uses labkit's own reference instead of your code")
    # judged against the closest accepted answer; on a tie the solution's own form, whose messages are the hints
    parts = max((PROBES[exercise].compare(raw["result"], r) for r in refs), key=lambda ps: sum(ok for _, ok, _ in ps))
    good = sum(ok for _, ok, _ in parts)
    points = round(max_points * good / len(parts), 2)
    outcome = "passed" if good == len(parts) else "partial" if good else "failed"
    message = "\n".join(f"{what}: {'ok' if ok else 'wrong — ' + why}" for what, ok, why in parts)
    return ExerciseResult(exercise, outcome, points, max_points, message,
                          [{"check": w, "passed": bool(ok)} for w, ok, _ in parts])


def grade_notebook(path: str | Path, student: str | None = None, solution: str | Path | None = None,
                   params: dict[str, Any] | None = None, cell_timeout: float = 120, notebook_timeout: float = 900,
                   data_root: str | None = None, seed: int | None = None, kernel_threads: int | None = None) -> dict:
    """Grade one submitted notebook; returns its result (JSON-ready dict).

    ``cell_timeout`` bounds every cell (seconds), ``notebook_timeout`` the whole run: exercises
    not reached in time are "timed out". ``seed`` is the probes' secret seed (random when None);
    ``kernel_threads`` caps the kernel's torch/OpenMP threads (set by :func:`grade` from ``jobs``).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    if cell_timeout <= 0 or notebook_timeout <= 0:
        raise ValueError(f"cell_timeout and notebook_timeout must be > 0 seconds, got {cell_timeout}, {notebook_timeout}")
    path = Path(path)
    student = student or path.stem
    started = time.monotonic()
    notes: list[str] = []
    try:
        sub = nbformat.read(path, as_version=4)
    except Exception as exc:  # unreadable file: every exercise gets zero, with the reason
        sub = nbformat.v4.new_notebook()
        notes.append(f"the submission could not be read as a notebook: {type(exc).__name__}: {exc}")
    sol_path = Path(solution) if solution else find_solution(sub)
    sol = nbformat.read(sol_path, as_version=4)
    exercises = exercises_of(sol)
    code, more = student_cells(sub)
    notes += more
    notes += [f"a cell carries exercise id {ex!r}, which {sol_path.name} does not have: not graded"
              for ex in code if ex not in exercises]
    seed = secrets.randbelow(2**31 - 1000) if seed is None else seed
    params = {**GRADING_PARAMS, **(params or {})}
    params["data_root"] = str(Path(data_root or os.environ.get("LABKIT_DATA", ROOT / "data")).resolve())
    workdir = Path(tempfile.mkdtemp(prefix="labkit-grade-work-"))
    probedir = Path(tempfile.mkdtemp(prefix="labkit-grade-probe-"))  # outside the working folder
    params["run_dir"] = str(workdir / "runs")
    steps = build_frame(sol, params)
    ref_ns = reference_namespace(sol)
    results: dict[str, ExerciseResult] = {}
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": KERNEL, "display_name": "Python 3", "language": "python"}})
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name=KERNEL, interrupt_on_timeout=False,
                            resources={"metadata": {"path": str(workdir)}})
    replay: list[str] = []  # the cells that ran, to rebuild the kernel's state after a forced restart

    def execute(source: str, timeout: float) -> None:
        cell = nbformat.v4.new_code_cell(source)
        nb.cells.append(cell)
        client.timeout = timeout
        client.execute_cell(cell, len(nb.cells) - 1)

    def recover() -> None:
        """After a time-out: interrupt; a kernel that ignores it is restarted and its state rebuilt."""
        run_sync(client.km.interrupt_kernel)()
        try:
            execute("pass", 15)
            return
        except (CellTimeoutError, CellExecutionError):
            pass
        notes.append("a cell ignored the interrupt after its time limit: the kernel was restarted and the "
                     "cells before it re-run")
        run_sync(client.km.restart_kernel)(now=True)
        client.kc.stop_channels()
        client.kc = client.km.client()
        client.kc.start_channels()
        run_sync(client.kc.wait_for_ready)(timeout=60)
        for source in replay:
            try:
                execute(source, cell_timeout)
            except (CellTimeoutError, CellExecutionError):
                pass

    def run(source: str, keep: bool = True) -> tuple[str, str]:
        """("ok" | "error" | "timed out", last traceback lines) for one cell."""
        try:
            execute(source, cell_timeout)
        except CellTimeoutError:
            recover()
            return "timed out", f"the cell ran longer than the limit of {cell_timeout:g} s and was stopped"
        except CellExecutionError as exc:
            text = _last_lines(str(exc))
            if exc.ename == "NameError":
                text += ("\n(only cells with an exercise id run when grading: define what your exercise needs "
                         "inside the exercise cell)")
            return "error", text
        if keep:
            replay.append(source)
        return "ok", ""

    try:
        kernel_env = dict(os.environ)
        if kernel_threads:
            kernel_env.update(OMP_NUM_THREADS=str(kernel_threads), MKL_NUM_THREADS=str(kernel_threads))
        with client.setup_kernel(env=kernel_env):
            for step in steps:
                if time.monotonic() - started > notebook_timeout:
                    for ex in exercises:
                        results.setdefault(ex, ExerciseResult(ex, "timed out", 0, exercises[ex],
                                                              f"not reached within the notebook limit of {notebook_timeout:g} s"))
                    notes.append(f"grading stopped at the whole-notebook limit of {notebook_timeout:g} s")
                    break
                if step.kind == "frame":
                    status, text = run(step.source)
                    if status != "ok":
                        notes.append(f"a set-up cell of the frame failed ({status}): {text}")
                    continue
                ex = step.exercise
                pts = exercises[ex]
                if ex not in code:
                    results[ex] = ExerciseResult(ex, "missing", 0, pts,
                                                 f"no cell of the submission carries exercise id {ex!r} "
                                                 "(cell metadata labkit.exercise); labkit's solution was used so the rest could run")
                    run(step.source)
                    continue
                status, text = run(code[ex])
                if status == "ok" and ex in PROBES:
                    out = probedir / f"{secrets.token_hex(8)}.json"
                    pstatus, ptext = run(_probe_cell(ex, seed, out), keep=False)
                    if pstatus == "ok" and out.is_file():
                        raw = json.loads(out.read_text())
                        results[ex] = _judge(ex, pts, raw, reference_results(ex, ref_ns, seed))
                    elif pstatus == "timed out":
                        results[ex] = ExerciseResult(ex, "timed out", 0, pts, f"calling your code: {ptext}")
                    else:
                        results[ex] = ExerciseResult(ex, "error", 0, pts, f"the grader could not probe your code:\n{ptext}")
                elif status == "ok":
                    results[ex] = ExerciseResult(ex, "error", 0, pts, "no grader probe for this exercise (not graded)")
                elif "NotImplementedError" in text:
                    results[ex] = ExerciseResult(ex, "not attempted", 0, pts, text)
                else:
                    results[ex] = ExerciseResult(ex, status, 0, pts, text)
                if results[ex].outcome != "passed":
                    run(step.source)  # the solution's code, so later exercises can run
    except DeadKernelError as exc:
        notes.append(f"the kernel died: {exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(probedir, ignore_errors=True)
    for ex, pts in exercises.items():
        results.setdefault(ex, ExerciseResult(ex, "error", 0, pts, "not graded: the kernel stopped before this exercise"))
    ordered = [results[ex] for ex in exercises]
    return {
        "student": student, "submission": str(path), "solution": sol_path.name,
        "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1), "notes": notes,
        "exercises": [vars(r) for r in ordered],
        "total": round(sum(r.points for r in ordered), 2), "max_total": sum(r.max_points for r in ordered),
    }


# --------------------------------------------------------------------------- many submissions, outputs


def discover(submissions: list[str | Path]) -> list[tuple[str, Path]]:
    """(student name, notebook) for the notebooks and folders given.

    A notebook file is named by its stem (``alice.ipynb`` -> alice). A folder is
    either one student's folder (a single notebook directly inside: named by the
    folder) or a class folder: each notebook directly inside is a student named
    by its stem, and each sub-folder holding notebooks is a student named by the
    sub-folder (``name-stem`` when it holds several notebooks).
    """
    found: list[tuple[str, Path]] = []

    def student_folder(folder: Path, notebooks: list[Path]) -> None:
        for nb in notebooks:
            found.append((folder.name if len(notebooks) == 1 else f"{folder.name}-{nb.stem}", nb))

    for item in map(Path, submissions):
        if item.is_file():
            if item.suffix != ".ipynb":
                raise ValueError(f"submissions: {item} is not a .ipynb notebook")
            found.append((item.stem, item))
        elif item.is_dir():
            notebooks = sorted(item.glob("*.ipynb"))
            folders = [(sub, sorted(sub.glob("*.ipynb"))) for sub in sorted(p for p in item.iterdir() if p.is_dir())]
            folders = [(sub, nbs) for sub, nbs in folders if nbs]
            if not notebooks and not folders:
                raise ValueError(f"submissions: folder {item} holds no .ipynb notebook (nor sub-folders with one)")
            if len(notebooks) == 1 and not folders:
                student_folder(item, notebooks)
                continue
            found.extend((nb.stem, nb) for nb in notebooks)
            for sub, nbs in folders:
                student_folder(sub, nbs)
        else:
            raise ValueError(f"submissions: {item} is neither a notebook file nor a folder")
    names = [n for n, _ in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"submissions: several submissions share the student name(s) {dupes}")
    return found


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


class _OutGuard:
    """Snapshot of the output folder; restores whatever changed while submissions ran."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.is_dir() else {}

    def restore(self) -> list[str]:
        changed = []
        current = {p for p in self.out.rglob("*") if p.is_file()} if self.out.is_dir() else set()
        for p in sorted(current - set(self.files)):
            changed.append(str(p.relative_to(self.out)))
            p.unlink()
        for p, data in self.files.items():
            if not p.is_file() or p.read_bytes() != data:
                changed.append(str(p.relative_to(self.out)))
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        return changed


def write_result(result: dict, out: str | Path) -> Path:
    """out/results/<student>.json; an earlier result of that student moves to results/history/ first."""
    results = Path(out) / "results"
    results.mkdir(parents=True, exist_ok=True)
    target = results / f"{_safe(result['student'])}.json"
    if target.exists():
        history = results / "history"
        history.mkdir(exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        n = len(list(history.glob(f"{target.stem}.*.json")))
        kept = history / f"{target.stem}.{stamp}-{n}.json"
        target.rename(kept)
        print(f"kept the earlier result of {result['student']} as {kept}")
    target.write_text(json.dumps(result, indent=1))
    return target


def _grade_worker(args: tuple) -> dict:
    name, path, kwargs = args
    try:
        return grade_notebook(path, student=name, **kwargs)
    except Exception as exc:  # one unreadable submission never stops the class
        return {"student": name, "submission": str(path), "solution": None, "notes": [f"grading failed: {exc}"],
                "exercises": [], "total": 0, "max_total": 0, "seconds": 0,
                "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def grade(submissions: list[str | Path], out: str | Path, jobs: int = 1, timeout: float = 120,
          notebook_timeout: float = 900, solution: str | Path | None = None, params: dict | None = None) -> list[dict]:
    """Grade every submission (process pool of ``jobs``), write results, grades.csv, feedback and summary."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    found = discover(submissions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    guard = _OutGuard(out)
    kwargs = dict(cell_timeout=timeout, notebook_timeout=notebook_timeout, solution=solution, params=params,
                  kernel_threads=max(1, (os.cpu_count() or 1) // jobs))
    tasks = [(name, path, kwargs) for name, path in found]
    from .progress import progress

    results: list[dict] = []
    bar = progress(total=len(tasks), desc="grading", unit="notebook")
    if jobs == 1:
        for task in tasks:
            results.append(_grade_worker(task))
            bar.update(1)
    else:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_grade_worker, tasks):
                results.append(result)
                bar.update(1)
    bar.close()
    changed = guard.restore()
    if changed:  # some submission wrote there; which one cannot be told when several ran at once
        message = (f"{_dt.datetime.now().isoformat(timespec='seconds')}: files in {out} changed while "
                   f"{len(tasks)} submission(s) ran; restored or removed: {', '.join(changed)}\n")
        print(message, end="")
        with open(out / "grading-log.txt", "a") as log:
            log.write(message)
    for result in results:
        write_result(result, out)
    collect(out)
    return results


def grade_one(notebook: str | Path, out: str | Path, **kwargs: Any) -> Path:
    """Grade one notebook into out/results/<student>.json (for job arrays; merge with :func:`collect`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    guard = _OutGuard(out / "results")
    result = grade_notebook(notebook, **kwargs)
    changed = guard.restore()
    if changed:
        result["notes"].append(f"files of the output folder changed during grading were restored: {changed}")
    return write_result(result, out)


def load_results(out: str | Path) -> list[dict]:
    results = []
    for path in sorted((Path(out) / "results").glob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"skipped {path}: not a result file ({exc})")
    return results


def _keep_previous(path: Path) -> None:
    if path.exists():
        previous = path.parent / "previous"
        previous.mkdir(exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        n = len(list(previous.glob(f"{path.stem}.*{path.suffix}")))
        path.rename(previous / f"{path.stem}.{stamp}-{n}{path.suffix}")


def collect(out: str | Path) -> Path:
    """Merge out/results/*.json into grades.csv, feedback/<student>.html and summary.html (+ summary.png).

    An existing grades.csv or summary is moved to out/previous/ first (never silently dropped).
    """
    out = Path(out)
    results = load_results(out)
    if not results:
        raise ValueError(f"out: {out}/results holds no result files; grade some submissions first")
    exercises: list[str] = []
    for r in results:
        for e in r["exercises"]:
            if e["exercise"] not in exercises:
                exercises.append(e["exercise"])
    kept = [p.name for p in (out / "grades.csv", out / "summary.html", out / "summary.png") if p.exists()]
    for name in kept:
        _keep_previous(out / name)
    if kept:
        print(f"earlier {', '.join(kept)} kept in {out / 'previous'}")
    with open(out / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *exercises, "total", "max_total"])
        for r in sorted(results, key=lambda r: r["student"]):
            pts = {e["exercise"]: e["points"] for e in r["exercises"]}
            w.writerow([r["student"], *(f"{pts[ex]:g}" if ex in pts else "" for ex in exercises),
                        f"{r['total']:g}", f"{r['max_total']:g}"])
    with open(out / "outcomes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *exercises])
        for r in sorted(results, key=lambda r: r["student"]):
            oc = {e["exercise"]: e["outcome"] for e in r["exercises"]}
            w.writerow([r["student"], *(oc.get(ex, "") for ex in exercises)])
    (out / "feedback").mkdir(exist_ok=True)
    for r in results:
        (out / "feedback" / f"{_safe(r['student'])}.html").write_text(feedback_html(r))
    _summary(results, exercises, out)
    return out / "grades.csv"


_CSS = """body{font-family:system-ui,sans-serif;max-width:56em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;margin:0;font-size:.9em}.passed{background:#e6f4e6}.partial{background:#fff6d6}
.failed,.error,.timed-out,.missing{background:#fde2e2}.not-attempted{background:#eee}"""


def feedback_html(r: dict) -> str:
    """What the student reads: every exercise's outcome, points and the grader's message."""
    rows = "".join(
        f"<tr class='{e['outcome'].replace(' ', '-')}'><td>{html.escape(e['exercise'])}</td><td>{e['outcome']}</td>"
        f"<td>{e['points']:g} / {e['max_points']:g}</td><td><pre>{html.escape(e['message'])}</pre></td></tr>"
        for e in r["exercises"])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r["notes"])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Feedback: {html.escape(r['student'])}</title>"
            f"<style>{_CSS}</style></head><body><h1>Feedback for {html.escape(r['student'])}</h1>"
            f"<p>Notebook {html.escape(str(r.get('solution')))}: <b>{r['total']:g} / {r['max_total']:g} points</b>. "
            f"Each exercise was run on inputs chosen by the grader and compared with the reference.</p>"
            f"<table><tr><th>exercise</th><th>outcome</th><th>points</th><th>what the grader found</th></tr>{rows}</table>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "") + "</body></html>\n")


def _summary(results: list[dict], exercises: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    maxima = {e["exercise"]: e["max_points"] for r in results for e in r["exercises"]}
    means = [sum(e["points"] for r in results for e in r["exercises"] if e["exercise"] == ex) / len(results) for ex in exercises]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(exercises)), 3.6))
    ax.bar(range(len(exercises)), [maxima[ex] for ex in exercises], color="0.88", label="maximum")
    ax.bar(range(len(exercises)), means, color="tab:blue", label="class mean")
    ax.set_xticks(range(len(exercises)), exercises, rotation=30, ha="right")
    ax.set(ylabel="points", title=f"points per exercise, {len(results)} submission(s)",
           ylim=(0, 1.3 * max(maxima.values(), default=1)))  # head room: the legend never hides a bar
    ax.legend(loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=100)
    plt.close(fig)
    counts = {ex: {o: 0 for o in OUTCOMES} for ex in exercises}
    for r in results:
        for e in r["exercises"]:
            counts[e["exercise"]][e["outcome"]] += 1
    head = "".join(f"<th>{o}</th>" for o in OUTCOMES)
    rows = "".join(f"<tr><td>{html.escape(ex)}</td><td>{m:.2f} / {maxima[ex]:g}</td>"
                   + "".join(f"<td>{counts[ex][o]}</td>" for o in OUTCOMES) + "</tr>" for ex, m in zip(exercises, means))
    (out / "summary.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>Grading summary</title><style>{_CSS}</style></head>"
        f"<body><h1>Grading summary</h1><p>{len(results)} submission(s); grades in grades.csv, outcomes in "
        f"outcomes.csv, each student's feedback in feedback/.</p><img src='summary.png' alt='points per exercise'>"
        f"<table><tr><th>exercise</th><th>mean points</th>{head}</tr>{rows}</table></body></html>\n")


# --------------------------------------------------------------------------- command line


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``grade``, ``grade-one`` and ``grade-collect`` to labkit's sub-command parser."""
    p = sub.add_parser("grade", help="grade submitted notebooks into grades.csv, feedback and a summary")
    p.add_argument("submissions", nargs="+", help="notebooks or folders (the student's name is the file/folder name)")
    p.add_argument("--out", required=True)
    p.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel (process pool)")
    p.add_argument("--timeout", type=float, default=120, help="seconds per cell")
    p.add_argument("--notebook-timeout", type=float, default=900, help="seconds per notebook")
    p.add_argument("--solution", default=None, help="solution notebook (default: matched by exercise ids)")
    p.set_defaults(func=cmd_grade)
    p = sub.add_parser("grade-one", help="grade one notebook into DIR/results/<student>.json")
    p.add_argument("notebook")
    p.add_argument("--out", required=True)
    p.add_argument("--student", default=None)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--notebook-timeout", type=float, default=900)
    p.add_argument("--solution", default=None)
    p.set_defaults(func=cmd_grade_one)
    p = sub.add_parser("grade-collect", help="merge DIR/results/*.json into grades.csv, feedback and summary")
    p.add_argument("dir")
    p.set_defaults(func=cmd_grade_collect)


def cmd_grade(args: argparse.Namespace) -> int:
    results = grade(args.submissions, args.out, jobs=args.jobs, timeout=args.timeout,
                    notebook_timeout=args.notebook_timeout, solution=args.solution)
    print(f"graded {len(results)} submission(s): {Path(args.out) / 'grades.csv'}, feedback/, summary.html")
    return 0


def cmd_grade_one(args: argparse.Namespace) -> int:
    path = grade_one(args.notebook, args.out, student=args.student, cell_timeout=args.timeout,
                     notebook_timeout=args.notebook_timeout, solution=args.solution)
    print(f"wrote {path}")
    return 0


def cmd_grade_collect(args: argparse.Namespace) -> int:
    print(f"wrote {collect(args.dir)}")
    return 0


def main_grade(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m labkit.grading grade|grade-one|grade-collect ...``."""
    parser = argparse.ArgumentParser(prog="python -m labkit.grading")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2


if __name__ == "__main__":
    import sys

    sys.exit(main_grade())
