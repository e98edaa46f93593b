"""Chapter 6's time-series experiment: PhysioNet 2012 mortality (AUC) and interpolation (MSE), with attention.

    python -m nodelib.experiments run physionet-ace --data-dir ../shared/data

Every patient of set A (4,000) is binned on a grid over 48 hours (41 variables, observation masks), each
variable clipped to the [1 %, 99 %] quantiles of its training values (the raw files hold units errors: a pH of
735) and scaled to [0, 1] with the training patients' range. The split (80/10/10 %, stratified by the outcome so
that every part holds deaths) is the same for every seed; seeds change the initialisation, the data order and
the entries hidden during training. Each variant is :class:`nodelib.ace.LatentODEModel` (ODE-RNN encoder by
default, the paper's "ODE Enc.") with an attention choice and a training schedule:

- ``latentode``: no attention (the baseline); ``latentode-aug``: five zero dimensions added to ``h(0)`` (Table 7's
  Augmented-Latent-ODE); ``ace``: pairwise co-evolving attention, ``a(0) = corr(h(0))``, Algorithm 1;
  ``ace-joint``: the same trained jointly; ``ace-fc``: ``a(0)`` from a linear layer (Table 11's FC), Algorithm 1;
  ``ace-fixed``: ``a(t) = corr(h(t))``, no attention ODE (Table 11's Fixed).
- modifiers after the base (:func:`parse_variant`): ``-lamX``, ``-lrX``, ``-clip``/``-noclip``, ``-gru``/``-odernn``
  (``physionet-ace-select`` sweeps λ and the learning rate with them).

A model is trained on ``100 * MSE + BCE`` while 20 % of each patient's measurements are hidden from it, by
nodelib's loop; the epoch with the best validation AUC is kept (Algorithm 1, line 6), and a run stops after
``patience`` epochs without a better one. The result holds, per run, the test AUC and the MSE on the hidden test
measurements, and per epoch the attention's health: the norm of θ_g and how far the attention weights move over
the 48 hours on the validation patients.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import torch

from ..claims import Claim
from ..errors import RunError
from .base import Context, config_to_dict

#: variant: (attention, training, augmented)
VARIANTS = {
    "latentode": ("none", "joint", False),
    "latentode-aug": ("none", "joint", True),
    "ace": ("ace", "alternating", False),
    "ace-joint": ("ace", "joint", False),
    "ace-fc": ("learned", "alternating", False),
    "ace-fixed": ("fixed", "joint", False),
}
_MODIFIER = re.compile(r"-(?:lam(?P<lam>[0-9.e+-]+?)|lr(?P<lr>[0-9.e+-]+?)|(?P<flag>clip|noclip|gru|odernn))"
                       r"(?=-lam|-lr|-clip|-noclip|-gru|-odernn|$)")


@dataclass(frozen=True)
class Variant:
    """What a variant name asks for (see :func:`parse_variant`)."""

    attention: str
    training: str
    augment: int
    lam: float
    lr: float
    clip: Optional[float]
    encoder: str


def parse_variant(name: str, config: PhysioNetComparison) -> Variant:
    """A variant name: a base of :data:`VARIANTS`, then any of ``-lamX`` (λ = X), ``-lrX`` (learning rate X),
    ``-clip`` / ``-noclip`` (clip each variable to its [q, 1 - q] training quantiles before scaling, q the
    configuration's ``clip`` or 0.01 / do not clip), ``-gru`` / ``-odernn`` (the encoder); the configuration
    gives everything a name does not change."""
    for base in sorted(VARIANTS, key=len, reverse=True):
        if name == base or name.startswith(base + "-"):
            rest = name[len(base):]
            break
    else:
        raise RunError(f"unknown variant {name!r}: expected one of {', '.join(VARIANTS)}, optionally followed by "
                       "-lamX, -lrX, -clip or -noclip, -gru or -odernn")
    attention, training, augmented = VARIANTS[base]
    lam, clip = config.lam, config.clip
    lr = config.lr_latent if attention == "none" and config.lr_latent is not None else config.lr
    encoder: str = config.encoder
    position = 0
    for match in _MODIFIER.finditer(rest):
        if match.start() != position:
            break
        position = match.end()
        try:
            if match.group("lam") is not None:
                lam = float(match.group("lam"))
            elif match.group("lr") is not None:
                lr = float(match.group("lr"))
        except ValueError:
            raise RunError(f"{name}: {match.group(0)[1:]} is not a number") from None
        flag = match.group("flag")
        if flag == "clip":
            clip = config.clip if config.clip is not None else 0.01
        elif flag == "noclip":
            clip = None
        elif flag in ("gru", "odernn"):
            encoder = flag
    if position != len(rest):
        raise RunError(f"{name}: cannot read {rest[position:]!r}; modifiers are -lamX, -lrX, -clip, -noclip, -gru, "
                       "-odernn")
    if not (lam >= 0 and lr > 0):
        raise RunError(f"{name}: need λ >= 0 and a positive learning rate, got λ = {lam}, lr = {lr}")
    return Variant(attention, training, config.augment if augmented else 0, lam, lr, clip, encoder)


@dataclass(frozen=True)
class PhysioNetComparison:
    """Every setting of chapter 6's PhysioNet runs (Jhin et al. 2021, Sec. 4.3-4.4 and App. B unless said)."""

    variants: tuple[str, ...] = field(default=tuple(VARIANTS), metadata={
        "help": f"among {', '.join(VARIANTS)}, each optionally followed by -lamX, -lrX, -clip/-noclip, "
                "-gru/-odernn"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "one model per variant each"})
    epochs: int = field(default=60, metadata={"help": "the largest number of epochs (App. B: 30)"})
    patience: Optional[int] = field(default=10, metadata={"help": "stop after this many epochs without a better "
                                                                   "validation AUC"})
    batch: int = field(default=50, metadata={"help": "patients per mini-batch"})
    lr: float = field(default=1e-3, metadata={"help": "Adam's learning rate (App. B's grid: 1e-5, 1e-4, 1e-3)"})
    lr_latent: Optional[float] = field(default=None, metadata={
        "help": "the learning rate of the variants without attention (none: lr)"})
    lam: float = field(default=1e-2, metadata={"help": "λ of Eq. 6 (attention variants)"})
    norm: Literal[1, 2] = field(default=2, metadata={"help": "the norm of Eq. 6 (the norm itself, not squared)"})
    quantization: float = field(default=1.0, metadata={"help": "bin width in hours"})
    patients: Optional[int] = field(default=None, metadata={"help": "read only the first N patients"})
    clip: Optional[float] = field(default=0.01, metadata={
        "help": "clip each variable to the [q, 1 - q] quantiles of its training values before scaling (none: no "
                "clipping)"})
    encoder: Literal["odernn", "gru"] = field(default="odernn", metadata={
        "help": "odernn (the paper's 'ODE Enc.') or gru (Rubanova et al.'s RNN encoder)"})
    augment: int = field(default=5, metadata={"help": "zero dimensions added by latentode-aug (the paper: 5)"})
    method: str = field(default="dopri5", metadata={"help": "the decoder's solver"})
    rtol: float = field(default=1e-4, metadata={"help": "its relative tolerance"})
    atol: float = field(default=1e-5, metadata={"help": "its absolute tolerance"})
    step_size: Optional[float] = field(default=None, metadata={"help": "fixed-step methods (none: one bin)"})
    held_out: float = field(default=0.2, metadata={"help": "fraction of measurements hidden from the model"})
    claims: tuple[Claim, ...] = field(default=(), metadata={"cli": False})

    def __post_init__(self) -> None:
        if not self.variants or not self.seeds:
            raise RunError("name at least one variant and one seed")
        for name in self.variants:
            parse_variant(name, self)
        if self.lr_latent is not None and not self.lr_latent > 0:
            raise RunError(f"lr_latent must be positive, got {self.lr_latent}")
        if self.epochs < 1 or self.batch < 1 or not self.lr > 0 or not 0 <= self.held_out < 1 or self.lam < 0:
            raise RunError("need epochs >= 1, batch >= 1, lr > 0, lam >= 0 and 0 <= held_out < 1")
        if self.augment < 1:
            raise RunError(f"augment must be >= 1, got {self.augment}")
        if self.clip is not None and not 0 <= self.clip < 0.5:
            raise RunError(f"clip is a quantile in [0, 0.5), got {self.clip}")


def prepare(config: PhysioNetComparison, root: Optional[Path], download: bool, device: torch.device) -> dict[str, Any]:
    """The scaled, split data on ``device``, the hidden validation and test entries, and a description."""
    from ..ace import hold_out
    from ..datasets import physionet2012

    try:
        data = physionet2012(root, download=download, quantization=config.quantization, n_patients=config.patients)
    except (ValueError, FileNotFoundError) as err:
        raise RunError(str(err)) from None
    train, val, test = data.split((0.8, 0.1, 0.1), seed=0, stratify=True)
    raw_low, raw_high = train.value_range()
    q_low, q_high = train.value_range(quantile=config.clip if config.clip is not None else 0.01)
    ranges = {name: {"min": float(raw_low[i]), "max": float(raw_high[i]), "q_low": float(q_low[i]),
                     "q_high": float(q_high[i])} for i, name in enumerate(data.variables)}
    if config.clip is not None:
        low, high = train.value_range(quantile=config.clip)
        train, val, test = (part.clipped(low, high) for part in (train, val, test))
    low, high = train.value_range()
    train, val, test = (part.scaled(low, high) for part in (train, val, test))
    fixed = torch.Generator().manual_seed(12345)  # the validation and test entries hidden, the same for every seed
    visible_val, visible_test = hold_out(val.mask, config.held_out, fixed), hold_out(test.mask, config.held_out, fixed)
    out = {"times": (data.times / data.times[-1]).to(device), "n_vars": len(data.variables),
           "description": {"patients": len(data), "train": len(train), "validation": len(val), "test": len(test),
                           "bins": len(data.times), "variables": len(data.variables),
                           "deaths": int(data.labels.sum()), "deaths_validation": int(val.labels.sum()),
                           "deaths_test": int(test.labels.sum()),
                           "training_ranges": ranges}}
    for name, part in (("train", train), ("validation", val), ("test", test)):
        out[name] = (part.values.to(device), part.mask.to(device), part.labels.to(device))
    out["visible_validation"], out["visible_test"] = visible_val.to(device), visible_test.to(device)
    return out


def train_variant(variant: str, seed: int, data: dict[str, Any], config: PhysioNetComparison, *,
                  checkpoint: Optional[Path] = None, resume: bool = False, progress: bool = False,
                  device: Optional[torch.device] = None) -> tuple[Any, dict[str, Any]]:
    """Train one variant with one seed; return the model (selected epoch's weights) and its record."""
    from ..ace import LatentODEModel, attention_health, attention_penalty, evaluate_series, hold_out, split_parameters
    from ..config import SolverConfig
    from ..solvers import FIXED_STEP_METHODS
    from ..training import Alternating, Joint, fit, make_optimizer
    from ..utils import count_parameters, seed_everything

    device = device or torch.device("cpu")
    spec = parse_variant(variant, config)
    attention, training, lam = spec.attention, spec.training, spec.lam
    times = data["times"]
    fixed_step = config.method in FIXED_STEP_METHODS
    solver = SolverConfig(method=config.method, rtol=config.rtol, atol=config.atol, backend="nodelib",
                          step_size=config.step_size or (float(times[1]) if fixed_step else None), gradient="backprop")
    seed_everything(seed)
    model = LatentODEModel(data["n_vars"], attention=attention, solver=solver, encoder=spec.encoder,
                           augment=spec.augment).to(device)
    main, theta_g = split_parameters(model)
    penalised = attention in ("ace", "learned") and lam > 0

    def penalty() -> torch.Tensor:
        return lam * attention_penalty(theta_g, config.norm)

    strategy = (Alternating(main, theta_g, optimizer="adam", lr=spec.lr, penalty=penalty if penalised else None)
                if training == "alternating"
                else Joint(make_optimizer(model.parameters(), "adam", spec.lr), penalty if penalised else None))
    xtr, mtr, ytr = data["train"]

    def batches(epoch: int) -> Any:
        order = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(seed * 1009 + epoch))
        for b, index in enumerate(order.split(config.batch)):
            yield index.to(device), torch.Generator().manual_seed(seed * 1_000_003 + epoch * 1009 + b)

    def loss(m: Any, batch: Any) -> torch.Tensor:
        from ..ace import series_loss

        index, generator = batch
        visible = hold_out(mtr[index].cpu(), config.held_out, generator).to(device)
        return series_loss(m, xtr[index], mtr[index], visible, ytr[index], times)

    def scores(m: Any, part: str) -> dict[str, float]:
        values, mask, labels = data[part]
        return evaluate_series(m, values, mask, data[f"visible_{part}"], labels, times)

    def validate(m: Any) -> dict[str, float]:
        s = scores(m, "validation")
        return {"validation_auc": s["auc"], "validation_mse": s["mse"], "validation_loss": s["loss"]}

    def test(m: Any) -> dict[str, float]:
        s = scores(m, "test")
        return {"test_auc": s["auc"], "test_mse": s["mse"]}

    def health(m: Any) -> dict[str, float]:
        if attention in ("none", "fixed"):
            return {}
        values, mask, _ = data["validation"]
        weights = m.attention_weights(values * data["visible_validation"], data["visible_validation"], times)
        return attention_health(m, weights)

    fitted = fit(model, batches, loss, strategy, epochs=config.epochs, validate=validate, select="validation_auc",
                 fallback="validation_loss", patience=config.patience, test=test, diagnostics=(health,),
                 checkpoint=checkpoint, resume=resume, progress=progress, desc=f"{variant} seed {seed}",
                 run_config={k: v for k, v in config_to_dict(config).items() if k not in ("epochs", "patience",
                                                                                            "variants", "seeds")})
    return model, fitted.record(parameters=count_parameters(model))


def run(config: PhysioNetComparison, ctx: Context, name: str = "physionet-ace") -> dict[str, Any]:
    """Every variant with every seed (a sweep: resumable, one result file)."""
    from ..sweep import sweep
    from ..utils import get_device
    from ._common import describe_machine

    device = get_device(ctx.device)
    prepared: dict[Optional[float], dict[str, Any]] = {}

    def data_for(clip: Optional[float]) -> dict[str, Any]:  # scaled once per clipping choice
        if clip not in prepared:
            prepared[clip] = prepare(dataclasses.replace(config, clip=clip), ctx.data_dir, ctx.download, device)
        return prepared[clip]

    description = data_for(config.clip)["description"]
    settings = config_to_dict(config)
    claims = settings.pop("claims", [])
    header = {"experiment": name, "command": ctx.command, "config": settings, "claims": claims,
              "data": description, "machine": describe_machine(device)}

    def run_one(variant: str, seed: int, checkpoint: Path, resume: bool) -> dict[str, Any]:
        spec = parse_variant(variant, config)
        _, record = train_variant(variant, seed, data_for(spec.clip), config, checkpoint=checkpoint, resume=resume,
                                  progress=ctx.progress, device=device)
        return {**record, **dataclasses.asdict(spec)}

    def show(record: dict[str, Any]) -> None:
        flag = " (still improving)" if record.get("still_improving") else ""
        print(f"{record['variant']} seed {record['seed']}: test AUC {record['test_auc_at_best']:.3f}, interpolation "
              f"MSE {record['test_mse_at_best']:.2e}, epoch {record['best_epoch']} of {record['epochs']}{flag}, "
              f"{record['seconds']:.0f} s", flush=True)

    return sweep(config.variants, config.seeds, run_one, out=ctx.result_path, header=header,
                 metrics=("test_auc_at_best", "test_mse_at_best", "validation_auc_at_best", "best_epoch", "seconds"),
                 resume=ctx.resume, on_run=show)


def best_setting(selection: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The settings a finished ``physionet-ace-select`` chose: for each family (``"latentode"``: the variants
    without attention; ``"ace"``: ACE with Algorithm 1), the learning rate (and λ) of the run with the highest
    validation AUC at its selected epoch (ties: the first in the grid's order)."""
    best: dict[str, tuple[float, dict[str, float]]] = {}
    for run in selection.get("runs", []):
        family = "ace" if run["attention"] == "ace" and run["training"] == "alternating" else (
            "latentode" if run["attention"] == "none" and not run.get("augment") else None)
        if family is None:
            continue
        score = float(run["validation_auc_at_best"])
        if family not in best or score > best[family][0]:
            best[family] = (score, {"lr": float(run["lr"]), "lam": float(run["lam"]), "validation_auc": score})
    missing = {"ace", "latentode"} - set(best)
    if missing:
        raise RunError(f"the selection holds no finished run of {', '.join(sorted(missing))}")
    return {family: setting for family, (_, setting) in best.items()}
