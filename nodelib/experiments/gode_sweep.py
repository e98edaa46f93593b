"""Chapter 8's sweeps: the rows of Yu, Miao and Wu's Tables 2, 3 and 4, each trained as a Table 1 experiment.

    python -m nodelib.experiments.gode_sweep --table 2 --data cifar10 --knots uniform,clamped --seeds 0,1,2 \\
        --data-dir ../shared/data --out runs/gode-table2/result.json

Every row changes the registered Table 1 experiment of its data set (``{data}-gode-{knots}``: SGD 0.1 with drops
at 60/100/140, 160 epochs, random crops, Euler with step 0.05, 5,000 validation images) in the way the table
does:

- Table 2: the number of basis functions ``m``, their degree ``k`` and the end ``T`` of the interval;
- Table 3: dopri5 (rtol = atol = 1e-3, as in torchdiffeq's MNIST example; the paper gives no tolerance) against
  Euler, for Neural-GODE and the Neural-ODE;
- Table 4: ``m`` and the number of convt layers in the field.

Each row and seed is one run of the shared loop (:mod:`nodelib.experiments.runner`: checkpoints, ``--resume``,
atomic results, one GPU or several with ``torchrun``) in ``OUT/../ROW-KNOTS-seedS/``; ``result.json`` gathers
them and, per row and knot choice, the mean and standard deviation over seeds of the test error at the epoch
with the best validation accuracy, the parameters and the seconds per iteration.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from ..gode import KNOT_CHOICES
from .registry import ClassifierExperiment

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


def _rows(table: str, spec: str) -> list[tuple[str, dict[str, Any]]]:
    rows = TABLES[table]
    if spec == "all":
        return rows
    try:
        picked = [int(r) for r in spec.split(",") if r.strip()]
    except ValueError:
        raise ValueError(f"--rows must be 'all' or comma-separated row numbers 1..{len(rows)}, got {spec!r}") from None
    bad = [r for r in picked if not 1 <= r <= len(rows)]
    if bad or not picked:
        raise ValueError(f"table {table} has rows 1..{len(rows)}; got {spec!r}")
    return [rows[r - 1] for r in picked]


def experiment_for(table: str, row: str, changes: dict[str, Any], data: str, knots: str) -> ClassifierExperiment:
    """The registered Table 1 experiment of ``data`` with one row's changes (and ``knots`` for a GODE row)."""
    from . import registry

    base = registry.get(f"{data}-gode-{knots}")
    if not isinstance(base, registry.ClassifierExperiment):  # pragma: no cover - the registry defines it so
        raise TypeError(f"{data}-gode-{knots} is not a classifier experiment")
    arch = changes.get("arch", "gode")
    body = {**base.body, **changes.get("body", {})} if arch == "gode" else {}
    solver = changes.get("solver", base.solver)
    name = f"{data}-gode-table{table}-{row}" + (f"-{knots}" if arch == "gode" else "")
    return replace(base, name=name, arch=arch, body=body, solver=solver, t1=changes.get("t1", base.t1),
                   description=f"{base.description}; Table {table} row {row}")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per run name (row and knots): mean and standard deviation (n - 1) over seeds of the test error (%) at the
    best validation epoch, the parameters, and the mean seconds per training iteration."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["name"] for r in runs):
        group = [r for r in runs if r["name"] == name]
        errors = [100 * (1 - r["test_accuracy_at_best"]) for r in group]
        out[name] = {"error_mean": statistics.fmean(errors), "error_std": statistics.stdev(errors) if len(errors) > 1
                     else 0.0, "n": len(errors), "parameters": group[0]["parameters"],
                     "seconds_per_iteration": statistics.fmean(r["seconds_per_iteration"] for r in group)}
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.gode_sweep",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=tuple(TABLES), required=True)
    parser.add_argument("--rows", default="all", help="'all' or comma-separated row numbers (1-based)")
    parser.add_argument("--data", choices=("cifar10", "mnist", "fashionmnist"), default="cifar10")
    parser.add_argument("--knots", default="uniform,clamped", help="comma-separated: uniform (the paper's), clamped")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the registered 160")
    parser.add_argument("--smoke", action="store_true", help="seconds-long runs on generated data of the real shapes")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/gode-sweep/result.json"))
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from .. import datasets
    from ._common import write_json_atomic
    from .runner import RunError, RunOptions, run_classifier

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        rows = _rows(args.table, args.rows)
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as err:
        parser.error(str(err))
    knots = [k.strip() for k in args.knots.split(",") if k.strip()]
    if not knots or any(k not in KNOT_CHOICES for k in knots):
        parser.error(f"--knots must name some of {', '.join(KNOT_CHOICES)}, got {args.knots!r}")
    if not seeds:
        parser.error("need at least one seed")
    out: Path = args.out
    command = " ".join(["python -m nodelib.experiments.gode_sweep", *(argv if argv is not None else sys.argv[1:])])
    config = {"table": args.table, "rows": args.rows, "data": args.data, "knots": knots, "seeds": seeds,
              "epochs": args.epochs, "smoke": args.smoke}
    result: dict[str, Any] = {"experiment": f"gode_table{args.table}", "command": command, "config": config, "runs": [],
                              "complete": False}
    if args.resume and out.exists():
        previous = json.loads(out.read_text())
        if previous.get("config") != config:
            parser.error(f"{out} was written with other settings; resume with the same options or delete it")
        result["runs"] = previous["runs"]
    done = {(r["name"], r["seed"]) for r in result["runs"]}
    for seed in seeds:
        for row, changes in rows:
            for knot in (knots if changes.get("arch", "gode") == "gode" else knots[:1]):
                experiment = experiment_for(args.table, row, changes, args.data, knot)
                if (experiment.name, seed) in done:
                    continue
                options = RunOptions(device=args.device, epochs=args.epochs, seed=seed, smoke=args.smoke,
                                     data_dir=datasets.data_root(args.data_dir), out=out.parent / f"seed{seed}",
                                     resume=args.resume, fresh=not args.resume, download=args.download,
                                     progress=not args.no_progress, command=command)
                try:
                    run = run_classifier(experiment, options)
                except (RunError, FileNotFoundError) as err:
                    parser.error(str(err))
                iterations = sum(-(-run["config"]["data"]["train"] // run["config"]["batch_size"])
                                 for _ in run["epochs"])
                record = {"name": experiment.name, "row": row, "knots": knot if experiment.arch == "gode" else None,
                          "seed": seed, "parameters": run["parameters"],
                          "test_accuracy_at_best": run.get("test_accuracy_at_best", run["final_test_accuracy"]),
                          "final_test_accuracy": run["final_test_accuracy"],
                          "seconds_per_iteration": sum(e["seconds"] for e in run["epochs"]) / max(iterations, 1),
                          "nfe_forward": run["epochs"][-1]["nfe_forward"], "epochs": len(run["epochs"])}
                result["runs"].append(record)
                result["summary"] = summarise(result["runs"])
                write_json_atomic(out, result)
    result["summary"] = summarise(result["runs"]) if result["runs"] else {}
    result["complete"] = True
    write_json_atomic(out, result)
    width = max(len(name) for name in result["summary"]) if result["summary"] else 0
    for name, s in result["summary"].items():
        print(f"{name:<{width}}  error {s['error_mean']:.2f} ± {s['error_std']:.2f} % ({s['n']:.0f} seeds), "
              f"{s['parameters']:,.0f} parameters, {s['seconds_per_iteration']:.3f} s/iteration")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
