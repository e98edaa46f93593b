"""Chapter 7's check that the trained ANODEV2 networks evolve their weights, read before their accuracy is.

    python -m nodelib.experiments run anodev2-weights   # after anodev2-compare-no-stop, in the same --out

A finished ANODEV2 comparison (:func:`~nodelib.experiments.comparison.run_anodev2`) leaves each run's checkpoint
beside its result, holding the weights of the epoch that validation selected. This experiment rebuilds each
selected network of the evolving schedules and records :func:`nodelib.anodev2.weight_evolution`: per evolved
convolution, the learned τ, v and ρ and how far the last weight state a z step applies lies from the initial
weights (``‖θ(t) − θ(0)‖ / ‖θ(0)‖``). Nothing trains here. A run inherits ``still_improving`` from the run it
reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import RunError
from .base import Context, config_to_dict


@dataclass(frozen=True)
class WeightEvolution:
    """Which selected networks of a finished ANODEV2 comparison to read."""

    source: str = field(default="anodev2-compare-no-stop", metadata={
        "help": "the finished ANODEV2 comparison (a folder beside this run's) whose selected networks are read"})
    variants: tuple[str, ...] = field(default=("config2",), metadata={
        "help": "the comparison's evolving schedules to read"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "the comparison's seeds"})

    def __post_init__(self) -> None:
        from ..anodev2 import SCHEDULES

        if not self.variants or not self.seeds:
            raise RunError("name at least one variant and one seed")
        still = [v for v in self.variants if v not in SCHEDULES or not SCHEDULES[v].evolves]
        if still:
            raise RunError(f"variants must be schedules whose weights evolve "
                           f"({', '.join(k for k, s in SCHEDULES.items() if s.evolves)}), got {still}")


def summary_of(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The extremes over a network's evolved tensors that the chapter reads."""
    return {"change_min": min(r["change"] for r in rows), "change_max": max(r["change"] for r in rows),
            "tau_min": min(r["tau"] for r in rows), "tau_max": max(r["tau"] for r in rows),
            "speed_max": max(max(abs(r["v_row"]), abs(r["v_col"])) for r in rows),
            "rho_max": max(abs(r["rho"]) for r in rows)}


def run(config: WeightEvolution, ctx: Context, name: str = "anodev2-weights") -> dict[str, Any]:
    """Record the weight evolution of every ``(variant, seed)`` network that ``config.source`` selected."""
    from ..anodev2 import anodev2_network, weight_evolution
    from ..sweep import sweep
    from ._common import describe_machine, finished_comparison

    source, compared = finished_comparison(config.source, ctx)
    by = compared.get("by", "schedule")
    records = {(r[by], r["seed"]): r for r in compared.get("runs", [])}
    settings = compared["config"]
    side = {"mnist5k": 28, "fashionmnist": 28}[settings["data"]] // settings["downsample"]

    def run_one(variant: str, seed: int, checkpoint: Path, resume: bool) -> dict[str, Any]:
        weights = source / f"checkpoint-{variant}-seed{seed}.pt"
        record = records.get((variant, seed))
        if record is None or not weights.is_file():
            raise RunError(f"{config.source} has no finished run {variant} seed {seed} ({weights})")
        saved = torch.load(weights, map_location="cpu", weights_only=False)
        if saved["result"]["best_epoch"] != record["best_epoch"]:
            raise RunError(f"{weights} holds epoch {saved['result']['best_epoch']}, but the result selected "
                           f"epoch {record['best_epoch']}: the checkpoint is not the recorded run's")
        network = anodev2_network(settings["net"], variant, in_channels=1, n_classes=10, image_size=side)
        network.load_state_dict(saved["best_state"])
        rows = weight_evolution(network)
        return {"epoch": record["best_epoch"], "still_improving": bool(record.get("still_improving", False)),
                "test_accuracy_at_best": record["test_accuracy_at_best"], **summary_of(rows), "tensors": rows}

    source_of = {"experiment": config.source, "command": compared.get("command"),
                 "revision": compared.get("machine", {}).get("revision")}
    header: dict[str, Any] = {"experiment": name, "command": ctx.command, "config": config_to_dict(config),
                              "claims": [], "source": source_of, "data": compared.get("data"),
                              "machine": describe_machine(torch.device("cpu"))}
    return sweep(config.variants, config.seeds, run_one, out=ctx.result_path, header=header, by="schedule",
                 metrics=("change_min", "change_max", "tau_min", "tau_max", "speed_max", "rho_max"),
                 resume=ctx.resume,
                 on_run=lambda r: print(f"{r['schedule']} seed {r['seed']}: weights moved by {r['change_min']:.3f} to "
                                        f"{r['change_max']:.3f} of their norm; tau {r['tau_min']:.3f} to "
                                        f"{r['tau_max']:.3f}", flush=True))
