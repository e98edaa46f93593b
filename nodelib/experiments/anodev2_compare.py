"""Chapter 7's comparison: a network of App. B with each ANODEV2 schedule, over seeds, on real images.

    python -m nodelib.experiments.anodev2_compare --net resnet4 --data fashionmnist --data-dir ../shared/data \\
        --train-size 20000 --epochs 15 --out runs/anodev2-resnet4-fmnist/result.json

For every schedule (baseline, config1, config2, frozen) and seed, the network is trained from the same
initialisation seed with SGD (momentum 0.9) and a step schedule, on a fixed subset of the training images; a
validation set is held out of the training images (the same for every run) and the epoch with the best
validation accuracy gives the reported test accuracy (the test set is never used to choose). The result file
holds every run's per-epoch metrics and, per schedule, the mean and standard deviation over seeds.

Checkpoints after every epoch (``OUT/../checkpoint-SCHEDULE-seedS.pt``); ``--resume`` continues an interrupted
run and skips finished ones; the result is written atomically after every epoch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..anodev2 import Schedule, anodev2_network, get_schedule
from .compare import DATA_CHOICES, add_arguments, fit_classifier, load_images, run_comparison
from .compare import summarise as _summarise

__all__ = ["DATA_CHOICES", "load_images", "train_once", "summarise", "main"]

def train_once(net: str, schedule: Union[str, Schedule], images: dict[str, tuple[Tensor, Tensor]], seed: int, *, epochs: int,
               batch_size: int = 128, lr: float = 0.1, milestones: Sequence[int] = (), weight_decay: float = 5e-4,
               checkpoint: Optional[Path] = None, resume: bool = False, progress: bool = False,
               on_epoch: Optional[Callable[[dict[str, Any]], None]] = None,
               device: Optional[torch.device] = None, **network_options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Train one network with one schedule (a name of ``SCHEDULES`` or a :class:`~nodelib.anodev2.Schedule`) and
    seed by :func:`~nodelib.experiments.compare.fit_classifier` (no weight decay on the RDA coefficients); return
    the model (best validation epoch's weights) and its record. ``network_options`` go to
    :func:`~nodelib.anodev2.anodev2_network` (e.g. ``nonlinear=False``)."""
    x, y = images["train"]
    torch.manual_seed(seed)
    model = anodev2_network(net, schedule, in_channels=x.shape[1], n_classes=int(y.max()) + 1,
                            image_size=x.shape[-1], **network_options)
    name = get_schedule(schedule).name
    trained, record = fit_classifier(model, images, seed, epochs=epochs, batch_size=batch_size, lr=lr,
                                   milestones=milestones, weight_decay=weight_decay,
                                   parameter_groups=model.parameter_groups(weight_decay), label=f"{net} {name}",
                                   checkpoint=checkpoint, resume=resume, progress=progress, on_epoch=on_epoch,
                                   device=device)
    return trained, {"net": net, "schedule": name, **record}


def summarise(runs: list[dict[str, Any]], key: str = "test_accuracy_at_best") -> dict[str, dict[str, float]]:
    """Per schedule: mean, standard deviation (n - 1), min, max and number of seeds of ``key``."""
    return _summarise(runs, key, by="schedule")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.anodev2_compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=("alexnet", "resnet4", "resnet10"), default="resnet4")
    parser.add_argument("--schedules", default="baseline,config1,config2,frozen")
    add_arguments(parser, epochs=15, lr=0.02, milestones="7,13", out="runs/anodev2-compare/result.json",
                  lr_help="0.02: at this scale 0.1 (the paper's) leaves the baseline at chance (measured)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from ..anodev2 import SCHEDULES

    parser = _parser()
    args = parser.parse_args(argv)
    schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    unknown = [s for s in schedules if s not in SCHEDULES]
    if unknown or not schedules:
        parser.error(f"--schedules must name some of {', '.join(SCHEDULES)}, got {args.schedules!r}")

    def train(schedule: str, seed: int, images: dict[str, tuple[Tensor, Tensor]], **options: Any) -> dict[str, Any]:
        return train_once(args.net, schedule, images, seed, epochs=args.epochs, batch_size=args.batch, lr=args.lr,
                          weight_decay=args.weight_decay, **options)[1]

    return run_comparison("anodev2_compare", parser, args, argv, schedules, train, by="schedule")


if __name__ == "__main__":
    sys.exit(main())
