"""Structured states: a tuple of tensors solved as one flat vector, with per-part tolerances and error norm.

ACE-NODE evolves a state and an attention, ANODEV2 activations and weights: each part keeps its own shape,
and the error control of an adaptive solver measures each part on its own scale. The solvers work on one
flat tensor; :class:`Structure` maps between the tuple and that vector (differentiably: ``cat``, ``split`` and
``view``), wraps the field, and gives the norm that the error control applies (the largest of the parts'
root-mean-square norms, torchdiffeq's "mixed" norm, so a small part is not drowned by a large one).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from .checks import check_positive, check_tensor_state

State = Union[Tensor, tuple[Tensor, ...]]
Func = Callable[[Tensor, Any], Any]


def rms(x: Tensor) -> Tensor:
    return x.detach().pow(2).mean().sqrt()


def max_rms_norm(sizes: Sequence[int], measured: Optional[int] = None) -> Callable[[Tensor], Tensor]:
    """The norm ``max_k rms(x_k)`` of a vector made of consecutive parts of these sizes.

    Each part is measured on its own scale, so a small part is not drowned by a large one (torchdiffeq's
    "mixed" norm). With ``measured=m`` only the first ``m`` parts count and the rest of the vector is ignored:
    a *seminorm*, which the adjoint uses to leave the parameter gradients out of its error control
    (Kidger, Chen & Lyons 2021). Parts of size zero are skipped.
    """
    sizes = [int(n) for n in sizes]
    counted = sizes if measured is None else sizes[:measured]
    total = sum(counted)
    kept = [n for n in counted if n > 0]
    if not kept:
        raise ValueError("a norm needs at least one part with elements to measure")
    root_sizes = torch.tensor([float(n) for n in kept], dtype=torch.float64).sqrt()
    cache: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def norm(x: Tensor) -> Tensor:
        x = x.detach()
        head = x if total == x.numel() else x[:total]
        parts = head.split(kept)  # parts of size zero take no room, so leaving them out keeps the offsets
        key = (x.dtype, x.device)
        if key not in cache:
            cache[key] = root_sizes.to(dtype=x.dtype, device=x.device)
        norms = torch.stack([torch.linalg.vector_norm(p) for p in parts])
        return (norms / cache[key]).max()

    return norm


class Structure:
    """How a state (one tensor, or a tuple of them) is laid out in the flat vector the solvers integrate."""

    def __init__(self, y0: Any) -> None:
        self.is_tuple = isinstance(y0, (tuple, list))
        parts = tuple(y0) if self.is_tuple else (y0,)
        if self.is_tuple and len(parts) == 0:
            raise ValueError("y0 is an empty tuple: there is no state to integrate")
        for i, part in enumerate(parts):
            check_tensor_state(part, f"y0[{i}]" if self.is_tuple else "y0")
        first = parts[0]
        for i, part in enumerate(parts[1:], start=1):
            if part.dtype != first.dtype or part.device != first.device:
                raise TypeError(
                    f"the parts of y0 must share one dtype and device: y0[0] is {first.dtype} on {first.device}, "
                    f"y0[{i}] is {part.dtype} on {part.device}"
                )
        self.shapes = [p.shape for p in parts]
        self.sizes = [p.numel() for p in parts]
        self.dtype, self.device = first.dtype, first.device

    @property
    def n_parts(self) -> int:
        return len(self.shapes)

    def flatten(self, y: State) -> Tensor:
        if not self.is_tuple:
            assert isinstance(y, Tensor)
            return y
        return torch.cat([p.reshape(-1) for p in y])

    def unflatten(self, flat: Tensor) -> State:
        """The flat vector (or a stack of them along dim 0) as the user's structure."""
        if not self.is_tuple:
            return flat
        lead = flat.shape[:-1]
        return tuple(p.reshape(tuple(lead) + tuple(s)) for p, s in zip(flat.split(self.sizes, dim=-1), self.shapes))

    def wrap(self, func: Func) -> Callable[[Tensor, Tensor], Tensor]:
        """The field on flat vectors; the first output is checked part by part against y0's structure."""
        if not callable(func):
            raise TypeError(f"func must be callable as func(t, y), got {type(func).__name__}")
        if not self.is_tuple:
            return func
        checked = False

        def flat_func(t: Tensor, y: Tensor) -> Tensor:
            nonlocal checked
            out = func(t, self.unflatten(y))
            if not checked:
                if not isinstance(out, (tuple, list)) or len(out) != self.n_parts:
                    got = f"a {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else "")
                    raise TypeError(f"y0 has {self.n_parts} parts, so func(t, y) must return a tuple of "
                                    f"{self.n_parts} tensors; it returned {got}")
                for i, (o, s) in enumerate(zip(out, self.shapes)):
                    if not isinstance(o, Tensor) or o.shape != s or o.dtype != self.dtype:
                        what = (f"shape {tuple(o.shape)} and dtype {o.dtype}" if isinstance(o, Tensor)
                                else type(o).__name__)
                        raise ValueError(f"func(t, y)[{i}] returned {what}, expected y0[{i}]'s shape "
                                         f"{tuple(s)} and dtype {self.dtype}")
                checked = True
            return torch.cat([o.reshape(-1) for o in out])

        return flat_func

    def tolerance(self, name: str, value: Union[float, Sequence[float]]) -> Union[float, Tensor]:
        """A scalar tolerance, or one per part expanded to the flat layout."""
        if isinstance(value, (tuple, list)):
            if not self.is_tuple or len(value) != self.n_parts:
                raise ValueError(f"{name} was given {len(value)} values; give one number, or one per part of "
                                 f"a tuple state ({self.n_parts} part(s) here)")
            values = [check_positive(f"{name}[{i}]", v) for i, v in enumerate(value)]
            return torch.cat([torch.full((n,), float(v), dtype=self.dtype, device=self.device)
                              for v, n in zip(values, self.sizes)])
        return check_positive(name, value)

    def norm(self) -> Optional[Callable[[Tensor], Tensor]]:
        """The error norm for this structure: None (plain RMS) for one tensor, the mixed norm for a tuple."""
        if not self.is_tuple or self.n_parts == 1:
            return None
        return max_rms_norm(self.sizes)
