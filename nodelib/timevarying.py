"""Parameters that vary with time: one abstraction, θ(t), for chapters 1 and 6–8.

A vector field ``f(t, z; θ)`` whose parameters are a function of time is evaluated by giving a *template*
module (any ``nn.Module`` field, e.g. an :class:`~nodelib.blocks.MLPField` or a convolutional field) the
parameters ``θ(t)`` for one call, with ``torch.func.functional_call``. A :class:`ParameterTrajectory` says how
``θ(t)`` is made:

- :class:`ConstantParameters`: ``θ(t) = θ`` (a Neural ODE);
- :class:`PiecewiseConstantParameters`: ``θ(t) = θ_k`` on the k-th of N equal pieces of ``[t0, t1]`` (with
  Euler steps on the piece boundaries this *is* chapter 1's ResNet with unshared blocks);
- :class:`BasisExpansionParameters`: ``θ(t) = Σ_i B_i(t) ξ_i`` for a basis ``B`` (Neural-GODE's B-splines,
  chapter 8; any callable basis);
- :class:`EvolvedParameters`: ``θ(t_k) = Φ^k(θ_0)`` by a discrete flow map ``Φ`` of their own on a grid of equal
  steps (ANODEV2's Eq. 13, chapter 7), held constant between grid points;
- evolved parameters as part of the state, with continuous dynamics of their own (ANODEV2's Eq. 8, chapter 7):
  :class:`EvolvingParameterField` evolves the tuple state ``(z, θ_1, ..., θ_P)``.

:class:`TimeVaryingField` is the field ``f(t, z; θ(t))`` for the first three; it is an ordinary module whose
trainable parameters are the trajectory's (the template's own values only initialise them).
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ._impl.checks import check_positive_int

__all__ = [
    "ParameterTrajectory", "ConstantParameters", "PiecewiseConstantParameters", "BasisExpansionParameters",
    "EvolvedParameters", "TimeVaryingField", "EvolvingParameterField", "parameter_shapes",
]


def parameter_shapes(template: nn.Module) -> dict[str, torch.Size]:
    """The names and shapes of a template's parameters, in ``named_parameters`` order."""
    return {name: p.shape for name, p in template.named_parameters()}


def _check_template(template: nn.Module) -> None:
    if not isinstance(template, nn.Module):
        raise TypeError(f"the template must be an nn.Module, got {type(template).__name__}")
    if not list(template.parameters()):
        raise ValueError("the template has no parameters: there is nothing to vary with time")
    buffers = [name for name, _ in template.named_buffers()]
    if buffers:
        raise ValueError(f"the template has buffers ({', '.join(buffers[:3])}); a field whose parameters vary with "
                         "time cannot keep running statistics (use GroupNorm or LayerNorm, not BatchNorm)")


def _as_time(t: Any) -> Tensor:
    t = torch.as_tensor(t)
    if t.dim() != 0:
        raise ValueError(f"θ(t) takes one time (a 0-dim tensor or a number), got shape {tuple(t.shape)}")
    return t


def _grid_index(t: Tensor, t0: float, width: float) -> int:
    """The index k >= 0 of the grid cell ``[t0 + k width, t0 + (k + 1) width)`` that holds ``t``, forgiving
    round-off: a grid point ``t0 + k h`` computed in float32 may fall a hair below boundary k."""
    position = (float(t) - t0) / width
    slack = 64 * torch.finfo(t.dtype if t.is_floating_point() else torch.float64).eps * max(1.0, abs(position))
    return max(int(position + slack), 0)


class ParameterTrajectory(nn.Module):
    """``θ(t)``: called with a time, returns a dict from the template's parameter names to tensors."""

    names: list[str]
    shapes: list[torch.Size]

    def _init_names(self, shapes: dict[str, torch.Size]) -> None:
        self.names = list(shapes)
        self.shapes = [torch.Size(s) for s in shapes.values()]

    def forward(self, t: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def _store(values: Sequence[Tensor]) -> nn.ParameterList:
    return nn.ParameterList([nn.Parameter(v.detach().clone()) for v in values])


class ConstantParameters(ParameterTrajectory):
    """``θ(t) = θ``: the same parameters at every time (a plain Neural ODE)."""

    def __init__(self, template: nn.Module) -> None:
        super().__init__()
        _check_template(template)
        self._init_names(parameter_shapes(template))
        self.values = _store([p for p in template.parameters()])

    def forward(self, t: Tensor) -> dict[str, Tensor]:
        return dict(zip(self.names, self.values))


class PiecewiseConstantParameters(ParameterTrajectory):
    """``θ(t) = θ_k`` for ``t`` in the k-th of ``n_pieces`` equal pieces ``[τ_k, τ_{k+1})`` of ``[t0, t1]``.

    A time on a boundary belongs to the piece that starts there (the last piece includes ``t1``); times within
    a few units of round-off of a boundary count as on it, so a solver's grid ``t0 + k h`` lands in piece k.

    Args:
        templates: one module per piece, all with the same parameter names and shapes (their values
            initialise the pieces), or a single module whose values initialise every piece.
        t0, t1: the interval.
        n_pieces: the number of pieces when a single template is given.
    """

    def __init__(self, templates: Any, t0: float = 0.0, t1: float = 1.0, n_pieces: Optional[int] = None) -> None:
        super().__init__()
        if isinstance(templates, nn.Module):
            if n_pieces is None:
                raise ValueError("give n_pieces with a single template (or pass one template per piece)")
            check_positive_int("n_pieces", n_pieces)
            modules = [templates] * n_pieces
        else:
            modules = list(templates)
            if not modules:
                raise ValueError("need at least one template")
            if n_pieces is not None and n_pieces != len(modules):
                raise ValueError(f"n_pieces={n_pieces} but {len(modules)} templates were given")
        for m in modules:
            _check_template(m)
        shapes = parameter_shapes(modules[0])
        for k, m in enumerate(modules[1:], start=1):
            if parameter_shapes(m) != shapes:
                raise ValueError(f"template {k} has other parameters than template 0: every piece needs the same "
                                 "names and shapes")
        if not float(t1) > float(t0):
            raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
        self._init_names(shapes)
        self.t0, self.t1, self.n_pieces = float(t0), float(t1), len(modules)
        # one stacked parameter per name: values[i][k] is parameter i of piece k
        self.values = _store([torch.stack([dict(m.named_parameters())[name] for m in modules]) for name in self.names])

    def piece(self, t: Tensor) -> int:
        """The index of the piece that holds time ``t``."""
        return min(_grid_index(_as_time(t), self.t0, (self.t1 - self.t0) / self.n_pieces), self.n_pieces - 1)

    def forward(self, t: Tensor) -> dict[str, Tensor]:
        k = self.piece(t)
        return {name: v[k] for name, v in zip(self.names, self.values)}


class BasisExpansionParameters(ParameterTrajectory):
    """``θ(t) = Σ_i B_i(t) ξ_i``: coefficients ``ξ_i`` (one set per basis function) and a basis ``B``.

    Args:
        template: the field whose parameters are expanded; its values initialise every ``ξ_i`` scaled so that
            ``θ(t)`` has the template's scale where the basis sums to one (``ξ_i = θ_template``; a partition of
            unity then gives ``θ(t) = θ_template`` at t = 0).
        basis: called with a 0-dim time tensor, returns the ``n_basis`` values ``B_i(t)`` (a 1-D tensor).
        n_basis: the number of basis functions.
        init: ``"template"`` (above) or ``"random"`` (each ``ξ_i`` re-initialised as the template's layers
            initialise themselves, by deep copies with ``reset_parameters``).
    """

    def __init__(self, template: nn.Module, basis: Callable[[Tensor], Tensor], n_basis: int,
                 init: str = "template") -> None:
        super().__init__()
        _check_template(template)
        check_positive_int("n_basis", n_basis)
        if not callable(basis):
            raise TypeError(f"basis must be callable as basis(t), got {type(basis).__name__}")
        if init not in ("template", "random"):
            raise ValueError(f"init must be 'template' or 'random', got {init!r}")
        self._init_names(parameter_shapes(template))
        self.basis, self.n_basis = basis, n_basis
        copies = [template] * n_basis if init == "template" else [_reinitialised(template) for _ in range(n_basis)]
        self.values = _store([torch.stack([dict(m.named_parameters())[name] for m in copies]) for name in self.names])

    def weights(self, t: Tensor) -> Tensor:
        b = self.basis(_as_time(t))
        if not isinstance(b, Tensor) or b.shape != (self.n_basis,):
            got = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
            raise ValueError(f"basis(t) must return a 1-D tensor of {self.n_basis} values, got {got}")
        return b

    def forward(self, t: Tensor) -> dict[str, Tensor]:
        b = self.weights(t)
        out = {}
        for name, v in zip(self.names, self.values):
            out[name] = torch.tensordot(b.to(v.dtype).to(v.device), v, dims=1)
        return out


class EvolvedParameters(ParameterTrajectory):
    """``θ(t)`` made by a flow map of its own: ``θ_{k+1} = Φ(θ_k, δt)`` on ``n_steps`` equal steps of ``[t0, t1]``.

    The initial parameters ``θ_0`` are learned (initialised from the template) and so are the flow's own
    parameters ``p`` (``flow`` is a submodule). ``θ(t) = θ_k`` for ``t`` in ``[t_k, t_{k+1})`` and ``θ(t1) =
    θ_{n_steps}``, with the round-off slack of :class:`PiecewiseConstantParameters`; ``n_steps = 0`` gives constant
    parameters ``θ_0`` (no flow is applied). A solver that needs ``θ`` at several grid points calls
    :meth:`states` once rather than ``θ(t)`` at each (every call of ``θ(t)`` runs the flow from ``θ_0``).

    Args:
        template: the module whose parameters evolve (its values initialise ``θ_0``).
        flow: ``Φ``, called as ``flow(thetas, dt)`` with the tuple of parameter tensors in the template's
            ``named_parameters`` order; returns a tuple of the same shapes.
        n_steps: the number of flow steps (>= 0).
        t0, t1: the interval.
    """

    def __init__(self, template: nn.Module, flow: Callable[[tuple[Tensor, ...], float], Iterable[Tensor]],
                 n_steps: int, t0: float = 0.0, t1: float = 1.0) -> None:
        super().__init__()
        _check_template(template)
        check_positive_int("n_steps", n_steps, minimum=0)
        if not callable(flow):
            raise TypeError(f"flow must be callable as flow(thetas, dt), got {type(flow).__name__}")
        if not float(t1) > float(t0):
            raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
        self._init_names(parameter_shapes(template))
        self.values = _store([p for p in template.parameters()])
        self.flow = flow
        self.n_steps, self.t0, self.t1 = n_steps, float(t0), float(t1)

    @property
    def dt(self) -> float:
        """The flow's step ``(t1 - t0) / n_steps`` (the whole interval when ``n_steps = 0``)."""
        return (self.t1 - self.t0) / max(self.n_steps, 1)

    def step(self, thetas: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """One step of the flow, ``Φ(θ, δt)``, with its output checked."""
        out = tuple(self.flow(thetas, self.dt))
        if len(out) != len(thetas) or any(o.shape != t.shape for o, t in zip(out, thetas)):
            raise ValueError("the flow must return one tensor per parameter, each of its parameter's shape; got "
                             f"{[tuple(o.shape) for o in out]} for {[tuple(t.shape) for t in thetas]}")
        return out

    def states(self, upto: Optional[int] = None) -> list[tuple[Tensor, ...]]:
        """``[θ_0, ..., θ_upto]`` (default: every grid point), each a tuple in ``names`` order."""
        last = self.n_steps if upto is None else upto
        if not 0 <= last <= self.n_steps:
            raise ValueError(f"upto must be in [0, {self.n_steps}], got {upto}")
        out = [tuple(self.values)]
        for _ in range(last):
            out.append(self.step(out[-1]))
        return out

    def index(self, t: Tensor) -> int:
        """The grid point whose parameters hold at time ``t``."""
        if self.n_steps == 0:
            return 0
        return min(_grid_index(_as_time(t), self.t0, self.dt), self.n_steps)

    def forward(self, t: Tensor) -> dict[str, Tensor]:
        k = self.index(t)
        return dict(zip(self.names, self.states(k)[-1]))


def _reinitialised(template: nn.Module) -> nn.Module:
    clone = copy.deepcopy(template)
    for m in clone.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return clone


class TimeVaryingField(nn.Module):
    """``f(t, z; θ(t))``: the template module evaluated with the trajectory's parameters at time ``t``.

    The template's structure is kept (on the ``meta`` device: it holds no values of its own), so its
    ``forward`` runs unchanged; every parameter it uses comes from :attr:`trajectory`.
    """

    def __init__(self, template: nn.Module, trajectory: ParameterTrajectory) -> None:
        super().__init__()
        _check_template(template)
        if not isinstance(trajectory, ParameterTrajectory):
            raise TypeError(f"trajectory must be a ParameterTrajectory, got {type(trajectory).__name__}")
        shapes = parameter_shapes(template)
        if list(shapes) != trajectory.names or list(shapes.values()) != trajectory.shapes:
            raise ValueError("the trajectory was built for a module with other parameters than this template")
        self._template = [copy.deepcopy(template).to("meta")]  # a list: not a submodule, holds no values
        self.trajectory = trajectory

    @property
    def template(self) -> nn.Module:
        return self._template[0]

    def forward(self, t: Tensor, z: Any) -> Any:
        return functional_call(self.template, self.trajectory(t), (t, z))


class EvolvingParameterField(nn.Module):
    """Parameters with dynamics of their own: the state is ``(z, θ_1, ..., θ_P)`` and

        dz/dt = f(t, z; θ(t)),   dθ/dt = q(t, θ)

    where ``f`` is the template evaluated with the current ``θ`` (ANODEV2's coupled system, chapter 7).

    Args:
        template: the field ``f``; its parameter values are the default initial ``θ(0)`` (see
            :meth:`initial_state`), learned as this module's parameters.
        dynamics: ``q``, called as ``dynamics(t, thetas)`` with the tuple of parameter tensors; returns a tuple of
            the same shapes.
    """

    def __init__(self, template: nn.Module, dynamics: Callable[[Tensor, tuple[Tensor, ...]], Iterable[Tensor]]) -> None:
        super().__init__()
        _check_template(template)
        self.names = list(parameter_shapes(template))
        self.initial = ConstantParameters(template)
        self._template = [copy.deepcopy(template).to("meta")]
        self.dynamics = dynamics

    def initial_state(self, z0: Tensor) -> tuple[Tensor, ...]:
        """``(z0, θ_1(0), ..., θ_P(0))``, with ``θ(0)`` the learned initial parameters."""
        theta = self.initial(torch.zeros(()))
        return (z0, *[theta[name] for name in self.names])

    def forward(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        if not isinstance(state, (tuple, list)) or len(state) != 1 + len(self.names):
            raise ValueError(f"the state must be (z, θ_1, ..., θ_{len(self.names)}), a tuple of "
                             f"{1 + len(self.names)} tensors; build it with initial_state(z0)")
        z, thetas = state[0], tuple(state[1:])
        dz = functional_call(self._template[0], dict(zip(self.names, thetas)), (t, z))
        dthetas = tuple(self.dynamics(t, thetas))
        if len(dthetas) != len(thetas):
            raise ValueError(f"dynamics returned {len(dthetas)} tensors for {len(thetas)} parameters")
        return (dz, *dthetas)
