"""Chapter 3's full experiment: a latent ODE on noisy, irregularly sampled spirals turning both ways.

    python -m nodelib.experiments run latent-spirals

Spirals z' = A z (half clockwise, half counter-clockwise, random start) are observed at shared irregular times
in [0, 6] with Gaussian noise (std 0.1). Every other observation is held out. The model is trained on the
rest of the training spirals; on unseen test spirals it reconstructs the held-out points (interpolation) and
predicts [6, 9] (extrapolation). Baseline for interpolation: linear interpolation of the noisy observations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Config:
    """Chapter 3's latent ODE on noisy, irregularly sampled spirals: every setting of the run."""

    spirals: int = field(default=1000, metadata={"help": "series (80% train, 20% test)"})
    observations: int = field(default=100, metadata={"help": "shared observation times per series"})
    steps: int = field(default=1500, metadata={"help": "Adam steps"})
    batch: int = field(default=100, metadata={"help": "series per step"})
    seed: int = field(default=0, metadata={"help": "seeds the data and the model"})

    def __post_init__(self) -> None:
        if self.spirals < 20 or self.observations < 4 or self.steps < 1 or self.batch < 1:
            raise ValueError("need spirals >= 20, observations >= 4, steps >= 1 and batch >= 1")


def run(config: Config, ctx: Any) -> dict[str, Any]:
    from nodelib import seed_everything
    from nodelib.data import bidirectional_spirals, linear_interpolation
    from nodelib.latent import LatentODE
    from nodelib.training import train_latent_ode
    from nodelib.utils import get_device

    from ._common import header, write_json_atomic

    device = get_device(ctx.device)
    seed_everything(config.seed)
    data = bidirectional_spirals(config.spirals, config.observations, 6.0, 0.1, seed=config.seed + 1, t_dense_max=9.0)
    to = lambda x: x.float().to(device)  # noqa: E731
    t, noisy, clean = to(data.t), to(data.noisy), to(data.clean)
    observed = torch.arange(len(t), device=device) % 2 == 0
    n_train = int(0.8 * config.spirals)
    model = LatentODE(latent_dim=4, hidden=32, rnn_hidden=32, method="rk4", step_size=0.2).to(device)
    history = train_latent_ode(model, noisy[observed][:, :n_train], t[observed], noise_std=0.1, steps=config.steps,
                               batch=config.batch, seed=config.seed, progress=ctx.progress)
    with torch.no_grad():
        test = slice(n_train, None)
        pred, _, _ = model(noisy[observed][:, test], t[observed], t_out=t, sample=False)
        held = ~observed
        mse = float(((pred[held] - clean[held][:, test]) ** 2).mean())
        baseline = float(((linear_interpolation(t[observed], noisy[observed][:, test], t[held]) - clean[held][:, test])
                          ** 2).mean())
        t_dense = to(data.t_dense)
        future = t_dense > t[-1]
        dense_pred = model.decode(model.encode(noisy[observed][:, test], t[observed])[0], t_dense)
        extrap = float(((dense_pred[future] - to(data.dense)[future][:, test]) ** 2).mean())
    result = {**header("latent-spirals", config, ctx, device),
              "train_seconds": history.seconds[-1], "final_loss": history.final_loss,
              "heldout_mse": mse, "linear_interpolation_mse": baseline, "extrapolation_mse": extrap,
              "loss_curve": history.losses[:: max(1, len(history.losses) // 200)]}
    write_json_atomic(ctx.result_path, result)
    print(f"held-out MSE {mse:.4f} (linear interpolation {baseline:.4f}), extrapolation MSE {extrap:.4f}")
    return result
