"""The experiments' command line and the classifier runs: every registered experiment at smoke size, kill-and-resume,
DDP, clear errors, settings derived from the configuration."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import physionet_reachable, requires_data
from nodelib.experiments import registry
from nodelib.experiments.__main__ import main
from nodelib.experiments.base import Context
from nodelib.experiments.classifier import ClassifierConfig, World, accuracy_metrics, run_classifier
from nodelib.experiments.comparison import ANODEV2Comparison, ImageComparison

ROOT = Path(__file__).resolve().parents[1]
#: One experiment of each kind (and every comparison): the fast suite's smoke runs; the slow suite runs them all.
SLOW_SMOKE = ("adjoint-memory", "mnist5k-ace-features")  # over 10 s each at smoke size: not in the fast loop
REPRESENTATIVE_NAMES = (
    "digits-resnet", "digits-odenet", "ecg-odenet", "mnist5k-ace", "cifar10-anodev2-resnet4-config2",
    "mnist-gode-uniform", "anodev2-compare", "gode-mnist5k-compare", "mnist5k-ace-compare", "gode-table3",
    "mnist5k-ace-features", "adjoint-memory", "spiral-solvers", "latent-spirals", "augmentation-nfe", "gpu-speed")
REPRESENTATIVE = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SMOKE else name
                  for name in REPRESENTATIVE_NAMES]


#: Experiments that read the selected models of a comparison, run first in the same --out.
READS_MODELS_OF = {"mnist5k-ace-features": "mnist5k-ace-compare", "anodev2-weights": "anodev2-compare-no-stop"}


def run(*args: str) -> int:
    return main(["run", *args, "--device", "cpu", "--no-progress"])


def _smoke(name: str, tmp_path: Path) -> None:
    experiment = registry.get(name)
    if name.startswith("physionet-ace") or name == "gode-glm":
        pytest.importorskip("sklearn")
        from nodelib import datasets

        if not datasets.available("physionet2012"):
            pytest.skip("PhysioNet 2012 is not under the data root")
    if name in READS_MODELS_OF:  # reads the models of a finished comparison
        with pytest.raises(SystemExit) as missing:  # not there yet: a clear error
            run(name, "--smoke", "--out", str(tmp_path))
        assert missing.value.code == 2
        assert run(READS_MODELS_OF[name], "--smoke", "--out", str(tmp_path)) == 0
    assert run(name, "--smoke", "--out", str(tmp_path)) == 0
    folder = tmp_path / f"{name}-smoke"  # smoke runs write beside, never into, the full run's folder
    result = json.loads((folder / "result.json").read_text())
    assert not list(folder.glob(".*")), "temporary files left behind"
    assert result["command"].startswith("python -m nodelib.experiments run")
    assert result["machine"]["device"] == "cpu"
    if not isinstance(experiment.config, ClassifierConfig):
        if "runs" in result:  # a comparison: every variant and seed ran, with its flags
            assert result["complete"] and result["summary"]
            assert all("seed" in r and "still_improving" in r for r in result["runs"])
        if isinstance(experiment.config, ImageComparison):  # a newcomer reads that a smoke run's numbers mean nothing
            assert "not results" in result["smoke"]
        if isinstance(experiment.config, ANODEV2Comparison):  # how far the weights travel, where they evolve
            from nodelib.anodev2 import SCHEDULES

            for r in result["runs"]:
                assert ("weight_evolution" in r) == SCHEDULES[r["schedule"]].evolves
                assert all(row["change"] > 0 for row in r.get("weight_evolution", []))
        return
    assert "not results" in result["smoke"]
    config = experiment.configuration(smoke=True)
    assert result["complete"] and len(result["epochs"]) == config.epochs
    first = result["epochs"][0]
    assert 0 <= first["test_accuracy"] <= 1 and first["peak_memory_mib"] > 0
    if config.validation:  # the best epoch is chosen on held-out training images, never on the test set
        assert result["data"]["validation"] > 0 and "validation_accuracy" in first
        assert result["best_epoch"] >= 1 and (folder / "best.pt").is_file() and "still_improving" in result
    from nodelib.classification import BODIES

    has_solver = not config.is_network and BODIES[config.arch].solver is not None
    assert ("nfe_forward" in first) == has_solver  # a network without a solver reports no NFE at all
    if has_solver:
        gradient = result["config"]["solver"]["gradient"]
        assert first["nfe_forward"] > 0 and (first["nfe_backward"] > 0) == (gradient == "adjoint")
    else:
        assert "solver" not in result["config"] and "t1" not in result["config"]  # only what the network uses
    assert result["parameters"] == sum(p.numel() for p in _model(config).parameters())
    assert (folder / "checkpoint.pt").is_file() and (folder / "curves.png").stat().st_size > 1000


def _model(config: ClassifierConfig) -> torch.nn.Module:
    from nodelib.experiments.classifier import build_model

    return build_model(config)


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_registered_experiments_run_at_smoke_size(name, tmp_path):
    _smoke(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in registry.names() if n not in REPRESENTATIVE_NAMES])
def test_every_other_registered_experiment_runs_at_smoke_size(name, tmp_path):
    _smoke(name, tmp_path)


def test_every_declared_claim_compares_variants_its_experiment_runs():
    """A claim naming a variant the registered configuration never runs could only ever be inconclusive."""
    checked = 0
    for name in registry.names():
        config = registry.get(name).configuration()
        variants = set(getattr(config, "variants", ()))
        for claim in getattr(config, "claims", ()):
            if claim.not_testable or claim.kind == "within":
                continue
            assert set(claim.variants) <= variants, (name, claim.key, variants)
            checked += 1
    assert checked >= 5


def test_a_smoke_run_overwrites_its_own_folder(tmp_path):
    assert run("digits-resnet", "--smoke", "--out", str(tmp_path)) == 0
    assert run("digits-resnet", "--smoke", "--out", str(tmp_path)) == 0  # no complaint about its own checkpoint
    assert not (tmp_path / "digits-resnet").exists()  # the full run's folder is untouched


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "nodelib.experiments", "run", *args, "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    args = ["ecg-resnet", "--data-kind", "synthetic", "--n-train", "2048", "--n-test", "64", "--epochs", "4",
            "--batch-size", "32"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(_command(*args, "--out", str(whole)), check=True, env=env, cwd=ROOT, capture_output=True)
    process = subprocess.Popen(_command(*args, "--out", str(broken)), env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = broken / "ecg-resnet" / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)  # written atomically after the first epoch (waiting for a fixed time failed under load)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = len(torch.load(checkpoint, weights_only=False)["result"]["history"])
    assert 1 <= killed_at < 4
    resumed = subprocess.run(_command(*args, "--out", str(broken), "--resume"), env=env, cwd=ROOT, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming ecg-resnet" in resumed.stdout
    a = json.loads((whole / "ecg-resnet" / "result.json").read_text())
    b = json.loads((broken / "ecg-resnet" / "result.json").read_text())
    assert b["complete"] and len(b["epochs"]) == 4
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
        assert [e[key] for e in a["epochs"]] == [e[key] for e in b["epochs"]], key
    final_a = torch.load(whole / "ecg-resnet" / "checkpoint.pt", weights_only=False)["model"]
    final_b = torch.load(checkpoint, weights_only=False)["model"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


# mnist-ace: Algorithm 1 (a frozen half in each phase) with adaptive dopri5 and the adjoint, whose step-size choices
# see the 1e-7 differences of a gradient averaged over two processes, hence the looser tolerances.
@pytest.mark.slow
@pytest.mark.parametrize("name, rel, atol", [("ecg-resnet", 1e-5, 1e-4), ("mnist-ace", 1e-4, 1e-3)])
def test_two_process_ddp_on_gloo_matches_one_process(tmp_path, name, rel, atol):
    args = [name, "--smoke", "--epochs", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = subprocess.run(torchrun + ["-m", "nodelib.experiments", "run", *args, "--device", "cpu", "--no-progress",
                                     "--out", str(tmp_path / "ddp")], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(_command(*args, "--out", str(tmp_path / "single")), env=env, cwd=ROOT,
                            capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    a = json.loads((tmp_path / "ddp" / f"{name}-smoke" / "result.json").read_text())
    b = json.loads((tmp_path / "single" / f"{name}-smoke" / "result.json").read_text())
    assert a["world_size"] == 2 and b["world_size"] == 1
    for ea, eb in zip(a["epochs"], b["epochs"]):
        assert ea["train_loss"] == pytest.approx(eb["train_loss"], rel=rel)
        assert ea["test_loss"] == pytest.approx(eb["test_loss"], rel=10 * rel)
    pa = torch.load(tmp_path / "ddp" / f"{name}-smoke" / "checkpoint.pt", weights_only=False)["model"]
    pb = torch.load(tmp_path / "single" / f"{name}-smoke" / "checkpoint.pt", weights_only=False)["model"]
    assert max(float((pa[k] - pb[k]).abs().max()) for k in pa) < atol


def test_an_existing_run_is_not_overwritten_silently(tmp_path, capsys):
    args = ["digits-resnet", "--epochs", "2", "--n-train", "64", "--n-test", "32", "--out", str(tmp_path)]
    assert run(*args) == 0
    with pytest.raises(SystemExit):
        run(*args)
    assert "pass --resume to continue it or --fresh" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(*args, "--lr", "0.5", "--resume")
    assert "other settings (lr)" in capsys.readouterr().err
    assert run(*args, "--resume") == 0  # already complete: nothing to do
    assert run(*args[:1], "--epochs", "3", *args[3:], "--resume") == 0  # extend by one epoch
    extended = json.loads((tmp_path / "digits-resnet" / "result.json").read_text())
    assert [e["epoch"] for e in extended["epochs"]] == [1, 2, 3] and extended["complete"]
    assert run(*args, "--fresh") == 0
    assert len(json.loads((tmp_path / "digits-resnet" / "result.json").read_text())["epochs"]) == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "mnist-odnet"], "did you mean mnist-odenet"),
        (["show", "imagenet-resnet"], "no experiment called 'imagenet-resnet'"),
        (["run", "mnist-odenet", "--epochs", "0"], "epochs must be a positive integer"),
        (["run", "mnist-odenet", "--resume", "--fresh"], "contradict"),
        (["run", "spiral-solvers", "--epohcs", "3"], "run spiral-solvers"),  # the subcommand's own usage
        (["run", "mnist-odenet", "--stem", "imagenet"], "invalid choice"),
        (["run", "mnist-odenet", "--solver", "rk4"], "expected a JSON object"),
        (["run", "digits-rknet", "--smoke", "--device", "cuda:7"], "cuda"),
    ],
)
def test_bad_requests_give_clear_errors(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path)] if args[0] == "run" else args)
    assert message in capsys.readouterr().err


def test_missing_data_says_where_it_was_looked_for(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run("ecg-odenet", "--data-dir", str(tmp_path), "--out", str(tmp_path / "runs"))
    assert "mitbih_train.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("mnist-resnet", "--data-dir", str(tmp_path), "--out", str(tmp_path / "runs"))
    assert "--download" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "mnist-resnet").exists()  # a failed start leaves nothing


def test_ecg_experiment_reads_real_csv_files(tmp_path):
    import numpy as np

    from nodelib.datasets import synthetic_heartbeats

    folder = tmp_path / "data" / "mitbih"
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 64, 1), ("test", 16, 2)):
        x, y = synthetic_heartbeats(n, seed=seed)
        np.savetxt(folder / f"mitbih_{split}.csv", np.concatenate([x[:, 0].numpy(), y.numpy()[:, None]], 1),
                   delimiter=",")
    assert run("ecg-resnet", "--epochs", "1", "--batch-size", "32", "--data-dir", str(tmp_path / "data"), "--out",
               str(tmp_path)) == 0
    result = json.loads((tmp_path / "ecg-resnet" / "result.json").read_text())
    assert result["data"]["train"] == 64 and "MIT-BIH CSV" in result["data"]["source"]


def test_list_show_and_help(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(registry.names()) + 1  # one line each
    assert main(["show", "ecg-odenet"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["epochs"] == 5 and shown["config"]["batch_size"] == 128 and "Facci" in shown["source"]
    assert shown["config"]["solver"]["method"] == "dopri5"  # the solver that will run, not "{}"
    assert main(["show", "cifar10-anodev2-resnet4-config1"]) == 0
    network = json.loads(capsys.readouterr().out)["config"]
    assert not {"width", "stem", "solver", "attention_lambda"} & set(network)  # only what the network uses
    with pytest.raises(SystemExit):
        main(["run", "anodev2-compare", "--help"])
    text = capsys.readouterr().out
    assert "--seeds" in text and "--milestones" in text and "(registered: 0,1,2,3,4)" in text


def test_options_change_exactly_the_settings_they_name():
    from nodelib.experiments.base import apply_options, config_parser

    experiment = registry.get("anodev2-compare")
    parser = config_parser(experiment.config, "test")
    config = apply_options(experiment.config, parser.parse_args(["--seeds", "3,4", "--patience", "none",
                                                                 "--no-augment", "--lr", "0.05"]))
    changed = {f.name for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(experiment.config,
                                                                                                 f.name)}
    assert changed == {"seeds", "patience", "augment", "lr"}
    assert config.seeds == (3, 4) and config.patience is None and config.augment is False


def test_a_run_does_not_change_the_matplotlib_backend(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    assert run("digits-resnet", "--smoke", "--epochs", "1", "--out", str(tmp_path)) == 0
    assert matplotlib.get_backend() == before


def test_resume_restores_the_learning_rate_schedule(tmp_path):
    """Drops after epochs 1 and 2: a run resumed after epoch 1 must know that one drop has happened."""
    config = dataclasses.replace(registry.get("digits-resnet").configuration(smoke=True), milestones=(1, 2),
                                 gamma=0.1, epochs=3)
    whole = run_classifier(config, Context(out=tmp_path / "whole", device="cpu", progress=False))
    run_classifier(dataclasses.replace(config, epochs=1), Context(out=tmp_path / "split", device="cpu",
                                                                  progress=False))
    resumed = run_classifier(config, Context(out=tmp_path / "split", device="cpu", progress=False, resume=True))
    lrs = [e["lr"] for e in whole["epochs"]]
    assert lrs == pytest.approx([config.lr * 0.1, config.lr * 0.01, config.lr * 0.01])
    assert [e["lr"] for e in resumed["epochs"]] == lrs
    assert [e["train_loss"] for e in resumed["epochs"]] == [e["train_loss"] for e in whole["epochs"]]


def test_balanced_accuracy_weighs_every_class_equally():
    """90 examples of class 0 all right, 10 of class 1 all wrong: accuracy 0.9, balanced accuracy 0.5."""
    from torch import nn

    class AlwaysZero(nn.Module):
        def forward(self, x):
            return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], dim=1)

    y = torch.cat([torch.zeros(90, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    out = accuracy_metrics(AlwaysZero(), torch.zeros(100, 1), y, 32, 2, torch.device("cpu"), World())
    assert out["test_accuracy"] == pytest.approx(0.9) and out["test_balanced_accuracy"] == pytest.approx(0.5)


def test_a_classifier_config_refuses_what_it_cannot_run():
    from nodelib.errors import RunError

    with pytest.raises(RunError, match="flips"):
        ClassifierConfig(data="cifar10", arch="resnet", flips=True)
    with pytest.raises(ValueError, match="did you mean odenet"):
        ClassifierConfig(data="cifar10", arch="odenett")
    with pytest.raises(ValueError, match="data set"):
        ClassifierConfig(data="imagenet", arch="resnet")


def test_the_paper_baselines_of_chapter_8_have_the_papers_sizes():
    """Sec. 3.1: ResNets of 6 and 20 residual blocks on MNIST and CIFAR-10; the CIFAR-10 one has Table 1's 1.6M
    parameters, and its GODE experiments use random crops without flips."""
    cifar = registry.get("cifar10-gode-resnet").config
    assert cifar.n_blocks == 20 and sum(p.numel() for p in _model(cifar).parameters()) == 1_613_706
    assert registry.get("mnist-gode-resnet").config.n_blocks == 6
    assert all(registry.get(f"cifar10-gode-{v}").config.flips is False for v in ("uniform", "clamped", "node",
                                                                                  "resnet"))


@requires_data("fashionmnist")
def test_a_fashion_mnist_classifier_trains_from_the_shared_files(tmp_path):
    result = run_classifier(dataclasses.replace(registry.get("fashionmnist-odenet").config, epochs=1, n_train=64,
                                                n_test=64, validation=32, batch_size=32,
                                                solver={"method": "rk4", "step_size": 0.5, "gradient": "backprop"}),
                            Context(out=tmp_path, device="cpu", progress=False))
    assert result["data"] == {"name": "fashionmnist", "source": result["data"]["source"], "train": 64,
                              "validation": 32, "test": 64}


@pytest.mark.skipif(not physionet_reachable(), reason="PhysioNet 2012 is neither under the data root nor reachable")
def test_a_comparison_run_in_parts_merges_into_the_one_run_at_once(tmp_path, capsys):
    """`merge` joins the parts of a comparison (seeds here and there) into the result one run of every seed gives,
    with the parts' folders beside it; it refuses a second merge into the same folder and a part of other code."""
    folders = {}
    for label, seeds in (("whole", "0,1"), ("p0", "0"), ("p1", "1")):
        assert run("gode-glm", "--smoke", "--seeds", seeds, "--out", str(tmp_path / label)) == 0
        folders[label] = tmp_path / label / "gode-glm-smoke"
        result = json.loads((folders[label] / "result.json").read_text())
        result["machine"]["revision"] = "abc1234"  # the parts of one clean commit (the test's tree may be dirty)
        (folders[label] / "result.json").write_text(json.dumps(result))
    assert main(["merge", "gode-glm", str(folders["p0"]), str(folders["p1"]), "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "gode-glm" / "result.json").read_text())
    whole = json.loads((folders["whole"] / "result.json").read_text())
    timing = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in timing} for r in merged["runs"]] == [
        {k: v for k, v in r.items() if k not in timing} for r in whole["runs"]]
    assert merged["config"] == whole["config"] and merged["claims"] == whole["claims"] and merged["complete"]
    assert merged["summary"]["poisson-gode"]["test_nll"] == pytest.approx(whole["summary"]["poisson-gode"]["test_nll"])
    assert merged["command"].startswith("python -m nodelib.experiments merge gode-glm")
    assert len(merged["parts"]) == 2 and "merged into" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["merge", "gode-glm", str(folders["p0"]), str(folders["p1"]), "--out", str(tmp_path / "m")])
    assert "merge into a new folder" in capsys.readouterr().err
    other = json.loads((folders["p1"] / "result.json").read_text())
    other["machine"]["revision"] = "def5678"
    (folders["p1"] / "result.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit):
        main(["merge", "gode-glm", str(folders["p0"]), str(folders["p1"]), "--out", str(tmp_path / "m2")])
    assert "must run the same code" in capsys.readouterr().err and not (tmp_path / "m2" / "gode-glm").exists()
