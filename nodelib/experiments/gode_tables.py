"""Chapter 8's sweeps: the rows of Yu, Miao and Wu's Tables 2, 3 and 4, each trained as a Table 1 experiment.

    python -m nodelib.experiments run gode-table2 --data cifar10 --knots uniform,clamped --seeds 0,1,2,3,4

Every row changes the registered Table 1 experiment of its data set (``{data}-gode-{knots}``: SGD 0.1 with drops
at 60/100/140, 160 epochs, random crops, Euler with step 0.05, 5,000 validation images) in the way the table
does:

- Table 2: the number of basis functions ``m``, their degree ``k`` and the end ``T`` of the interval;
- Table 3: dopri5 (rtol = atol = 1e-3, as in torchdiffeq's MNIST example; the paper gives no tolerance) against
  Euler, for Neural-GODE and the Neural-ODE;
- Table 4: ``m`` and the number of convt layers in the field.

The rows, knot choices and seeds are a sweep (:func:`nodelib.sweep.sweep`): each run is one run of the classifier
experiment (:func:`~nodelib.experiments.classifier.run_classifier`: checkpoints, resume, one GPU or several) in
``OUT/NAME/ROW-KNOTS-seedS/``; ``result.json`` gathers them with the summary per row and knot choice.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import RunError
from .base import Context, config_to_dict
from .classifier import ClassifierConfig

#: The rows of each table: (row name, changes to the Table 1 experiment). ``knots`` is filled in per run.
TABLES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "2": [(f"m{m}-k{k}-T{t}", {"body": {"n_basis": m, "degree": k}, "t1": float(t)})
          for m, k, t in ((2, 1, 1), (4, 1, 1), (6, 1, 1), (8, 1, 1), (10, 1, 1), (12, 1, 1), (8, 2, 1), (8, 3, 1),
                          (8, 4, 1), (8, 5, 1), (8, 1, 2), (8, 1, 3))],
    "3": [("gode-euler", {"arch": "gode"}),
          ("gode-dopri5", {"arch": "gode", "solver": {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3,
                                                      "gradient": "backprop"}}),
          ("node-euler", {"arch": "odenet"}),
          ("node-dopri5", {"arch": "odenet", "solver": {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3,
                                                        "gradient": "backprop"}})],
    "4": [(f"m{m}-layers{n}", {"body": {"n_basis": m, "n_layers": n}}) for m in (2, 4, 6, 8) for n in (1, 2, 3, 4)],
}


@dataclass(frozen=True)
class GODETable:
    """One of the paper's Tables 2-4: its rows (all, or by 1-based number), knot choices, data set and seeds."""

    table: Literal["2", "3", "4"] = field(default="2", metadata={"help": "the paper's table"})
    rows: tuple[int, ...] = field(default=(), metadata={"help": "1-based row numbers (none: every row)"})
    data: Literal["cifar10", "mnist", "fashionmnist"] = field(default="cifar10", metadata={"help": "the images"})
    knots: tuple[str, ...] = field(default=("uniform", "clamped"), metadata={"help": "uniform (the paper's), clamped"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "one run per row and knots each"})
    epochs: int = field(default=160, metadata={"help": "epochs of every run (the registered 160)"})

    def __post_init__(self) -> None:
        n = len(TABLES[self.table])
        if any(not 1 <= r <= n for r in self.rows):
            raise RunError(f"table {self.table} has rows 1..{n}; got {self.rows}")
        if not self.knots or any(k not in ("uniform", "clamped") for k in self.knots) or not self.seeds:
            raise RunError(f"knots must name uniform and/or clamped, and seeds must be given; got {self.knots}")

    def runs(self, smoke: bool = False) -> dict[str, ClassifierConfig]:
        """Every row and knot choice of the sweep, by name, as the classifier configuration it trains (``smoke``:
        the seconds-long version on generated data of the real shapes)."""
        from .registry import get

        rows = TABLES[self.table] if not self.rows else [TABLES[self.table][r - 1] for r in self.rows]
        out = {}
        for row, changes in rows:
            arch = changes.get("arch", "gode")
            for knots in (self.knots if arch == "gode" else self.knots[:1]):
                base: ClassifierConfig = get(f"{self.data}-gode-{knots}").configuration(smoke)
                body = {**base.body, **changes.get("body", {})} if arch == "gode" else {}
                name = f"{row}-{knots}" if arch == "gode" else row
                out[name] = dataclasses.replace(base, arch=arch, body=body, solver=changes.get("solver", base.solver),
                                                t1=changes.get("t1", base.t1),
                                                epochs=base.epochs if smoke else self.epochs)
        return out


def run_table(config: GODETable, ctx: Context) -> dict[str, Any]:
    """Every row and knot choice of ``config`` with every seed."""
    from ..sweep import sweep
    from ..utils import get_device
    from ._common import describe_machine
    from .classifier import run_classifier

    runs = config.runs(ctx.smoke)
    name = f"gode-table{config.table}"

    def run_one(variant: str, seed: int, checkpoint: Path, resume: bool) -> dict[str, Any]:
        run_ctx = dataclasses.replace(ctx, out=Path(ctx.out) / f"{variant}-seed{seed}", resume=resume, smoke=False)
        result = run_classifier(dataclasses.replace(runs[variant], seed=seed), run_ctx, name=f"{name}-{variant}")
        iterations = sum(e["steps"] for e in result["epochs"])
        return {"parameters": result["parameters"],
                "test_accuracy_at_best": result.get("test_accuracy_at_best", result["final_test_accuracy"]),
                "test_error_at_best": 100 * (1 - result.get("test_accuracy_at_best", result["final_test_accuracy"])),
                "final_test_accuracy": result["final_test_accuracy"], "best_epoch": result.get("best_epoch"),
                "still_improving": result.get("still_improving", False),
                "seconds_per_iteration": result["train_seconds"] / max(iterations, 1),
                "nfe_forward": result["epochs"][-1].get("nfe_forward", 0.0), "epochs": len(result["epochs"]),
                "seconds": result["train_seconds"]}

    header = {"experiment": name, "command": ctx.command, "config": config_to_dict(config),
              "runs": {k: v.describe() for k, v in runs.items()}, "machine": describe_machine(get_device(ctx.device))}
    return sweep(list(runs), config.seeds, run_one, out=ctx.result_path, header=header,
                 metrics=("test_error_at_best", "parameters", "seconds_per_iteration", "nfe_forward"),
                 resume=ctx.resume)
