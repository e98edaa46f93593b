"""A latent ODE (chapter 3): a variational autoencoder whose decoder is an ODE in latent space.

Following Chen et al. (2018, section 5) as described by Facci & Zurlo (2022, section 4.1.1):

- the **encoder** is a GRU that reads the observations *backwards in time*, each with the gap to the next
  observation, and outputs the mean and log-variance of q(z(t_0) | observations);
- a sample z(t_0) is evolved by a learned latent **ODE** to any times, observed or not;
- the **decoder** maps each latent state to the observation space.

Training maximises the evidence lower bound (ELBO): a Gaussian log-likelihood of the observations minus the
KL divergence of q(z(t_0)) from a standard normal prior.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._impl.checks import check_positive_int
from .blocks import ODEBlock
from .config import SolverConfig


class _Autonomous(nn.Module):
    """``f(t, z) = net(z)``: the latent field does not read the time."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.net(z)


class LatentODE(nn.Module):
    """Latent ODE for observations ``x`` of shape ``(T, batch, obs_dim)`` at shared times ``t`` of shape ``(T,)``.

    Args:
        obs_dim: size of one observation.
        latent_dim: size of the latent state.
        hidden: width of the latent field's and the decoder's hidden layers.
        rnn_hidden: size of the encoder's GRU state.
        method, step_size, rtol, atol: how to solve the latent ODE (nodelib's solvers, backpropagation), kept in
            :attr:`block` (the core's :class:`~nodelib.blocks.ODEBlock`, which also counts evaluations).
    """

    def __init__(
        self,
        obs_dim: int = 2,
        latent_dim: int = 4,
        hidden: int = 32,
        rnn_hidden: int = 32,
        method: str = "rk4",
        step_size: float | None = None,
        rtol: float = 1e-5,
        atol: float = 1e-6,
    ) -> None:
        super().__init__()
        for name, value in (("obs_dim", obs_dim), ("latent_dim", latent_dim), ("hidden", hidden), ("rnn_hidden", rnn_hidden)):
            check_positive_int(name, value)
        self.obs_dim, self.latent_dim = obs_dim, latent_dim
        self.encoder = nn.GRU(obs_dim + 1, rnn_hidden)
        self.to_posterior = nn.Linear(rnn_hidden, 2 * latent_dim)
        self.field = _Autonomous(nn.Sequential(nn.Linear(latent_dim, hidden), nn.ELU(), nn.Linear(hidden, hidden),
                                               nn.ELU(), nn.Linear(hidden, latent_dim)))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, obs_dim))
        solver = SolverConfig(method=method, step_size=step_size, rtol=rtol, atol=atol, backend="nodelib",
                              gradient="backprop")
        self.block = ODEBlock(self.field, 0.0, 1.0, solver=solver)

    @property
    def solver(self) -> SolverConfig:
        return self.block.solver

    def _check(self, x: Tensor, t: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.obs_dim:
            raise ValueError(f"x must have shape (T, batch, {self.obs_dim}), got {tuple(x.shape)}")
        if t.dim() != 1 or len(t) != x.shape[0]:
            raise ValueError(f"t must be 1-D with one time per observation ({x.shape[0]}), got shape {tuple(t.shape)}")

    def encode(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z(t[0]) | x), from a GRU run over the observations in reverse order."""
        self._check(x, t)
        gaps = torch.diff(t, append=t[-1:])  # gap from each observation to the next (0 for the last)
        inputs = torch.cat([x, gaps[:, None, None].expand(-1, x.shape[1], 1).to(x.dtype)], dim=-1)
        _, h = self.encoder(inputs.flip(0))
        mean, logvar = self.to_posterior(h[-1]).chunk(2, dim=-1)
        return mean, logvar

    def decode(self, z0: Tensor, t: Tensor) -> Tensor:
        """Evolve latent initial states ``(batch, latent_dim)`` to the times ``t`` and map them to observations."""
        return self.decoder(self.block.trajectory(z0, t.to(z0.dtype)))

    def forward(self, x: Tensor, t: Tensor, t_out: Tensor | None = None, sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruct (or, with ``t_out``, interpolate and extrapolate) from the observations ``x`` at ``t``.

        Returns the predictions at ``t_out`` (default ``t``) and the posterior mean and log-variance.
        """
        mean, logvar = self.encode(x, t)
        z0 = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        return self.decode(z0, t if t_out is None else t_out), mean, logvar


def negative_elbo(pred: Tensor, x: Tensor, mean: Tensor, logvar: Tensor, noise_std: float, kl_weight: float = 1.0) -> Tensor:
    """The negative evidence lower bound per sequence: Gaussian negative log-likelihood plus the weighted KL term."""
    if noise_std <= 0:
        raise ValueError(f"noise_std must be positive, got {noise_std}")
    nll = 0.5 * (((pred - x) / noise_std) ** 2 + 2 * math.log(noise_std) + math.log(2 * math.pi))
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar)
    return nll.sum(dim=(0, 2)).mean() + kl_weight * kl.sum(dim=-1).mean()
