"""Chapter 4's full experiment: accuracy and function evaluations of plain and augmented Neural ODEs.

    python -m nodelib.experiments.augmentation_nfe --out nodelib/experiments/results/augmentation_nfe_cpu.json

Dupont et al.'s concentric circles (inner disc |x| < 0.5 against the annulus 1 < |x| < 1.5) are classified by a
Neural ODE with 0, 1, 2 or 5 extra zero dimensions. The ODE is solved by torchdiffeq's dopri5 (rtol = atol =
1e-3) and differentiated by the adjoint, so that both passes make function evaluations; both are recorded at
every training step.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn


def run(extra: int, points: int, steps: int, dim: int, seed: int, device: torch.device) -> dict:
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
                    backward_context=lambda: model.counter.phase("backward"), on_step_end=count, desc=f"extra={extra}")
    with torch.no_grad():
        accuracy = float(((model(x)[:, 0] > 0).float() == y).float().mean())
    return {"extra": extra, "accuracy": accuracy, "final_loss": history.final_loss, "seconds": history.seconds[-1],
            "nfe_forward": forward, "nfe_backward": backward}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.augmentation_nfe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--extras", default="0,1,2,5")
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/augmentation_nfe.json"))
    args = parser.parse_args(argv)
    try:
        extras = [int(e) for e in args.extras.split(",")]
        if any(e < 0 for e in extras) or args.points < 2 or args.steps < 1:
            raise ValueError("extras must be >= 0, --points >= 2 and --steps >= 1")
        from nodelib.utils import get_device

        device = get_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    from ._common import describe_machine, write_json_atomic

    rows = [run(e, args.points, args.steps, args.dim, args.seed, device) for e in extras]
    write_json_atomic(args.out, {
        "experiment": "augmentation_nfe",
        "command": " ".join(["python -m nodelib.experiments.augmentation_nfe", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": describe_machine(device), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
