"""Chapter 3's full experiment: a latent ODE on noisy, irregularly sampled spirals turning both ways.

    python -m nodelib.experiments.latent_spirals --out nodelib/experiments/results/latent_spirals_cpu.json

Spirals z' = A z (half clockwise, half counter-clockwise, random start) are observed at shared irregular times
in [0, 6] with Gaussian noise (std 0.1). Every other observation is held out. The model is trained on the
rest of the training spirals; on unseen test spirals it reconstructs the held-out points (interpolation) and
predicts [6, 9] (extrapolation). Baseline for interpolation: linear interpolation of the noisy observations.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.latent_spirals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--spirals", type=int, default=1000)
    parser.add_argument("--observations", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/latent_spirals.json"))
    args = parser.parse_args(argv)
    if args.spirals < 20 or args.observations < 4 or args.steps < 1:
        parser.error("need --spirals >= 20, --observations >= 4 and --steps >= 1")

    from nodelib import seed_everything
    from nodelib.data import bidirectional_spirals, linear_interpolation
    from nodelib.latent import LatentODE, train_latent_ode
    from nodelib.utils import get_device

    from ._common import describe_machine, write_json_atomic

    try:
        device = get_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    seed_everything(args.seed)
    data = bidirectional_spirals(args.spirals, args.observations, 6.0, 0.1, seed=args.seed + 1, t_dense_max=9.0)
    to = lambda x: x.float().to(device)  # noqa: E731
    t, noisy, clean = to(data.t), to(data.noisy), to(data.clean)
    observed = torch.arange(len(t), device=device) % 2 == 0
    n_train = int(0.8 * args.spirals)
    model = LatentODE(latent_dim=4, hidden=32, rnn_hidden=32, method="rk4", step_size=0.2).to(device)
    history = train_latent_ode(model, noisy[observed][:, :n_train], t[observed], noise_std=0.1, steps=args.steps, batch=args.batch,
                               seed=args.seed)
    with torch.no_grad():
        test = slice(n_train, None)
        pred, _, _ = model(noisy[observed][:, test], t[observed], t_out=t, sample=False)
        held = ~observed
        mse = float(((pred[held] - clean[held][:, test]) ** 2).mean())
        baseline = float(((linear_interpolation(t[observed], noisy[observed][:, test], t[held]) - clean[held][:, test]) ** 2).mean())
        t_dense = to(data.t_dense)
        future = t_dense > t[-1]
        dense_pred = model.decode(model.encode(noisy[observed][:, test], t[observed])[0], t_dense)
        extrap = float(((dense_pred[future] - to(data.dense)[future][:, test]) ** 2).mean())
    write_json_atomic(args.out, {
        "experiment": "latent_spirals",
        "command": " ".join(["python -m nodelib.experiments.latent_spirals", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": describe_machine(device),
        "train_seconds": history.seconds[-1], "final_loss": history.final_loss,
        "heldout_mse": mse, "linear_interpolation_mse": baseline, "extrapolation_mse": extrap,
        "loss_curve": history.losses[:: max(1, len(history.losses) // 200)],
    })
    print(f"wrote {args.out}: held-out MSE {mse:.4f} (linear interpolation {baseline:.4f}), extrapolation MSE {extrap:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
