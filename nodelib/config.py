"""One typed solver configuration for every ODE block of the book: method, tolerances, backend, gradient.

:class:`SolverConfig` replaces the untyped dictionaries (``{"method": ..., "options": {...}, "adjoint": ...}``)
that the blocks, the classifiers and the experiment registry used to pass around, and holds the one set of
defaults. :meth:`SolverConfig.from_mapping` still reads such a dictionary (the registry stores plain JSON), so
a configuration written in torchdiffeq's vocabulary keeps working.

The gradient is a switch, as in torchdyn's ``sensitivity``:

- ``"backprop"``: autograd through every step of the solve (exact gradient of the computation; memory grows
  with the steps);
- ``"adjoint"``: the continuous adjoint (chapter 2), constant memory, restarted at each output time;
- ``"checkpointed"``: keep a few states, recompute the rest during ``backward()`` (exact gradient of the
  computation; memory grows with the checkpoints).

Every combination of ``backend`` (``"torchdiffeq"`` or ``"nodelib"``) and ``gradient`` works; see
:class:`nodelib.blocks.ODEBlock` for what each one calls.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from ._impl.checks import check_positive, check_positive_int
from ._impl.methods import ADJOINT_NORMS, FIXED_METHODS, check_method, is_fixed_step

__all__ = ["SolverConfig", "BACKENDS", "GRADIENTS", "ADJOINT_NORMS", "FIXED_METHODS"]

BACKENDS = ("torchdiffeq", "nodelib")
GRADIENTS = ("backprop", "adjoint", "checkpointed")
# FIXED_METHODS (every fixed-step name, on either backend) and ADJOINT_NORMS are defined once, in
# nodelib._impl.methods.


@dataclass(frozen=True)
class SolverConfig:
    """How an ODE block is solved and differentiated. Every field has the one default nodelib uses.

    Attributes:
        method: the solver (``"dopri5"``, ``"rk4"``, ``"euler"``, ...; torchdiffeq's names on that backend).
        rtol, atol: tolerances of an adaptive method (torchdiffeq's defaults, 1e-7 and 1e-9).
        step_size: the step of a fixed-step method (None: the steps are the gaps of the output times).
        max_steps: step budget (adaptive methods; nodelib's fixed-step solves check it up front too).
        first_step: the first step of an adaptive method (None: chosen automatically).
        backend: ``"torchdiffeq"`` (fast, many methods) or ``"nodelib"`` (the teaching solvers).
        gradient: ``"backprop"``, ``"adjoint"`` or ``"checkpointed"`` (see the module docstring).
        adjoint_method, adjoint_rtol, adjoint_atol, adjoint_step_size: the backward solve of the adjoint
            (None: the same as the forward solve).
        adjoint_norm: how the adjoint's adaptive backward solve measures its error: ``"mixed"`` (default, the
            largest RMS of state, adjoint and each parameter gradient), ``"seminorm"`` (without the parameter
            gradients: fewer backward steps) or ``"rms"`` (one RMS over everything; nodelib's earlier
            behaviour). On the torchdiffeq backend, ``"seminorm"`` is its ``adjoint_options={"norm": "seminorm"}``.
        checkpoint_every: steps between stored states with ``gradient="checkpointed"`` on the nodelib backend.
    """

    method: str = "dopri5"
    rtol: float = 1e-7
    atol: float = 1e-9
    step_size: Optional[float] = None
    max_steps: int = 100_000
    first_step: Optional[float] = None
    backend: str = "torchdiffeq"
    gradient: str = "backprop"
    adjoint_method: Optional[str] = None
    adjoint_rtol: Optional[float] = None
    adjoint_atol: Optional[float] = None
    adjoint_step_size: Optional[float] = None
    adjoint_norm: str = "mixed"
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a solver's name, got {self.method!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {self.gradient!r}")
        if self.backend == "nodelib":
            check_method(self.method)
            if self.adjoint_method is not None:
                check_method(self.adjoint_method)
        check_positive("rtol", self.rtol)
        check_positive("atol", self.atol)
        for name in ("step_size", "first_step", "adjoint_rtol", "adjoint_atol", "adjoint_step_size"):
            check_positive(name, getattr(self, name), allow_none=True)
        if self.adjoint_norm not in ADJOINT_NORMS:
            raise ValueError(f"adjoint_norm must be one of {ADJOINT_NORMS}, got {self.adjoint_norm!r}")
        check_positive_int("max_steps", self.max_steps)
        check_positive_int("checkpoint_every", self.checkpoint_every)
        if self.step_size is not None and not self.is_fixed_step:
            raise ValueError(f"step_size applies to fixed-step methods; {self.method!r} chooses its own steps "
                             "(set first_step to choose only the first)")
        if self.gradient == "checkpointed" and self.backend == "nodelib" and not self.is_fixed_step:
            raise ValueError("gradient='checkpointed' on the nodelib backend needs a fixed-step method: an adaptive "
                             f"solve ({self.method!r}) chooses its steps from the data")

    @property
    def is_fixed_step(self) -> bool:
        return is_fixed_step(self.method)

    def replace(self, **changes: Any) -> SolverConfig:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, settings: Union[SolverConfig, Mapping[str, Any], None] = None,
                     base: Optional[SolverConfig] = None) -> SolverConfig:
        """A configuration from a dictionary, applied on top of ``base`` (default: the defaults).

        Takes the field names above and torchdiffeq's vocabulary: ``options={"step_size", "first_step",
        "max_num_steps"}``, ``adjoint=True`` (= ``gradient="adjoint"``) and ``adjoint_options`` (its
        ``step_size`` becomes ``adjoint_step_size``, its ``norm`` ``adjoint_norm``).
        """
        base = base or cls()
        if settings is None:
            return base
        if isinstance(settings, SolverConfig):
            return settings
        if not isinstance(settings, Mapping):
            raise TypeError(f"a solver configuration is a SolverConfig or a dict, got {type(settings).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in settings.items():
            if key in fields:
                changes[key] = value
            elif key == "options":
                for option, v in dict(value or {}).items():
                    target = {"step_size": "step_size", "first_step": "first_step", "max_num_steps": "max_steps"}.get(option)
                    if target is None:
                        raise ValueError(f"unknown solver option {option!r}; options may hold step_size, first_step, "
                                         "max_num_steps")
                    changes[target] = v
            elif key == "adjoint_options":
                for option, v in dict(value or {}).items():
                    target = {"step_size": "adjoint_step_size", "norm": "adjoint_norm"}.get(option)
                    if target is None:
                        raise ValueError(f"adjoint_options may hold step_size and norm only, got {option!r}")
                    changes[target] = v
            elif key == "adjoint":
                if not isinstance(value, bool):
                    raise TypeError(f"adjoint must be True or False, got {value!r}")
                changes["gradient"] = "adjoint" if value else changes.get("gradient", "backprop")
            else:
                known = sorted(fields | {"options", "adjoint", "adjoint_options"})
                raise ValueError(f"unknown solver setting {key!r}; known: {', '.join(known)}")
        method = changes.get("method")
        if method is not None and not is_fixed_step(method) and "step_size" not in changes:
            changes["step_size"] = None  # a new adaptive method drops the base's step size
        return dataclasses.replace(base, **changes)

    def _torchdiffeq_options(self, method: str, step_size: Optional[float], first_step: Optional[float]) -> dict[str, Any]:
        # torchdiffeq warns about options a method does not take, so each family gets only its own
        if is_fixed_step(method):
            return {} if step_size is None else {"step_size": step_size}
        return {"max_num_steps": self.max_steps, **({} if first_step is None else {"first_step": first_step})}

    def torchdiffeq_kwargs(self) -> dict[str, Any]:
        """``method``, ``rtol``, ``atol`` and ``options`` as ``torchdiffeq.odeint`` takes them."""
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol,
                "options": self._torchdiffeq_options(self.method, self.step_size, self.first_step)}

    def torchdiffeq_adjoint_kwargs(self) -> dict[str, Any]:
        """The backward solve's settings in ``torchdiffeq.odeint_adjoint``'s names (unset: the forward ones)."""
        method = self.adjoint_method or self.method
        options = self._torchdiffeq_options(method, self.adjoint_step_size or self.step_size, None)
        if not is_fixed_step(method) and self.adjoint_norm != "mixed":  # "mixed" is torchdiffeq's default
            options["norm"] = "seminorm" if self.adjoint_norm == "seminorm" else _torchdiffeq_rms_norm
        return {"adjoint_method": method, "adjoint_rtol": self.adjoint_rtol or self.rtol,
                "adjoint_atol": self.adjoint_atol or self.atol, "adjoint_options": options}

    def nodelib_adjoint_kwargs(self) -> dict[str, Any]:
        """The backward solve's settings for :func:`nodelib.adjoint.odeint_adjoint` (None: the forward ones)."""
        return {"adjoint_method": self.adjoint_method, "adjoint_rtol": self.adjoint_rtol,
                "adjoint_atol": self.adjoint_atol, "adjoint_step_size": self.adjoint_step_size,
                "adjoint_norm": self.adjoint_norm}

    def nodelib_kwargs(self) -> dict[str, Any]:
        """``method``, ``rtol``, ``atol``, ``step_size``, ``max_steps`` and ``options`` for nodelib's solvers."""
        kwargs: dict[str, Any] = {"method": self.method, "rtol": self.rtol, "atol": self.atol,
                                  "step_size": self.step_size, "max_steps": self.max_steps}
        if self.first_step is not None:
            kwargs["options"] = {"first_step": self.first_step}
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _torchdiffeq_rms_norm(tensors: Any) -> Any:
    """One RMS over torchdiffeq's whole augmented state (``adjoint_norm="rms"`` on that backend)."""
    import torch

    return torch.cat([x.reshape(-1) for x in tensors]).pow(2).mean().sqrt()
