"""ODE-Nets for classification (chapter 5): ResNet, ODE-Net, RK-Net and augmented ODE-Net on images and signals.

One architecture family serves every data set of the seeds, in 1-D (ECG heartbeats) and 2-D (digits, MNIST,
SVHN, CIFAR-10). A classifier is three stages:

1. a *stem* of downsampling convolutions that turns the input into ``width`` feature maps;
2. a *body* that transforms the feature maps without changing their shape: six residual blocks (ResNet),
   or one ODE block whose vector field is GroupNorm-ReLU-conv-GroupNorm-ReLU-conv-GroupNorm with the time
   appended to the input of each convolution as an extra channel (Jhin et al. 2021, Tables 1, 12, 13;
   Facci & Zurlo 2022, Figs. 16-17; Chen et al. 2018's MNIST model);
3. a *head*: GroupNorm, ReLU, global average pooling and a linear layer.

The ODE-Net solves the body with adaptive Dormand-Prince, the RK-Net with fixed-step fourth-order Runge-Kutta;
both are differentiated with the adjoint method, as in Jhin et al. (2021). The augmented ODE-Net appends
``extra`` zero channels before the ODE block (Dupont et al. 2019).

:func:`build_classifier` builds any of them; the parameter counts the seeds state are reproduced exactly
(tests): 182,853 and 59,333 for Facci & Zurlo's ECG ResNet and ODE-Net, 576,778 and 208,266 for the MNIST
ResNet and ODE-Net of torchdiffeq's example.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from ._impl.checks import check_positive_int
from ._impl.registry import Registry
from .augment import Augment
from .blocks import ODEBlock
from .config import SolverConfig
from .nfe import NFECounter

STEMS = ("chen", "small")


@dataclass(frozen=True)
class BodySpec:
    """A registered body: how to build it, and the solver it uses unless told otherwise.

    ``build(dims, width, n_blocks=..., extra=..., solver=..., t1=...)`` returns ``(body, channels, counter)``:
    the module between stem and head, the number of channels it hands the head, and the NFE counter of its ODE
    block (None for a body without one).
    """

    name: str
    description: str
    build: Callable[..., tuple[nn.Module, int, Optional[NFECounter]]]
    solver: Optional[SolverConfig] = None  # None: the body has no ODE solver
    options: tuple[str, ...] = ()  # the keyword options of `build` a caller may set (build_classifier's body_options)


#: Every body :func:`build_classifier` can build, by name. A new architecture is one :func:`register_body`.
BODIES: Registry[BodySpec] = Registry("classifier body")
register_body = BODIES.register


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest number of groups ``<= max_groups`` that divides ``channels``.

    64 channels give the seeds' ``GroupNorm(32, 64)``; 69 (64 plus 5 augmented) give 23 groups of 3.
    """
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def _conv(dims: int) -> type[nn.Module]:
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (signals) or 2 (images), got {dims!r}")
    return nn.Conv1d if dims == 1 else nn.Conv2d


class ConcatConv(nn.Module):
    """A convolution that sees the time as one extra input channel, constant over space: ``conv([t; x])``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = _conv(dims)(in_channels + 1, out_channels, kernel_size, padding=padding)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        time_channel = x[:, :1].mul(0).add(t)  # same shape, dtype and device as one channel of x
        return self.conv(torch.cat([time_channel, x], dim=1))


class ConvODEFunc(nn.Module):
    """The vector field of the ODE block: GN-ReLU-ConcatConv-GN-ReLU-ConcatConv-GN (3x3 or width-3 kernels)."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.norm1 = group_norm(channels)
        self.conv1 = ConcatConv(dims, channels, channels)
        self.norm2 = group_norm(channels)
        self.conv2 = ConcatConv(dims, channels, channels)
        self.norm3 = group_norm(channels)
        self.relu = nn.ReLU()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        out = self.conv1(t, self.relu(self.norm1(x)))
        out = self.conv2(t, self.relu(self.norm2(out)))
        return self.norm3(out)


class ConvResBlock(nn.Module):
    """A pre-activation residual block, ``x + conv(ReLU(GN(conv(ReLU(GN(x))))))``, convolutions without bias."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        conv = _conv(dims)
        self.gn1 = group_norm(channels)
        self.conv1 = conv(channels, channels, 3, padding=1, bias=False)
        self.gn2 = group_norm(channels)
        self.conv2 = conv(channels, channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.gn1(x)))
        out = self.conv2(self.relu(self.gn2(out)))
        return x + out


def stem(dims: int, in_channels: int, width: int = 64, kind: str = "chen") -> nn.Sequential:
    """The downsampling convolutions in front of the body.

    ``"chen"``: conv 3 (no padding), then two stride-2 convs of kernel 4 with GroupNorm-ReLU between (the stem of
    torchdiffeq's MNIST example and of Facci & Zurlo's ECG networks: 28x28 -> 6x6, 187 -> 46). ``"small"``: a
    padded conv 3 and one stride-2 conv (8x8 digits -> 4x4), for inputs too small for three convolutions.
    """
    conv = _conv(dims)
    if kind == "chen":
        return nn.Sequential(
            conv(in_channels, width, 3, 1), group_norm(width), nn.ReLU(inplace=True),
            conv(width, width, 4, 2, 1), group_norm(width), nn.ReLU(inplace=True),
            conv(width, width, 4, 2, 1),
        )
    if kind == "small":
        return nn.Sequential(
            conv(in_channels, width, 3, 1, 1), group_norm(width), nn.ReLU(inplace=True),
            conv(width, width, 4, 2, 1),
        )
    raise ValueError(f"stem must be one of {STEMS}, got {kind!r}")


def head(dims: int, channels: int, n_classes: int) -> nn.Sequential:
    """GroupNorm, ReLU, global average pooling, flatten and a linear layer to ``n_classes`` logits."""
    pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d((1, 1))
    return nn.Sequential(group_norm(channels), nn.ReLU(inplace=True), pool, nn.Flatten(), nn.Linear(channels, n_classes))


def _resnet_body(dims: int, width: int, *, n_blocks: int, **_: Any) -> tuple[nn.Module, int, None]:
    return nn.Sequential(*[ConvResBlock(dims, width) for _ in range(n_blocks)]), width, None


def _ode_body(extra_channels: int) -> Callable[..., tuple[nn.Module, int, NFECounter]]:
    def build(dims: int, width: int, *, solver: SolverConfig, t1: float, extra: int, **_: Any
              ) -> tuple[nn.Module, int, NFECounter]:
        added = extra if extra_channels else 0
        channels = width + added
        counter = NFECounter(ConvODEFunc(dims, channels))
        block = ODEBlock(counter, 0.0, float(t1), solver=solver)
        body = nn.Sequential(Augment(added), block) if extra_channels else nn.Sequential(block)
        return body, channels, counter

    return build


_ADAPTIVE = SolverConfig(method="dopri5", rtol=1e-3, atol=1e-3, gradient="adjoint")
register_body(BodySpec("resnet", "six pre-activation residual blocks", _resnet_body))
register_body(BodySpec("odenet", "one ODE block solved by dopri5, adjoint gradients", _ode_body(0), _ADAPTIVE))
register_body(BodySpec("rknet", "the ODE block solved by RK4 (3/8 rule) with step 0.25, adjoint gradients",
                       _ode_body(0), SolverConfig(method="rk4", step_size=0.25, gradient="adjoint")))
register_body(BodySpec("augmented", "extra zero channels appended before the ODE block", _ode_body(1), _ADAPTIVE))


def _ace_body(dims: int, width: int, *, solver: SolverConfig, t1: float, **_: Any) -> tuple[nn.Module, int, NFECounter]:
    from .ace import ACEConvBody  # chapter 6's model; imported here so that nodelib.ace may import this module

    body = ACEConvBody(dims, width, solver, t1)
    return body, width, body.counter


register_body(BodySpec("ace", "ACE-ODE-Net: state and elementwise attention co-evolving (dopri5, adjoint)", _ace_body,
                       _ADAPTIVE))


def _gode_body(dims: int, width: int, *, solver: SolverConfig, t1: float, n_basis: int = 8, degree: int = 1,
               knots: str = "clamped", n_layers: int = 2, init: str = "independent", **_: Any
               ) -> tuple[nn.Module, int, NFECounter]:
    from .gode import GODEField  # chapter 8's model

    counter = NFECounter(GODEField(width, n_basis, degree, t1, knots, n_layers=n_layers, dims=dims, init=init))
    return nn.Sequential(ODEBlock(counter, 0.0, float(t1), solver=solver)), width, counter


register_body(BodySpec("gode", "Neural-GODE: (GN-ReLU-convt) x 2 with B-spline kernels, Euler step 0.05, backprop",
                       _gode_body, SolverConfig(method="euler", step_size=0.05, gradient="backprop"),
                       options=("n_basis", "degree", "knots", "n_layers", "init")))



@dataclass(frozen=True)
class NetworkSpec:
    """A registered whole network (no stem/body/head split): ``build(in_channels, n_classes, image_size)``.

    The module it returns has a ``counter`` attribute (its NFE counter, or None) like :class:`Classifier`, and
    may have ``parameter_groups(weight_decay)`` for the optimiser.
    """

    name: str
    description: str
    build: Callable[[int, int, int], nn.Module]


#: Whole networks :func:`build_classifier` can build, by name (chapter 7's App. B networks).
NETWORKS: Registry[NetworkSpec] = Registry("classifier network")
register_network = NETWORKS.register


def _anodev2(net: str, schedule: str) -> Callable[[int, int, int], nn.Module]:
    def build(in_channels: int, n_classes: int, image_size: int) -> nn.Module:
        from .anodev2 import anodev2_network  # chapter 7's module

        return anodev2_network(net, schedule, in_channels, n_classes, image_size)

    return build


_ANODEV2_TEXT = {"baseline": "the residual network", "config1": "ANODEV2 configuration 1 (z and θ: 5 Euler steps)",
                 "config2": "ANODEV2 configuration 2 (θ: 10 steps, z: 2 steps with θ(0), θ(1))",
                 "frozen": "the frozen-θ ablation (z: 2 steps with θ(0); Table 4's Neural ODE)"}
for _net, _title in (("alexnet", "AlexNet"), ("resnet4", "ResNet-4"), ("resnet10", "ResNet-10")):
    for _schedule, _text in _ANODEV2_TEXT.items():
        register_network(NetworkSpec(f"anodev2-{_net}-{_schedule}", f"{_title} of Zhang et al. 2019, App. B: {_text}",
                                     _anodev2(_net, _schedule)))

#: The registered architectures' names (kept for code that lists them).
ARCHITECTURES = tuple(BODIES)
#: The solver each architecture uses unless told otherwise.
DEFAULT_SOLVERS: dict[str, SolverConfig] = {name: spec.solver for name, spec in BODIES.items() if spec.solver}


class Classifier(nn.Module):
    """``head(body(stem(x)))``; :attr:`counter` counts the ODE block's function evaluations (None for a ResNet)."""

    def __init__(self, arch: str, stem: nn.Module, body: nn.Module, head: nn.Module,
                 counter: Optional[NFECounter], dims: int, in_channels: int) -> None:
        super().__init__()
        self.arch, self.dims, self.in_channels = arch, dims, in_channels
        self.stem, self.body, self.head = stem, body, head
        self.counter = counter

    def forward(self, x: Tensor) -> Tensor:
        expected = 2 + self.dims
        if x.dim() != expected or x.shape[1] != self.in_channels:
            layout = "(B, C, L)" if self.dims == 1 else "(B, C, H, W)"
            raise ValueError(f"expected a batch of shape {layout} with C = {self.in_channels}, got {tuple(x.shape)}")
        return self.head(self.body(self.stem(x)))

    def features(self, x: Tensor) -> Tensor:
        """The feature maps that enter the head (after the body), e.g. to look at what the flow did."""
        return self.body(self.stem(x))


def build_classifier(
    arch: str,
    in_channels: int,
    n_classes: int,
    *,
    dims: int = 2,
    width: int = 64,
    stem_kind: str = "chen",
    n_blocks: int = 6,
    extra: int = 5,
    solver: Union[SolverConfig, Mapping[str, Any], None] = None,
    t1: float = 1.0,
    image_size: Optional[int] = None,
    body_options: Optional[Mapping[str, Any]] = None,
) -> Any:
    """Build a classifier whose body is one of :data:`BODIES` (``"resnet"``, ``"odenet"``, ``"rknet"``, ...), or
    one of the whole networks of :data:`NETWORKS` (``"anodev2-resnet4-config1"``, ...; these need ``image_size``
    and ignore ``dims``, ``width``, ``stem_kind``, ``n_blocks`` and ``extra``).

    Args:
        arch: the body's registered name.
        in_channels, n_classes: input channels (1 for MNIST and ECG, 3 for SVHN/CIFAR-10) and classes.
        dims: 1 for signals ``(B, C, L)``, 2 for images ``(B, C, H, W)``.
        width: feature channels after the stem (64 in every seed).
        stem_kind: see :func:`stem`.
        n_blocks: residual blocks of the ResNet (6 in the seeds).
        extra: zero channels appended by the augmented ODE-Net (5, following Dupont et al. 2019).
        solver: changes to the body's default :class:`~nodelib.config.SolverConfig` (a SolverConfig replaces it;
            a dict changes single settings, e.g. ``{"gradient": "backprop", "rtol": 1e-6}``).
        t1: the end of the integration interval ``[0, t1]``.
        image_size: the side of the (square) images, for :data:`NETWORKS` whose head depends on it.
        body_options: options of the body that has them, e.g. ``{"n_basis": 4, "degree": 1, "knots": "uniform"}``
            for ``"gode"`` (its :attr:`BodySpec.options` names them; any other key is an error).
    """
    if arch in NETWORKS:
        if body_options:
            raise ValueError(f"{arch} is a whole network; it takes no body_options")
        if solver:
            raise ValueError(f"{arch} takes fixed steps; leave solver empty")
        if image_size is None:
            raise ValueError(f"{arch} needs image_size (the side of the square input images)")
        return NETWORKS[arch].build(in_channels, n_classes, image_size)
    for name, value in (("in_channels", in_channels), ("n_classes", n_classes), ("width", width), ("n_blocks", n_blocks)):
        check_positive_int(name, value)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if not (isinstance(t1, (int, float)) and math.isfinite(t1) and t1 > 0):
        raise ValueError(f"t1 must be a positive finite number, got {t1!r}")
    spec = BODIES.lookup(arch)
    options = dict(body_options or {})
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(f"the {arch} body takes no option {', '.join(map(repr, unknown))}; its options are "
                         f"{', '.join(spec.options) or 'none'}")
    front = stem(dims, in_channels, width, stem_kind)
    if spec.solver is None:
        if solver:
            raise ValueError(f"a {arch} body has no ODE solver; leave solver=None")
        config = None
    else:
        config = SolverConfig.from_mapping(solver, base=spec.solver)
    body, channels, counter = spec.build(dims, width, n_blocks=n_blocks, extra=extra, solver=config, t1=t1, **options)
    return Classifier(arch, front, body, head(dims, channels, n_classes), counter, dims, in_channels)
