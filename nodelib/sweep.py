"""The one sweep driver: every variant trained with every seed, resumable, with one summary format.

A comparison in the research chapters (ANODEV2's schedules, Neural-GODE's variants, ACE-NODE's attention
choices, a table's rows) is a sweep: ``variants x seeds`` runs of one function, ``run_one(variant, seed,
checkpoint=..., resume=...)``, each returning a flat record (:meth:`nodelib.training.FitResult.record` gives one).
:func:`sweep` runs them seed by seed (so that an interrupted sweep has complete pairs for the seeds it
finished), writes ``result.json`` atomically after every run, and on ``resume`` skips finished runs and continues
an interrupted one from its checkpoint; more variants or seeds may be added to a finished sweep, any other change
of settings is refused. The result holds a header (experiment, command, configuration, the claims declared
before the runs, machine), every run's record, and :func:`summarise`'s table: per variant, the mean, standard
deviation, extremes and count of each metric, and how many runs were still improving when they stopped.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from ._impl.atomic import write_json_atomic
from .errors import RunError

__all__ = ["sweep", "summarise", "RunOne"]

#: ``run_one(variant, seed, checkpoint=Path, resume=bool)`` trains one model and returns its record.
RunOne = Callable[..., dict[str, Any]]
#: Settings that may differ between a finished sweep and one that resumes it.
GROWABLE = ("variants", "seeds")


def summarise(runs: Sequence[Mapping[str, Any]], metrics: Sequence[str], by: str = "variant"
              ) -> dict[str, dict[str, Any]]:
    """Per variant (``by``) and metric: ``{"mean", "std" (n - 1), "min", "max", "n"}``, plus ``"runs"`` and
    ``"still_improving"`` (how many of its runs had not plateaued)."""
    out: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(r[by] for r in runs):
        group = [r for r in runs if r[by] == variant]
        row: dict[str, Any] = {"runs": len(group), "still_improving": sum(bool(r.get("still_improving")) for r in group)}
        for metric in metrics:
            values = [float(r[metric]) for r in group if r.get(metric) is not None and math.isfinite(float(r[metric]))]
            if values:
                row[metric] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1
                               else 0.0, "min": min(values), "max": max(values), "n": len(values)}
        out[str(variant)] = row
    return out


def sweep(
    variants: Sequence[str],
    seeds: Sequence[int],
    run_one: RunOne,
    *,
    out: Union[str, Path],
    header: Mapping[str, Any],
    metrics: Sequence[str],
    by: str = "variant",
    resume: bool = False,
    on_run: Optional[Callable[[dict[str, Any]], None]] = None,
) -> dict[str, Any]:
    """Run every variant with every seed (seed-major order) and return the result written to ``out``.

    Args:
        variants, seeds: what to run; a run is identified by ``(variant, seed)``.
        run_one: trains one run; called as ``run_one(variant, seed, checkpoint=PATH, resume=BOOL)`` with a
            checkpoint file beside ``out`` (``checkpoint-VARIANT-seedS.pt``); its record must hold ``by`` and
            ``"seed"`` (added if missing).
        out: the result file (JSON, rewritten atomically after every run).
        header: what the result file says about the sweep: ``experiment``, ``command``, ``config`` (compared on
            ``resume``), ``claims``, ``machine``, ``data``, ...
        metrics: the record keys :func:`summarise` reports.
        by: the record key that names the variant.
        resume: continue a sweep found at ``out`` (its finished runs are kept and skipped).
        on_run: called with each new record (e.g. to print a line).
    """
    seeds = [int(s) for s in seeds]
    variants = [str(v) for v in variants]
    if not variants or not seeds:
        raise ValueError("a sweep needs at least one variant and one seed")
    if len(set(variants)) != len(variants) or len(set(seeds)) != len(seeds):
        raise ValueError(f"variants and seeds must not repeat, got {variants} and {seeds}")
    out = Path(out)
    result: dict[str, Any] = {**dict(header), "by": by, "runs": [], "complete": False}
    config = dict(result.get("config", {}))
    if resume and out.exists():
        previous = json.loads(out.read_text())
        before = dict(previous.get("config", {}))
        differ = sorted(k for k in set(before) | set(config) if k not in GROWABLE and before.get(k) != config.get(k))
        if differ:
            raise RunError(f"{out} was written with other settings ({', '.join(differ)}); resume with the same "
                             "settings (more variants or seeds are fine) or start afresh in another folder")
        result["runs"] = list(previous.get("runs", []))
        if "claims" in previous and "claims" in result and previous["claims"] != result["claims"]:
            raise RunError(f"{out} declared other claims before its runs; a sweep may not change its claims "
                             "after seeing results")
        for key in ("claims_declared", "started"):
            if key in previous:
                result[key] = previous[key]

    def save() -> None:
        result["summary"] = summarise(result["runs"], metrics, by) if result["runs"] else {}
        write_json_atomic(out, result)

    save()  # the header (and the claims) are on disk before the first run starts
    done = {(str(r[by]), int(r["seed"])) for r in result["runs"]}
    for seed in seeds:
        for variant in variants:
            if (variant, seed) in done:
                continue
            record = run_one(variant, seed, checkpoint=out.parent / f"checkpoint-{variant}-seed{seed}.pt",
                             resume=resume)
            record = {by: variant, "seed": seed, **record}
            result["runs"].append(record)
            save()
            if on_run is not None:
                on_run(record)
    wanted = {(v, s) for v in variants for s in seeds}
    result["complete"] = wanted <= {(str(r[by]), int(r["seed"])) for r in result["runs"]}
    save()
    return result
