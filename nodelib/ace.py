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

Training (Sec. 3.3, Algorithm 1) alternates a step on ``L_h`` for ``θ_f`` and the other parameters (attention
ODE frozen) with a step on ``L_a = L_task + λ‖θ_g‖`` for the attention ODE's parameters ``θ_g`` alone (the rest
frozen): it is the :class:`~nodelib.training.Alternating` strategy of nodelib's one training loop, given the split
of :func:`split_parameters` and the penalty of :func:`attention_penalty`; :func:`attention_health` measures
whether the attention still moves (the norm of ``θ_g`` and how far the attention travels over the interval).
The models of the paper's experiments: :class:`ACEConvBody` (the ACE-ODE-Net body, registered as the
classifier body ``"ace"``) and :class:`LatentODEModel` (a latent ODE for irregular multivariate series with
optional pairwise attention, for PhysioNet 2012).
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from ._impl.checks import check_positive_int
from .blocks import ODEBlock
from .classification import ADAPTIVE, BodySpec, register_body
from .config import SolverConfig
from .layers import ConcatConv, ConvODEFunc, conv_class, group_norm

ATTENTION_KINDS = ("none", "ace", "fixed", "learned")
ENCODERS = ("gru", "odernn")


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


def attention_health(model: nn.Module, weights: Optional[Tensor] = None) -> dict[str, float]:
    """Is the attention alive? ``theta_g_norm``: the L2 norm of θ_g (an attention ODE whose parameters shrink to
    zero leaves ``a(t) = a(0)``: a fixed mixing matrix, not co-evolving attention); with ``weights``, the
    attention weights along the interval (time first, e.g. ``softmax(a(t))`` from
    :meth:`LatentODEModel.attention_weights` or ``sigmoid(a(t))`` from :meth:`ACEConvBody.attention_trajectory`),
    ``attention_movement``: the largest change of any weight from its value at the start."""
    params = attention_parameters(model)
    out = {"theta_g_norm": float(torch.stack([p.detach().pow(2).sum() for p in params]).sum().sqrt()) if params
           else 0.0}
    if weights is not None:
        if weights.dim() < 2:
            raise ValueError(f"weights must have time first and something after it, got shape {tuple(weights.shape)}")
        out["attention_movement"] = float((weights - weights[:1]).abs().max())
    return out


def attention_penalty(params: Sequence[Tensor], norm: int = 2) -> Tensor:
    """``‖θ_g‖_1`` or ``‖θ_g‖_2`` of Eq. 6 over all the given tensors (the norm itself, not its square)."""
    if norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2 (Eq. 6), got {norm!r}")
    if not params:
        raise ValueError("no attention parameters to penalise: the model has no attention ODE")
    if norm == 1:
        return torch.stack([p.abs().sum() for p in params]).sum()
    return torch.stack([p.pow(2).sum() for p in params]).sum().sqrt()


# --- the image model: the ACE-ODE-Net body ----------------------------------------------------------------------

class ReducedConvODEFunc(nn.Module):
    """``f''`` of the ACE-ODE-Net: Table 1's field without its second layer, ``GN(conv(t, ReLU(GN(x))))``."""

    def __init__(self, channels: int, *, dims: int = 2) -> None:
        super().__init__()
        self.norm1 = group_norm(channels)
        self.conv = ConcatConv(channels, channels, dims=dims)
        self.norm2 = group_norm(channels)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.norm2(self.conv(t, torch.relu(self.norm1(x))))


class ACEConvBody(nn.Module):
    """The ACE-ODE-Net body (Sec. 4.1): ``a(0) = q(h(0))``, then ``(h, a)`` solved by elementwise co-evolution.

    ``f''`` is Table 1's field without its second layer (:class:`ReducedConvODEFunc`, item 4 of Sec. 4.1),
    ``g'`` the whole Table-1 field (item 5), ``q`` two 3x3 convolutions with GroupNorm and ReLU between them
    (item 6). The body returns ``h(t1)``; :attr:`counter` (the block's) counts evaluations of the coupled field.
    """

    def __init__(self, channels: int, solver: SolverConfig, t1: float = 1.0, *, dims: int = 2) -> None:
        super().__init__()
        conv = conv_class(dims)
        self.q = nn.Sequential(conv(channels, channels, 3, padding=1), group_norm(channels), nn.ReLU(),
                               conv(channels, channels, 3, padding=1))
        self.field = ElementwiseAttentionField(ReducedConvODEFunc(channels, dims=dims),
                                               ConvODEFunc(channels, dims=dims))
        self.block = ODEBlock(self.field, 0.0, float(t1), solver=solver)
        self.counter = self.block.counter

    def forward(self, h0: Tensor) -> Tensor:
        h1, _ = self.block((h0, self.q(h0)))
        return h1

    def attention_trajectory(self, h0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``h(t)`` and the attention ``sigmoid(a(t))`` at the times ``t`` (for plots)."""
        h, a = self.block.trajectory((h0, self.q(h0)), t)
        return h, torch.sigmoid(a)


# --- the time-series model: a latent ODE with pairwise attention -------------------------------------------------

class ODERNNEncoder(nn.Module):
    """Rubanova et al. (2019)'s ODE-RNN, read backwards in time: the encoder of their "Latent-ODE (ODE Enc.)".

    Going from the last grid time to the first, the hidden state evolves between two grid times by
    ``dh/dt = f_enc(h)`` (:class:`TanhMLP`; one classical Runge-Kutta step per interval of the grid,
    :func:`nodelib.solvers.rk_step`, where the original uses dopri5 on the observation times), then a GRU cell
    reads the bin's ``[x ⊙ m, m]``; a patient with nothing observed in a bin keeps the evolved state (Rubanova
    et al. update only at observations).
    """

    def __init__(self, n_in: int, hidden: int, units: int = 50) -> None:
        super().__init__()
        for name, value in (("n_in", n_in), ("hidden", hidden), ("units", units)):
            check_positive_int(name, value)
        self.hidden = hidden
        self.cell = nn.GRUCell(n_in, hidden)
        self.field = TanhMLP(hidden, hidden, units, n_layers=3)

    def forward(self, x: Tensor, observed: Tensor, times: Tensor) -> Tensor:
        """The last hidden state ``(B, hidden)`` after reading ``x`` (``(B, T, n_in)``) from ``times[-1]`` back to
        ``times[0]``; ``observed`` (``(B, T)``, bool) says which bins hold any measurement."""
        from .solvers import TABLEAUS, rk_step

        h = x.new_zeros(x.shape[0], self.hidden)
        for i in range(x.shape[1] - 1, -1, -1):
            if i < x.shape[1] - 1:  # backwards in time: one step of -(t_{i+1} - t_i) from t_{i+1}
                h, _ = rk_step(self.field, TABLEAUS["rk4"], times[i + 1], h, times[i] - times[i + 1])
            h = torch.where(observed[:, i:i + 1], self.cell(x[:, i], h), h)
        return h


class LatentODEModel(nn.Module):
    """A latent ODE for irregular multivariate series (values, observation mask, times), with optional attention.

    Encoder (``encoder``): ``"odernn"``, :class:`ODERNNEncoder` (the paper's "ODE Enc."), or ``"gru"``, a GRU
    reading ``[x ⊙ m, m]`` at the grid times backwards (Rubanova et al.'s RNN encoder); a linear layer maps its
    last hidden state to ``h(0)`` (deterministic: no sampling of ``h(0)``, unlike the variational original).
    ``augment`` adds that many zero dimensions to ``h(0)`` (the Augmented-Latent-ODE of Table 7: five, after
    Dupont et al.; only without attention, as in the paper).

    Decoder: ``h`` evolves over the grid by ``f`` (:class:`TanhMLP`, 3 hidden layers of ``units``, Table 14); a
    linear layer reads the values back at every time (interpolation), and a linear layer on ``h(t_end)`` gives
    the mortality logit, so the decoded dynamics (and its attention) sit on the path of both tasks.
    ``attention`` chooses the decoder's field:

    - ``"none"``: ``dh/dt = f(h)`` (the latent ODE);
    - ``"ace"``: pairwise co-evolving attention, ``a(0) = corr(h(0))`` (:class:`CorrelationInitialAttention`);
    - ``"learned"``: the same with ``a(0)`` from a linear layer (Table 11's "FC");
    - ``"fixed"``: ``a(t) = corr(h(t))`` at every evaluation, no attention ODE (Table 11's "Fixed").
    """

    def __init__(self, n_vars: int, latent: int = 20, rec_hidden: int = 40, units: int = 50,
                 attention: str = "ace", solver: Optional[SolverConfig] = None, encoder: str = "gru",
                 augment: int = 0) -> None:
        super().__init__()
        for name, value in (("n_vars", n_vars), ("latent", latent), ("rec_hidden", rec_hidden), ("units", units)):
            check_positive_int(name, value)
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if not isinstance(augment, int) or augment < 0:
            raise ValueError(f"augment must be a whole number >= 0, got {augment!r}")
        if augment and attention != "none":
            raise ValueError("augment works only without attention (the paper augments the plain latent ODE)")
        self.n_vars, self.latent, self.attention, self.augment = n_vars, latent, attention, augment
        self.encoder_kind = encoder
        self.encoder: nn.Module = (nn.GRU(2 * n_vars, rec_hidden, batch_first=True) if encoder == "gru"
                                   else ODERNNEncoder(2 * n_vars, rec_hidden, units))
        self.to_h0 = nn.Linear(rec_hidden, latent)
        latent = latent + augment
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

    def encode(self, values: Tensor, mask: Tensor, times: Optional[Tensor] = None) -> Tensor:
        """``h(0)`` from the series (``values``, ``mask``: ``(B, T, V)``; ``times``, the grid, for the ODE-RNN),
        read backwards in time."""
        x = torch.cat([values * mask, mask], dim=-1)
        if self.encoder_kind == "gru":
            _, last = self.encoder(x.flip(1))
            h0 = self.to_h0(last[-1])
        else:
            if times is None:
                raise ValueError("the ODE-RNN encoder needs the grid times")
            h0 = self.to_h0(self.encoder(x, mask.sum(-1) > 0, times))
        if self.augment:
            h0 = torch.cat([h0, h0.new_zeros(h0.shape[0], self.augment)], dim=-1)
        return h0

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

    @torch.no_grad()
    def attention_weights(self, values: Tensor, mask: Tensor, times: Tensor) -> Optional[Tensor]:
        """The attention weights ``softmax(a(t))`` (``(T, B, d, d)``, rows sum to 1) along the grid for these
        series; None without an attention ODE."""
        _, a = self.decode(self.encode(values, mask, times), times)
        return None if a is None else torch.softmax(a, dim=-1)

    def forward(self, values: Tensor, mask: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction (B, T, V), mortality logit (B,))`` for series on the grid ``times`` (shape ``(T,)``)."""
        if values.dim() != 3 or values.shape != mask.shape or values.shape[-1] != self.n_vars:
            raise ValueError(f"expected values and mask of the same shape (B, T, {self.n_vars}); got {tuple(values.shape)} "
                             f"and {tuple(mask.shape)}")
        if times.dim() != 1 or len(times) != values.shape[1]:
            raise ValueError(f"times must be a 1-D grid with one time per step of the series ({values.shape[1]}), got "
                             f"shape {tuple(times.shape)}")
        h, _ = self.decode(self.encode(values, mask, times), times)
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
    """Mortality AUC, interpolation MSE (on the observed entries hidden from the model: ``mask - visible``) and the
    training loss on these series (``loss``: 100 x the MSE on the visible entries plus the mortality BCE, as
    :func:`series_loss`; defined even when the AUC is not, with one outcome only)."""
    from sklearn.metrics import roc_auc_score

    model.eval()
    scores, sq, count, seen_sq, seen = [], 0.0, 0.0, 0.0, 0.0
    for start in range(0, len(labels), batch_size):
        part = slice(start, start + batch_size)
        recon, logit = model(values[part] * visible[part], visible[part], times)
        hidden = mask[part] - visible[part]
        sq += float(((recon - values[part]) ** 2 * hidden).sum())
        count += float(hidden.sum())
        seen_sq += float(((recon - values[part]) ** 2 * mask[part]).sum())
        seen += float(mask[part].sum())
        scores.append(logit.float())
    logits = torch.cat(scores)
    bce = float(nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)))
    y = labels.cpu().numpy()
    auc = float(roc_auc_score(y, logits.cpu().numpy())) if 0 < y.sum() < len(y) else float("nan")
    return {"auc": auc, "mse": sq / max(count, 1.0), "loss": 100 * seen_sq / max(seen, 1.0) + bce}


def _ace_body(width: int, *, dims: int, solver: SolverConfig, t1: float, **_: Any) -> tuple[nn.Module, int, Any]:
    body = ACEConvBody(width, solver, t1, dims=dims)
    return body, width, body.counter


register_body(BodySpec("ace", "ACE-ODE-Net: state and elementwise attention co-evolving (dopri5, adjoint)", _ace_body,
                       ADAPTIVE))
