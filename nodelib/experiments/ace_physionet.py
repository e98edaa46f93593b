"""Chapter 6's full time-series experiment: PhysioNet 2012 mortality (AUC) and interpolation (MSE), with attention.

    python -m nodelib.experiments.ace_physionet --attention ace --training alternating --data-dir ../shared/data \\
        --out runs/physionet-ace/result.json

Every patient of set A (4,000) is binned on an hourly grid over 48 hours (41 variables, observation masks) and
scaled to [0, 1] per variable with the training patients' range. The split (80/10/10 %) is the same for every
seed; seeds change the initialisation, the data order and the entries hidden during training. The model is
:class:`nodelib.ace.LatentODEModel` (RNN encoder, latent ODE decoder of Table 14's fields, 20 latent dimensions,
40 recognition units) with the chosen attention; it is trained on ``100 * MSE + BCE`` while 20 % of each
patient's measurements are hidden from it, and scored on the test patients: the mortality AUC, and the MSE on
the measurements hidden from it (interpolation). The epoch with the best validation AUC is kept (Algorithm 1,
line 6). Settings of Jhin et al. (2021) Sec. 4.3-4.4 and App. B: 30 epochs, batch 50, learning rate 1e-2,
λ = 1e-2, dopri5 with rtol 1e-4 and atol 1e-5.

Checkpoints after every epoch (``OUT/../checkpoint-seedS.pt``); ``--resume`` continues an interrupted run and
skips finished seeds; the result is written atomically after every seed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Optional

import torch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.ace_physionet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--attention", choices=("none", "ace", "learned", "fixed"), default="ace")
    parser.add_argument("--training", choices=("alternating", "joint"), default="alternating")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one model each")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--lam", type=float, default=1e-2, help="λ of Eq. 6 (attention models)")
    parser.add_argument("--norm", type=int, choices=(1, 2), default=2)
    parser.add_argument("--quantization", type=float, default=1.0, help="bin width in hours")
    parser.add_argument("--patients", type=int, default=None, help="read only the first N patients (default: all)")
    parser.add_argument("--method", default="dopri5")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--step-size", type=float, default=None, help="for fixed-step methods (default: one bin)")
    parser.add_argument("--held-out", type=float, default=0.2, help="fraction of measurements hidden from the model")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with set-a.tar.gz and Outcomes-a.txt")
    parser.add_argument("--download", action="store_true", help="fetch the files from PhysioNet if missing")
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/physionet/result.json"))
    return parser


def _summary(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [r[key] for r in rows]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not seeds or args.epochs < 1 or args.batch < 1 or not args.lr > 0 or not 0 <= args.held_out < 1:
        parser.error("need at least one seed, --epochs >= 1, --batch >= 1, --lr > 0 and 0 <= --held-out < 1")
    if args.training == "alternating" and args.attention in ("none", "fixed"):
        parser.error(f"--attention {args.attention} has no attention ODE to alternate with; use --training joint")

    from nodelib import SolverConfig, seed_everything
    from nodelib.ace import AlternatingTrainer, JointTrainer, LatentODEModel, evaluate_series, fit, hold_out, series_loss
    from nodelib.datasets import physionet2012
    from nodelib.solvers import FIXED_STEP_METHODS
    from nodelib.utils import count_parameters, get_device

    from ._common import atomic_path, describe_machine, write_json_atomic

    try:
        device = get_device(args.device)
        data = physionet2012(args.data_dir, download=args.download, quantization=args.quantization, n_patients=args.patients)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    train, val, test = data.split((0.8, 0.1, 0.1), seed=0)
    low, high = train.value_range()
    train, val, test = (part.scaled(low, high) for part in (train, val, test))
    times = (data.times / data.times[-1]).to(device)  # [0, 1]
    fixed_hidden = torch.Generator().manual_seed(12345)  # the validation and test entries hidden, the same for every seed
    visible_val, visible_test = hold_out(val.mask, args.held_out, fixed_hidden), hold_out(test.mask, args.held_out, fixed_hidden)
    move = lambda part: (part.values.to(device), part.mask.to(device), part.labels.to(device))  # noqa: E731
    (xv, mv, yv), (xt, mt, yt), (xtr, mtr, ytr) = move(val), move(test), move(train)
    visible_val, visible_test = visible_val.to(device), visible_test.to(device)
    solver = SolverConfig(method=args.method, rtol=args.rtol, atol=args.atol, backend="nodelib",
                          step_size=args.step_size or (float(times[1]) if args.method in FIXED_STEP_METHODS else None),
                          gradient="backprop")

    out: Path = args.out
    result: dict[str, Any] = {
        "experiment": "ace_physionet",
        "command": " ".join(["python -m nodelib.experiments.ace_physionet", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "resume", "no_progress")},
        "data": {"patients": len(data), "train": len(train), "validation": len(val), "test": len(test), "bins": len(data.times),
                 "variables": len(data.variables), "deaths": int(data.labels.sum())},
        "machine": describe_machine(device), "seeds": [], "complete": False,
    }
    if args.resume and out.exists():
        import json

        previous = json.loads(out.read_text())
        if previous.get("config") != result["config"]:
            parser.error(f"{out} was written with other settings; resume with the same options or delete it")
        result["seeds"] = previous["seeds"]

    def save_result() -> None:  # after every seed, atomically, with the summary of the seeds so far
        result["summary"] = {key: _summary(result["seeds"], key) for key in ("test_auc", "test_mse")}
        write_json_atomic(out, result)

    done = {row["seed"] for row in result["seeds"]}
    for seed in seeds:
        if seed in done:
            continue
        seed_everything(seed)
        model = LatentODEModel(len(data.variables), attention=args.attention, solver=solver).to(device)
        trainer = (AlternatingTrainer(model, lr=args.lr, lam=args.lam, norm=args.norm) if args.training == "alternating"
                   else JointTrainer(model, lr=args.lr, lam=args.lam if args.attention in ("ace", "learned") else 0.0, norm=args.norm))

        def batches(k: int, seed: int = seed) -> Any:
            order = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(seed * 1009 + k))
            for b, index in enumerate(order.split(args.batch)):
                yield index.to(device), torch.Generator().manual_seed(seed * 1_000_003 + k * 1009 + b)

        def task_loss(m: Any, batch: Any) -> torch.Tensor:
            index, generator = batch
            visible = hold_out(mtr[index].cpu(), args.held_out, generator).to(device)
            return series_loss(m, xtr[index], mtr[index], visible, ytr[index], times)

        def validate(m: Any) -> float:
            return evaluate_series(m, xv, mv, visible_val, yv, times)["auc"]

        checkpoint = out.parent / f"checkpoint-seed{seed}.pt"
        state = torch.load(checkpoint, map_location=device, weights_only=False) if args.resume and checkpoint.exists() else None

        def save(state: dict[str, Any], path: Path = checkpoint) -> None:
            with atomic_path(path) as tmp:
                torch.save(state, tmp)

        fitted = fit(model, trainer, batches, task_loss, validate, args.epochs, progress=not args.no_progress,
                     on_iteration=save, resume_from=state)
        scores = evaluate_series(model, xt, mt, visible_test, yt, times)
        result["seeds"].append({"seed": seed, "test_auc": scores["auc"], "test_mse": scores["mse"],
                                "best_epoch": fitted.best_iteration, "best_validation_auc": fitted.best_score,
                                "seconds": fitted.seconds, "parameters": count_parameters(model), "history": fitted.history})
        print(f"seed {seed}: test AUC {scores['auc']:.3f}, interpolation MSE {scores['mse']:.2e}, best epoch "
              f"{fitted.best_iteration}, {fitted.seconds:.0f} s", flush=True)
        save_result()
    result["complete"] = {row["seed"] for row in result["seeds"]} >= set(seeds)
    save_result()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
