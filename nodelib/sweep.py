"""The one sweep driver: every variant trained with every seed, resumable, with one summary format.

A comparison in the research chapters (ANODEV2's schedules, Neural-GODE's variants, ACE-NODE's attention
choices, a table's rows) is a sweep: ``variants x seeds`` runs of one function, ``run_one(variant, seed,
checkpoint=..., resume=...)``, each returning a flat record (:meth:`nodelib.training.FitResult.record` gives one).
:func:`sweep` runs them seed by seed (so that an interrupted sweep has complete pairs for the seeds it
finished), writes ``result.json`` atomically after every run, and on ``resume`` skips finished runs and continues
an interrupted one from its checkpoint; more variants or seeds may be added to a finished sweep, any other change
of settings is refused. A sweep split among processes or machines (each part a sweep of some variants or seeds, in
its own folder) is joined by :func:`merge`, which refuses parts of other code, settings or claims. The result holds
a header (experiment, command, configuration, the claims declared before the runs, machine), every run's record,
and :func:`summarise`'s table: per variant, the mean, standard deviation, extremes and count of each metric, and how
many runs were still improving when they stopped.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from ._impl.atomic import write_json_atomic
from .errors import RunError

__all__ = ["sweep", "summarise", "merge", "RunOne"]

#: ``run_one(variant, seed, checkpoint=Path, resume=bool)`` trains one model and returns its record.
RunOne = Callable[..., dict[str, Any]]
#: Settings that may differ between a finished sweep and one that resumes it.
GROWABLE = ("variants", "seeds")


def _changed_settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The settings (but the growable ones) on which two sweep configurations differ."""
    return sorted(k for k in set(before) | set(after) if k not in GROWABLE and before.get(k) != after.get(k))


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
        differ = _changed_settings(previous.get("config", {}), config)
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


def merge(parts: Sequence[Union[str, Path, Mapping[str, Any]]], out: Union[str, Path, None] = None, *,
          variants: Optional[Sequence[str]] = None, seeds: Optional[Sequence[int]] = None,
          command: Optional[str] = None) -> dict[str, Any]:
    """Join the result files of a sweep that ran in parts (other variants or seeds, other processes or machines).

    The parts must be finished sweeps of one experiment, from one clean code revision, with the same settings
    (but ``variants`` and ``seeds``), the same ``by`` and the same claims, declared before any run; no run may
    appear twice. The merged result lists the union of variants and seeds (in the order of ``variants`` and
    ``seeds`` where given, which must then be exactly the union), every run, a summary recomputed from the runs
    with the parts' metrics, and ``parts``: each part's command, machine and start. It is written atomically to
    ``out`` if given; ``command`` replaces the recorded command line (the merge's own, say).
    """
    loaded = [dict(json.loads(Path(p).read_text())) if not isinstance(p, Mapping) else dict(p) for p in parts]
    names = [str(p) if not isinstance(p, Mapping) else f"part {i}" for i, p in enumerate(parts)]
    if len(loaded) < 2:
        raise RunError(f"a merge needs two or more parts, got {len(loaded)}")
    first = loaded[0]
    for name, part in zip(names, loaded):
        if not part.get("complete"):
            raise RunError(f"{name} is an unfinished sweep; finish it (--resume) before merging")
        revision = str(part.get("machine", {}).get("revision", "unknown"))
        if revision == "unknown" or revision.endswith("+dirty"):
            raise RunError(f"{name} ran uncommitted or unknown code ({revision}); merge only runs of one clean "
                           "revision")
        for key, what in (("experiment", "experiment"), ("by", "variant key"), ("claims", "declared claims")):
            if part.get(key) != first.get(key):
                raise RunError(f"{name} has another {what} than {names[0]}: {part.get(key)!r} != {first.get(key)!r}")
        if part["machine"]["revision"] != first["machine"]["revision"]:
            raise RunError(f"{name} ran revision {part['machine']['revision']}, {names[0]} ran "
                           f"{first['machine']['revision']}: the parts of a sweep must run the same code")
        differ = _changed_settings(first.get("config", {}), part.get("config", {}))
        if differ:
            raise RunError(f"{name} ran other settings than {names[0]} ({', '.join(differ)})")
    by = str(first.get("by", "variant"))
    runs: list[dict[str, Any]] = []
    seen: dict[tuple[str, int], str] = {}
    for name, part in zip(names, loaded):
        for run in part["runs"]:
            run_key = (str(run[by]), int(run["seed"]))
            if run_key in seen:
                raise RunError(f"{run_key[0]} with seed {run_key[1]} ran in both {seen[run_key]} and {name}; a run "
                               "may come from one part only")
            seen[run_key] = name
            runs.append(dict(run))
    union_variants = list(dict.fromkeys(str(r[by]) for r in runs))
    union_seeds = sorted({int(r["seed"]) for r in runs})
    if variants is not None:
        if sorted(map(str, variants)) != sorted(union_variants):
            raise RunError(f"the parts ran the variants {union_variants}, not {list(variants)}")
        union_variants = [str(v) for v in variants]
    if seeds is not None:
        if sorted(int(s) for s in seeds) != union_seeds:
            raise RunError(f"the parts ran the seeds {union_seeds}, not {list(seeds)}")
        union_seeds = [int(s) for s in seeds]
    missing = sorted((v, s) for v in union_variants for s in union_seeds if (v, s) not in seen)
    if missing:
        raise RunError(f"the parts leave runs out: {', '.join(f'{v} seed {s}' for v, s in missing)}; every variant "
                       "needs every seed")
    order = {(v, s): i for i, (s, v) in enumerate((s, v) for s in union_seeds for v in union_variants)}
    runs.sort(key=lambda r: order[(str(r[by]), int(r["seed"]))])
    metrics = list(dict.fromkeys(m for part in loaded for row in part.get("summary", {}).values()
                                 for m, value in row.items() if isinstance(value, dict)))
    result = {key: value for key, value in first.items() if key not in ("runs", "summary", "complete")}
    per_part = ("runs", "summary", "complete", "config", "machine", "command", "started", "claims_declared")
    for key in dict.fromkeys(k for part in loaded for k in part if k not in per_part):
        values = [part.get(key) for part in loaded]
        if all(v == values[0] for v in values):
            continue
        if not all(isinstance(v, Mapping) for v in values):  # e.g. the data: every part must have read the same
            raise RunError(f"the parts differ in {key!r}: {values}")
        joined: dict[str, Any] = {}
        for name, value in zip(names, values):
            assert isinstance(value, Mapping)
            for k, v in value.items():
                if k in joined and joined[k] != v:
                    raise RunError(f"{name} has another {key}[{k!r}] than an earlier part")
                joined[k] = v
        result[key] = joined
    result["config"] = {**dict(first.get("config", {})), "variants": union_variants, "seeds": union_seeds}
    for key in ("claims_declared", "started"):  # the earliest part's: the claims were on disk before any run
        stamps = [str(part[key]) for part in loaded if part.get(key) is not None]
        if stamps:
            result[key] = min(stamps)
    if command is not None:
        result["command"] = command
    result["parts"] = [{"command": part.get("command"), "machine": part.get("machine"), "started": part.get("started"),
                        "runs": len(part["runs"])} for part in loaded]
    result["runs"] = runs
    result["complete"] = True
    result["summary"] = summarise(runs, metrics, by)
    if out is not None:
        write_json_atomic(Path(out), result)
    return result
