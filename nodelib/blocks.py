"""Building blocks of chapter 1: a vector field, a residual block, a ResNet, and an ODE block.

A residual block ``z ↦ z + h f(t, z)`` is one explicit Euler step of ``dz/dt = f(t, z)``; a ResNet of N
such blocks over ``[t0, t1]`` with ``h = (t1 - t0) / N`` is N Euler steps; the ODE block replaces the
steps by an ODE solver (torchdiffeq's by default, or nodelib's teaching solvers).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ._impl.checks import check_positive_int
from ._impl.structure import Structure
from .config import SolverConfig
from .nfe import EvalCounter


class MLPField(nn.Module):
    """A vector field ``f(t, z)`` given by a multilayer perceptron acting on the last dimension of ``z``.

    Args:
        dim: size of the state.
        hidden: width of each hidden layer.
        n_hidden: number of hidden layers (at least 1).
        activation: the nonlinearity's class, e.g. ``nn.Tanh``.
        time_input: if True, ``t`` is appended to the input, so the field may change with time.
        damping: a constant λ >= 0 subtracted as ``-λ z``, making the field dissipative (chapter 2 uses it to
            show when the adjoint's backward reconstruction fails).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 32,
        n_hidden: int = 1,
        activation: Callable[[], nn.Module] = nn.Tanh,
        time_input: bool = False,
        damping: float = 0.0,
    ) -> None:
        super().__init__()
        if not damping >= 0:
            raise ValueError(f"damping must be non-negative, got {damping}")
        self.damping = float(damping)
        for name, value in (("dim", dim), ("hidden", hidden), ("n_hidden", n_hidden)):
            check_positive_int(name, value)
        self.dim = dim
        self.time_input = time_input
        layers: list[nn.Module] = []
        width_in = dim + (1 if time_input else 0)
        for _ in range(n_hidden):
            layers += [nn.Linear(width_in, hidden), activation()]
            width_in = hidden
        layers.append(nn.Linear(width_in, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        if z.shape[-1] != self.dim:
            raise ValueError(f"MLPField expects states whose last dimension is {self.dim}, got shape {tuple(z.shape)}")
        x = z
        if self.time_input:
            t_col = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(*z.shape[:-1], 1)
            x = torch.cat([z, t_col], dim=-1)
        out = self.net(x)
        return out - self.damping * z if self.damping else out


class ResidualBlock(nn.Module):
    """``z ↦ z + step * field(t, z)``: one explicit Euler step of size ``step`` taken at time ``t``."""

    def __init__(self, field: nn.Module, step: float = 1.0, t: float = 0.0) -> None:
        super().__init__()
        if not step > 0:
            raise ValueError(f"step must be positive, got {step}")
        self.field = field
        self.step = float(step)
        self.t = float(t)

    def forward(self, z: Tensor) -> Tensor:
        t = torch.tensor(self.t, dtype=z.dtype, device=z.device)
        return z + self.step * self.field(t, z)


class ResNet(nn.Module):
    """N residual blocks covering ``[t0, t1]`` in equal steps ``h = (t1 - t0) / N``.

    Block ``k`` is an Euler step at time ``t0 + k h`` with its own field ``fields[k]``. Pass the same module
    N times (or use :meth:`shared`) for weight-shared blocks: then the network is exactly N Euler steps of
    one ODE.
    """

    def __init__(self, fields: Sequence[nn.Module], t0: float = 0.0, t1: float = 1.0) -> None:
        super().__init__()
        if len(fields) == 0:
            raise ValueError("a ResNet needs at least one block")
        if not t1 > t0:
            raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
        h = (t1 - t0) / len(fields)
        self.blocks = nn.ModuleList(ResidualBlock(f, step=h, t=t0 + k * h) for k, f in enumerate(fields))
        self.t0, self.t1 = float(t0), float(t1)

    @classmethod
    def shared(cls, field: nn.Module, n_blocks: int, t0: float = 0.0, t1: float = 1.0) -> ResNet:
        """A ResNet whose ``n_blocks`` blocks all use the one ``field`` (weight sharing)."""
        check_positive_int("n_blocks", n_blocks)
        return cls([field] * n_blocks, t0=t0, t1=t1)

    @property
    def step(self) -> float:
        first: ResidualBlock = self.blocks[0]  # type: ignore[assignment]
        return first.step

    def forward(self, z: Tensor, return_all: bool = False) -> Tensor:
        states = [z]
        for block in self.blocks:
            z = block(z)
            states.append(z)
        return torch.stack(states) if return_all else z


class ODEBlock(nn.Module):
    """``z(t1) = z(t0) + ∫ field(t, z) dt``: one ODE block for every chapter, configured by a :class:`SolverConfig`.

    Args:
        field: the vector field, called as ``field(t, z)``; ``z`` may be a tuple of tensors (a structured state,
            e.g. a state and its attention), in which case the field returns a tuple of the same shapes.
        t0, t1: the integration interval.
        solver: a :class:`~nodelib.config.SolverConfig`, or a dict it reads (torchdiffeq's vocabulary works:
            ``{"method": "rk4", "options": {"step_size": 0.25}, "adjoint": True}``).
        **settings: single settings on top of ``solver``, e.g. ``ODEBlock(f, method="rk4", step_size=0.1)``.

    What each backend and gradient calls:

    ===================  ==============================  ===========================================
    gradient             backend="torchdiffeq"           backend="nodelib"
    ===================  ==============================  ===========================================
    ``"backprop"``       ``torchdiffeq.odeint``          :func:`nodelib.odeint`
    ``"adjoint"``        ``torchdiffeq.odeint_adjoint``  :func:`nodelib.adjoint.odeint_adjoint`
    ``"checkpointed"``   ``torchdiffeq.odeint``, under   :func:`nodelib.adjoint.odeint_checkpointed`
                         ``torch.utils.checkpoint`` (the (a state every ``checkpoint_every`` steps)
                         solve is recomputed in backward)
    ===================  ==============================  ===========================================

    The adjoint's parameters are the field's (it must be an ``nn.Module``). :attr:`counter` counts evaluations
    of the field by phase (``block.nfe`` is the total since the last :meth:`reset_nfe`).
    """

    def __init__(
        self,
        field: Callable[..., Any],
        t0: float = 0.0,
        t1: float = 1.0,
        solver: Union[SolverConfig, Mapping[str, Any], None] = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        config = SolverConfig.from_mapping(solver)
        if settings:
            config = SolverConfig.from_mapping(settings, base=config)
        if config.gradient == "adjoint" and not isinstance(field, nn.Module):
            raise TypeError("gradient='adjoint' needs the field to be an nn.Module, so its parameters can be found")
        if not callable(field):
            raise TypeError(f"field must be callable as field(t, z), got {type(field).__name__}")
        if float(t0) == float(t1):
            raise ValueError("t0 and t1 must differ")
        self.field = field
        self.t0, self.t1 = float(t0), float(t1)
        self.solver = config
        self.counter = EvalCounter()

    # read-only views kept for code written against the earlier keyword arguments
    @property
    def method(self) -> str:
        return self.solver.method

    @property
    def backend(self) -> str:
        return self.solver.backend

    @property
    def adjoint(self) -> bool:
        return self.solver.gradient == "adjoint"

    @property
    def nfe(self) -> int:
        """Evaluations of the field since the last :meth:`reset_nfe` (forward and backward)."""
        return self.counter.total

    def reset_nfe(self) -> None:
        self.counter.reset()

    def _counted_field(self, t: Tensor, z: Any) -> Any:
        self.counter.add(1)
        return self.field(t, z)

    def _module(self) -> nn.Module:
        assert isinstance(self.field, nn.Module)  # checked in __init__ for the adjoint
        return self.field

    def trajectory(self, z0: Any, t: Tensor) -> Any:
        """The state at every time of ``t`` (shape ``(len(t), *z0.shape)``, a tuple of them for a tuple state)."""
        cfg = self.solver
        if cfg.backend == "nodelib":
            from .adjoint import odeint_adjoint, odeint_checkpointed
            from .solvers import odeint as nodelib_odeint

            if cfg.gradient == "adjoint":
                return odeint_adjoint(
                    self._counted_field, z0, t, **cfg.nodelib_kwargs(), **cfg.nodelib_adjoint_kwargs(),
                    adjoint_params=tuple(self._module().parameters()),
                )
            if cfg.gradient == "checkpointed":
                return odeint_checkpointed(self._counted_field, z0, t, method=cfg.method, step_size=cfg.step_size,
                                           checkpoint_every=cfg.checkpoint_every, max_steps=cfg.max_steps)
            return nodelib_odeint(self._counted_field, z0, t, **cfg.nodelib_kwargs())
        import torchdiffeq

        if cfg.gradient == "adjoint":
            return torchdiffeq.odeint_adjoint(
                _CountingField(self), z0, t, **cfg.torchdiffeq_kwargs(), **cfg.torchdiffeq_adjoint_kwargs(),
                adjoint_params=tuple(self._module().parameters()),
            )
        if cfg.gradient == "checkpointed" and torch.is_grad_enabled():
            structure = Structure(z0)

            def solve(flat0: Tensor, times: Tensor) -> Tensor:
                out = torchdiffeq.odeint(self._counted_field, structure.unflatten(flat0), times,
                                         **cfg.torchdiffeq_kwargs())
                return structure.flatten(out) if not structure.is_tuple else torch.cat(
                    [o.reshape(len(times), -1) for o in out], dim=1)

            flat = checkpoint(solve, structure.flatten(z0), t, use_reentrant=False)
            return structure.unflatten(flat)
        return torchdiffeq.odeint(self._counted_field, z0, t, **cfg.torchdiffeq_kwargs())

    def forward(self, z0: Any) -> Any:
        ref = z0[0] if isinstance(z0, (tuple, list)) else z0
        t = torch.tensor([self.t0, self.t1], dtype=ref.dtype, device=ref.device)
        out = self.trajectory(z0, t)
        if isinstance(out, (tuple, list)):
            return tuple(o[-1] for o in out)
        return out[-1]

    def extra_repr(self) -> str:
        return f"t0={self.t0:g}, t1={self.t1:g}, solver={self.solver}"


class _CountingField(nn.Module):
    """odeint_adjoint needs an nn.Module; this one forwards to the block's field and counts calls."""

    def __init__(self, block: ODEBlock) -> None:
        super().__init__()
        self._block = [block]  # a list, so the block is not registered as a submodule (no cycle)

    def forward(self, t: Tensor, z: Any) -> Any:
        return self._block[0]._counted_field(t, z)
