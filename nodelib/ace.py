"""ACE-NODE (chapter 6): attentive co-evolving neural ODEs (Jhin et al. 2021).

A hidden state ``h(t)`` and an attention ``a(t)`` evolve together, each by its own ODE, and each sees the
other through the *attended* state (Jhin et al. 2021, Eq. 3-5):

- **elementwise** attention (Sec. 3.2, Eq. 5), ``a`` of the shape of ``h`` (feature maps, vectors)::

      h'' = h ⊙ sigmoid(a),   dh/dt = f(t, h''),   da/dt = g(t, h''),   a(0) = q(h(0));

- **pairwise** attention (Sec. 3.1, Eq. 4), ``a`` a ``d x d`` matrix of logits per sample::

      h' = h softmax(a)ᵀ  (row softmax: h'_i = Σ_j softmax(a_i)_j h_j),
      dh/dt = f(t, h'),   da/dt = g(t, h'),   a(0) = corr(h(0)) or q(h(0)).

The state is the tuple ``(h, a)``: :func:`nodelib.odeint`, :func:`nodelib.adjoint.odeint_adjoint` and
:class:`nodelib.blocks.ODEBlock` solve it with one error estimate per part, so the attention never mixes into
the state's error control. The Table-11 variants are :class:`FixedCorrelationField` (``a(t) = corr(h(t))``, no
attention ODE) and :class:`LearnedInitialAttention` (``a(0)`` from a linear layer).

Training (Sec. 3.3, Algorithm 1): :class:`AlternatingTrainer` alternates a step on ``L_h`` for ``θ_f`` and the
other parameters (attention ODE frozen) with a step on ``L_a = L_task + λ‖θ_g‖`` for the attention ODE's
parameters ``θ_g`` alone (the rest frozen); :class:`JointTrainer` is the comparison (one optimiser, one loss).
:func:`fit` runs either for a number of iterations and keeps the parameters that did best on a validation
set. The models of the paper's experiments: :class:`ACEConvBody` (the ACE-ODE-Net body, registered as the
classifier body ``"ace"``) and :class:`LatentODEModel` (a latent ODE for irregular multivariate series with
optional pairwise attention, for PhysioNet 2012).
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._impl.checks import check_positive_int
from .blocks import ODEBlock
from .config import SolverConfig

ATTENTION_KINDS = ("none", "ace", "fixed", "learned")


# --- attention arithmetic ---------------------------------------------------------------------------------------

def correlation_matrix(h: Tensor, eps: float = 1e-8) -> Tensor:
    """The ``d x d`` Pearson correlation of the ``d`` dimensions of ``h`` (shape ``(B, d)``) over the batch.

    Degenerate cases are defined, never NaN: a batch of one, or a dimension whose values do not vary (variance
    ``<= eps``), has no correlation with the others; its row and column are 0 and its diagonal entry 1, so
    such a dimension attends to itself. The result is differentiable in ``h``.
    """
    if h.dim() != 2:
        raise ValueError(f"correlation_matrix expects a batch of vectors of shape (B, d), got {tuple(h.shape)}")
    n, d = h.shape
    eye = torch.eye(d, dtype=h.dtype, device=h.device)
    if n < 2:
        return eye
    centred = h - h.mean(dim=0, keepdim=True)
    var = centred.pow(2).mean(dim=0)
    varies = var > eps
    z = centred / var.clamp_min(eps).sqrt()
    corr = (z.T @ z / n).clamp(-1.0, 1.0)
    both = varies[:, None] & varies[None, :]
    corr = torch.where(both, corr, torch.zeros_like(corr))
    return corr * (1 - eye) + eye


def pairwise_attend(h: Tensor, a: Tensor) -> Tensor:
    """``h' = h softmax(a)ᵀ`` per sample (Eq. 4): ``h`` of shape ``(B, d)``, logits ``a`` of shape ``(B, d, d)``."""
    if h.dim() != 2 or a.shape != (h.shape[0], h.shape[1], h.shape[1]):
        raise ValueError(f"pairwise attention needs h of shape (B, d) and a of shape (B, d, d); got h {tuple(h.shape)} "
                         f"and a {tuple(a.shape)}")
    return torch.einsum("bij,bj->bi", torch.softmax(a, dim=-1), h)


def elementwise_attend(h: Tensor, a: Tensor) -> Tensor:
    """``h'' = h ⊙ sigmoid(a)`` (Eq. 5); ``a`` has the shape of ``h``."""
    if h.shape != a.shape:
        raise ValueError(f"elementwise attention needs a of the same shape as h; got h {tuple(h.shape)} and a {tuple(a.shape)}")
    return h * torch.sigmoid(a)


# --- the co-evolving fields ---------------------------------------------------------------------------------------

class _AttentionField(nn.Module):
    """Common part: an attended-state map and two fields ``f`` (for h) and ``g`` (for a), both called on it."""

    def __init__(self, f: nn.Module, g: nn.Module) -> None:
        super().__init__()
        self.f, self.g = f, g

    def attention_parameters(self) -> Iterator[nn.Parameter]:
        """θ_g: the parameters of the attention ODE (what Eq. 6 penalises and Algorithm 1's step 5 trains)."""
        return self.g.parameters()

    def _state(self, state: Any) -> tuple[Tensor, Tensor]:
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError(f"{type(self).__name__} expects the state (h, a), a tuple of two tensors; got "
                             f"{type(state).__name__}")
        return state[0], state[1]


class ElementwiseAttentionField(_AttentionField):
    """``(h, a) -> (f(t, h ⊙ σ(a)), g(t, h ⊙ σ(a)))``: elementwise co-evolving attention (Sec. 3.2, Eq. 5).

    ``f`` and ``g`` are fields ``(t, x) -> dx`` of the shape of ``h`` (feature maps or vectors).
    """

    def forward(self, t: Tensor, state: Any) -> tuple[Tensor, Tensor]:
        h, a = self._state(state)
        attended = elementwise_attend(h, a)
        return self.f(t, attended), self.g(t, attended)


class PairwiseAttentionField(_AttentionField):
    """``(h, a) -> (f(t, h'), g(t, h'))`` with ``h' = h softmax(a)ᵀ``: pairwise co-evolving attention (Eq. 4).

    ``f(t, x)`` maps ``(B, d)`` to ``(B, d)``; ``g(t, x)`` maps ``(B, d)`` to ``(B, d * d)`` (or ``(B, d, d)``):
    the rate of change of the attention logits.
    """

    def forward(self, t: Tensor, state: Any) -> tuple[Tensor, Tensor]:
        h, a = self._state(state)
        attended = pairwise_attend(h, a)
        return self.f(t, attended), self.g(t, attended).reshape(a.shape)


class FixedCorrelationField(nn.Module):
    """Table 11's "Fixed" ablation: ``a(t) = corr(h(t))`` at every evaluation, no attention ODE; state ``h`` only.

    The correlation is over the batch (a single vector has none), so a sample's output depends on the other
    samples of its batch: a property of this ablation, kept as the paper defines it.
    """

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        a = correlation_matrix(h).expand(h.shape[0], -1, -1)
        return self.f(t, pairwise_attend(h, a))


class TanhMLP(nn.Module):
    """``(t, x) -> tanh(W_L ... tanh(W_1 x))``: the fully connected fields of the paper's latent ODEs (Table 14).

    ``n_layers`` linear layers with ``units`` hidden units, tanh after each (Table 14 applies it to the output
    too, which keeps the rates bounded). The time is not an input, as in Table 14.
    """

    def __init__(self, dim_in: int, dim_out: int, units: int = 50, n_layers: int = 4) -> None:
        super().__init__()
        for name, value in (("dim_in", dim_in), ("dim_out", dim_out), ("units", units), ("n_layers", n_layers)):
            check_positive_int(name, value)
        widths = [dim_in] + [units] * (n_layers - 1) + [dim_out]
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.net(x)


# --- initial attention ----------------------------------------------------------------------------------------

class CorrelationInitialAttention(nn.Module):
    """``a(0) = corr(h(0))`` (Sec. 3.1; the paper's choice for its time series), shared by the samples of a batch.

    In training mode the correlation is that of the batch, and a running average (momentum ``momentum``, as in
    BatchNorm) is kept; in evaluation mode the running average is used, so a test prediction does not depend on
    which samples share its batch. ``track_running=False`` always uses the batch (the paper's literal reading).
    """

    def __init__(self, dim: int, momentum: float = 0.1, track_running: bool = True) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
        self.dim, self.momentum, self.track_running = dim, float(momentum), track_running
        self.running: Tensor
        self.updates: Tensor
        self.register_buffer("running", torch.eye(dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self, h0: Tensor) -> Tensor:
        if h0.dim() != 2 or h0.shape[1] != self.dim:
            raise ValueError(f"expected h(0) of shape (B, {self.dim}), got {tuple(h0.shape)}")
        if self.training or not self.track_running or int(self.updates) == 0:
            corr = correlation_matrix(h0)
            if self.training and self.track_running and h0.shape[0] > 1:
                with torch.no_grad():
                    self.running.lerp_(corr.detach().to(self.running.dtype), self.momentum if int(self.updates) else 1.0)
                    self.updates += 1
        else:
            corr = self.running.to(h0.dtype)
        return corr.expand(h0.shape[0], -1, -1).clone()


class LearnedInitialAttention(nn.Module):
    """``a(0) = W h(0) + b`` reshaped to ``d x d``: Table 11's "FC" ablation (a learned initial attention)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        self.dim = dim
        self.linear = nn.Linear(dim, dim * dim)

    def forward(self, h0: Tensor) -> Tensor:
        if h0.dim() != 2 or h0.shape[1] != self.dim:
            raise ValueError(f"expected h(0) of shape (B, {self.dim}), got {tuple(h0.shape)}")
        return self.linear(h0).reshape(-1, self.dim, self.dim)


# --- which parameters are θ_g ---------------------------------------------------------------------------------

def attention_parameters(model: nn.Module) -> list[nn.Parameter]:
    """θ_g: the parameters of every attention ODE (``g``) in ``model``; empty for a model without attention."""
    seen: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, _AttentionField):
            for p in module.attention_parameters():
                seen.setdefault(id(p), p)
    return list(seen.values())


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(main, attention)``: θ_f and every other parameter (stem, q, head, ...), and θ_g (Algorithm 1)."""
    attention = attention_parameters(model)
    ids = {id(p) for p in attention}
    return [p for p in model.parameters() if id(p) not in ids], attention


def attention_penalty(params: Sequence[Tensor], norm: int = 2) -> Tensor:
    """``‖θ_g‖_1`` or ``‖θ_g‖_2`` of Eq. 6 over all the given tensors (the norm itself, not its square)."""
    if norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2 (Eq. 6), got {norm!r}")
    if not params:
        raise ValueError("no attention parameters to penalise: the model has no attention ODE")
    if norm == 1:
        return torch.stack([p.abs().sum() for p in params]).sum()
    return torch.stack([p.pow(2).sum() for p in params]).sum().sqrt()


@contextmanager
def frozen(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Parameters with ``requires_grad`` off inside the block (restored after it)."""
    params = list(params)
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


# --- training -------------------------------------------------------------------------------------------------

def _optimizer(name: str, params: list[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"the learning rate must be a positive number, got {lr!r}")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


class JointTrainer:
    """The comparison: one optimiser over every parameter and one loss, ``L_task + λ‖θ_g‖`` (λ = 0: no penalty)."""

    schedule = "joint"

    def __init__(self, model: nn.Module, lr: float, lam: float = 0.0, norm: int = 2, optimizer: str = "adam") -> None:
        if not lam >= 0:
            raise ValueError(f"lam (λ of Eq. 6) must be >= 0, got {lam!r}")
        self.model, self.lam, self.norm = model, float(lam), norm
        self.attention = attention_parameters(model)
        if self.lam and not self.attention:
            raise ValueError("lam > 0 penalises θ_g, but the model has no attention ODE")
        self.optimizer = _optimizer(optimizer, list(model.parameters()), lr)

    def step(self, task_loss: Callable[[], Tensor]) -> dict[str, float]:
        loss = task_loss()
        total = loss + self.lam * attention_penalty(self.attention, self.norm) if self.lam else loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class AlternatingTrainer:
    """Algorithm 1 of Jhin et al. (2021): alternate ``θ_f, θ_others`` on ``L_h`` and ``θ_g`` on ``L_a``.

    :meth:`step_h` takes one optimiser step on ``L_h = L_task`` for every parameter but θ_g (frozen);
    :meth:`step_a` one on ``L_a = L_task + λ‖θ_g‖_norm`` (Eq. 6) for θ_g alone (the rest frozen). Each phase
    has its own optimiser, so neither phase's momentum leaks into the other's parameters, and a frozen half is
    left bit-for-bit unchanged. The initial-attention network ``q``, where there is one, counts among "the
    other parameters": Algorithm 1 lists only θ_f, θ_g and θ_others, and Eq. 6 penalises only θ_g.
    """

    schedule = "alternating"

    def __init__(self, model: nn.Module, lr: float, lam: float = 1e-3, norm: int = 2, optimizer: str = "adam",
                 lr_attention: Optional[float] = None) -> None:
        if not lam >= 0:
            raise ValueError(f"lam (λ of Eq. 6) must be >= 0, got {lam!r}")
        self.model, self.lam, self.norm = model, float(lam), norm
        attention_penalty([torch.zeros(1)], norm)  # checks the norm
        self.main, self.attention = split_parameters(model)
        if not self.attention:
            raise ValueError("alternating training needs a model with an attention ODE (an ElementwiseAttentionField or "
                             "PairwiseAttentionField); use JointTrainer for a model without one")
        self.optimizer_h = _optimizer(optimizer, self.main, lr)
        self.optimizer_a = _optimizer(optimizer, self.attention, lr if lr_attention is None else lr_attention)

    def step_h(self, task_loss: Callable[[], Tensor]) -> dict[str, float]:
        """One step of Algorithm 1, line 4: ``θ_f`` and ``θ_others`` on ``L_h``, the attention ODE frozen."""
        with frozen(self.attention):
            loss = task_loss()
            self.optimizer_h.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_h.step()
        return {"loss_h": float(loss.detach())}

    def step_a(self, task_loss: Callable[[], Tensor]) -> dict[str, float]:
        """One step of Algorithm 1, line 5: ``θ_g`` on ``L_a = L_task + λ‖θ_g‖``, everything else frozen."""
        with frozen(self.main):
            loss = task_loss()
            total = loss + self.lam * attention_penalty(self.attention, self.norm)
            self.optimizer_a.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer_a.step()
        return {"loss_a": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer_h": self.optimizer_h.state_dict(), "optimizer_a": self.optimizer_a.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer_h.load_state_dict(state["optimizer_h"])
        self.optimizer_a.load_state_dict(state["optimizer_a"])


@dataclass
class FitResult:
    """What :func:`fit` did: per-iteration history, the best validation score, its iteration, and seconds."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -math.inf
    best_iteration: int = 0
    seconds: float = 0.0


def fit(
    model: nn.Module,
    trainer: Any,
    batches: Callable[[int], Iterable[Any]],
    task_loss: Callable[[nn.Module, Any], Tensor],
    validate: Callable[[nn.Module], float],
    iterations: int,
    *,
    alternate: str = "epoch",
    progress: bool = False,
    on_iteration: Optional[Callable[[dict[str, Any]], None]] = None,
    resume_from: Optional[dict[str, Any]] = None,
) -> FitResult:
    """Train with ``trainer`` for ``iterations`` and leave ``model`` with the parameters that validated best.

    One iteration of an :class:`AlternatingTrainer` is Algorithm 1's loop body: with ``alternate="epoch"``, a
    pass over ``batches(k)`` of ``L_h`` steps, then a pass of ``L_a`` steps, then validation; with
    ``alternate="batch"``, both steps on each mini-batch, then validation. One iteration of a
    :class:`JointTrainer` is one pass. ``validate(model)`` returns a score where higher is better (e.g. the
    validation accuracy, an AUC, or a negative error); it must not look at the test set.

    Checkpoints: ``on_iteration(state)`` is called after every iteration with everything needed to continue
    (model, trainer, best parameters, history); ``fit(..., resume_from=state)`` continues from such a state and
    ends where an uninterrupted run ends, provided ``batches(k)`` depends only on ``k``.
    """
    check_positive_int("iterations", iterations)
    if alternate not in ("epoch", "batch"):
        raise ValueError(f"alternate must be 'epoch' or 'batch', got {alternate!r}")
    result = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    first = 0
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        trainer.load_state_dict(resume_from["trainer"])
        best_state = resume_from["best_state"]
        result = FitResult(**resume_from["result"])
        first = resume_from["iteration"]
    started = time.perf_counter() - result.seconds
    for k in tqdm(range(first, iterations), desc=f"{trainer.schedule} training", disable=not progress, leave=False):
        model.train()
        losses: dict[str, list[float]] = {}

        def record(values: dict[str, float]) -> None:
            for key, value in values.items():
                losses.setdefault(key, []).append(value)

        def closure(batch: Any) -> Callable[[], Tensor]:
            return lambda: task_loss(model, batch)

        if isinstance(trainer, AlternatingTrainer):
            if alternate == "epoch":
                for batch in batches(k):
                    record(trainer.step_h(closure(batch)))
                for batch in batches(k):
                    record(trainer.step_a(closure(batch)))
            else:
                for batch in batches(k):
                    record(trainer.step_h(closure(batch)))
                    record(trainer.step_a(closure(batch)))
        else:
            for batch in batches(k):
                record(trainer.step(closure(batch)))
        model.eval()
        with torch.no_grad():
            score = float(validate(model))
        row = {"iteration": k + 1, "validation": score, "seconds": time.perf_counter() - started}
        row.update({key: sum(v) / len(v) for key, v in losses.items()})
        result.history.append(row)
        if score > result.best_score:
            result.best_score, result.best_iteration = score, k + 1
            best_state = copy.deepcopy(model.state_dict())
        result.seconds = time.perf_counter() - started
        if on_iteration is not None:
            on_iteration({"iteration": k + 1, "model": model.state_dict(), "trainer": trainer.state_dict(),
                          "best_state": best_state, "result": {**result.__dict__, "history": list(result.history)}})
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


# --- the image model: the ACE-ODE-Net body ----------------------------------------------------------------------

class ReducedConvODEFunc(nn.Module):
    """``f''`` of the ACE-ODE-Net: Table 1's field without its second layer, ``GN(conv(t, ReLU(GN(x))))``."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        from .classification import ConcatConv, group_norm

        self.norm1 = group_norm(channels)
        self.conv = ConcatConv(dims, channels, channels)
        self.norm2 = group_norm(channels)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.norm2(self.conv(t, torch.relu(self.norm1(x))))


class ACEConvBody(nn.Module):
    """The ACE-ODE-Net body (Sec. 4.1): ``a(0) = q(h(0))``, then ``(h, a)`` solved by elementwise co-evolution.

    ``f''`` is Table 1's field without its second layer (:class:`ReducedConvODEFunc`, item 4 of Sec. 4.1),
    ``g'`` the whole Table-1 field (item 5), ``q`` two 3x3 convolutions with GroupNorm and ReLU between them
    (item 6). The body returns ``h(t1)``; :attr:`counter` counts evaluations of the coupled field.
    """

    def __init__(self, dims: int, channels: int, solver: SolverConfig, t1: float = 1.0) -> None:
        super().__init__()
        from .classification import ConvODEFunc, _conv, group_norm
        from .nfe import NFECounter

        conv = _conv(dims)
        self.q = nn.Sequential(conv(channels, channels, 3, padding=1), group_norm(channels), nn.ReLU(),
                               conv(channels, channels, 3, padding=1))
        self.field = ElementwiseAttentionField(ReducedConvODEFunc(dims, channels), ConvODEFunc(dims, channels))
        self.counter = NFECounter(self.field)
        self.block = ODEBlock(self.counter, 0.0, float(t1), solver=solver)

    def forward(self, h0: Tensor) -> Tensor:
        h1, _ = self.block((h0, self.q(h0)))
        return h1

    def attention_trajectory(self, h0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``h(t)`` and the attention ``sigmoid(a(t))`` at the times ``t`` (for plots)."""
        h, a = self.block.trajectory((h0, self.q(h0)), t)
        return h, torch.sigmoid(a)


# --- the time-series model: a latent ODE with pairwise attention -------------------------------------------------

class LatentODEModel(nn.Module):
    """A latent ODE for irregular multivariate series (values, observation mask, times), with optional attention.

    Encoder: a GRU reads ``[x ⊙ m, m]`` at the grid times backwards (from the last time to the first) and a
    linear layer maps its last hidden state to ``h(0)`` (Rubanova et al. 2019's RNN encoder, deterministic: no
    sampling of ``h(0)``). Decoder: ``h`` evolves over the grid by ``f`` (:class:`TanhMLP`, 3 hidden layers of
    ``units``, Table 14); a linear layer reads the values back at every time (interpolation), and a linear layer
    on ``h(t_end)`` gives the mortality logit, so the decoded dynamics (and its attention) sit on the path of
    both tasks. ``attention`` chooses the decoder's field:

    - ``"none"``: ``dh/dt = f(h)`` (the latent ODE);
    - ``"ace"``: pairwise co-evolving attention, ``a(0) = corr(h(0))`` (:class:`CorrelationInitialAttention`);
    - ``"learned"``: the same with ``a(0)`` from a linear layer (Table 11's "FC");
    - ``"fixed"``: ``a(t) = corr(h(t))`` at every evaluation, no attention ODE (Table 11's "Fixed").
    """

    def __init__(self, n_vars: int, latent: int = 20, rec_hidden: int = 40, units: int = 50,
                 attention: str = "ace", solver: Optional[SolverConfig] = None) -> None:
        super().__init__()
        for name, value in (("n_vars", n_vars), ("latent", latent), ("rec_hidden", rec_hidden), ("units", units)):
            check_positive_int(name, value)
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        self.n_vars, self.latent, self.attention = n_vars, latent, attention
        self.encoder = nn.GRU(2 * n_vars, rec_hidden, batch_first=True)
        self.to_h0 = nn.Linear(rec_hidden, latent)
        f = TanhMLP(latent, latent, units)
        self.initial: Optional[nn.Module] = None
        field: nn.Module
        if attention == "none":
            field = f
        elif attention == "fixed":
            field = FixedCorrelationField(f)
        else:
            field = PairwiseAttentionField(f, TanhMLP(latent, latent * latent, units))
            self.initial = CorrelationInitialAttention(latent) if attention == "ace" else LearnedInitialAttention(latent)
        # the core's ODE block solves the decoder (any backend and gradient of the SolverConfig; it counts evaluations)
        self.block = ODEBlock(field, 0.0, 1.0, solver=solver or SolverConfig(method="rk4", gradient="backprop",
                                                                                backend="nodelib"))
        self.readout = nn.Linear(latent, n_vars)
        self.classifier = nn.Linear(latent, 1)

    def encode(self, values: Tensor, mask: Tensor) -> Tensor:
        """``h(0)`` from the series (``values``, ``mask``: ``(B, T, V)``), read backwards in time."""
        x = torch.cat([values * mask, mask], dim=-1).flip(1)
        _, last = self.encoder(x)
        return self.to_h0(last[-1])

    @property
    def field(self) -> nn.Module:
        """The decoder's vector field (``self.block.field``)."""
        return self.block._module()

    @property
    def solver(self) -> SolverConfig:
        return self.block.solver

    def decode(self, h0: Tensor, times: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """``h(t)`` at ``times`` (shape ``(T, B, latent)``) and the attention logits ``a(t)`` (``(T, B, d, d)``; None
        without an attention ODE)."""
        state: Any = h0 if self.initial is None else (h0, self.initial(h0))
        out = self.block.trajectory(state, times)
        if isinstance(out, tuple):
            return out[0], out[1]
        return out, None

    def forward(self, values: Tensor, mask: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction (B, T, V), mortality logit (B,))`` for series on the grid ``times`` (shape ``(T,)``)."""
        if values.dim() != 3 or values.shape != mask.shape or values.shape[-1] != self.n_vars:
            raise ValueError(f"expected values and mask of the same shape (B, T, {self.n_vars}); got {tuple(values.shape)} "
                             f"and {tuple(mask.shape)}")
        if times.dim() != 1 or len(times) != values.shape[1]:
            raise ValueError(f"times must be a 1-D grid with one time per step of the series ({values.shape[1]}), got "
                             f"shape {tuple(times.shape)}")
        h, _ = self.decode(self.encode(values, mask), times)
        return self.readout(h).transpose(0, 1), self.classifier(h[-1]).squeeze(-1)


# --- the PhysioNet tasks: mortality (AUC) and interpolation (MSE on held-out measurements) ------------------------

def hold_out(mask: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """A visibility mask: each observed entry of ``mask`` is hidden with probability ``fraction`` (0 <= f < 1)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction!r}")
    keep = torch.rand(mask.shape, generator=generator) >= fraction
    return mask * keep.to(mask.dtype)


def series_loss(model: LatentODEModel, values: Tensor, mask: Tensor, visible: Tensor, labels: Tensor, times: Tensor,
                recon_weight: float = 100.0) -> Tensor:
    """``recon_weight * MSE(observed entries) + BCE(mortality)``: the model sees only ``visible`` entries."""
    recon, logit = model(values * visible, visible, times)
    mse = ((recon - values) ** 2 * mask).sum() / mask.sum().clamp_min(1)
    bce = nn.functional.binary_cross_entropy_with_logits(logit, labels.to(logit.dtype))
    return recon_weight * mse + bce


@torch.no_grad()
def evaluate_series(model: LatentODEModel, values: Tensor, mask: Tensor, visible: Tensor, labels: Tensor,
                    times: Tensor, batch_size: int = 200) -> dict[str, float]:
    """Mortality AUC and interpolation MSE (on the observed entries hidden from the model: ``mask - visible``)."""
    from sklearn.metrics import roc_auc_score

    model.eval()
    scores, sq, count = [], 0.0, 0.0
    for start in range(0, len(labels), batch_size):
        part = slice(start, start + batch_size)
        recon, logit = model(values[part] * visible[part], visible[part], times)
        hidden = mask[part] - visible[part]
        sq += float(((recon - values[part]) ** 2 * hidden).sum())
        count += float(hidden.sum())
        scores.append(logit.float())
    y = labels.cpu().numpy()
    auc = float(roc_auc_score(y, torch.cat(scores).cpu().numpy())) if 0 < y.sum() < len(y) else float("nan")
    return {"auc": auc, "mse": sq / max(count, 1.0)}
