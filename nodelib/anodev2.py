"""ANODEV2 (chapter 7): weights that evolve by a reaction-diffusion-advection (RDA) equation, coupled to the activations.

Zhang et al. (2019) let the convolution kernels ``w`` of a residual block evolve with the activations ``z``
(Eq. 2 and Eq. 5 with K = δ, so θ(t) = w(t))::

    dz/dt = f(z; θ(t)),      ∂w/∂t = σ(τ Δw + v·∇w + ρ w)       (Eq. 10 = Eq. 8)

on the two spatial axes of each kernel. Their linear part (σ = identity) has an exact solution by FFT (Eq. 11-12);
the nonlinear version is approximated by applying σ after each linear solve (Eq. 13).

- :func:`rda_linear`: the exact solution after time ``dt`` of ``∂w/∂t = τ Δw + v·∇w + ρ w`` on a periodic grid
  of unit spacing (one pixel), with wavenumbers ``2π fftfreq(n)``; :func:`rda_rate` is its right-hand side
  (spectral derivatives), for solving Eq. 8 itself with an ODE solver;
- :func:`rda_nonlinear`: Eq. 13, ``n_steps`` linear solves of ``t / n_steps`` each followed by σ (tanh);
- :class:`RDAFlow`: Eq. 13's step as the flow map of :class:`nodelib.timevarying.EvolvedParameters`, with learned
  coefficients (τ, v_row, v_col, ρ) per kernel tensor;
- :class:`Schedule` and :data:`SCHEDULES`: which weights each Euler step of ``z`` uses — configuration 1 (Eq. 9:
  z and θ share 5 steps), configuration 2 (App. A.1: θ takes 10 steps of 1/10, z two steps of 1/2, the second
  with θ(1)), the equal-FLOP frozen-θ ablation (Table 4) and the baseline (one step: a plain residual block);
- :class:`ANODEV2Block`: a residual block (AlexNet's conv-BN-ReLU or a ResNet basic block) turned into the coupled
  system, a drop-in replacement; :func:`coupled_adjoint`: its gradients by the discrete optimality conditions
  (App. D), to check against autograd; :func:`weight_evolution`: how far a trained network's weights travel;
- :func:`anodev2_network`: AlexNet, ResNet-4 and ResNet-10 of App. B (Tables 5-6) with any schedule.

Eq. 13 is *not* a consistent discretisation of Eq. 8: for pure reaction (ρ = 1, w(0) = 1, σ = tanh) Eq. 8 gives
``w(1) = asinh(e sinh 1) = 1.878`` while Eq. 13 gives 0.991, 0.704, 0.538, 0.184 with 1, 5, 10, 100 steps
(tests), because σ is applied to the state after every step instead of to the rate.

The Nyquist mode of an even-sized axis is real; a real field has no derivative there on the grid, so advection
leaves it unchanged (its first-derivative wavenumber is 0) while diffusion damps it with ``k² = π²``. This keeps
the operator real and its solutions a semigroup; a shift by a whole pixel is therefore an exact circular shift on
odd-sized axes, and on even-sized axes for fields without a Nyquist component. The operator's transpose is the
same operator with ``-v`` (diffusion and reaction are symmetric, advection antisymmetric), which is what the
adjoint of the weight equation (Eq. 7c) uses.

Choices the paper leaves open, and the ones made here (chapter 7 lists them with reasons): one set of
coefficients (τ, v_row, v_col, ρ) per convolution weight, trained with the network, τ = softplus(raw) >= 0,
initialised τ = 0.1, v = 0, ρ = 0; biases do not evolve; the FFT grid is the kernel's own (3×3 or 5×5, periodic);
every Euler step of z has BatchNorm layers of its own; in ResNet-10 the three shape-preserving blocks become
coupled ODEs and the down-sampling block stays a residual block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._impl.checks import check_positive_int
from .classification import NetworkSpec, register_network
from .timevarying import EvolvedParameters

Coefficient = Union[float, Tensor]


def _wavenumbers(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(k, k_first)``: the angular wavenumbers ``2π fftfreq(n)`` of a unit-spaced periodic axis, and the same with
    the Nyquist entry set to 0 (the first derivative of the real Nyquist mode vanishes on the grid)."""
    k = 2 * math.pi * torch.fft.fftfreq(n, d=1.0, dtype=dtype, device=device)
    k_first = k.clone()
    if n % 2 == 0:
        k_first[n // 2] = 0.0
    return k, k_first


def _check_field(w: Tensor) -> None:
    if not isinstance(w, Tensor) or not w.is_floating_point() or w.dim() < 2:
        raise ValueError("w must be a real floating-point tensor of shape (..., H, W) (the last two axes are the "
                         f"kernel's spatial axes); got {type(w).__name__} "
                         f"{tuple(w.shape) if isinstance(w, Tensor) else ''} {getattr(w, 'dtype', '')}")


def _check_scalar(name: str, value: Coefficient, non_negative: bool = False) -> None:
    if isinstance(value, Tensor):
        values = value.detach()
        if not bool(torch.isfinite(values).all()) or (non_negative and bool((values < 0).any())):
            raise ValueError(f"{name} must be finite{' and >= 0' if non_negative else ''}, got {value}")
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or (non_negative and value < 0):
        raise ValueError(f"{name} must be a finite number{' >= 0' if non_negative else ''}, got {value!r}")


def rda_linear(w: Tensor, dt: float, tau: Coefficient, v: Sequence[Coefficient], rho: Coefficient) -> Tensor:
    """The exact solution after time ``dt`` of ``∂w/∂t = τ Δw + v·∇w + ρ w`` on the last two axes of ``w``.

    Periodic boundaries, unit grid spacing, Eq. 12 of Zhang et al. (2019): ``ŵ ← exp(dt(-τ|k|² + i v·k + ρ)) ŵ``.

    Args:
        w: a real tensor of shape ``(..., H, W)``.
        dt: the time step (any finite number; negative steps run backwards, which diffusion makes ill-posed).
        tau: diffusion coefficient τ >= 0 (a number, or a tensor broadcastable to ``w.shape[:-2]``).
        v: ``(v_row, v_col)``, the advection velocity along the last two axes: ``v_row = 1, dt = 1`` moves
            the field up by one row, ``w(i, j) ← w(i + 1, j)``.
        rho: reaction coefficient ρ: ``w ← e^{ρ dt} w`` for a constant field.

    Returns a real tensor of the shape and dtype of ``w``; gradients flow to ``w`` and to tensor coefficients.
    """
    _check_field(w)
    _check_scalar("dt", dt)
    _check_coefficients(tau, v, rho)
    real, imaginary = _symbol(w, tau, v, rho)
    factor = torch.polar(torch.exp(dt * real), dt * imaginary)
    return torch.fft.ifft2(torch.fft.fft2(w) * factor).real


def _check_coefficients(tau: Coefficient, v: Sequence[Coefficient], rho: Coefficient) -> None:
    _check_scalar("tau", tau, non_negative=True)
    _check_scalar("rho", rho)
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise ValueError(f"v must be a pair (v_row, v_col) of velocities along the last two axes, got {v!r}")
    for name, value in zip(("v_row", "v_col"), v):
        _check_scalar(name, value)


def _symbol(w: Tensor, tau: Coefficient, v: Sequence[Coefficient], rho: Coefficient) -> tuple[Tensor, Tensor]:
    """The real and imaginary parts of the operator's Fourier symbol ``-τ|k|² + i v·k + ρ`` on ``w``'s grid."""
    rows, cols = w.shape[-2], w.shape[-1]
    kr, kr1 = _wavenumbers(rows, w.dtype, w.device)
    kc, kc1 = _wavenumbers(cols, w.dtype, w.device)
    k2 = kr[:, None] ** 2 + kc[None, :] ** 2

    def per_field(c: Coefficient) -> Union[float, Tensor]:  # a tensor coefficient broadcasts over the batch axes
        return c[..., None, None] if isinstance(c, Tensor) and c.dim() else c

    tau_, rho_, vr, vc = per_field(tau), per_field(rho), per_field(v[0]), per_field(v[1])
    real = torch.as_tensor(rho_ - tau_ * k2, dtype=w.dtype, device=w.device)
    imaginary = torch.as_tensor(vr * kr1[:, None] + vc * kc1[None, :], dtype=w.dtype, device=w.device)
    return real, imaginary


def rda_rate(w: Tensor, tau: Coefficient, v: Sequence[Coefficient], rho: Coefficient) -> Tensor:
    """``τ Δw + v·∇w + ρ w`` on the last two axes of ``w`` (spectral derivatives; the grid of :func:`rda_linear`).

    ``rda_linear(w, dt, ...)`` is the exact flow of this rate; ``σ(rda_rate(w, ...))`` is the right-hand side of
    Eq. 8, which an ODE solver integrates consistently (unlike Eq. 13).
    """
    _check_field(w)
    _check_coefficients(tau, v, rho)
    real, imaginary = _symbol(w, tau, v, rho)
    return torch.fft.ifft2(torch.fft.fft2(w) * torch.complex(real, imaginary)).real


def rda_nonlinear(w: Tensor, t: float, tau: Coefficient, v: Sequence[Coefficient], rho: Coefficient, n_steps: int,
                  activation: Callable[[Tensor], Tensor] = torch.tanh) -> Tensor:
    """Eq. 13 of Zhang et al. (2019): ``n_steps`` times, ``w ← σ(rda_linear(w, t / n_steps, ...))``.

    This is the scheme the paper uses for the nonlinear Eq. 8, not a consistent discretisation of it (see the
    module docstring).
    """
    check_positive_int("n_steps", n_steps)
    for _ in range(n_steps):
        w = activation(rda_linear(w, t / n_steps, tau, v, rho))
    return w


# --- the weights' flow map ---------------------------------------------------------------------------------------

def _softplus_inverse(x: float) -> float:
    return x + math.log(-math.expm1(-x))


class RDAFlow(nn.Module):
    """Eq. 13's step as a flow map: ``w ← σ(rda_linear(w, δt, τ, v, ρ))`` for every kernel tensor.

    Each parameter tensor with at least two axes (a convolution weight ``(out, in, kh, kw)``) gets its own learned
    coefficients (τ, v_row, v_col, ρ), shared by all its kernels; tensors with fewer axes (biases) do not evolve.
    τ = softplus(raw τ) keeps diffusion non-negative.

    Args:
        shapes: the shapes of the parameter tensors, in the order the flow is called with.
        tau, v, rho: the coefficients' initial values.
        nonlinear: apply σ = tanh after each linear solve (Eq. 13); False gives the exact linear flow (Eq. 12).
    """

    def __init__(self, shapes: Sequence[Sequence[int]], tau: float = 0.1, v: tuple[float, float] = (0.0, 0.0),
                 rho: float = 0.0, nonlinear: bool = True) -> None:
        super().__init__()
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"the initial tau must be a positive number (it is stored as softplus(raw)), got {tau!r}")
        _check_coefficients(tau, v, rho)
        self.evolves = [len(shape) >= 2 for shape in shapes]
        if not any(self.evolves):
            raise ValueError("no parameter has two spatial axes to evolve; got shapes "
                             f"{[tuple(s) for s in shapes]}")
        row = [_softplus_inverse(tau), float(v[0]), float(v[1]), float(rho)]
        self.coefficients = nn.Parameter(torch.tensor([row] * sum(self.evolves)))
        self.nonlinear = nonlinear

    def coefficient_values(self) -> Tensor:
        """``(n_evolved, 4)``: (τ, v_row, v_col, ρ) of each evolved tensor, τ after the softplus."""
        c = self.coefficients
        return torch.cat([F.softplus(c[:, :1]), c[:, 1:]], dim=1)

    def linear(self, thetas: Sequence[Tensor], dt: float, transpose: bool = False) -> tuple[Tensor, ...]:
        """The exact linear solve of every evolved tensor (``transpose``: the operator's transpose, ``v → -v``)."""
        values, out, j = self.coefficient_values(), [], 0
        sign = -1.0 if transpose else 1.0
        for theta, evolves in zip(thetas, self.evolves):
            if evolves:
                tau, vr, vc, rho = values[j].to(theta.dtype).unbind()
                out.append(rda_linear(theta, dt, tau, (sign * vr, sign * vc), rho))
                j += 1
            else:
                out.append(theta)
        return tuple(out)

    def rate(self, thetas: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Eq. 8's right-hand side ``σ(τΔw + v·∇w + ρw)`` for every evolved tensor (0 for biases): the dynamics
        of :class:`nodelib.timevarying.EvolvingParameterField`, to solve Eq. 8 itself with an ODE solver."""
        values, out, j = self.coefficient_values(), [], 0
        for theta, evolves in zip(thetas, self.evolves):
            if evolves:
                tau, vr, vc, rho = values[j].to(theta.dtype).unbind()
                r = rda_rate(theta, tau, (vr, vc), rho)
                out.append(torch.tanh(r) if self.nonlinear else r)
                j += 1
            else:
                out.append(torch.zeros_like(theta))
        return tuple(out)

    def forward(self, thetas: Sequence[Tensor], dt: float) -> tuple[Tensor, ...]:
        if len(thetas) != len(self.evolves):
            raise ValueError(f"the flow was built for {len(self.evolves)} tensors, got {len(thetas)}")
        linear = self.linear(thetas, dt)
        if not self.nonlinear:
            return linear
        return tuple(torch.tanh(w) if e else w for w, e in zip(linear, self.evolves))


# --- schedules: which weights each Euler step uses -----------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    """How z and θ are discretised on ``[0, t1]``.

    ``z_steps`` forward-Euler steps of z of size ``t1 / z_steps``; ``theta_steps`` flow steps of θ of size
    ``t1 / theta_steps`` (0: θ never evolves); z's step n uses ``θ_{uses[n]}``.
    """

    name: str
    z_steps: int
    theta_steps: int
    uses: tuple[int, ...]
    t1: float = 1.0

    def __post_init__(self) -> None:
        check_positive_int("z_steps", self.z_steps)
        check_positive_int("theta_steps", self.theta_steps, minimum=0)
        if len(self.uses) != self.z_steps or any(not 0 <= k <= self.theta_steps for k in self.uses):
            raise ValueError(f"uses must give, for each of the {self.z_steps} z steps, a θ grid index in "
                             f"[0, {self.theta_steps}]; got {self.uses}")
        if not (math.isfinite(self.t1) and self.t1 > 0):
            raise ValueError(f"t1 must be a positive number, got {self.t1!r}")

    @property
    def evolves(self) -> bool:
        return self.theta_steps > 0


#: The paper's schedules: the baseline residual block, configurations 1 and 2, and the frozen-θ ablation.
SCHEDULES: dict[str, Schedule] = {
    "baseline": Schedule("baseline", 1, 0, (0,)),
    "config1": Schedule("config1", 5, 5, (0, 1, 2, 3, 4)),  # Eq. 9, Table 1: N_t = 5 for z and θ
    "config2": Schedule("config2", 2, 10, (0, 10)),  # Table 2, App. A.1: θ_0 then θ_1 after ten steps of 1/10
    "frozen": Schedule("frozen", 2, 0, (0, 0)),  # Table 4's Neural ODE: config 2's z steps with θ_0 throughout
}


def get_schedule(schedule: Union[str, Schedule]) -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)} or a Schedule")
    return SCHEDULES[schedule]


# --- the coupled block ---------------------------------------------------------------------------------------------

class _Kernels(nn.Module):
    """The weights a block's residual function uses: the template whose parameters evolve (no buffers)."""

    def __init__(self, channels: int, kernel_size: int, n_convs: int, bias: bool) -> None:
        super().__init__()
        for i in range(n_convs):
            conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=bias)
            self.register_parameter(f"weight{i}", nn.Parameter(conv.weight.detach()))
            if bias:
                assert conv.bias is not None
                self.register_parameter(f"bias{i}", nn.Parameter(conv.bias.detach()))


KINDS = ("alexnet", "basic")


class ANODEV2Block(nn.Module):
    """A residual block as the coupled system: ``z_{n+1} = z_n + h f_n(z_n; θ_{uses[n]})``, θ evolved by Eq. 13.

    ``kind="alexnet"``: ``f = ReLU(BN(conv(z)))`` with a biased 5×5 convolution (App. B.1); ``kind="basic"``: a
    ResNet basic block ``f = BN(conv(ReLU(BN(conv(z)))))`` followed, after the last step, by ReLU (App. B.2).
    With the ``"baseline"`` schedule (one step of size 1, θ fixed) it *is* the plain residual block. Every z step
    has BatchNorm layers of its own (running statistics cannot be shared by steps whose weights differ).

    Args:
        channels, kernel_size: the convolutions' channels (in = out) and odd kernel size.
        kind: ``"alexnet"`` or ``"basic"``.
        schedule: a name of :data:`SCHEDULES` or a :class:`Schedule`.
        tau, v, rho, nonlinear: passed to :class:`RDAFlow`.
    """

    def __init__(self, channels: int, kernel_size: int = 3, kind: str = "basic",
                 schedule: Union[str, Schedule] = "config1", *, tau: float = 0.1,
                 v: tuple[float, float] = (0.0, 0.0), rho: float = 0.0, nonlinear: bool = True) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (the block keeps the spatial size), got {kernel_size}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.schedule = kind, get_schedule(schedule)
        n_convs = 1 if kind == "alexnet" else 2
        template = _Kernels(channels, kernel_size, n_convs, bias=kind == "alexnet")
        flow = (RDAFlow([p.shape for p in template.parameters()], tau, v, rho, nonlinear)
                if self.schedule.evolves else _no_flow)
        self.weights = EvolvedParameters(template, flow, self.schedule.theta_steps, 0.0, self.schedule.t1)
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(n_convs)) for _ in range(self.schedule.z_steps))
        self.padding = kernel_size // 2
        self.n_convs = n_convs

    @property
    def flow(self) -> Optional[RDAFlow]:
        """The weights' flow map (None when θ does not evolve)."""
        return self.weights.flow if isinstance(self.weights.flow, RDAFlow) else None

    def residual(self, n: int, z: Tensor, theta: Sequence[Tensor]) -> Tensor:
        """``f_n(z; θ)``: the residual function of z step ``n`` with the weights ``θ`` (a tuple in template order)."""
        norms: Any = self.norms[n]
        if self.kind == "alexnet":
            weight, bias = theta
            return F.relu(norms[0](F.conv2d(z, weight, bias, padding=self.padding)))
        w0, w1 = theta
        hidden = F.relu(norms[0](F.conv2d(z, w0, padding=self.padding)))
        return norms[1](F.conv2d(hidden, w1, padding=self.padding))

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 4:
            raise ValueError(f"expected activations of shape (B, C, H, W), got {tuple(z.shape)}")
        thetas = self.weights.states(upto=max(self.schedule.uses))  # no flow step beyond the last state used
        h = self.schedule.t1 / self.schedule.z_steps
        for n, k in enumerate(self.schedule.uses):
            z = z + h * self.residual(n, z, thetas[k])
        return F.relu(z) if self.kind == "basic" else z


def _no_flow(thetas: tuple[Tensor, ...], dt: float) -> tuple[Tensor, ...]:  # never called: theta_steps = 0
    return thetas


@torch.no_grad()
def weight_evolution(network: nn.Module) -> list[dict[str, Any]]:
    """How far the weights of each evolving block of ``network`` travel over depth: the check that an ANODEV2
    network does what the paper means before its accuracy is read.

    One row per evolved tensor (a convolution weight) of each :class:`ANODEV2Block` whose weights evolve, in
    module order: ``block`` and ``tensor`` (indices among the blocks found and in the block's template), the learned
    ``tau``, ``v_row``, ``v_col``, ``rho``, ``t`` (the depth of the last weight state a z step applies: 0.8 in
    configuration 1, 1 in configuration 2) and ``change``, ``‖θ(t) − θ(0)‖ / ‖θ(0)‖`` for that state. Empty for a
    network whose weights do not evolve (the baseline, frozen θ).
    """
    rows: list[dict[str, Any]] = []
    blocks = [m for m in network.modules() if isinstance(m, ANODEV2Block)]
    for i, block in enumerate(blocks):
        flow = block.flow
        if flow is None:
            continue
        last = max(block.schedule.uses)
        states = block.weights.states(upto=last)
        coefficients = iter(flow.coefficient_values().tolist())
        for k, evolves in enumerate(flow.evolves):
            if not evolves:
                continue
            tau, v_row, v_col, rho = next(coefficients)
            start, end = states[0][k], states[last][k]
            rows.append({"block": i, "tensor": k, "tau": tau, "v_row": v_row, "v_col": v_col, "rho": rho,
                         "t": last * block.weights.dt, "change": float((end - start).norm() / start.norm())})
    return rows


def coupled_adjoint(block: ANODEV2Block, z0: Tensor, grad_out: Tensor) -> dict[str, Any]:
    """Gradients of ``J`` through ``block`` by the discrete optimality conditions (Eqs. 6-7, App. D), given
    ``grad_out = ∂J/∂(block(z0))``.

    Forward, the states ``z_0..z_N`` and ``θ_0..θ_M`` are stored. Backward (Eqs. 7a-7e, discretised as the scheme
    is): ``α_N = ∂J/∂z_N`` (through the final ReLU of a basic block); for each z step, from the last,
    ``α_n = α_{n+1} + h (∂f_n/∂z)ᵀ α_{n+1}`` and ``γ_{uses[n]} += h (∂f_n/∂θ)ᵀ α_{n+1}``; then, with
    ``β_{M+1} = 0`` (β(1) = 0), ``β_k = γ_k + (∂Φ/∂θ)ᵀ β_{k+1}`` where ``(∂Φ/∂θ)ᵀ b = E_{-v}(σ'(E_v θ_k) ⊙ b)`` (the
    transpose of the FFT solve ``E_v`` is ``E_{-v}``), and ``g_p = Σ_k (∂Φ/∂p)ᵀ β_{k+1}``; ``g_{w0} = β_0``.

    Returns ``{"z0": α_0, "theta0": (β_0 per weight tensor), "flow": g_p or None, "norms": {name: gradient}}``.
    Vector-Jacobian products of the single steps ``f_n`` and ``Φ`` use autograd; the recursion is this function's.
    BatchNorm layers are evaluated in the block's current mode (use ``eval()`` to keep running statistics as they
    are: in training mode each step is run twice and updates them twice).
    """
    schedule = block.schedule
    h = schedule.t1 / schedule.z_steps
    with torch.no_grad():
        thetas = block.weights.states()
        zs = [z0.detach()]
        for n, k in enumerate(schedule.uses):
            zs.append(zs[-1] + h * block.residual(n, zs[-1], thetas[k]))
        alpha = grad_out.detach().clone()
        if block.kind == "basic":
            alpha = alpha * (zs[-1] > 0).to(alpha.dtype)
    gamma = [[torch.zeros_like(t) for t in thetas[0]] for _ in thetas]
    norm_grads = {name: torch.zeros_like(p) for name, p in block.norms.named_parameters()}
    for n in reversed(range(schedule.z_steps)):
        k = schedule.uses[n]
        z = zs[n].clone().requires_grad_(True)
        theta = tuple(t.detach().clone().requires_grad_(True) for t in thetas[k])
        step_norms = dict(block.norms[n].named_parameters(prefix=str(n)))  # this step's BatchNorm layers
        with torch.enable_grad():
            out = h * block.residual(n, z, theta)
            grads = torch.autograd.grad(out, (z, *theta, *step_norms.values()), alpha)
        alpha = alpha + grads[0]
        for j, g in enumerate(grads[1:1 + len(theta)]):
            gamma[k][j] = gamma[k][j] + g
        for name, g in zip(step_norms, grads[1 + len(theta):]):
            norm_grads[name] = norm_grads[name] + g
    beta = gamma[-1]
    flow = block.flow
    grad_p = torch.zeros_like(flow.coefficients) if flow is not None else None
    for k in reversed(range(schedule.theta_steps)):
        assert flow is not None
        dt = block.weights.dt
        with torch.no_grad():
            pre = flow.linear(thetas[k], dt)  # E_v θ_k
            slope = [1 - torch.tanh(p) ** 2 if (e and flow.nonlinear) else torch.ones_like(p)
                     for p, e in zip(pre, flow.evolves)]
            back = flow.linear([s * b for s, b in zip(slope, beta)], dt, transpose=True)  # (∂Φ/∂θ)ᵀ β_{k+1}
        with torch.enable_grad():
            out = flow(tuple(t.detach() for t in thetas[k]), dt)
            evolved = [(o, b) for o, b, e in zip(out, beta, flow.evolves) if e]  # biases do not depend on p
            (g,) = torch.autograd.grad([o for o, _ in evolved], (flow.coefficients,), [b for _, b in evolved])
        grad_p = g if grad_p is None else grad_p + g
        beta = [gk + bk for gk, bk in zip(gamma[k], back)]
    return {"z0": alpha, "theta0": tuple(beta), "flow": grad_p, "norms": norm_grads}


# --- the networks of App. B ----------------------------------------------------------------------------------------

NETWORKS = ("alexnet", "resnet4", "resnet10")


class _BasicBlock(nn.Module):
    """A plain ResNet basic block with a stride and a 1×1 projection shortcut (ResNet-10's layer2_1)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ANODEV2Network(nn.Module):
    """AlexNet, ResNet-4 or ResNet-10 of App. B with their residual blocks as :class:`ANODEV2Block` s.

    Built by :func:`anodev2_network`. :attr:`blocks` lists the coupled blocks in order; :attr:`counter` is None
    (fixed steps: no function evaluations to count), so the runner can train it like any classifier.
    """

    counter = None

    def __init__(self, features: nn.Sequential, head: nn.Sequential, blocks: list[ANODEV2Block], name: str,
                 schedule: Schedule, in_channels: int) -> None:
        super().__init__()
        self.features, self.head = features, head
        self.blocks = blocks  # also registered inside `features`
        self.name, self.schedule, self.in_channels = name, schedule, in_channels

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimiser groups: weight decay on everything but the RDA coefficients (decay would pull raw τ to 0,
        that is τ to ln 2, and v, ρ to 0: a prior the paper does not state)."""
        rda = [p for name, p in self.named_parameters() if name.endswith("flow.coefficients")]
        rest = [p for name, p in self.named_parameters() if not name.endswith("flow.coefficients")]
        return [{"params": rest, "weight_decay": weight_decay}] + ([{"params": rda, "weight_decay": 0.0}] if rda else [])

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.head(torch.flatten(self.features(x), 1))


def anodev2_network(name: str, schedule: Union[str, Schedule] = "baseline", in_channels: int = 3,
                    n_classes: int = 10, image_size: int = 32, **block_options: Any) -> ANODEV2Network:
    """AlexNet (Table 5), ResNet-4 or ResNet-10 (Table 6) of Zhang et al. (2019), App. B.

    BatchNorm and ReLU follow every convolution (App. B omits them from its tables). The max pools of ResNet-4/10
    (8×8, stride 8) round up, so a 28×28 image gives the head the same 256/128 features as a 32×32 one.
    With ``schedule="baseline"`` the parameter counts are Table 3's: 1,756,682 (AlexNet), 7,706 (ResNet-4) and
    44,186 (ResNet-10) for 3×32×32 images and 10 classes.

    Args:
        name: ``"alexnet"``, ``"resnet4"`` or ``"resnet10"``.
        schedule: ``"baseline"``, ``"config1"``, ``"config2"``, ``"frozen"`` or a :class:`Schedule`.
        in_channels, n_classes, image_size: the images (square) and classes.
        block_options: passed to every :class:`ANODEV2Block` (``tau``, ``v``, ``rho``, ``nonlinear``).
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; expected one of {', '.join(NETWORKS)}")
    for label, value in (("in_channels", in_channels), ("n_classes", n_classes), ("image_size", image_size)):
        check_positive_int(label, value)
    schedule = get_schedule(schedule)
    if name == "alexnet":
        if image_size < 4:
            raise ValueError(f"AlexNet pools twice by 2: image_size must be >= 4, got {image_size}")
        block = ANODEV2Block(64, 5, "alexnet", schedule, **block_options)
        features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            block, nn.MaxPool2d(2))
        side = image_size // 2 // 2
        head = nn.Sequential(nn.Linear(64 * side * side, 384), nn.ReLU(), nn.Linear(384, 192), nn.ReLU(),
                             nn.Linear(192, n_classes))
        return ANODEV2Network(features, head, [block], name, schedule, in_channels)
    blocks = [ANODEV2Block(16, 3, "basic", schedule, **block_options)]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                               blocks[0]]
    channels, side = 16, image_size
    if name == "resnet10":
        blocks.append(ANODEV2Block(16, 3, "basic", schedule, **block_options))
        down = _BasicBlock(16, 32, 2)
        blocks.append(ANODEV2Block(32, 3, "basic", schedule, **block_options))
        layers += [blocks[1], down, blocks[2]]
        channels, side = 32, (image_size + 1) // 2
    layers.append(nn.MaxPool2d(8, 8, ceil_mode=True))
    side = math.ceil(side / 8)
    features = nn.Sequential(*layers)
    head = nn.Sequential(nn.Linear(channels * side * side, n_classes))
    return ANODEV2Network(features, head, blocks, name, schedule, in_channels)


# --- the registered networks (build_classifier("anodev2-resnet4-config1", ...)) -------------------------------------

def _network(net: str, schedule: str) -> Callable[[int, int, int], nn.Module]:
    def build(in_channels: int, n_classes: int, image_size: int) -> nn.Module:
        return anodev2_network(net, schedule, in_channels, n_classes, image_size)

    return build


_SCHEDULE_TEXT = {"baseline": "the residual network", "config1": "ANODEV2 configuration 1 (z and θ: 5 Euler steps)",
                  "config2": "ANODEV2 configuration 2 (θ: 10 steps, z: 2 steps with θ(0), θ(1))",
                  "frozen": "the frozen-θ ablation (z: 2 steps with θ(0); Table 4's Neural ODE)"}
for _net, _title in (("alexnet", "AlexNet"), ("resnet4", "ResNet-4"), ("resnet10", "ResNet-10")):
    for _schedule, _text in _SCHEDULE_TEXT.items():
        register_network(NetworkSpec(f"anodev2-{_net}-{_schedule}", f"{_title} of Zhang et al. 2019, App. B: {_text}",
                                     _network(_net, _schedule)))
