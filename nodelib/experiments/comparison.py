"""Comparisons over seeds: several variants of a model, each trained with each seed, paired by seed.

The research chapters test a paper's claims by comparisons: ANODEV2's schedules against the residual network
(chapter 7), Neural-GODE against a Neural ODE and a ResNet (chapter 8), ACE against the ODE-Net (chapter 6).
Each is a sweep (:func:`nodelib.sweep.sweep`: ``variants x seeds``, resumable, one summary format) of one
training function, :func:`train_on_images`, which trains through nodelib's loop (:func:`nodelib.training.fit`):
validation held out of the training images selects the epoch (the test set never does), ``patience`` stops a run
whose validation accuracy has stopped improving, and a run that ends before that is flagged as still improving.
The claims a comparison tests are part of its configuration and written into the result file before the
first run (:mod:`nodelib.claims` judges them from the runs).

- :class:`ImageComparison`: the settings every image comparison shares (data, sizes, schedule, seeds, claims);
- :class:`ANODEV2Comparison` (``anodev2-compare``): one network of App. B with several schedules;
- :class:`GODEComparison` (``gode-fashionmnist-compare``, ``gode-mnist5k-compare``): Neural ODE, ResNets and
  Neural-GODE variants with one field;
- :class:`ClassifierSweep` (``mnist5k-ace-compare``, ``gode-table2``...): registered classifier experiments,
  each run by :func:`~nodelib.experiments.classifier.run_classifier` with every seed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional

import torch
from torch import Tensor, nn

from .. import datasets
from ..claims import Claim
from ..errors import RunError
from ..sweep import sweep
from ..training import Joint, fit, make_optimizer, make_scheduler
from ..utils import count_parameters, get_device
from ._common import describe_machine
from .base import SMOKE_NOTE, Context, config_to_dict

__all__ = ["Images", "load_images", "ImageComparison", "ANODEV2Comparison", "GODEComparison", "ClassifierSweep",
           "train_on_images", "run_anodev2", "run_gode", "run_classifier_sweep", "METRICS"]

#: What a comparison's summary reports per variant.
METRICS = ("test_accuracy_at_best", "validation_accuracy_at_best", "final_test_accuracy", "best_epoch", "seconds")

Images = dict[str, tuple[Tensor, Tensor]]


def load_images(data: str, root: Optional[Path] = None, n_train: Optional[int] = None, n_validation: int = 1000,
                n_test: Optional[int] = None, download: bool = False, downsample: int = 1) -> Images:
    """Normalised ``(x, y)`` tensors: ``train``, ``validation`` (held out of the training images) and ``test``,
    the same for every call. ``downsample`` averages blocks of ``downsample x downsample`` pixels."""
    if isinstance(downsample, bool) or not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
    x, y, xt, yt = datasets.load(data, root, download=download)
    if x.shape[-1] % downsample:
        raise ValueError(f"downsample must divide the image side {x.shape[-1]}, got {downsample}")
    if n_validation < 1:
        raise ValueError(f"n_validation must be >= 1 (the validation set selects the epoch), got {n_validation}")
    train, validation = datasets.split_off(x, y, n_validation, n_train)
    test = (xt[:n_test], yt[:n_test]) if n_test else (xt, yt)
    parts = {"train": train, "validation": validation, "test": test}
    if downsample > 1:
        parts = {k: (nn.functional.avg_pool2d(v[0], downsample), v[1]) for k, v in parts.items()}
    return parts


@torch.no_grad()
def accuracy(model: nn.Module, data: tuple[Tensor, Tensor], batch_size: int = 500) -> float:
    """The fraction of ``data`` that ``model`` classifies correctly."""
    model.eval()
    x, y = data
    device = next(model.parameters()).device
    hits = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
               for i in range(0, len(y), batch_size))
    return hits / len(y)


@dataclass(frozen=True)
class ImageComparison:
    """What every image comparison sets: the data, the schedule, the seeds, and the claims it tests."""

    variants: tuple[str, ...] = field(default=(), metadata={"help": "the variants compared"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "one model per variant each"})
    data: Literal["fashionmnist", "mnist5k"] = field(default="fashionmnist", metadata={"help": "the images"})
    train_size: Optional[int] = field(default=None, metadata={"help": "training images (none: all not held out)"})
    validation_size: int = field(default=5000, metadata={"help": "images held out of training to select the epoch"})
    test_size: Optional[int] = field(default=None, metadata={"help": "test images (none: all)"})
    downsample: int = field(default=1, metadata={"help": "average-pool the images by this factor first"})
    epochs: int = field(default=60, metadata={"help": "the largest number of epochs"})
    patience: Optional[int] = field(default=10, metadata={
        "help": "stop a run after this many epochs without a better validation accuracy"})
    batch: int = field(default=128, metadata={"help": "mini-batch size"})
    optimizer: Literal["sgd", "adam"] = field(default="sgd", metadata={"help": "sgd (momentum 0.9) or adam"})
    lr: float = field(default=0.1, metadata={"help": "learning rate"})
    milestones: tuple[int, ...] = field(default=(), metadata={"help": "epochs after which the learning rate drops"})
    gamma: float = field(default=0.1, metadata={"help": "the factor of each drop"})
    weight_decay: float = field(default=5e-4, metadata={"help": "weight decay"})
    augment: bool = field(default=False, metadata={"help": "random crops of the training images"})
    crop_padding: int = field(default=4, metadata={"help": "the crops' padding in pixels (the papers': 4 at 32x32)"})
    claims: tuple[Claim, ...] = field(default=(), metadata={"cli": False})

    def __post_init__(self) -> None:
        if not self.variants or not self.seeds:
            raise RunError("a comparison needs at least one variant and one seed")
        if len(set(self.variants)) != len(self.variants) or len(set(self.seeds)) != len(self.seeds):
            raise RunError(f"variants and seeds must not repeat, got {self.variants} and {self.seeds}")
        for name in ("epochs", "batch", "validation_size", "downsample"):
            if getattr(self, name) < 1:
                raise RunError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise RunError(f"lr must be positive, got {self.lr}")
        if self.patience is not None and self.patience < 1:
            raise RunError(f"patience must be >= 1 or none, got {self.patience}")


@dataclass(frozen=True)
class ANODEV2Comparison(ImageComparison):
    """Chapter 7: one network of Zhang et al.'s App. B with several schedules (``anodev2-compare``)."""

    net: Literal["alexnet", "resnet4", "resnet10"] = field(default="resnet4", metadata={"help": "the network"})

    def __post_init__(self) -> None:
        super().__post_init__()
        from ..anodev2 import SCHEDULES

        unknown = [v for v in self.variants if v not in SCHEDULES]
        if unknown:
            raise RunError(f"variants must name schedules among {', '.join(SCHEDULES)}, got {unknown}")


@dataclass(frozen=True)
class GODEComparison(ImageComparison):
    """Chapter 8: Neural ODE, ResNets and Neural-GODE variants with one field (``gode-*-compare``); see
    :func:`nodelib.gode.parse_variant` for the names."""

    width: int = field(default=32, metadata={"help": "channels of the stem and the field (64 in the paper)"})
    stem: Literal["chen", "small"] = field(default="chen", metadata={"help": "the downsampling stem"})
    step: float = field(default=0.05, metadata={"help": "the Euler step (the paper's 0.05)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        from ..gode import parse_variant

        for name in self.variants:
            try:
                parse_variant(name, self.step)
            except ValueError as err:
                raise RunError(str(err)) from None


def train_on_images(model: nn.Module, images: Images, seed: int, config: ImageComparison, *,
                    parameter_groups: Any = None, checkpoint: Optional[Path] = None, resume: bool = False,
                    progress: bool = False, device: Optional[torch.device] = None,
                    diagnostics: tuple[Callable[[Any], dict[str, float]], ...] = (), label: str = "model"
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` (already initialised: seed it before building it) on ``images["train"]`` in an order that
    depends only on ``seed`` and the epoch; select the epoch by validation accuracy; return the model with the
    selected epoch's weights and the run's record (:meth:`~nodelib.training.FitResult.record`)."""
    device = device or torch.device("cpu")
    model = model.to(device)
    x, y = images["train"]
    groups = list(parameter_groups) if parameter_groups is not None else list(model.parameters())
    strategy = Joint(make_optimizer(groups, config.optimizer, config.lr, weight_decay=config.weight_decay))
    schedules = [make_scheduler(strategy.phases[0].optimizer, config.milestones, config.gamma)]

    fill = datasets.black(config.data)

    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(seed * 100003 + epoch)
        for index in torch.randperm(len(y), generator=generator).split(config.batch):
            xb = (datasets.random_crops(x[index], generator, config.crop_padding, fill=fill) if config.augment
                  else x[index])
            yield xb.to(device), y[index].to(device)

    def loss(net: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        return nn.functional.cross_entropy(net(batch[0]), batch[1])

    fitted = fit(model, batches, loss, strategy, epochs=config.epochs,
                 validate=lambda m: {"validation_accuracy": accuracy(m, images["validation"])},
                 test=lambda m: {"test_accuracy": accuracy(m, images["test"])}, select="validation_accuracy",
                 patience=config.patience, diagnostics=diagnostics, schedulers=schedules, seed=seed,
                 checkpoint=checkpoint, resume=resume, progress=progress, desc=f"{label} seed {seed}")
    record = fitted.record(parameters=count_parameters(model))
    return model, record


def _header(name: str, config: Any, ctx: Context, device: torch.device, images: Images) -> dict[str, Any]:
    settings = config_to_dict(config)
    claims = settings.pop("claims", [])
    return {"experiment": name, "command": ctx.command, "config": settings, "claims": claims,
            "data": {part: len(values[1]) for part, values in images.items()}, "machine": describe_machine(device),
            **({"smoke": SMOKE_NOTE} if ctx.smoke else {})}


def _print(record: dict[str, Any], by: str) -> None:
    flag = " (still improving)" if record.get("still_improving") else ""
    print(f"{record[by]} seed {record['seed']}: test accuracy {record['test_accuracy_at_best']:.4f} at epoch "
          f"{record['best_epoch']} of {record['epochs']}{flag}, {record['seconds']:.0f} s", flush=True)


def _nothing(model: nn.Module, variant: str, images: Images) -> dict[str, Any]:
    return {}


def _sweep_images(name: str, config: ImageComparison, ctx: Context, build: Callable[[str, int, Images], nn.Module],
                  by: str, before: Callable[[nn.Module, str, Images], dict[str, Any]] = _nothing,
                  after: Callable[[nn.Module, str, Images], dict[str, Any]] = _nothing) -> dict[str, Any]:
    device = get_device(ctx.device)
    try:
        images = load_images(config.data, ctx.data_dir, config.train_size, config.validation_size, config.test_size,
                             ctx.download, config.downsample)
    except (ValueError, FileNotFoundError) as err:
        raise RunError(str(err)) from None

    def run_one(variant: str, seed: int, checkpoint: Path, resume: bool) -> dict[str, Any]:
        torch.manual_seed(seed)
        model = build(variant, seed, images)
        initial = before(model, variant, images)
        grouped = getattr(model, "parameter_groups", None)
        groups = grouped(config.weight_decay) if grouped is not None else None
        trained, record = train_on_images(model, images, seed, config, parameter_groups=groups, checkpoint=checkpoint,
                                          resume=resume, progress=ctx.progress, device=device, label=variant)
        return {**record, **initial, **after(trained, variant, images)}

    return sweep(config.variants, config.seeds, run_one, out=ctx.result_path,
                 header=_header(name, config, ctx, device, images), metrics=METRICS, by=by, resume=ctx.resume,
                 on_run=lambda r: _print(r, by))


def run_anodev2(config: ANODEV2Comparison, ctx: Context, name: str = "anodev2-compare") -> dict[str, Any]:
    """Chapter 7's comparisons: ``config.net`` with every schedule of ``config.variants``, every seed (``name``:
    the experiment's, written into the result)."""
    from ..anodev2 import anodev2_network, weight_evolution

    def build(schedule: str, seed: int, images: Images) -> nn.Module:
        x, y = images["train"]
        return anodev2_network(config.net, schedule, in_channels=x.shape[1], n_classes=int(y.max()) + 1,
                               image_size=x.shape[-1])

    def after(model: nn.Module, schedule: str, images: Images) -> dict[str, Any]:
        evolution = weight_evolution(model)  # how far the selected weights travel over depth (none: not evolving)
        return {"weight_evolution": evolution} if evolution else {}

    return _sweep_images(name, config, ctx, build, by="schedule", after=after)


def run_gode(config: GODEComparison, ctx: Context, name: str = "gode-compare") -> dict[str, Any]:
    """Chapter 8's comparison ``name``: every variant of ``config.variants`` with every seed."""
    from ..gode import build_variant, kernel_path, roughness

    def before(model: nn.Module, variant: str, images: Images) -> dict[str, Any]:
        path = kernel_path(model, config.step)
        return {"initial_path": path, "initial_roughness": roughness(path)}

    def after(model: nn.Module, variant: str, images: Images) -> dict[str, Any]:
        path = kernel_path(model, config.step)
        counter: Any = model.counter
        if counter is None:  # a standard ResNet: one evaluation per block
            return {"trained_path": path, "trained_roughness": roughness(path), "nfe_forward": len(path)}
        counter.reset()
        with torch.no_grad():
            model.eval()(images["test"][0][:8].to(next(model.parameters()).device))
        return {"trained_path": path, "trained_roughness": roughness(path), "nfe_forward": counter.reset()["forward"]}

    def build(variant: str, seed: int, images: Images) -> nn.Module:
        x, y = images["train"]
        return build_variant(variant, x.shape[1], int(y.max()) + 1, width=config.width, stem=config.stem,
                             step=config.step)

    return _sweep_images(name, config, ctx, build, by="variant", before=before, after=after)


@dataclass(frozen=True)
class ClassifierSweep:
    """Registered classifier experiments, each run with every seed (``run_classifier``, one folder per run)."""

    variants: tuple[str, ...] = field(default=(), metadata={"help": "registered classifier experiments"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "one run per experiment each"})
    epochs: Optional[int] = field(default=None, metadata={"help": "overrides every experiment's epochs"})
    patience: Optional[int] = field(default=None, metadata={"help": "overrides every experiment's patience"})
    changes: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "settings changed in every experiment, as JSON (e.g. {\"n_train\": 2000})"})
    claims: tuple[Claim, ...] = field(default=(), metadata={"cli": False})

    def __post_init__(self) -> None:
        from . import registry

        if not self.variants or not self.seeds:
            raise RunError("a sweep needs at least one experiment and one seed")
        for name in self.variants:
            experiment = registry.get(name)
            if not isinstance(experiment.config, _classifier_config()):
                raise RunError(f"{name} is not a classifier experiment")

    def configs(self, smoke: bool = False) -> dict[str, Any]:
        """The configuration of every variant (with the sweep's changes), by name."""
        from . import registry

        out = {}
        for name in self.variants:
            changes = dict(self.changes)
            for key in ("epochs", "patience"):
                if getattr(self, key) is not None:
                    changes[key] = getattr(self, key)
            out[name] = registry.get(name).configuration(smoke, **changes)
        return out


def _classifier_config() -> type:
    from .classifier import ClassifierConfig

    return ClassifierConfig


def run_classifier_sweep(config: ClassifierSweep, ctx: Context, name: str = "classifier-sweep") -> dict[str, Any]:
    """Every experiment of ``config.variants`` with every seed; the runs' folders sit beside the result."""
    from .classifier import run_classifier

    device = get_device(ctx.device)
    configs = config.configs(ctx.smoke)

    def run_one(variant: str, seed: int, checkpoint: Path, resume: bool) -> dict[str, Any]:
        run_ctx = dataclasses.replace(ctx, out=Path(ctx.out) / f"{variant}-seed{seed}", resume=resume)
        result = run_classifier(dataclasses.replace(configs[variant], seed=seed), run_ctx, name=variant)
        keep = ("best_epoch", "selected_by", "still_improving", "stopped_early", "test_accuracy_at_best",
                "best_validation_accuracy", "final_test_accuracy", "train_seconds", "parameters")
        record = {k: result[k] for k in keep if k in result}
        record["seconds"] = result.get("train_seconds", 0.0)
        record["epochs"] = len(result["epochs"])
        record["history"] = result["epochs"]
        return record

    settings = config_to_dict(config)
    claims = settings.pop("claims", [])
    header = {"experiment": name, "command": ctx.command, "config": settings, "claims": claims,
              "experiments": {k: v.describe() for k, v in configs.items()}, "machine": describe_machine(device)}
    return sweep(config.variants, config.seeds, run_one, out=ctx.result_path, header=header,
                 metrics=("test_accuracy_at_best", "final_test_accuracy", "best_epoch", "seconds"), by="variant",
                 resume=ctx.resume, on_run=lambda r: _print({**r, "test_accuracy_at_best": r.get(
                     "test_accuracy_at_best", r.get("final_test_accuracy", math.nan))}, "variant"))
