"""Classifier experiments: a registered network and data set, trained by nodelib's one loop (:func:`~nodelib.training.fit`).

A run of experiment ``NAME`` writes into ``OUT/NAME/`` (``OUT/NAME-smoke/`` for ``--smoke``, emptied first):

- ``checkpoint.pt``: everything the loop needs to continue, replaced atomically every epoch; ``--resume``
  continues from it and ends where an uninterrupted run ends (the data order and augmentation of an epoch
  depend only on the seed and the epoch); resuming with a larger ``--epochs`` extends a finished run;
- ``result.json``: the settings the network uses, the data, the parameter count, per-epoch metrics (loss and
  accuracy, validation and test metrics, function evaluations per iteration for networks that solve ODEs,
  seconds, examples per second, peak memory), the selected epoch, whether the run was still improving, the
  machine and the code revision; rewritten atomically every epoch;
- ``best.pt``: the parameters of the epoch with the best validation accuracy; ``curves.png``.

Several processes (``torchrun --nproc_per_node K -m nodelib.experiments run NAME``) train one model with
DistributedDataParallel (NCCL on GPUs, gloo on CPUs): each global batch is split evenly between the processes
and gradients are averaged, so K processes compute what one process computes with the same global batch.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .. import datasets
from ..errors import RunError
from ..memory import rss_high_water_bytes
from ..training import Alternating, Joint, fit, make_optimizer, make_scheduler
from ..utils import count_parameters, get_device
from ._common import atomic_path, describe_machine, write_json_atomic
from .base import SMOKE_NOTE, Context, config_to_dict

__all__ = ["ClassifierConfig", "run_classifier", "World", "accuracy_metrics"]


@dataclass(frozen=True)
class ClassifierConfig:
    """A classifier, its data and its training schedule: every number here is the one the run uses."""

    data: str = field(metadata={"help": "a registered data set (nodelib.datasets.DATASETS)"})
    arch: str = field(metadata={"help": "a classifier body or network (nodelib.classification)"})
    width: int = field(default=64, metadata={"help": "channels after the stem"})
    stem: Literal["chen", "small"] = field(default="chen", metadata={"help": "the downsampling stem"})
    n_blocks: int = field(default=6, metadata={"help": "residual blocks of a ResNet body"})
    solver: dict[str, Any] = field(default_factory=dict,
                                   metadata={"help": "changes of the body's default solver, as JSON"})
    body: dict[str, Any] = field(default_factory=dict, metadata={"help": "options of the body, as JSON"})
    t1: float = field(default=1.0, metadata={"help": "the end of the ODE block's interval [0, t1]"})
    epochs: int = field(default=160, metadata={"help": "the largest number of epochs"})
    patience: Optional[int] = field(default=None, metadata={
        "help": "stop after this many epochs without a better validation accuracy (none: run every epoch)"})
    batch_size: int = field(default=128, metadata={"help": "global mini-batch size over all processes"})
    optimizer: Literal["sgd", "adam"] = field(default="sgd", metadata={"help": "sgd (momentum 0.9) or adam"})
    lr: float = field(default=0.1, metadata={"help": "learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay"})
    milestones: tuple[int, ...] = field(default=(), metadata={"help": "epochs after which the learning rate drops"})
    gamma: float = field(default=0.1, metadata={"help": "the factor of each drop"})
    augment: bool = field(default=False, metadata={"help": "random crops (4 pixels of padding) of training images"})
    flips: bool = field(default=False, metadata={"help": "random horizontal flips of training images"})
    training: Literal["joint", "alternating"] = field(default="joint", metadata={
        "help": "one optimiser and one loss, or Algorithm 1 of Jhin et al. (2021)"})
    attention_lambda: float = field(default=0.0, metadata={"help": "λ of Eq. 6 (ACE bodies)"})
    attention_norm: Literal[1, 2] = field(default=2, metadata={"help": "the norm of Eq. 6"})
    validation: int = field(default=0, metadata={
        "help": "training examples held out to select the epoch (0: none, the last epoch is reported)"})
    seed: int = field(default=0, metadata={"help": "seeds initialisation, data order and generated data"})
    data_kind: Literal["real", "synthetic"] = field(default="real", metadata={
        "help": "the real data set, or generated data of the same shapes"})
    n_train: Optional[int] = field(default=None, metadata={
        "help": "training examples used (generated data: how many; real data: a subset)"})
    n_test: Optional[int] = field(default=None, metadata={"help": "test examples used (default: all; generated: 2000)"})

    def __post_init__(self) -> None:
        from .. import classification

        datasets.dataset_info(self.data)
        if self.arch not in classification.BODIES and self.arch not in classification.NETWORKS:
            classification.BODIES.lookup(self.arch)  # the error lists the known names
        for name in ("width", "n_blocks", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RunError(f"{name} must be a positive integer, got {value!r}")
        for name in ("patience", "n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise RunError(f"{name} must be a positive integer or none, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0 or not 0 < self.gamma <= 1:
            raise RunError(f"need lr > 0, weight_decay >= 0 and 0 < gamma <= 1; got {self.lr}, {self.weight_decay}, "
                           f"{self.gamma}")
        if self.validation < 0 or self.attention_lambda < 0:
            raise RunError("validation and attention_lambda must be >= 0")
        if self.flips and not self.augment:
            raise RunError("flips is part of the augmentation: set augment too")

    @property
    def is_network(self) -> bool:
        """A whole network (chapter 7's App. B networks): no stem, body, solver or width to choose."""
        from ..classification import NETWORKS

        return self.arch in NETWORKS

    def describe(self) -> dict[str, Any]:
        """The settings this network uses (and only those), the solver resolved: what a result records."""
        from ..classification import BODIES

        out = config_to_dict(self)
        unused: set[str] = set()
        if self.is_network:
            unused |= {"width", "stem", "n_blocks", "solver", "body", "t1"}
        else:
            spec = BODIES[self.arch]
            if spec.solver is None:
                unused |= {"solver", "t1"}
            else:
                out["solver"] = config_to_dict(spec.solver.from_mapping(self.solver, base=spec.solver))
            if self.arch != "resnet":
                unused.add("n_blocks")
            if not spec.options:
                unused.add("body")
        if not self.attention_lambda and self.training == "joint":
            unused |= {"attention_lambda", "attention_norm"}
        if not self.augment:
            unused.add("flips")
        if self.data_kind == "real" and self.n_train is None:
            unused.add("n_train")
        return {k: v for k, v in out.items() if k not in unused}


# --- distributed -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class World:
    """This process's place among the processes of a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: torch.device) -> World:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """The sums of ``values`` over every process."""
        if self.size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return [float(v) for v in tensor.tolist()]


# --- data ------------------------------------------------------------------------------------------------------

def classifier_data(config: ClassifierConfig, ctx: Context) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, Any]]:
    """Training, validation (held out of the training data, the same for every seed) and test tensors."""
    info = datasets.dataset_info(config.data)
    if config.data_kind == "synthetic":
        n_train, n_test = config.n_train or 8000, config.n_test or 2000
        if config.data == "ecg":
            # balanced classes, so that short runs learn every class (the real data is 83% normal beats)
            train, test = (datasets.synthetic_heartbeats(n_train, seed=config.seed + 1),
                           datasets.synthetic_heartbeats(n_test, seed=config.seed + 2))
            source = "nodelib.datasets.synthetic_heartbeats (balanced classes)"
        elif config.data in datasets.IMAGE_DATASETS:
            train, test = (datasets.synthetic_images(config.data, n_train, seed=config.seed + 1),
                           datasets.synthetic_images(config.data, n_test, seed=config.seed + 2))
            source = "nodelib.datasets.synthetic_images"
        else:
            raise RunError(f"there is no generated version of {config.data!r}; use its real data (data_kind=real)")
        x, y = train
        xt, yt = test
    else:
        x, y, xt, yt = datasets.load(config.data, ctx.data_dir, download=ctx.download)
        source = info.source
        if config.n_test is not None:
            xt, yt = xt[:config.n_test], yt[:config.n_test]
    validation = config.validation
    if validation >= len(y):
        raise RunError(f"validation ({validation}) must be smaller than the training set ({len(y)})")
    kept = config.n_train if config.data_kind == "real" else None
    (x, y), (xv, yv) = datasets.split_off(x, y, validation, kept)
    parts = {"train": (x, y), "validation": (xv, yv), "test": (xt, yt)}
    described = {"name": config.data, "source": source, **{k: len(v[1]) for k, v in parts.items()}}
    return parts, described


def _shares(n: int, batch_size: int, world: World, generator: torch.Generator) -> list[Tensor]:
    """The index chunks of one epoch's mini-batches that this process takes (every ``world.size``-th item)."""
    order = torch.randperm(n, generator=generator)
    return [c for c in (chunk[world.rank::world.size] for chunk in order.split(batch_size)) if len(c)]


@torch.no_grad()
def accuracy_metrics(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, n_classes: int, device: torch.device,
                     world: World = World(), prefix: str = "test") -> dict[str, float]:
    """Loss, accuracy and balanced accuracy (the mean over classes of the fraction of each class found) of
    ``model`` on ``(x, y)``, this process's share of it summed over all processes."""
    sums = torch.zeros(2 + 2 * n_classes, dtype=torch.float64)  # loss, count, per-class hits, per-class counts
    index = torch.arange(len(y))[world.rank::world.size]
    for chunk in index.split(batch_size):
        xb, yb = x[chunk].to(device), y[chunk].to(device)
        logits = model(xb)
        sums[0] += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        sums[1] += len(yb)
        hits = (logits.argmax(1) == yb).double().cpu()
        sums[2:2 + n_classes] += torch.bincount(yb.cpu(), weights=hits, minlength=n_classes)
        sums[2 + n_classes:] += torch.bincount(yb.cpu(), minlength=n_classes).double()
    loss, count, *rest = world.sum(sums.tolist(), device)
    hits, counts = torch.tensor(rest[:n_classes]), torch.tensor(rest[n_classes:])
    present = counts > 0
    return {f"{prefix}_loss": loss / max(count, 1), f"{prefix}_accuracy": float(hits.sum()) / max(count, 1),
            f"{prefix}_balanced_accuracy": float((hits[present] / counts[present]).mean()) if present.any() else 0.0}


def _peak_memory_mib(device: torch.device) -> float:
    """Peak memory so far: allocated by PyTorch on a GPU, the process's resident-set high-water mark on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return rss_high_water_bytes() / 2**20


def _plot(path: Path, name: str, epochs: list[dict[str, Any]]) -> None:
    # A bare Figure, not pyplot: the run must not change the backend of a notebook that calls it.
    from matplotlib.figure import Figure

    x = [e["epoch"] for e in epochs]
    has_nfe = "nfe_forward" in epochs[0]
    fig = Figure(figsize=(11 if has_nfe else 7.5, 3))
    axes = fig.subplots(1, 3 if has_nfe else 2)
    axes[0].plot(x, [e["train_loss"] for e in epochs], "o-")
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log")
    axes[1].plot(x, [e["train_accuracy"] for e in epochs], "o-", label="train")
    if "validation_accuracy" in epochs[0]:
        axes[1].plot(x, [e["validation_accuracy"] for e in epochs], "^-", label="validation")
    axes[1].plot(x, [e["test_accuracy"] for e in epochs], "s-", label="test")
    axes[1].set(xlabel="epoch", ylabel="accuracy")
    axes[1].legend()
    if has_nfe:
        axes[2].plot(x, [e["nfe_forward"] for e in epochs], "o-", label="forward")
        axes[2].plot(x, [e["nfe_backward"] for e in epochs], "s-", label="backward")
        axes[2].set(xlabel="epoch", ylabel="NFE per iteration")
        axes[2].legend()
    fig.suptitle(name)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")


def build_model(config: ClassifierConfig) -> nn.Module:
    """The network of ``config``, initialised from its seed."""
    from ..classification import build_classifier

    info = datasets.dataset_info(config.data)
    torch.manual_seed(config.seed)
    model: nn.Module = build_classifier(
        config.arch, info.channels, info.n_classes, dims=info.dims, width=config.width, stem_kind=config.stem,
        n_blocks=config.n_blocks, solver=None if config.is_network else (config.solver or None),
        image_size=info.size, body_options=None if config.is_network else (config.body or None), t1=config.t1)
    return model


def strategy_for(model: nn.Module, config: ClassifierConfig) -> Any:
    """Joint training (with Eq. 6's penalty on θ_g when λ > 0) or Algorithm 1's alternation."""
    from ..ace import attention_penalty, split_parameters

    main, attention = split_parameters(model)
    if (config.training == "alternating" or config.attention_lambda) and not attention:
        raise RunError(f"training={config.training!r} with attention_lambda={config.attention_lambda} needs a model "
                       f"with an attention ODE (arch 'ace'), not {config.arch!r}")

    def penalty() -> Tensor:
        return config.attention_lambda * attention_penalty(attention, config.attention_norm)

    if config.training == "alternating":
        return Alternating(main, attention, optimizer=config.optimizer, lr=config.lr,
                           weight_decay=config.weight_decay, penalty=penalty if config.attention_lambda else None)
    grouped = getattr(model, "parameter_groups", None)
    groups = grouped(config.weight_decay) if grouped is not None else model.parameters()
    return Joint(make_optimizer(groups, config.optimizer, config.lr, weight_decay=config.weight_decay),
                 penalty=penalty if config.attention_lambda else None)


def run_classifier(config: ClassifierConfig, ctx: Context, name: str = "classifier") -> dict[str, Any]:
    """Train ``config`` and return the result (also written to ``ctx.out / "result.json"``)."""
    try:
        device = get_device(ctx.device)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    world = World.start(device)
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if config.batch_size % world.size:
        raise RunError(f"the batch size ({config.batch_size}) must be divisible by the number of processes ({world.size})")
    folder = Path(ctx.out)
    if ctx.smoke and world.main and folder.exists():
        shutil.rmtree(folder)  # a smoke run overwrites its own folder, never the full run's
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.exists() and not ctx.resume:
        raise RunError(f"{checkpoint} exists from an earlier run; pass --resume to continue it or --fresh to start "
                       "over")
    parts, data_info = classifier_data(config, ctx)
    info = datasets.dataset_info(config.data)
    model = build_model(config).to(device)
    counter = getattr(model, "counter", None)
    trained: nn.Module = model
    if world.size > 1:
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                      find_unused_parameters=config.training == "alternating")
    strategy = strategy_for(model, config)
    schedulers = [make_scheduler(o, config.milestones, config.gamma) for o in strategy.optimizers]
    x, y = parts["train"]
    image = x.dim() == 4
    fill = datasets.black(config.data)

    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        for chunk in _shares(len(y), config.batch_size, world, generator):
            xb = x[chunk]
            if config.augment and image:
                xb = datasets.random_crops(xb, generator, padding=4, flips=config.flips, fill=fill)
            yield xb.to(device, non_blocking=True), y[chunk].to(device, non_blocking=True)

    def loss(net: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        xb, yb = batch
        logits = net(xb)
        value = nn.functional.cross_entropy(logits, yb)
        return value, {"accuracy": float((logits.argmax(1) == yb).float().mean()), "n": len(yb)}

    def validate(m: nn.Module) -> dict[str, float]:
        out = accuracy_metrics(m, *parts["validation"], config.batch_size, info.n_classes, device, world,
                               "validation")
        return {k: v for k, v in out.items() if k != "validation_balanced_accuracy"}

    def test(m: nn.Module) -> dict[str, float]:
        return accuracy_metrics(m, *parts["test"], config.batch_size, info.n_classes, device, world, "test")

    diagnostics = []
    from ..ace import ACEConvBody, attention_health

    if isinstance(getattr(model, "body", None), ACEConvBody):  # is the attention alive? (chapter 6)
        xv = parts["validation"][0][:64] if len(parts["validation"][1]) else x[:64]

        def health(m: nn.Module) -> dict[str, float]:
            body: Any = m.body  # type: ignore[union-attr]
            _, weights = body.attention_trajectory(m.stem(xv.to(device)), torch.linspace(0, 1, 5, device=device))  # type: ignore[operator]
            return attention_health(m, weights)

        diagnostics.append(health)
    settings = config.describe()
    result: dict[str, Any] = {
        "experiment": name, "command": ctx.command, "config": settings, "data": data_info,
        "parameters": count_parameters(model), "machine": describe_machine(device), "world_size": world.size,
        "epochs": [], "complete": False,
    }
    if ctx.smoke:
        result["smoke"] = SMOKE_NOTE

    def on_epoch(row: dict[str, Any]) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        row["examples_per_second"] = len(y) / row["seconds"] if row["seconds"] > 0 else math.inf
        row["peak_memory_mib"] = _peak_memory_mib(device)
        if world.main:
            _record_epoch(row)
        if world.size > 1:
            dist.barrier()  # every process, or the main one waits here for ever

    def _record_epoch(row: dict[str, Any]) -> None:
        if row.get("improved"):
            with atomic_path(folder / "best.pt") as tmp:
                torch.save({"config": settings, "epoch": row["epoch"], "model": model.state_dict()}, tmp)
        history = [*result["epochs"], row]
        result.update(epochs=history, final_test_accuracy=row["test_accuracy"],
                      train_seconds=sum(e["seconds"] for e in history))
        write_json_atomic(folder / "result.json", result)
        _plot(folder / "curves.png", name, history)
        nfe = f", NFE {row['nfe_forward']:.1f}/{row['nfe_backward']:.1f}" if "nfe_forward" in row else ""
        chosen = f", validation accuracy {row['validation_accuracy']:.4f}" if "validation_accuracy" in row else ""
        print(f"{name} epoch {row['epoch']}/{config.epochs}: loss {row['train_loss']:.4f}{chosen}, test accuracy "
              f"{row['test_accuracy']:.4f}{nfe}, {row['seconds']:.1f} s", flush=True)

    if ctx.resume and checkpoint.exists() and world.main:
        print(f"resuming {name} from {checkpoint}", flush=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fitted = fit(model, batches, loss, strategy, epochs=config.epochs,
                 validate=validate if config.validation else None, select="validation_accuracy" if config.validation
                 else None, patience=config.patience if config.validation else None, test=test,
                 diagnostics=tuple(diagnostics),
                 schedulers=schedulers, checkpoint=checkpoint, resume=ctx.resume,
                 run_config={k: v for k, v in config_to_dict(config).items() if k not in ("epochs", "patience")},
                 net=trained, counter=counter, on_epoch=on_epoch, reduce=lambda v: world.sum(v, device),
                 main_process=world.main, progress=ctx.progress, batch_progress=ctx.progress,
                 n_batches=math.ceil(len(y) / config.batch_size), desc=name, restore_best=False)
    result.update(epochs=fitted.history, complete=True, final_test_accuracy=fitted.history[-1]["test_accuracy"],
                  train_seconds=sum(e["seconds"] for e in fitted.history))
    if config.validation:
        result.update(best_epoch=fitted.best_epoch, selected_by=fitted.selected_by,
                      best_validation_accuracy=fitted.best_score, test_accuracy_at_best=fitted.best["test_accuracy"],
                      still_improving=fitted.still_improving, stopped_early=fitted.stopped_early)
    if world.main:
        write_json_atomic(folder / "result.json", result)
    return result


def replace_config(config: ClassifierConfig, **changes: Any) -> ClassifierConfig:
    """``config`` with some settings changed (checked again)."""
    return dataclasses.replace(config, **changes)
