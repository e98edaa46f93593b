"""How hidden tests are written (``assignments/hidden/<set>.py`` imports this).

A hidden test is a function of one argument, ``student``: ``student("name", *args)`` calls the student's function of
that name and returns what it returned. The test never runs in the student's process: the checker runs it twice,
once against the master solution (which records the calls, their inputs, and proves the test passes) and, for each
submission, once more with the outputs the student's function produced for exactly those inputs in the sandbox. So:

* inputs must be data (tensors, numbers, tuples ...) or :class:`Code` (a field, a seeded network), and the same on
  every run (seed what is random);
* compare with a reference computed here (the master's function is ``solution("name")``, or write the formula out),
  never with a value taken from the notebook;
* ``forbid(question, "nodelib.anodev2", ...)`` switches those functions off while the student's answer runs, so an
  answer that merely calls the library function it is compared with raises instead of scoring.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from wire import Code, Opaque, StudentError  # noqa: F401  (re-exported for hidden tests)


@dataclass
class HiddenTest:
    name: str
    question: str
    points: float
    run: Callable
    doc: str


TESTS: list[HiddenTest] = []
FORBIDDEN: dict[str, list[str]] = {}
SOLUTION: dict = {}


def hidden(question: str, points: float):
    """Register a hidden test of ``question`` worth ``points``; its docstring is the hint a student may be shown."""
    def register(fn: Callable) -> Callable:
        TESTS.append(HiddenTest(fn.__name__, question, float(points), fn, (fn.__doc__ or "").strip()))
        return fn
    return register


def forbid(question: str, *targets: str) -> None:
    """Functions (dotted names: a module means every function and method defined in it) switched off while the
    student's functions for ``question`` run."""
    FORBIDDEN.setdefault(question, []).extend(targets)


def solution(name: str) -> Callable:
    """The master solution's function ``name`` (the reference)."""
    return SOLUTION[name]


def _describe(value) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}{'' if shape is None else ' of shape ' + str(tuple(shape))}"


def assert_close(out, expected, atol: float = 1e-10, rtol: float = 0.0, what: str = "the result") -> None:
    """``out`` is a tensor of ``expected``'s shape, within ``atol + rtol |expected|`` everywhere."""
    import torch

    expected = torch.as_tensor(expected)
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{what} should be a tensor of shape {tuple(expected.shape)}, got {_describe(out)}")
    if tuple(out.shape) != tuple(expected.shape):
        raise AssertionError(f"{what} has shape {tuple(out.shape)}, expected {tuple(expected.shape)}")
    if out.is_complex() and not expected.is_complex():
        raise AssertionError(f"{what} should be real, got a complex tensor")
    dtype = torch.complex128 if expected.is_complex() else torch.float64
    got, want = out.detach().to(dtype), expected.detach().to(dtype)
    if not bool(torch.isfinite(got).all()):
        raise AssertionError(f"{what} holds NaN or infinite values")
    diff = (got - want).abs()
    if not bool((diff <= atol + rtol * want.abs()).all()):
        raise AssertionError(f"{what} is off by up to {float(diff.max()):.3g}")


def assert_number(out, expected: float, atol: float = 1e-10, what: str = "the result") -> float:
    """``out`` is a number (a Python number or a one-element tensor) within ``atol`` of ``expected``."""
    import torch

    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise AssertionError(f"{what} should be a single number, got {_describe(out)}")
        value = float(out.detach().reshape(()).real)
    elif isinstance(out, (int, float)) and not isinstance(out, bool):
        value = float(out)
    else:
        raise AssertionError(f"{what} should be a number, got {_describe(out)}")
    if not abs(value - expected) <= atol:
        raise AssertionError(f"{what} is off by {abs(value - expected):.3g}")
    return value
