"""The full experiments run end to end at toy size, write their JSON atomically, and refuse bad options."""
from __future__ import annotations

import json

import pytest


def test_spiral_solvers_smoke(tmp_path):
    from nodelib.experiments.spiral_solvers import main

    out = tmp_path / "spiral.json"
    assert main(["--epochs", "1", "--methods", "euler", "--device", "cpu", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["method"] == "euler" and row["optimizer_steps"] == 9 and row["nfe_per_step"] == 9.0
    assert row["source_seconds"] == 13.43 and data["machine"]["device"] == "cpu"
    assert not list(tmp_path.glob(".*.tmp"))


def test_latent_spirals_smoke(tmp_path):
    from nodelib.experiments.latent_spirals import main

    out = tmp_path / "latent.json"
    assert main(["--spirals", "20", "--observations", "8", "--steps", "2", "--batch", "10", "--device", "cpu", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["config"]["spirals"] == 20 and data["heldout_mse"] > 0 and len(data["loss_curve"]) == 2


def test_augmentation_nfe_smoke(tmp_path):
    from nodelib.experiments.augmentation_nfe import main

    out = tmp_path / "aug.json"
    assert main(["--extras", "0,1", "--points", "32", "--steps", "3", "--device", "cpu", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["extra"] for r in rows] == [0, 1]
    assert all(len(r["nfe_forward"]) == len(r["nfe_backward"]) == 3 and min(r["nfe_backward"]) > 0 for r in rows)


@pytest.mark.parametrize(
    "module,args,message",
    [
        ("spiral_solvers", ["--methods", "rk45"], "methods must be among"),
        ("spiral_solvers", ["--device", "cuda:7"], "cuda"),
        ("latent_spirals", ["--spirals", "3"], "--spirals >= 20"),
        ("augmentation_nfe", ["--extras", "-1"], "extras must be >= 0"),
    ],
)
def test_bad_options_give_clear_errors(module, args, message, capsys):
    import importlib

    main = importlib.import_module(f"nodelib.experiments.{module}").main
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_recorded_chapter_three_results_hold_the_lessons():
    from nodelib.experiments import load_result

    solvers = {r["method"]: r for r in load_result("spiral_solvers_cpu")["rows"]}
    assert solvers["dopri5"]["train_seconds"] > solvers["euler"]["train_seconds"]
    assert all(r["error"] < 0.0183 for r in solvers.values())
    latent = load_result("latent_spirals_cpu")
    assert latent["heldout_mse"] < latent["linear_interpolation_mse"]


def test_recorded_chapter_four_results():
    from nodelib.experiments import load_result

    rows = {r["extra"]: r for r in load_result("augmentation_nfe_cpu")["rows"]}
    assert set(rows) == {0, 1, 2, 5}
    assert all(len(r["nfe_forward"]) == 400 for r in rows.values())


def test_recorded_chapter_five_results():
    from nodelib.experiments import load_result, registry

    for arch in ("resnet", "odenet", "rknet", "augmented"):
        digits = load_result(f"digits-{arch}_cpu")
        assert digits["complete"] and len(digits["epochs"]) == registry.get(f"digits-{arch}").epochs
        assert digits["epochs"][-1]["test_accuracy"] > 0.95
    ecg = {arch: load_result(f"ecg-{arch}_cpu") for arch in ("resnet", "odenet")}
    assert ecg["resnet"]["parameters"] == 182_853 and ecg["odenet"]["parameters"] == 59_333
    assert all(len(r["epochs"]) == 5 and r["config"]["batch_size"] == 128 for r in ecg.values())
    for data in ("mnist", "svhn", "cifar10"):
        speeds = {a: load_result(f"{data}-{a}_cpu")["epochs"][0]["examples_per_second"] for a in ("resnet", "rknet", "odenet")}
        assert speeds["resnet"] > speeds["rknet"] > speeds["odenet"]  # the cost ranking the chapter explains


# --- chapter 6's recorded runs describe the registered experiments ------------------------------------------------

PHYSIONET_RUNS = ["physionet-latentode", "physionet-ace", "physionet-ace-joint", "physionet-ace-fc", "physionet-ace-fixed"]


@pytest.mark.parametrize("name", PHYSIONET_RUNS)
def test_recorded_physionet_runs_are_the_registered_ones(name):
    import statistics

    from nodelib.experiments import load_result, registry

    result, experiment = load_result(f"{name}_cpu"), registry.get(name)
    config = result["config"]
    flags = dict(zip(experiment.args[::2], experiment.args[1::2]))
    assert (config["attention"], config["training"]) == (flags["--attention"], flags["--training"])
    assert (config["epochs"], config["batch"], config["lr"], config["lam"]) == (30, 50, 1e-2, 1e-2)  # App. B
    assert (config["method"], config["rtol"], config["atol"], config["patients"]) == ("dopri5", 1e-4, 1e-5, None)
    assert result["complete"] and [s["seed"] for s in result["seeds"]] == [0, 1, 2]
    assert result["data"]["patients"] == 4000 and result["data"]["test"] == 400
    aucs = [s["test_auc"] for s in result["seeds"]]
    assert result["summary"]["test_auc"]["mean"] == pytest.approx(statistics.fmean(aucs))
    assert all(0.5 < a < 1 for a in aucs) and all(len(s["history"]) == 30 for s in result["seeds"])
    assert all(s["best_epoch"] == max(s["history"], key=lambda r: r["validation"])["iteration"] for s in result["seeds"])


@pytest.mark.parametrize("name", ["mnist5k-odenet", "mnist5k-ace", "mnist5k-ace-joint"])
def test_recorded_mnist5k_runs_are_the_registered_ones(name):
    from nodelib.classification import build_classifier
    from nodelib.experiments import load_result, registry
    from nodelib.utils import count_parameters

    record, experiment = load_result(f"{name}_cpu"), registry.get(name)
    assert [run["config"]["seed"] for run in record["runs"]] == [0, 1, 2]
    model = build_classifier(experiment.arch, 1, 10, width=experiment.width, stem_kind=experiment.stem)
    for run in record["runs"]:
        assert run["complete"] and len(run["epochs"]) == experiment.epochs and not run["config"]["smoke"]
        assert run["config"]["training"] == experiment.training and run["parameters"] == count_parameters(model)
        assert run["config"]["data"]["validation"] == 500 and run["config"]["data"]["test"] == 1000
        best = max(run["epochs"], key=lambda e: e["validation_accuracy"])
        assert run["best_epoch"] == best["epoch"] and run["test_accuracy_at_best"] == best["test_accuracy"]
