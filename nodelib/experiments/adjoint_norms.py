"""Chapter 2's adjoint norms: gradient error and backward NFE of the adjoint against the width of the network.

    python -m nodelib.experiments.adjoint_norms --out nodelib/experiments/results/adjoint_norms_cpu.json

The problem is the one where a wide network shows how the adjoint's backward solve measures its error
(torchdiffeq's own seminorm check uses it): a 2-d state ``x0 = (1, 2)``, the field
``f(t, x) = sin(20 t) * tanh(W2 tanh(W1 x + b1) + b2)`` with a hidden layer of width ``w`` (``5 w + 2``
parameters: 5,122 at ``w = 1024``), ``t`` from 0 to 1, and ``L = x1(1) + x2(1)``; dopri5 forward and backward
at ``rtol = atol = 1e-6``, in float64. For each width and seed it computes ``dL/dx0`` and ``dL/dθ`` with

- nodelib's adjoint with each backward norm: ``mixed`` (the default: state, adjoint and each parameter's
  gradient measured on its own), ``seminorm`` (parameter gradients left out of the error control) and ``rms``
  (one RMS over the whole augmented state: nodelib's behaviour before the norms were added);
- torchdiffeq's adjoint, with its default norm and with ``adjoint_options=dict(norm="seminorm")``,

and reports, against a reference, the relative error of ``dL/dx0`` and of all gradients together
(``(dL/dx0, dL/dθ)`` as one vector), and the evaluations of the forward and of the backward solve.
The reference is backpropagation through nodelib's dopri5 at ``rtol = atol = 1e-12``; its own error is
estimated against backpropagation through RK4 with step 1e-3 (an independent discretisation) and recorded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

VARIANTS = ("nodelib mixed", "nodelib seminorm", "nodelib rms", "torchdiffeq", "torchdiffeq seminorm")


class OscillatingField(nn.Module):
    """``sin(20 t) * tanh(W2 tanh(W1 x + b1) + b2)``, counting its evaluations.

    The weights are drawn in float32 whatever ``torch``'s default dtype (a float64 default draws other numbers
    from the same seed), so that a chapter that works in float64 meets the recorded fields; cast with
    ``.double()``.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        f32 = torch.float32
        self.net = nn.Sequential(nn.Linear(2, width, dtype=f32), nn.Tanh(), nn.Linear(width, 2, dtype=f32), nn.Tanh())
        self.calls = 0

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        self.calls += 1
        return self.net(x) * torch.sin(20 * t)


def _gradients(field: OscillatingField, x0: Tensor, solve: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    x = x0.detach().requires_grad_(True)
    params = list(field.parameters())
    grads = torch.autograd.grad(solve(x)[-1].sum(), [x, *params])
    return grads[0].reshape(-1), torch.cat([g.reshape(-1) for g in grads])


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def measure_width(width: int, seed: int, tol: float = 1e-6, variants: tuple[str, ...] = VARIANTS,
                  reference_tol: float = 1e-12, check_reference: bool = True) -> dict[str, Any]:
    """Errors and NFE of every variant for one width and seed: ``{"rows": [one per variant], "reference_error_x0",
    "reference_error_all"}`` (the reference's distance to the RK4 check; None without ``check_reference``)."""
    import torchdiffeq

    from nodelib import odeint
    from nodelib.adjoint import AdjointStats, odeint_adjoint

    torch.manual_seed(seed)
    field = OscillatingField(width).double()
    x0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ref = _gradients(field, x0, lambda x: odeint(field, x, t, rtol=reference_tol, atol=reference_tol))
    check = _gradients(field, x0, lambda x: odeint(field, x, t, method="rk4", step_size=1e-3)) if check_reference else None
    rows = []
    for variant in variants:
        package, _, norm = variant.partition(" ")
        stats: Optional[AdjointStats] = None
        start = time.perf_counter()
        field.calls = 0
        counts = {"forward": 0}

        def solve(x: Tensor) -> Tensor:
            nonlocal stats
            if package == "nodelib":
                stats = AdjointStats()
                ys = odeint_adjoint(field, x, t, rtol=tol, atol=tol, adjoint_norm=norm or "mixed", stats=stats)
                assert isinstance(ys, Tensor)
                return ys
            options = dict(norm="seminorm") if norm == "seminorm" else None
            out = torchdiffeq.odeint_adjoint(field, x, t, rtol=tol, atol=tol, adjoint_options=options)
            counts["forward"] = field.calls
            return out

        g_x0, g_all = _gradients(field, x0, solve)
        seconds = time.perf_counter() - start
        if stats is not None:
            forward_nfe, backward_nfe = stats.forward_nfe, stats.backward_nfe
        else:
            forward_nfe, backward_nfe = counts["forward"], field.calls - counts["forward"]
        rows.append({"width": width, "parameters": sum(p.numel() for p in field.parameters()), "seed": seed,
                     "variant": variant, "error_x0": _rel(g_x0, ref[0]), "error_all": _rel(g_all, ref[1]),
                     "forward_nfe": forward_nfe, "backward_nfe": backward_nfe, "seconds": seconds})
    return {"rows": rows, "reference_error_x0": None if check is None else _rel(ref[0], check[0]),
            "reference_error_all": None if check is None else _rel(ref[1], check[1])}


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'width':>6s} {'seed':>4s} {'variant':22s} {'rel. error dL/dx0':>18s} {'all gradients':>14s} "
             f"{'backward NFE':>13s} {'forward NFE':>12s}"]
    for r in rows:
        lines.append(f"{r['width']:6d} {r['seed']:4d} {r['variant']:22s} {r['error_x0']:18.2e} {r['error_all']:14.2e} "
                     f"{r['backward_nfe']:13d} {r['forward_nfe']:12d}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Config:
    """The adjoint's error norms against the network's width: every setting of the run."""

    widths: tuple[int, ...] = field(default=(16, 64, 256, 1024, 4096), metadata={"help": "hidden widths"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds of the initialisation"})
    tol: float = field(default=1e-6, metadata={"help": "rtol = atol of the forward and backward solves"})
    threads: int = field(default=1, metadata={"help": "torch threads"})

    def __post_init__(self) -> None:
        if not self.widths or not self.seeds or min(self.widths) < 1 or min(self.seeds) < 0:
            raise ValueError("widths must be >= 1 and seeds >= 0")
        if not 0 < self.tol < 1:
            raise ValueError("tol must be in (0, 1)")


def run(config: Config, ctx: Any) -> dict[str, Any]:
    from ._common import header, write_json_atomic

    if ctx.device not in (None, "cpu"):
        raise ValueError("this experiment runs on the CPU in float64 (the errors do not depend on the device)")
    torch.set_num_threads(config.threads)
    rows, references = [], []
    print(format_rows([]), flush=True)
    for width in config.widths:
        for seed in config.seeds:
            measured = measure_width(width, seed, config.tol)
            rows.extend(measured["rows"])
            references.append({"width": width, "seed": seed, "error_x0": measured["reference_error_x0"],
                               "error_all": measured["reference_error_all"]})
            print(format_rows(measured["rows"]).split("\n", 1)[1], flush=True)
    result = {**header("adjoint-norms", config, ctx, torch.device("cpu")),
              "setup": {"dtype": "float64", "x0": [1.0, 2.0], "t": [0.0, 1.0],
                        "field": "sin(20 t) * tanh(W2 tanh(W1 x + b1) + b2)", "loss": "x1(1) + x2(1)",
                        "method": "dopri5", "reference": "backprop through nodelib dopri5 at rtol = atol = 1e-12",
                        "reference_check": "backprop through nodelib rk4, step 1e-3"},
              "references": references, "rows": rows}
    write_json_atomic(ctx.result_path, result)
    return result
