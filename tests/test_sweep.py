"""nodelib.sweep: variants x seeds, one summary format, resumable, claims fixed before the runs."""
from __future__ import annotations

import json

import pytest

from nodelib.sweep import summarise, sweep


def _runner(calls):
    def run_one(variant, seed, checkpoint, resume):
        calls.append((variant, seed))
        return {"test_accuracy_at_best": 0.5 + 0.1 * seed + (0.05 if variant == "b" else 0.0),
                "still_improving": seed == 1}

    return run_one


def test_every_variant_runs_with_every_seed_and_the_summary_is_per_variant(tmp_path):
    calls = []
    result = sweep(["a", "b"], [0, 1, 2], _runner(calls), out=tmp_path / "r.json",
                   header={"experiment": "x", "config": {"lr": 0.1}, "claims": []}, metrics=["test_accuracy_at_best"])
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]  # seed by seed: complete pairs
    assert result["complete"] and json.loads((tmp_path / "r.json").read_text()) == result
    row = result["summary"]["b"]
    assert row["runs"] == 3 and row["still_improving"] == 1
    assert row["test_accuracy_at_best"]["mean"] == pytest.approx(0.65) and row["test_accuracy_at_best"]["n"] == 3


def test_resume_skips_finished_runs_adds_seeds_and_refuses_other_settings(tmp_path):
    out = tmp_path / "r.json"
    header = {"experiment": "x", "config": {"lr": 0.1, "seeds": [0]}}
    sweep(["a"], [0], _runner([]), out=out, header=header, metrics=["test_accuracy_at_best"])
    calls = []
    result = sweep(["a", "b"], [0, 1], _runner(calls), out=out, header={**header, "config": {"lr": 0.1, "seeds": [0, 1]}},
                   metrics=["test_accuracy_at_best"], resume=True)
    assert calls == [("b", 0), ("a", 1), ("b", 1)] and len(result["runs"]) == 4
    with pytest.raises(ValueError, match="other settings"):
        sweep(["a"], [0], _runner([]), out=out, header={"config": {"lr": 0.2}}, metrics=[], resume=True)


def test_claims_cannot_change_after_the_runs_they_judge(tmp_path):
    out = tmp_path / "r.json"
    sweep(["a"], [0], _runner([]), out=out, header={"config": {}, "claims": [{"key": "k"}]}, metrics=[])
    with pytest.raises(ValueError, match="other claims"):
        sweep(["a"], [0, 1], _runner([]), out=out, header={"config": {}, "claims": [{"key": "other"}]}, metrics=[],
              resume=True)


def test_the_header_is_written_before_the_first_run(tmp_path):
    out = tmp_path / "r.json"

    def run_one(variant, seed, checkpoint, resume):
        on_disk = json.loads(out.read_text())
        assert on_disk["claims"] == ["declared"] and on_disk["runs"] == []
        return {"x": 1.0}

    sweep(["a"], [0], run_one, out=out, header={"claims": ["declared"]}, metrics=["x"])


def test_bad_sweeps_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        sweep([], [0], _runner([]), out=tmp_path / "r.json", header={}, metrics=[])
    with pytest.raises(ValueError, match="must not repeat"):
        sweep(["a", "a"], [0], _runner([]), out=tmp_path / "r.json", header={}, metrics=[])
    assert summarise([{"variant": "a", "m": float("nan")}], ["m"]) == {"a": {"runs": 1, "still_improving": 0}}


def _part(tmp_path, name, variants, seeds, revision="abc1234", **header):
    out = tmp_path / name / "result.json"
    base = {"experiment": "x", "config": {"lr": 0.1, "variants": variants, "seeds": seeds}, "claims": [{"key": "k"}],
            "machine": {"revision": revision}, "experiments": {v: {"lr": 0.1} for v in variants}}
    sweep(variants, seeds, _runner([]), out=out, header={**base, **header}, metrics=["test_accuracy_at_best"])
    return out


def test_a_sweep_run_in_parts_merges_into_the_sweep_run_at_once(tmp_path):
    from nodelib.sweep import merge

    whole = sweep(["a", "b"], [0, 1, 2], _runner([]), out=tmp_path / "whole.json", metrics=["test_accuracy_at_best"],
                  header={"experiment": "x", "config": {"lr": 0.1}, "claims": [{"key": "k"}]})
    parts = [_part(tmp_path, "p1", ["b"], [0, 1, 2]), _part(tmp_path, "p2", ["a"], [0, 1]),
             _part(tmp_path, "p3", ["a"], [2])]
    merged = merge(parts, tmp_path / "merged.json", variants=["a", "b"], command="python -m nodelib.experiments merge")
    assert merged["runs"] == whole["runs"]  # seed by seed, in the given variant order
    assert merged["summary"] == whole["summary"] and merged["complete"]
    assert merged["config"] == {"lr": 0.1, "variants": ["a", "b"], "seeds": [0, 1, 2]}
    assert merged["experiments"] == {"a": {"lr": 0.1}, "b": {"lr": 0.1}}
    assert [p["runs"] for p in merged["parts"]] == [3, 2, 1] and merged["command"].endswith("merge")
    assert json.loads((tmp_path / "merged.json").read_text()) == merged


def test_parts_of_other_code_settings_claims_or_unfinished_are_refused(tmp_path):
    from nodelib.errors import RunError
    from nodelib.sweep import merge

    a, b = _part(tmp_path, "a", ["a"], [0]), _part(tmp_path, "b", ["b"], [0])
    cases = [
        (_part(tmp_path, "rev", ["b"], [0], revision="def5678"), "revision"),
        (_part(tmp_path, "dirty", ["b"], [0], revision="abc1234+dirty"), "uncommitted"),
        (_part(tmp_path, "lr", ["b"], [0], config={"lr": 0.2, "variants": ["b"], "seeds": [0]}), "settings"),
        (_part(tmp_path, "claims", ["b"], [0], claims=[{"key": "other"}]), "claims"),
        (_part(tmp_path, "data", ["b"], [0], data="other"), "differ in 'data'"),
        (a, "both"),
    ]
    for part, message in cases:
        with pytest.raises(RunError, match=message):
            merge([a, part])
    unfinished = json.loads(b.read_text()) | {"complete": False}
    with pytest.raises(RunError, match="unfinished"):
        merge([a, unfinished])
    with pytest.raises(RunError, match="leave runs out: a seed 1"):
        merge([a, b, _part(tmp_path, "b1", ["b"], [1])])
    with pytest.raises(RunError, match="two or more"):
        merge([a])
    with pytest.raises(RunError, match="not \\['a'\\]"):
        merge([a, b], variants=["a"])


def _recorded_sweeps():
    from pathlib import Path

    import nodelib.experiments

    folder = Path(nodelib.experiments.__file__).parent / "results"
    out = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if "by" in record and "runs" in record:  # written by sweep()
            out.append(pytest.param(path.stem, record, id=path.stem))
    return out


@pytest.mark.parametrize("name,recorded", _recorded_sweeps())
def test_a_finished_recorded_sweep_is_what_its_registration_declares(name, recorded):
    """Every shipped sweep that calls itself complete: one clean code revision, the claims and settings its
    registered experiment declares today (the claims were fixed before the runs), every variant with every seed
    once, and a summary that follows from the runs. An unfinished one must say so (the chapters cap its verdicts)."""
    from nodelib.claims import Claim
    from nodelib.experiments import registry
    from nodelib.experiments.base import config_to_dict

    if not recorded["complete"]:
        wanted = {(v, s) for v in recorded["config"]["variants"] for s in recorded["config"]["seeds"]}
        assert {(r[recorded["by"]], r["seed"]) for r in recorded["runs"]} < wanted
        pytest.skip(f"{name} is unfinished ({len(recorded['runs'])} of {len(wanted)} runs): its chapter says so")
    assert "+dirty" not in recorded["machine"]["revision"] and recorded["machine"]["revision"] != "unknown"
    for part in recorded.get("parts", []):
        assert part["machine"]["revision"] == recorded["machine"]["revision"]
    experiment = registry.get(recorded["experiment"])
    declared = config_to_dict(experiment.configuration())
    claims = declared.pop("claims", [])
    assert [Claim.from_dict(c).to_dict() for c in recorded.get("claims", [])] == [
        Claim.from_dict(c).to_dict() for c in claims]
    assert {k: recorded["config"][k] for k in declared} == json.loads(json.dumps(declared))
    by, config = recorded["by"], recorded["config"]
    assert sorted((r[by], r["seed"]) for r in recorded["runs"]) == sorted(
        (v, s) for v in config["variants"] for s in config["seeds"])
    metrics = list(dict.fromkeys(m for row in recorded["summary"].values() for m, v in row.items()
                                 if isinstance(v, dict)))
    summary = summarise(recorded["runs"], metrics, by)
    assert summary.keys() == recorded["summary"].keys()
    for variant, row in recorded["summary"].items():
        assert row.keys() == summary[variant].keys()
        for key, value in row.items():
            assert value == (pytest.approx(summary[variant][key]) if isinstance(value, dict) else summary[variant][key])
