"""Chapter 3's full experiment: the spiral of Capell et al. (2023, section 4.3.2) fitted with three solvers.

    python -m nodelib.experiments run spiral-solvers

The source's setup: z' = A z with A = [[-0.1, 2], [-2, -0.1]], z0 = (2, 0), 500 samples, an MLP with one
hidden layer of 50 tanh units, RMSprop, 150 epochs, torchdiffeq's odeint with Euler, RK4 and Dopri5. The source
does not state the time span, the learning rate or how an epoch is batched; here: t in [0, 10], learning rate
1e-3, and an epoch is one pass over all windows of 10 consecutive samples in batches of 50 (9 RMSprop steps),
as implemented by nodelib.training.fit_windows. "error" is the mean squared error of the whole trajectory
predicted from z0, as in the source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

SOURCE_TABLE = {"euler": (13.43, 0.0183), "rk4": (12.95, 0.0173), "dopri5": (39.06, 0.0167)}


def run_one(method: str, epochs: int, device: torch.device, progress: bool = True) -> dict:
    import torchdiffeq

    from nodelib import seed_everything
    from nodelib.blocks import MLPField
    from nodelib.data import A_CAPELL, linear_trajectory
    from nodelib.training import fit_windows

    seed_everything(0)
    t = torch.linspace(0.0, 10.0, 500, device=device)
    z0 = torch.tensor([2.0, 0.0], device=device)
    z = linear_trajectory(A_CAPELL, z0.double().cpu(), t.double().cpu()).float().to(device)
    field = MLPField(2, hidden=50).to(device)
    nfe = [0]

    def counted(s, y):
        nfe[0] += 1
        return field(s, y)

    solve = lambda f, y0, s: torchdiffeq.odeint(f, y0, s, method=method)  # noqa: E731  (torchdiffeq defaults, as the source)
    history = fit_windows(counted, list(field.parameters()), t, z, epochs=epochs, solve=solve, desc=method,
                          progress=progress)
    n_train_steps = len(history.steps)
    train_nfe = nfe[0]
    with torch.no_grad():
        nfe[0] = 0
        full = solve(counted, z0, t)
        error = float(((full - z) ** 2).mean())
        jac = torch.func.vmap(torch.func.jacrev(lambda y: field(torch.tensor(0.0, device=device), y)))(z).mean(0)
    eig = torch.linalg.eigvals(jac.double().cpu())
    return {"method": method, "train_seconds": history.seconds[-1], "error": error, "final_train_loss": history.final_loss,
            "optimizer_steps": n_train_steps, "nfe_per_step": train_nfe / n_train_steps, "nfe_full_trajectory": nfe[0],
            "eigenvalues": [[float(e.real), float(e.imag)] for e in eig],
            "source_seconds": SOURCE_TABLE[method][0], "source_error": SOURCE_TABLE[method][1]}


@dataclass(frozen=True)
class Config:
    """Chapter 3's solver comparison on Capell et al.'s spiral: every setting of the run."""

    epochs: int = field(default=150, metadata={"help": "passes over the windows"})
    methods: tuple[str, ...] = field(default=("euler", "rk4", "dopri5"), metadata={"help": "torchdiffeq methods"})

    def __post_init__(self) -> None:
        unknown = set(self.methods) - set(SOURCE_TABLE)
        if unknown or not self.methods or self.epochs < 1:
            raise ValueError(f"methods must be among {sorted(SOURCE_TABLE)} and epochs >= 1 (got {self.methods}, "
                             f"{self.epochs})")


def run(config: Config, ctx: Any) -> dict[str, Any]:
    from nodelib.utils import get_device

    from ._common import header, write_json_atomic

    device = get_device(ctx.device)
    rows = [run_one(m, config.epochs, device, ctx.progress) for m in config.methods]
    result = {**header("spiral-solvers", config, ctx, device), "model": {"samples": 500, "t_max": 10.0, "hidden": 50,
              "optimizer": "RMSprop(lr=1e-3)", "window": 10, "batch": 50, "dtype": "float32"}, "rows": rows}
    write_json_atomic(ctx.result_path, result)
    return result
