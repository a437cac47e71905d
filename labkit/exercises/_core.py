"""What every exercise shares: its declaration, the probe run, and the one judgement.

An :class:`Exercise` is declared once, in its lab's module (``dcgan``, ``cgan``, ``wgan``):
its id, title and points, the labkit reference it is judged against (and other accepted
answers), a *probe* and a *comparison*.

- The probe is an ordinary function ``probe(obj, seed) -> facts``: it calls the student's
  class or function on inputs drawn from ``seed`` and returns what came back as plain JSON
  (numbers, shapes, layer names). Nothing in it is trusted to judge.
- The comparison ``compare(got, ref) -> [Part, ...]`` puts the student's facts beside the
  reference's facts for the same seed. Every part that scores is a comparison of numbers
  computed from the seed's inputs, so it cannot be met without code that computes them;
  layer names, shapes and counts only explain a difference.

:func:`judge` turns the parts into points. The notebook's check (:func:`check`, seed 0, in the
student's kernel) and the grader (a secret seed, the student's probe in a sandboxed process,
the references in its own) run this same judgement: a check that prints "passed" means full
points, and a part that loses points fails the check with the same message.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

OUTCOMES = ("passed", "partial", "failed", "not attempted", "error", "timed out", "missing")


class ExerciseError(AssertionError):
    """The student's code runs but does the wrong thing; the message says what and why."""

    def __init__(self, exercise: str, message: str) -> None:
        super().__init__(f"exercise {exercise}: {message}")
        self.exercise = exercise


@dataclass(frozen=True)
class Part:
    """One scored comparison: what is checked, whether it holds, and what to do when it does not."""

    check: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class Exercise:
    """One exercise, declared once: everything the notebook check, the grader and the handout read.

    ``reference`` and ``variants`` are ``"module:qualname"`` names of labkit objects with the
    student's signature; ``hidden`` names more labkit code that would answer the exercise for
    the student (helpers the reference calls). All of them are replaced by failing stubs in
    the process that scores this exercise. ``uses`` lists earlier exercises whose names the
    student's code calls (the train step calls ``d_loss`` and ``g_loss``).
    """

    id: str
    lab: str
    title: str
    points: float
    name: str  # what the exercise cell defines and the probe calls
    reference: str
    probe: Callable[[Any, int], dict]
    compare: Callable[[dict, dict], list[Part]]
    summary: Callable[[dict], str]
    variants: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.points <= 0:
            raise ValueError(f"points of exercise {self.id} must be > 0, got {self.points}")

    @property
    def guarded(self) -> tuple[str, ...]:
        """Every labkit name out of reach while this exercise is scored."""
        return (self.reference, *self.variants, *self.hidden)

    def references(self) -> list[Any]:
        """labkit's reference, then the other accepted answers (objects)."""
        return [resolve(name) for name in (self.reference, *self.variants)]


def resolve(name: str) -> Any:
    """The object a ``"package.module:Qual.name"`` string names."""
    module, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------- running a probe


@contextlib.contextmanager
def quiet_rng(seed: int) -> Iterator[None]:
    """Seeded global RNG, one thread, and the caller's random state and threads restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def run_probe(exercise: Exercise, obj: Any, seed: int) -> dict:
    """Probe ``obj`` (the student's or a reference); a JSON-ready status dict, never an exception.

    ``{"status": "ok", "result": facts}``, ``{"status": "not attempted", ...}`` when the code
    still raises ``NotImplementedError``, or ``{"status": "error", "message", "traceback"}``.
    """
    if obj is None:
        return {"status": "error", "message": f"{exercise.name} is not defined: the exercise cell must define it"}
    try:
        with quiet_rng(seed):
            facts = exercise.probe(obj, seed)
        return {"status": "ok", "result": json.loads(json.dumps(facts, allow_nan=True))}
    except NotImplementedError as exc:
        return {"status": "not attempted", "message": str(exc)}
    except Exception as exc:  # the student's bug, reported with where it happened
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return {"status": "error", "message": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
                "traceback": "".join(tb[-6:])}


# --------------------------------------------------------------------------- the judgement


@dataclass
class Verdict:
    """The judgement of one exercise: outcome, points and the message the student reads."""

    exercise: str
    outcome: str
    points: float
    max_points: float
    message: str = ""
    parts: list = field(default_factory=list)
    summary: str = ""


def judge(exercise: Exercise, raw: dict, refs: list[dict]) -> Verdict:
    """Score the student's probe result ``raw`` against the references' results for the same seed.

    The closest accepted reference is the one judged against; on a tie labkit's own
    reference (the first), whose messages are the hints the lab was written for.
    """
    points = exercise.points
    if raw.get("status") == "not attempted":
        return Verdict(exercise.id, "not attempted", 0, points,
                       "not done yet: the exercise still raises NotImplementedError" +
                       (f" ({raw['message']})" if raw.get("message") else ""))
    if raw.get("status") != "ok":
        text = raw.get("traceback") or raw.get("message", "")
        return Verdict(exercise.id, "error", 0, points, f"calling your {exercise.name} failed:\n{text}".rstrip())
    good_refs = [r["result"] for r in refs if r.get("status") == "ok"]
    if not good_refs:
        raise RuntimeError(f"exercise {exercise.id}: labkit's reference failed its own probe: {refs}")
    got = raw["result"]
    parts = max((exercise.compare(got, ref) for ref in good_refs), key=lambda ps: sum(p.passed for p in ps))
    good = sum(p.passed for p in parts)
    outcome = "passed" if good == len(parts) else "partial" if good else "failed"
    lines = [f"{p.check}: {'ok' if p.passed else 'wrong. ' + p.message}" for p in parts]
    summary = exercise.summary(got) if outcome == "passed" else ""
    return Verdict(exercise.id, outcome, round(points * good / len(parts), 2), points, "\n".join(lines),
                   [{"check": p.check, "passed": p.passed} for p in parts], summary)


def check(exercise: Exercise, obj: Any, seed: int = 0) -> Any:
    """The notebook's check: judge ``obj`` as the grader would (public seed); what the notebook uses next.

    Returns ``obj`` when every part passes; labkit's reference when ``obj`` still raises
    ``NotImplementedError`` (the notebook runs on); raises :class:`ExerciseError` otherwise.
    """
    raw = run_probe(exercise, obj, seed)
    reference = exercise.references()[0]
    if raw["status"] == "not attempted":
        print(f"exercise {exercise.id} not done yet: continuing with labkit's reference "
              f"({exercise.reference.replace(':', '.')}).\n"
              f"  (your code raised NotImplementedError: {raw.get('message', '')}).\n"
              f"  Write your solution in the cell above, run it, then run this cell again.")
        return reference
    verdict = judge(exercise, raw, [run_probe(exercise, ref, seed) for ref in exercise.references()])
    if verdict.outcome != "passed":
        raise ExerciseError(exercise.id, f"{verdict.outcome} ({verdict.points:g} of {verdict.max_points:g} points)\n"
                            + verdict.message)
    print(f"exercise {exercise.id}: passed. {verdict.summary}")
    return obj


# --------------------------------------------------------------------------- comparing facts


def close(a: Any, b: Any, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    """Nested JSON values equal, floats within tolerance (NaN and infinities never match a number)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not (math.isfinite(a) and math.isfinite(b)):
            return a == b and not math.isnan(a)
        return abs(a - b) <= atol + rtol * abs(b)
    return a == b


def tensor_facts(x: Any) -> Any:
    """A tensor as JSON (shape and values, float64), anything else as it is."""
    if isinstance(x, torch.Tensor):
        x = x.detach().double().cpu()
        return {"shape": list(x.shape), "values": x.flatten().tolist()}
    if isinstance(x, (list, tuple)):
        return [tensor_facts(v) for v in x]
    return x


def describe(t: Any, limit: int = 4) -> str:
    """Short text for a probed tensor (shape and first values) or any JSON value."""
    if isinstance(t, dict) and "shape" in t and "values" in t:
        values = ", ".join(f"{v:.4g}" for v in t["values"][:limit])
        more = ", ..." if len(t["values"]) > limit else ""
        return f"shape {tuple(t['shape'])}, values [{values}{more}]"
    text = json.dumps(t)
    return text if len(text) < 120 else text[:117] + "..."


def same(got: dict, ref: dict, key: str) -> bool:
    return close(got.get(key), ref.get(key))


def part(check_: str, got: dict, ref: dict, keys: tuple[str, ...], hint: str = "") -> Part:
    """A part that holds when every key's value matches the reference's; the message says which did not."""
    wrong = [k for k in keys if not same(got, ref, k)]
    why = "; ".join(f"expected {describe(ref.get(k))}, got {describe(got.get(k))}" for k in wrong[:2])
    return Part(check_, not wrong, why + (f". {hint}" if hint and wrong else ""))


# --------------------------------------------------------------------------- probing modules

POOLING = ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_max_pool2d", "adaptive_avg_pool2d")
UPSAMPLING = ("interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle")
NORMS = ("batch_norm", "instance_norm", "layer_norm", "group_norm")
LAYER_OPS = ("linear", "conv2d", "conv_transpose2d", *NORMS, "relu", "relu6", "leaky_relu", "tanh", "sigmoid",
             "hardtanh", "clamp", "clip", "elu", "selu", "gelu", "silu", "softplus", "dropout", *POOLING, *UPSAMPLING)


class OpTrace(TorchFunctionMode):
    """Records the layer-level torch functions a forward pass calls, through modules or ``F.*``."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func)).rstrip("_")
        if name in LAYER_OPS:
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


def execution_order(module: nn.Module, *inputs: torch.Tensor) -> list[nn.Module]:
    """The sub-modules holding parameters, in the order a forward pass calls them (then any left over)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda mod, _args: order.append(mod) if mod not in order else None)
             for m in module.modules() if any(True for _ in m.parameters(recurse=False))]
    state = {k: v.clone() for k, v in module.state_dict().items()}
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in hooks:
            h.remove()
        module.load_state_dict(state)  # the pass must not move BatchNorm's running statistics
    rest = [m for m in module.modules() if m not in order and any(True for _ in m.parameters(recurse=False))]
    return order + rest


def seed_weights(module: nn.Module, seed: int, *inputs: torch.Tensor) -> None:
    """Give every parameter values drawn from ``seed``, layer by layer in forward order.

    The draw does not depend on how the student named or registered the layers. A Linear
    weight is drawn input-major, as a transposed convolution's is, so ``Linear(nz, C*16)``
    reshaped to C x 4 x 4 and ``ConvTranspose2d(nz, C, 4, 1, 0)`` on a 1x1 input get the same
    map: the two forms of DCGAN's first layer are one answer.
    """
    g = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        # scaled so a signal neither vanishes nor explodes through the layers (fan-in for a
        # convolution, out-channels x kernel for a transposed one and an input-major Linear)
        return torch.randn(*shape, generator=g) / math.sqrt(max(1, math.prod(shape[1:])))

    with torch.no_grad():
        for m in execution_order(module, *inputs):
            for name, p in m.named_parameters(recurse=False):
                if isinstance(m, nn.Linear) and name == "weight":
                    p.copy_(draw(p.shape[1], p.shape[0]).t())
                elif p.dim() > 1:
                    p.copy_(draw(*p.shape))
                elif name == "weight":  # a normalisation's scale
                    p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))


def module_facts(cls: Any, kwargs: dict, make_inputs: Callable[[torch.Generator], tuple], seed: int) -> dict:
    """What a module class does on seeded weights and grader-drawn inputs.

    Scored facts: the output in training mode, the gradient of a random projection of it
    with respect to the float input, and the output in eval mode after that one training
    pass (BatchNorm's running statistics). Explaining facts: parameter count, layer ops.
    """
    m = cls(**kwargs)
    if not isinstance(m, nn.Module):
        raise TypeError(f"{getattr(cls, '__name__', cls)}(...) must build a torch.nn.Module, got {type(m).__name__}")
    g = torch.Generator().manual_seed(seed + 1)
    inputs = make_inputs(g)
    seed_weights(m, seed + 2, *inputs)
    m.train()
    x = inputs[0].clone().requires_grad_(True)
    trace = OpTrace()
    with trace:
        out = m(x, *inputs[1:])
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward must return a tensor, got {type(out).__name__}")
    facts: dict[str, Any] = {"params": int(sum(p.numel() for p in m.parameters())), "ops": trace.ops,
                             "shape": list(out.shape), "out": tensor_facts(out)}
    weights = torch.randn(out.shape, generator=g)
    (grad,) = torch.autograd.grad((out * weights).sum(), x, allow_unused=True)
    facts["grad"] = tensor_facts(grad if grad is not None else torch.zeros_like(x))
    m.eval()
    with torch.no_grad():
        facts["eval"] = tensor_facts(m(*inputs))
    return facts


def canonical_ops(ops: list[str]) -> list[str]:
    """Layer ops with DCGAN's two equal first layers (Linear, 1x1 ConvTranspose2d) named alike."""
    return ["conv_transpose2d" if i == 0 and op == "linear" else op for i, op in enumerate(ops)]


def module_diagnosis(got: dict, ref: dict, role: str) -> str:
    """Why a module's numbers differ, from the explaining facts: shape, layers, parameter count."""
    notes = []
    if got.get("shape") != ref.get("shape"):
        notes.append(f"output shape {tuple(got.get('shape') or ())}, expected {tuple(ref['shape'])}")
        if role == "generator" and got.get("shape") and got["shape"][-1:] == [64]:
            notes.append("one upsampling layer too many: three stride-2 layers take 4x4 to 32x32")
        if role == "generator" and got.get("shape") and got["shape"][-1:] == [16]:
            notes.append("one upsampling layer too few: three stride-2 layers take 4x4 to 32x32")
        if role == "discriminator" and got.get("shape") and len(got["shape"]) > 1:
            notes.append("D returns one raw logit per image: flatten the last convolution's (B, 1, 1, 1) to (B,)")
    ops, ref_ops = canonical_ops(got.get("ops") or []), canonical_ops(ref["ops"])
    if ops != ref_ops:
        notes.append(f"layers in order: expected {' > '.join(ref_ops)}; got {' > '.join(ops) or 'none'}")
        if set(ops) & set(POOLING):
            notes.append("DCGAN uses no pooling: strided convolutions change the size")
        if set(ops) & set(UPSAMPLING):
            notes.append("DCGAN's generator upsamples with transposed convolutions (ConvTranspose2d(c_in, c_out, 4, 2, 1))")
        if ops and ops[-1] == "sigmoid" and role == "discriminator":
            notes.append("no Sigmoid at the end: D returns raw logits, the loss applies the sigmoid")
    if got.get("params") != ref["params"]:
        notes.append(f"{got.get('params')} parameters, expected {ref['params']} (a bias before BatchNorm is "
                     "cancelled by it: bias=False there)")
    return "; ".join(notes) or "same layers and parameter count as the reference, but different numbers: check the order of the inputs joined together and each layer's arguments"
