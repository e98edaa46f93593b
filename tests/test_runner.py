"""The full-experiment runner: every registered experiment at smoke size, kill-and-resume, DDP, clear errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nodelib.experiments import registry
from nodelib.experiments.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> int:
    return main(["run", *args, "--device", "cpu", "--no-progress"])


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_experiment_runs_at_smoke_size(name, tmp_path):
    experiment = registry.get(name)
    if getattr(experiment, "takes_data", False) and "NODELIB_DATA" not in os.environ:
        pytest.skip("needs the real PhysioNet files (NODELIB_DATA)")
    assert run(name, "--smoke", "--out", str(tmp_path)) == 0
    folder = tmp_path / f"{name}-smoke"  # smoke runs write beside, never into, the full run's folder
    result = json.loads((folder / "result.json").read_text())
    assert not list(folder.glob(".*")), "temporary files left behind"
    experiment = registry.get(name)
    if experiment.kind == "script":
        return
    if experiment.validation:  # the best epoch is chosen on held-out training images, never on the test set
        assert result["config"]["data"]["validation"] > 0 and "validation_accuracy" in result["epochs"][0]
        assert result["best_epoch"] >= 1 and (folder / "best.pt").is_file()
    from nodelib.classification import build_classifier
    from nodelib.utils import count_parameters

    assert result["complete"] and len(result["epochs"]) == experiment.smoke_epochs
    assert result["config"]["smoke"] and result["machine"]["device"] == "cpu"
    first = result["epochs"][0]
    passes = 2 if experiment.training == "alternating" else 1  # Algorithm 1: a pass on L_h, then one on L_a
    assert first["examples_per_second"] == pytest.approx(passes * result["config"]["data"]["train"] / first["seconds"])
    assert 0 <= first["test_accuracy"] <= 1 and first["peak_memory_mib"] > 0
    if experiment.arch == "resnet" or experiment.arch.startswith("anodev2-"):  # no solver: fixed steps
        assert first["nfe_forward"] == first["nfe_backward"] == 0
    elif experiment.solver.get("gradient", "adjoint") == "adjoint":
        assert first["nfe_forward"] > 0 and first["nfe_backward"] > 0  # adjoint: the backward pass solves too
    else:
        assert first["nfe_forward"] > 0 and first["nfe_backward"] == 0  # backprop through the solver's steps
    from nodelib.datasets import dataset_info

    info = dataset_info(experiment.data)
    model = build_classifier(experiment.arch, info.channels, info.n_classes, dims=info.dims, width=experiment.width,
                             stem_kind=experiment.stem, image_size=info.size, body_options=experiment.body or None,
                             t1=experiment.t1)
    assert result["parameters"] == count_parameters(model)
    assert (folder / "checkpoint.pt").is_file() and (folder / "curves.png").stat().st_size > 1000


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "nodelib.experiments", "run", *args, "--device", "cpu", "--no-progress"]


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    args = ["ecg-resnet", "--smoke", "--n-train", "2048", "--epochs", "4"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    subprocess.run(_command(*args, "--out", str(whole)), check=True, env=env, cwd=ROOT, capture_output=True)
    process = subprocess.Popen(_command(*args, "--out", str(broken)), env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint, partial_result = broken / "ecg-resnet-smoke" / "checkpoint.pt", broken / "ecg-resnet-smoke" / "result.json"
    deadline = time.monotonic() + 120
    while not partial_result.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)  # the result is written just after the checkpoint of the first epoch
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= killed_at < 4
    partial = json.loads(partial_result.read_text())
    # the kill may fall between the two writes of an epoch: the result lags the checkpoint by at most one epoch
    assert not partial["complete"] and len(partial["epochs"]) in (killed_at - 1, killed_at)

    resumed = subprocess.run(_command(*args, "--out", str(broken), "--resume"), env=env, cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming ecg-resnet after epoch {killed_at}" in resumed.stdout
    a = json.loads((whole / "ecg-resnet-smoke" / "result.json").read_text())
    b = json.loads((broken / "ecg-resnet-smoke" / "result.json").read_text())
    assert b["complete"] and len(b["epochs"]) == 4
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
        assert [e[key] for e in a["epochs"]] == [e[key] for e in b["epochs"]], key
    final_a = torch.load(whole / "ecg-resnet-smoke" / "checkpoint.pt", weights_only=False)
    final_b = torch.load(checkpoint, weights_only=False)
    assert all(torch.equal(final_a["model"][k], final_b["model"][k]) for k in final_a["model"])


# mnist-ace: Algorithm 1 (a frozen half in each phase) with adaptive dopri5 and the adjoint, whose step-size choices
# see the 1e-7 differences of a gradient averaged over two processes, hence the looser tolerances.
@pytest.mark.parametrize("name, rel, atol", [("ecg-resnet", 1e-5, 1e-4), ("mnist-ace", 1e-4, 1e-3)])
def test_two_process_ddp_on_gloo_matches_one_process(tmp_path, name, rel, atol):
    args = [name, "--smoke", "--epochs", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = subprocess.run(torchrun + ["-m", "nodelib.experiments", "run", *args, "--device", "cpu", "--no-progress",
                                     "--out", str(tmp_path / "ddp")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(_command(*args, "--out", str(tmp_path / "single")), env=env, cwd=ROOT, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    a = json.loads((tmp_path / "ddp" / f"{name}-smoke" / "result.json").read_text())
    b = json.loads((tmp_path / "single" / f"{name}-smoke" / "result.json").read_text())
    assert a["config"]["world_size"] == 2 and b["config"]["world_size"] == 1
    for ea, eb in zip(a["epochs"], b["epochs"]):
        assert ea["train_loss"] == pytest.approx(eb["train_loss"], rel=rel)
        assert ea["test_loss"] == pytest.approx(eb["test_loss"], rel=10 * rel)
    pa = torch.load(tmp_path / "ddp" / f"{name}-smoke" / "checkpoint.pt", weights_only=False)["model"]
    pb = torch.load(tmp_path / "single" / f"{name}-smoke" / "checkpoint.pt", weights_only=False)["model"]
    assert max(float((pa[k] - pb[k]).abs().max()) for k in pa) < atol


def test_an_existing_run_is_not_overwritten_silently(tmp_path, capsys):
    assert run("digits-resnet", "--smoke", "--out", str(tmp_path)) == 0
    with pytest.raises(SystemExit):
        run("digits-resnet", "--smoke", "--out", str(tmp_path))
    assert "pass --resume to continue it or --fresh" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("digits-resnet", "--smoke", "--lr", "0.5", "--out", str(tmp_path), "--resume")
    assert "other settings (lr)" in capsys.readouterr().err
    assert run("digits-resnet", "--smoke", "--out", str(tmp_path), "--resume") == 0  # already complete: nothing to do
    assert "already complete" in capsys.readouterr().out
    assert run("digits-resnet", "--smoke", "--out", str(tmp_path), "--resume", "--epochs", "3") == 0  # extend by one
    extended = json.loads((tmp_path / "digits-resnet-smoke" / "result.json").read_text())
    assert [e["epoch"] for e in extended["epochs"]] == [1, 2, 3] and extended["complete"]
    assert run("digits-resnet", "--smoke", "--out", str(tmp_path), "--fresh") == 0
    assert len(json.loads((tmp_path / "digits-resnet-smoke" / "result.json").read_text())["epochs"]) == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "mnist-odnet"], "no experiment called 'mnist-odnet'"),
        (["show", "imagenet-resnet"], "registered:"),
        (["run", "mnist-odenet", "--epochs", "0"], "--epochs must be >= 1"),
        (["run", "mnist-odenet", "--resume", "--fresh"], "contradict"),
        (["run", "spiral-solvers", "--epochs", "3"], "does not take --epochs"),
        (["run", "mnist-odenet", "--data", "imagenet"], "invalid choice"),
        (["run", "digits-rknet", "--smoke", "--batch-size", "3", "--device", "cuda:7"], "cuda"),
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


def test_ecg_experiment_reads_real_csv_files(tmp_path):
    import numpy as np

    from nodelib.datasets import synthetic_heartbeats

    folder = tmp_path / "data" / "mitbih"
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 64, 1), ("test", 16, 2)):
        x, y = synthetic_heartbeats(n, seed=seed)
        np.savetxt(folder / f"mitbih_{split}.csv", np.concatenate([x[:, 0].numpy(), y.numpy()[:, None]], 1), delimiter=",")
    assert run("ecg-resnet", "--epochs", "1", "--batch-size", "32", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path)) == 0
    result = json.loads((tmp_path / "ecg-resnet" / "result.json").read_text())
    assert result["config"]["data"]["train"] == 64 and "MIT-BIH CSV" in result["config"]["data"]["source"]


def test_list_and_show(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in registry.names())
    assert main(["show", "ecg-odenet"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["epochs"] == 5 and shown["batch_size"] == 128 and "Facci" in shown["source"]


def test_a_run_does_not_change_the_matplotlib_backend(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    assert run("digits-resnet", "--smoke", "--epochs", "1", "--out", str(tmp_path)) == 0
    assert matplotlib.get_backend() == before


# --- atomic writes, the learning-rate schedule on resume, balanced accuracy, smoke folders ------------------

def test_atomic_path_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    from nodelib.experiments._common import atomic_path, write_json_atomic

    target = tmp_path / "result.json"
    write_json_atomic(target, {"epoch": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"epoch": 2, "half')
            assert json.loads(target.read_text()) == {"epoch": 1}  # readers still see the old file
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind
    write_json_atomic(target, {"epoch": 2})
    assert json.loads(target.read_text()) == {"epoch": 2}


def test_resume_restores_the_learning_rate_schedule(tmp_path):
    """Drops after epochs 1 and 2: a run resumed after epoch 1 must know that one drop has happened."""
    from dataclasses import replace

    from nodelib.experiments.runner import RunOptions, run_classifier

    experiment = replace(registry.get("digits-resnet"), milestones=(1, 2), gamma=0.1, smoke_epochs=3)
    opts = dict(device="cpu", smoke=True, progress=False)
    whole = run_classifier(experiment, RunOptions(out=tmp_path / "whole", **opts))
    run_classifier(experiment, RunOptions(out=tmp_path / "split", epochs=1, **opts))
    resumed = run_classifier(experiment, RunOptions(out=tmp_path / "split", epochs=3, resume=True, **opts))
    lrs = [e["lr"] for e in whole["epochs"]]
    assert lrs == pytest.approx([experiment.lr * 0.1, experiment.lr * 0.01, experiment.lr * 0.01])
    assert [e["lr"] for e in resumed["epochs"]] == lrs
    assert [e["train_loss"] for e in resumed["epochs"]] == [e["train_loss"] for e in whole["epochs"]]


def test_balanced_accuracy_weighs_every_class_equally():
    """90 examples of class 0 all right, 10 of class 1 all wrong: accuracy 0.9, balanced accuracy 0.5."""
    from torch import nn

    from nodelib.experiments.runner import _evaluate, _World

    class AlwaysZero(nn.Module):
        def forward(self, x):
            return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], dim=1)

    y = torch.cat([torch.zeros(90, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    loss, accuracy, balanced = _evaluate(AlwaysZero(), (torch.zeros(100, 1), y), 32, _World(), torch.device("cpu"), 0, 2)
    assert accuracy == pytest.approx(0.9) and balanced == pytest.approx(0.5)


def test_smoke_and_full_runs_do_not_share_a_folder_and_a_failed_start_leaves_nothing(tmp_path, capsys):
    assert run("digits-resnet", "--smoke", "--out", str(tmp_path)) == 0
    assert (tmp_path / "digits-resnet-smoke" / "checkpoint.pt").is_file()
    assert not (tmp_path / "digits-resnet").exists()  # the full run's folder is untouched
    with pytest.raises(SystemExit):
        run("ecg-odenet", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert "mitbih_train.csv" in capsys.readouterr().err
    assert not (tmp_path / "ecg-odenet").exists()


def test_recorded_digits_results_describe_the_code_that_ships():
    """The shipped recordings were made with today's registry configuration and today's architectures."""
    from nodelib.classification import build_classifier
    from nodelib.datasets import dataset_info
    from nodelib.experiments import load_result
    from nodelib.utils import count_parameters

    for arch in ("resnet", "odenet", "rknet", "augmented"):
        recorded = load_result(f"digits-{arch}_cpu")
        experiment = registry.get(f"digits-{arch}")
        config = {k: v for k, v in recorded["config"].items() if k in experiment.to_dict() and k != "data"}
        expected = json.loads(json.dumps(experiment.to_dict()))  # tuples become lists, as in the JSON
        assert config == {k: expected[k] for k in config} and len(config) > 10
        assert recorded["config"]["data"]["name"] == experiment.data
        info = dataset_info(experiment.data)
        model = build_classifier(arch, info.channels, info.n_classes, dims=info.dims, width=experiment.width,
                                 stem_kind=experiment.stem)
        assert recorded["parameters"] == count_parameters(model)
