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

from torch import Tensor, nn

from ._impl.checks import check_positive_int
from ._impl.registry import Registry
from .augment import Augment
from .blocks import ODEBlock
from .config import SolverConfig
from .layers import ConvODEFunc, ConvResBlock, head, stem
from .nfe import EvalCounter

__all__ = ["BodySpec", "BODIES", "register_body", "NetworkSpec", "NETWORKS", "register_network", "Classifier",
           "build_classifier", "ADAPTIVE"]


@dataclass(frozen=True)
class BodySpec:
    """A registered body: how to build it, and the solver it uses unless told otherwise.

    ``build(width, dims=..., n_blocks=..., extra=..., solver=..., t1=..., **options)`` returns ``(body, channels,
    counter)``: the module between stem and head, the number of channels it hands the head, and the evaluation
    counter of its ODE block (``block.counter``; None for a body without one).
    """

    name: str
    description: str
    build: Callable[..., tuple[nn.Module, int, Optional[EvalCounter]]]
    solver: Optional[SolverConfig] = None  # None: the body has no ODE solver
    options: tuple[str, ...] = ()  # the keyword options of `build` a caller may set (build_classifier's body_options)


#: Every body :func:`build_classifier` can build, by name. A new architecture is one :func:`register_body`; the
#: chapters' modules register theirs (``"ace"`` in :mod:`nodelib.ace`, ``"gode"`` in :mod:`nodelib.gode`).
BODIES: Registry[BodySpec] = Registry("classifier body")
register_body = BODIES.register


def _resnet_body(width: int, *, dims: int, n_blocks: int, **_: Any) -> tuple[nn.Module, int, None]:
    return nn.Sequential(*[ConvResBlock(width, dims=dims) for _ in range(n_blocks)]), width, None


def _ode_body(extra_channels: bool) -> Callable[..., tuple[nn.Module, int, EvalCounter]]:
    def build(width: int, *, dims: int, solver: SolverConfig, t1: float, extra: int, **_: Any
              ) -> tuple[nn.Module, int, EvalCounter]:
        added = extra if extra_channels else 0
        channels = width + added
        block = ODEBlock(ConvODEFunc(channels, dims=dims), 0.0, float(t1), solver=solver)
        body = nn.Sequential(Augment(added), block) if extra_channels else nn.Sequential(block)
        return body, channels, block.counter

    return build


#: The adaptive solver of the ODE-Nets: dopri5 at rtol = atol = 1e-3, adjoint gradients.
ADAPTIVE = SolverConfig(method="dopri5", rtol=1e-3, atol=1e-3, gradient="adjoint")
register_body(BodySpec("resnet", "pre-activation residual blocks (six unless n_blocks says otherwise)", _resnet_body))
register_body(BodySpec("odenet", "one ODE block solved by dopri5, adjoint gradients", _ode_body(False), ADAPTIVE))
register_body(BodySpec("rknet", "the ODE block solved by RK4 (3/8 rule) with step 0.25, adjoint gradients",
                       _ode_body(False), SolverConfig(method="rk4", step_size=0.25, gradient="adjoint")))
register_body(BodySpec("augmented", "extra zero channels appended before the ODE block", _ode_body(True), ADAPTIVE))


@dataclass(frozen=True)
class NetworkSpec:
    """A registered whole network (no stem/body/head split): ``build(in_channels, n_classes, image_size)``.

    The module it returns has a ``counter`` attribute (its evaluation counter, or None) like :class:`Classifier`,
    and may have ``parameter_groups(weight_decay)`` for the optimiser.
    """

    name: str
    description: str
    build: Callable[[int, int, int], nn.Module]


#: Whole networks :func:`build_classifier` can build, by name (chapter 7's App. B networks, registered by
#: :mod:`nodelib.anodev2`).
NETWORKS: Registry[NetworkSpec] = Registry("classifier network")
register_network = NETWORKS.register


class Classifier(nn.Module):
    """``head(body(stem(x)))``; :attr:`counter` is the ODE block's evaluation counter (None for a ResNet)."""

    def __init__(self, arch: str, stem: nn.Module, body: nn.Module, head: nn.Module,
                 counter: Optional[EvalCounter], dims: int, in_channels: int) -> None:
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
        stem_kind: see :func:`nodelib.layers.stem`.
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
    front = stem(in_channels, width, stem_kind, dims=dims)
    if spec.solver is None:
        if solver:
            raise ValueError(f"a {arch} body has no ODE solver; leave solver=None")
        config = None
    else:
        config = SolverConfig.from_mapping(solver, base=spec.solver)
    body, channels, counter = spec.build(width, dims=dims, n_blocks=n_blocks, extra=extra, solver=config, t1=t1,
                                         **options)
    return Classifier(arch, front, body, head(channels, n_classes, dims=dims), counter, dims, in_channels)
