"""Chapter 8's GODE view on PhysioNet 2012: the Neural-GODE regressor of Eq. 5 against GLMs fitted as well.

    python -m nodelib.experiments run gode-glm --data-dir ../shared/data

Every patient of set A whose length of stay is recorded is one row: the 48-hour means of the 41 variables and
41 indicators of which were measured (82 covariates, scaled to [0, 1] with the training patients' range and
clipped to [-1, 2]), split 60/20/20 % by one fixed permutation. Two responses: the length of stay in days (a
count: the Poisson family) and the in-hospital death (0 or 1: the Bernoulli family), each with its canonical
link. Three models per family, named ``FAMILY-MODEL``:

- ``gode``: :class:`nodelib.gode.GODERegressor` (m = 4 linear B-splines, tanh, 10 Euler steps on [0, 1]),
  trained full-batch by nodelib's loop with Adam on the mean negative log-likelihood, the step with the best
  validation likelihood kept, stopped after ``patience`` steps without a better one;
- ``glm``: the linear predictor by maximum likelihood (:func:`nodelib.gode.fit_glm`, Newton/IRLS to convergence);
- ``glm-ridge``: the ridge-penalised GLM whose strength, among ``alphas`` values, gives the best validation
  likelihood (:func:`nodelib.gode.tune_glm`): a selection on the same validation patients, as the GODE's step.

The GLMs do not depend on the seed; each seed records the same fit, so that every claim pairs them with the
GODE of that seed. The result holds, per run, the test negative log-likelihood, the mean absolute error of the
predicted mean (Poisson) or the AUC (Bernoulli), and what selected the model.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from ..claims import Claim
from ..errors import RunError
from ..sweep import sweep
from ._common import describe_machine
from .base import Context, config_to_dict

__all__ = ["FAMILIES", "MODELS", "Config", "StaticData", "static_covariates", "fit_gode", "run", "METRICS"]

#: The responses (family: what it models) and the models compared on each.
FAMILIES = {"poisson": "length of stay in days", "bernoulli": "in-hospital death"}
MODELS = ("gode", "glm", "glm-ridge")
METRICS = ("test_nll", "test_mae", "test_auc", "validation_nll", "steps", "alpha", "seconds")


@dataclass(frozen=True)
class StaticData:
    """The covariates and both responses of the patients with a recorded stay, and the split (index tensors)."""

    x: Tensor
    stay: Tensor
    death: Tensor
    parts: dict[str, Tensor]

    def part(self, name: str, family: str) -> tuple[Tensor, Tensor]:
        index = self.parts[name]
        return self.x[index], (self.stay if family == "poisson" else self.death)[index]


def static_covariates(root: Optional[Path] = None, download: bool = False,
                      n_patients: Optional[int] = None) -> StaticData:
    """PhysioNet 2012 set A as one row per patient (see the module's docstring): the same rows and split for
    every call (``n_patients`` keeps the first ones, for a quick run)."""
    from ..datasets import physionet2012, physionet2012_outcomes

    records = physionet2012(root, download=download, quantization=48.0, n_patients=n_patients)  # one 48-hour bin
    outcomes = physionet2012_outcomes(root, download=download)
    stay_of = dict(zip(outcomes["RecordID"].tolist(), outcomes["Length_of_stay"].tolist()))
    stay = torch.tensor([stay_of[r] for r in records.record_ids], dtype=torch.float64)
    known = stay >= 0  # -1: not recorded
    x = torch.cat([records.values[:, 0], records.mask[:, 0].float()], dim=1)[known].to(torch.float64)
    order = torch.randperm(int(known.sum()), generator=torch.Generator().manual_seed(0))
    n = len(order)
    parts = {"train": order[:int(0.6 * n)], "validation": order[int(0.6 * n):int(0.8 * n)],
             "test": order[int(0.8 * n):]}
    train = x[parts["train"]]
    low, high = train.min(0).values, train.max(0).values
    x = ((x - low) / torch.where(high > low, high - low, 1.0)).clamp(-1, 2)
    return StaticData(x, stay[known], records.labels[known].to(torch.float64), parts)


@dataclass(frozen=True)
class Config:
    """The GODE view's comparison (``gode-glm``)."""

    variants: tuple[str, ...] = field(default=tuple(f"{f}-{m}" for f in FAMILIES for m in MODELS),
                                      metadata={"help": "FAMILY-MODEL: poisson or bernoulli, gode, glm or glm-ridge"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "one GODE per seed"})
    patients: Optional[int] = field(default=None, metadata={"help": "the first patients only (none: all 4,000)"})
    n_basis: int = field(default=4, metadata={"help": "m, the B-spline basis functions of β(t) and b(t)"})
    degree: int = field(default=1, metadata={"help": "k, their degree"})
    euler_steps: int = field(default=10, metadata={"help": "Euler steps on [0, 1]"})
    lr: float = field(default=0.02, metadata={"help": "Adam's learning rate (full batch)"})
    max_steps: int = field(default=3000, metadata={"help": "the most optimiser steps of a GODE"})
    patience: int = field(default=100, metadata={"help": "stop a GODE after this many steps without a better "
                                                         "validation likelihood"})
    alphas: int = field(default=100, metadata={"help": "penalty strengths tried, log-spaced from 1e-5 to 10"})
    claims: tuple[Claim, ...] = field(default=(), metadata={"cli": False})

    def __post_init__(self) -> None:
        for name in self.variants:
            family, _, model = name.partition("-")
            if family not in FAMILIES or model not in MODELS:
                raise RunError(f"unknown variant {name!r}: expected FAMILY-MODEL with FAMILY in {tuple(FAMILIES)} "
                               f"and MODEL in {MODELS}")
        for name in ("n_basis", "euler_steps", "max_steps", "patience", "alphas"):
            if getattr(self, name) < 1:
                raise RunError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise RunError(f"lr must be positive, got {self.lr}")


def _scores(family: str, eta: Tensor, y: Tensor) -> dict[str, float]:
    from ..gode import FAMILIES as FAMILY_OF

    fam = FAMILY_OF[family]
    out = {"test_nll": float(fam.nll(eta, y).mean()), "test_deviance": float(fam.deviance(y, fam.mean(eta)).mean())}
    if family == "poisson":
        out["test_mae"] = float((fam.mean(eta) - y).abs().mean())
    else:
        from sklearn.metrics import roc_auc_score

        out["test_auc"] = float(roc_auc_score(y.numpy(), eta.numpy()))
    return out


def fit_gode(family: str, data: StaticData, seed: int, config: Config) -> tuple[Any, dict[str, Any]]:
    """One ``FAMILY-gode`` run: the trained :class:`~nodelib.gode.GODERegressor` (the step with the best validation
    likelihood) and its record."""
    from ..gode import GODERegressor
    from ..training import Joint, fit

    train, validation = data.part("train", family), data.part("validation", family)
    torch.manual_seed(seed)
    model = GODERegressor(data.x.shape[1], family, n_basis=config.n_basis, degree=config.degree,
                          solver={"method": "euler", "step_size": 1.0 / config.euler_steps}).double()
    result = fit(model, lambda epoch: [train], lambda net, batch: net.loss(*batch),
                 Joint(torch.optim.Adam(model.parameters(), lr=config.lr)), epochs=config.max_steps,
                 validate=lambda m: {"validation_nll": float(m.loss(*validation))}, select="validation_nll",
                 mode="min", patience=config.patience, seed=seed, progress=False)
    x, y = data.part("test", family)
    with torch.no_grad():
        scores = _scores(family, model.eval()(x), y)
    return model, {"steps": result.best_epoch, "validation_nll": result.best_score,
                   "still_improving": result.still_improving, "stopped_after": result.epochs,
                   "seconds": result.seconds, **scores}


def _fit_glm(family: str, data: StaticData, ridge: bool, config: Config) -> dict[str, Any]:
    import time

    from ..gode import FAMILIES as FAMILY_OF
    from ..gode import fit_glm, tune_glm

    started = time.perf_counter()
    train, validation = data.part("train", family), data.part("validation", family)
    if ridge:
        fitted, path = tune_glm(train, validation, family,
                                torch.logspace(-5, 1, config.alphas, dtype=torch.float64).tolist())
        edge = fitted.alpha in (path[0][0], path[-1][0]) and len(path) > 1
    else:
        fitted, edge = fit_glm(*train, family=family), False
    x, y = data.part("test", family)
    validation_nll = float(FAMILY_OF[family].nll(fitted.eta(validation[0]), validation[1]).mean())
    return {"alpha": fitted.alpha, "iterations": fitted.iterations, "converged": fitted.converged,
            "alpha_at_grid_edge": edge, "still_improving": not fitted.converged, "validation_nll": validation_nll,
            "seconds": time.perf_counter() - started, **_scores(family, fitted.eta(x), y)}


def run(config: Config, ctx: Context) -> dict[str, Any]:
    """Every variant with every seed; the GLMs are fitted once per family and recorded for every seed."""
    try:
        data = static_covariates(ctx.data_dir, ctx.download, config.patients)
    except FileNotFoundError as err:
        raise RunError(str(err)) from None
    glms: dict[str, dict[str, Any]] = {}

    def run_one(variant: str, seed: int, checkpoint: Path, resume: bool) -> dict[str, Any]:
        family, _, model = variant.partition("-")
        if model == "gode":
            return fit_gode(family, data, seed, config)[1]
        if variant not in glms:
            glms[variant] = _fit_glm(family, data, model == "glm-ridge", config)
        return dict(glms[variant])

    settings = config_to_dict(config)
    claims = settings.pop("claims", [])
    deaths = float(data.death.mean())
    header = {"experiment": "gode-glm", "command": ctx.command, "config": settings, "claims": claims,
              "data": {**{k: len(v) for k, v in data.parts.items()}, "covariates": data.x.shape[1],
                       "mean_stay": float(data.stay[data.parts["train"]].mean()), "death_rate": deaths},
              "machine": describe_machine(torch.device("cpu"))}

    def show(record: dict[str, Any]) -> None:
        score = "AUC {test_auc:.3f}".format(**record) if "test_auc" in record else "MAE {test_mae:.2f}".format(**record)
        print(f"{record['variant']} seed {record['seed']}: test NLL {record['test_nll']:.4f}, {score}", flush=True)

    result = sweep(config.variants, config.seeds, run_one, out=ctx.result_path, header=header, metrics=METRICS,
                   by="variant", resume=ctx.resume, on_run=show)
    gode = [r["test_nll"] for r in result["runs"] if r["variant"].endswith("-gode")]
    if gode:
        print(f"GODE test NLL over all runs: {statistics.fmean(gode):.4f}")
    return result
