"""Input checks shared by the solvers. Every message says what was expected and what arrived."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` if it is an integer (not a bool) ``>= minimum``; otherwise a ValueError that names it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


#: The dtypes nodelib's solvers integrate in.
SOLVER_DTYPES = (torch.float32, torch.float64)


def check_tensor_state(y0: Any, name: str = "y0") -> Tensor:
    if not isinstance(y0, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(y0).__name__}")
    if not y0.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype (float32 or float64), got {y0.dtype}")
    if y0.dtype not in SOLVER_DTYPES:
        # Half precision cannot carry the error control: float16 keeps about 3 significant digits and bfloat16
        # about 2, and the default atol (1e-9) rounds to zero in float16, which made the error scale zero, the
        # first step NaN and the solve spin through its whole step budget before this check existed.
        raise TypeError(
            f"{name} is {y0.dtype}: nodelib's solvers work in float32 or float64 only. Half precision keeps about "
            "3 significant digits (float16) or 2 (bfloat16), too few for the step-size control and the "
            f"tolerances. Solve in float32 ({name}.float(), and the field with .float()) and cast the result back"
        )
    if y0.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(y0.shape)}): there is no state to integrate")
    if not torch.isfinite(y0).all():
        raise ValueError(f"{name} contains NaN or infinite values; the initial state must be finite")
    return y0


def check_time_grid(t: Any, y0: Tensor) -> Tensor:
    """A 1-D, finite, strictly monotone grid of at least one time, cast to y0's dtype and device.

    A single time is the initial time alone: the solvers return ``y0`` (shape ``(1, *y0.shape)``), as
    torchdiffeq does.
    """
    if not isinstance(t, Tensor):
        try:
            t = torch.as_tensor(t)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"t must be a 1-D tensor (or sequence) of times, got {type(t).__name__}") from exc
    if t.dim() != 1:
        raise ValueError(f"t must be a 1-D time grid, got a tensor of shape {tuple(t.shape)}")
    if t.numel() < 1:
        raise ValueError("t is empty: it must hold at least the initial time")
    if t.is_complex():
        raise TypeError("t must be real")
    if t.device != y0.device:
        raise ValueError(f"t is on {t.device} but y0 is on {y0.device}; put both on the same device")
    if not torch.isfinite(t).all():
        raise ValueError("t contains NaN or infinite values; the time grid must be finite")
    if not _strictly_monotone(t):
        raise ValueError(
            "t must be strictly increasing or strictly decreasing (no repeated times, no change of "
            f"direction); got {_short(t)}"
        )
    cast = t.to(y0.dtype)
    if not _strictly_monotone(cast):
        raise ValueError(
            f"t is {t.dtype} and the state is {y0.dtype}; cast to {y0.dtype}, as the solver must, some times of "
            f"the grid become equal ({_short(cast)}). Use a {t.dtype} state, or a grid whose times differ by "
            f"more than {y0.dtype}'s resolution"
        )
    return cast


def _strictly_monotone(t: Tensor) -> bool:
    dt = t[1:] - t[:-1]
    return bool((dt > 0).all() or (dt < 0).all())


def check_positive(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """``value`` if it is a positive finite number (or a one-element tensor holding one, returned as a number);
    None if ``allow_none``. Otherwise a TypeError (not a number) or a ValueError that names it: the one check of
    positive numbers in nodelib's solvers and :class:`nodelib.SolverConfig`."""
    if value is None and allow_none:
        return None
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a positive number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def check_max_steps(value: Any) -> int:
    return check_positive_int("max_steps", value)


def checked_func(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """Wrap ``func`` so that its first output is checked against y0 (type, shape, dtype)."""
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, y), got {type(func).__name__}")
    checked = False

    def wrapped(t: Tensor, y: Tensor) -> Tensor:
        nonlocal checked
        out = func(t, y)
        if not checked:
            if not isinstance(out, Tensor):
                raise TypeError(f"func(t, y) must return a torch.Tensor, got {type(out).__name__}")
            if out.shape != y0.shape:
                raise ValueError(
                    f"func(t, y) returned shape {tuple(out.shape)}, expected the shape of y0, {tuple(y0.shape)}"
                )
            if out.dtype != y0.dtype:
                raise TypeError(f"func(t, y) returned dtype {out.dtype}, expected y0's dtype {y0.dtype}")
            checked = True
        return out

    return wrapped


def _short(t: Tensor) -> str:
    values = t.detach().cpu().tolist()
    if len(values) > 8:
        head = ", ".join(f"{v:.9g}" for v in values[:4])
        return "[" + head + ", ..., " + ", ".join(f"{v:.9g}" for v in values[-2:]) + "]"
    return "[" + ", ".join(f"{v:.9g}" for v in values) + "]"
