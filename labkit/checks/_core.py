"""What every exercise check shares: the three outcomes, seeded sandboxes, an op trace.

A check runs the student's object on small known inputs and ends in one of three ways:

* it passes: a one-line "passed" message, and the student's object is returned;
* the student's code still raises ``NotImplementedError`` (the untouched handout): a
  message says so and labkit's reference is returned, so the notebook runs on;
* something is wrong: :class:`ExerciseError` (an ``AssertionError``) says what was
  expected, what came back and what usually causes it.

Checks never touch the global random state (they run inside ``torch.random.fork_rng``)
and print no timings, so their output is the same on every run (nbval compares it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

T = TypeVar("T")


class ExerciseError(AssertionError):
    """The student's code runs but does the wrong thing; the message says what and why."""

    def __init__(self, exercise: str, problem: str, expected: str | None = None, got: str | None = None,
                 hint: str | None = None) -> None:
        lines = [f"exercise {exercise}: {problem}"]
        if expected is not None:
            lines.append(f"  expected: {expected}")
        if got is not None:
            lines.append(f"  got:      {got}")
        if hint is not None:
            lines.append(f"  hint:     {hint}")
        super().__init__("\n".join(lines))
        self.exercise, self.problem = exercise, problem


class NotDone(Exception):
    """Internal: the student's code raised NotImplementedError (the exercise is not written yet)."""

    def __init__(self, original: NotImplementedError) -> None:
        super().__init__(str(original))
        self.original = original


def reference_name(obj: Any) -> str:
    """``labkit.models.DCGANGenerator``-style name of a reference object, for messages."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def run_check(exercise: str, student: T, reference: T, body: Callable[[T], str]) -> T:
    """Run ``body(student)`` and turn its outcome into what the notebook uses next.

    ``body`` returns a short summary when every test passed and raises
    :class:`ExerciseError` (propagated) or :class:`NotDone` (falls back to ``reference``).
    """
    if student is None:
        raise ExerciseError(exercise, "got None instead of your code",
                            expected="the class or function your exercise cell defines",
                            hint="run the exercise cell above first, then this check")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the check's models are tiny: one thread avoids contention on a busy machine
    try:
        summary = body(student)
    except NotDone as exc:
        print(f"exercise {exercise} not done yet: continuing with labkit's reference "
              f"({reference_name(reference)}).\n"
              f"  (your code raised NotImplementedError: {exc}).\n"
              f"  Write your solution in the cell above, run it, then run this cell again.")
        return reference
    finally:
        torch.set_num_threads(threads)
    print(f"exercise {exercise}: passed. {summary}")
    return student


def call(exercise: str, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call student code; NotImplementedError means "not done", any other error is explained."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise NotDone(exc) from exc
    except ExerciseError:
        raise
    except Exception as exc:  # the student's bug, reported with the call that hit it
        raise ExerciseError(exercise, f"{what} raised {type(exc).__name__}: {exc}",
                            hint="read the error above; the check called your code exactly as written here") from exc


@contextlib.contextmanager
def sandbox(seed: int = 0) -> Iterator[None]:
    """Seeded, and the caller's random state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def shape(t: Any) -> str:
    """Readable shape of a tensor (or the type of anything else)."""
    if isinstance(t, torch.Tensor):
        return f"a tensor of shape {tuple(t.shape)} ({t.dtype})"
    return f"a {type(t).__name__}"


def require_tensor(exercise: str, what: str, value: Any, expected: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ExerciseError(exercise, f"{what} must return a torch tensor", expected=expected, got=shape(value))
    return value


def require_module(exercise: str, obj: Any, what: str) -> nn.Module:
    if not isinstance(obj, nn.Module):
        raise ExerciseError(exercise, f"{what} must be a torch.nn.Module", expected="a subclass of nn.Module",
                            got=f"a {type(obj).__name__}", hint="class Generator(nn.Module): ... with super().__init__()")
    return obj


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- op trace

POOLING = ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_max_pool2d", "adaptive_avg_pool2d", "lp_pool2d", "fractional_max_pool2d")
UPSAMPLING = ("interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle")
RELU = ("relu", "relu_", "relu6")
LEAKY = ("leaky_relu", "leaky_relu_")
NORMS = ("batch_norm", "instance_norm", "layer_norm", "group_norm")
LAYER_OPS = ("linear", "conv2d", "conv_transpose2d", *NORMS, *RELU, *LEAKY, "tanh", "sigmoid",
             "hardtanh", "clamp", "clip", "elu", "selu", "gelu", "silu", "softplus")


class OpTrace(TorchFunctionMode):
    """Records the torch functions a forward pass calls, whether through modules or F.*.

    Only top-level calls are seen (a mode is switched off while it handles a call), so
    ``nn.ReLU`` shows up as ``relu`` and ``nn.Conv2d`` as ``conv2d`` with its stride.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple, dict]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls.append((getattr(func, "__name__", str(func)), args, kwargs))
        return func(*args, **kwargs)

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def layer_ops(self) -> list[str]:
        """The calls that make up the architecture, in order (views, additions... left out)."""
        return [name for name in self.names if name in LAYER_OPS]

    def used(self, names: tuple[str, ...]) -> list[str]:
        return sorted({n for n in self.names if n in names})

    def conv_strides(self, op: str = "conv2d") -> list[int]:
        """The stride of every ``op`` call (the first number when it is a pair)."""
        strides = []
        for name, args, kwargs in self.calls:
            if name != op:
                continue
            stride = kwargs.get("stride", args[3] if len(args) > 3 else 1)
            strides.append(int(stride[0] if isinstance(stride, (tuple, list)) else stride))
        return strides


def traced(exercise: str, what: str, fn: Callable[..., T], *args: Any) -> tuple[T, OpTrace]:
    """Call student code under an :class:`OpTrace`; return its result and the trace."""
    trace = OpTrace()
    with trace:
        out = call(exercise, what, fn, *args)
    return out, trace


def params_without_grad(module: nn.Module) -> list[str]:
    """Names of parameters that got no (or an all-zero) gradient from the last backward."""
    return [name for name, p in module.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))]
