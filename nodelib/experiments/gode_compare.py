"""Chapter 8's comparison: Neural ODE, ResNet and Neural-GODE variants with one field, over seeds, on real images.

    python -m nodelib.experiments.gode_compare --data fashionmnist --data-dir ../shared/data --train-size 20000 \\
        --variants node,resnet,gode-m4-k1-uniform,gode-m4-k1-clamped --out runs/gode-fmnist/result.json

Every variant is the same classifier (chapter 5's stem and head, the field (GN-ReLU-convt) x 2 of
:class:`~nodelib.gode.GODEField`) with a different ``θ(t)``, named as

- ``node``: degree 0, one basis function: constant weights (a Neural ODE, Eqs. 7-8);
- ``resnet``: degree 0, one basis function per Euler step: a weight per step (a ResNet, exactly);
- ``gode-mM-kK-KNOTS``: ``M`` basis functions of degree ``K`` with ``uniform`` (the paper's) or ``clamped`` knots;

with optional suffixes ``-TX`` (the interval ``[0, X]``, same step) and ``-dopri5`` (adaptive steps, rtol = atol =
1e-3, instead of Euler). Training: :func:`~nodelib.experiments.compare.fit_classifier` (SGD with momentum or Adam,
step schedule, the epoch with the best validation accuracy reported, checkpoints and ``--resume``).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from ..gode import BSplineConv, GODEField
from ..nfe import NFECounter
from .compare import add_arguments, fit_classifier, run_comparison

__all__ = ["parse_variant", "build_variant", "train_variant", "main"]

_GODE = re.compile(r"^gode-m(\d+)-k(\d+)-(uniform|clamped)$")


def parse_variant(name: str, step: float = 0.05) -> dict[str, Any]:
    """The body options, interval end and solver of a variant name (see the module's docstring)."""
    base, t1 = name, 1.0
    solver: dict[str, Any] = {"method": "euler", "step_size": step, "gradient": "backprop"}
    if base.endswith("-dopri5"):
        base, solver = base[:-len("-dopri5")], {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "gradient": "backprop"}
    end = re.search(r"-T(\d+(?:\.\d+)?)$", base)
    if end:
        base, t1 = base[:end.start()], float(end.group(1))
    if not t1 > 0:
        raise ValueError(f"{name}: the interval end T must be positive")
    body: dict[str, Any]
    if base == "node":
        body = {"n_basis": 1, "degree": 0}
    elif base == "resnet":
        steps = round(t1 / step)
        if abs(steps * step - t1) > 1e-9 * t1 or solver["method"] != "euler":
            raise ValueError(f"{name}: a ResNet needs Euler steps that divide [0, {t1}] (step {step})")
        body = {"n_basis": steps, "degree": 0}
    else:
        match = _GODE.match(base)
        if not match:
            raise ValueError(f"unknown variant {name!r}: expected node, resnet or gode-mM-kK-(uniform|clamped), "
                             "optionally followed by -TX and -dopri5")
        body = {"n_basis": int(match.group(1)), "degree": int(match.group(2)), "knots": match.group(3)}
    return {"body": body, "t1": t1, "solver": solver}


def build_variant(name: str, in_channels: int = 1, n_classes: int = 10, *, width: int = 32, stem: str = "chen",
                  step: float = 0.05) -> nn.Module:
    """The classifier of one variant (not seeded: seed before calling)."""
    from ..classification import build_classifier

    spec = parse_variant(name, step)
    return build_classifier("gode", in_channels, n_classes, width=width, stem_kind=stem, body_options=spec["body"],
                            solver=spec["solver"], t1=spec["t1"])  # type: ignore[no-any-return]


def train_variant(name: str, images: dict[str, tuple[Tensor, Tensor]], seed: int, *, epochs: int,
                  width: int = 32, stem: str = "chen", step: float = 0.05, batch_size: int = 128, lr: float = 0.1,
                  optimizer: str = "sgd", milestones: Sequence[int] = (), weight_decay: float = 5e-4,
                  checkpoint: Optional[Path] = None, resume: bool = False, progress: bool = False,
                  device: Optional[torch.device] = None) -> tuple[nn.Module, dict[str, Any]]:
    """Seed, build and train one variant; returns the model at its best validation epoch and its record (with
    ``"variant"``, ``"initial"``: the first convt's first kernel entry ``θ[0, 0, 1, 1]`` at initialisation on the
    Euler grid, and ``"nfe_forward"``: field evaluations of one forward pass after training)."""
    x, y = images["train"]
    torch.manual_seed(seed)
    model: Any = build_variant(name, x.shape[1], int(y.max()) + 1, width=width, stem=stem, step=step)
    field: GODEField = model.counter.field
    grid = torch.arange(0, field.basis.t_end + 1e-9, step)
    with torch.no_grad():
        first: BSplineConv = field.convs[0]  # type: ignore[assignment]
        initial = [float(first.weight(t)[0, 0, 1, 1]) for t in grid]
    trained, record = fit_classifier(model, images, seed, epochs=epochs, batch_size=batch_size, lr=lr,
                                     optimizer=optimizer, milestones=milestones, weight_decay=weight_decay,
                                     label=name, checkpoint=checkpoint, resume=resume, progress=progress,
                                     device=device)
    counter: NFECounter = model.counter
    counter.reset()
    trained.eval()
    with torch.no_grad():
        trained(images["test"][0][:8].to(next(trained.parameters()).device))
    return trained, {**record, "initial": initial, "nfe_forward": counter.reset()["forward"]}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.gode_compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="node,resnet,gode-m4-k1-uniform,gode-m4-k1-clamped")
    parser.add_argument("--width", type=int, default=32, help="channels of the stem and the field (64 in the paper)")
    parser.add_argument("--stem", choices=("chen", "small"), default="chen")
    parser.add_argument("--step", type=float, default=0.05, help="the Euler step (the paper's 0.05)")
    parser.add_argument("--downsample", type=int, default=1, help="average-pool the images by this factor first")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    add_arguments(parser, epochs=10, lr=0.05, milestones="6,9", out="runs/gode-compare/result.json")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants:
        parser.error("--variants must name at least one variant")
    if not (args.step > 0 and args.width >= 1):
        parser.error("need --step > 0 and --width >= 1")
    for name in variants:
        try:
            parse_variant(name, args.step)
        except ValueError as err:
            parser.error(str(err))

    def train(variant: str, seed: int, images: dict[str, tuple[Tensor, Tensor]], **options: Any) -> dict[str, Any]:
        return train_variant(variant, images, seed, epochs=args.epochs, width=args.width, stem=args.stem,
                             step=args.step, batch_size=args.batch, lr=args.lr, optimizer=args.optimizer,
                             weight_decay=args.weight_decay, **options)[1]

    return run_comparison("gode_compare", parser, args, argv, variants, train, downsample=args.downsample)


if __name__ == "__main__":
    sys.exit(main())
