"""Chapter 4's full experiment: accuracy and function evaluations of plain and augmented Neural ODEs.

    python -m nodelib.experiments run augmentation-nfe

Dupont et al.'s concentric circles (inner disc |x| < 0.5 against the annulus 1 < |x| < 1.5) are classified by a
Neural ODE with 0, 1, 2 or 5 extra zero dimensions. The ODE is solved by torchdiffeq's dopri5 (rtol = atol =
1e-3) and differentiated by the adjoint, so that both passes make function evaluations; both are recorded at
every training step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def fit_one(extra: int, points: int, steps: int, dim: int, seed: int, device: torch.device,
            progress: bool = True) -> dict:
    from nodelib import seed_everything
    from nodelib.augment import AugmentedNODE
    from nodelib.data import concentric_spheres
    from nodelib.training import train

    x, y = concentric_spheres(points, dim, seed=seed + 1)
    x, y = x.float().to(device), y.float().to(device)
    seed_everything(seed)
    model = AugmentedNODE(dim, 1, extra=extra, hidden=32, solver=dict(method="dopri5", rtol=1e-3, atol=1e-3, adjoint=True)).to(device)
    forward, backward = [], []

    def count(step: int) -> None:
        counts = model.counter.reset()
        forward.append(counts["forward"])
        backward.append(counts["backward"])

    history = train(lambda step: nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y),
                    torch.optim.Adam(model.parameters(), lr=1e-2), steps,
                    backward_context=lambda: model.counter.phase("backward"), on_step_end=count, desc=f"extra={extra}",
                    progress=progress)
    with torch.no_grad():
        accuracy = float(((model(x)[:, 0] > 0).float() == y).float().mean())
    return {"extra": extra, "accuracy": accuracy, "final_loss": history.final_loss, "seconds": history.seconds[-1],
            "nfe_forward": forward, "nfe_backward": backward}


@dataclass(frozen=True)
class Config:
    """Chapter 4's concentric circles with and without augmentation: every setting of the run."""

    extras: tuple[int, ...] = field(default=(0, 1, 2, 5), metadata={"help": "extra zero dimensions, one model each"})
    points: int = field(default=1024, metadata={"help": "training points"})
    steps: int = field(default=400, metadata={"help": "Adam steps"})
    dim: int = field(default=2, metadata={"help": "dimension of the data"})
    seed: int = field(default=0, metadata={"help": "seeds the data and the models"})

    def __post_init__(self) -> None:
        if not self.extras or min(self.extras) < 0 or self.points < 2 or self.steps < 1 or self.dim < 1:
            raise ValueError("extras must be >= 0, points >= 2, steps >= 1 and dim >= 1")


def run(config: Config, ctx: Any) -> dict[str, Any]:
    from nodelib.utils import get_device

    from ._common import header, write_json_atomic

    device = get_device(ctx.device)
    rows = [fit_one(e, config.points, config.steps, config.dim, config.seed, device, ctx.progress)
            for e in config.extras]
    result = {**header("augmentation-nfe", config, ctx, device), "rows": rows}
    write_json_atomic(ctx.result_path, result)
    return result
