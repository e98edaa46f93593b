"""Training speed of ODE-Nets: torchdiffeq's eager solve against nodelib's fast path, same model, one run.

    python -m nodelib.experiments.gpu_speed --device cuda --out runs/gpu_speed.json

The model is torchdiffeq's MNIST example (chapter 5's ``mnist-*`` architectures: 576,778 parameters for the
ResNet, 208,266 for the ODE-Net), a batch of 128 generated 1x28x28 images, one SGD step per iteration. For each
configuration, both paths are timed in the same process, after warm-up (compilation happens there):

- ``resnet``: six residual blocks, eager against ``torch.compile``;
- ``euler``: Euler, step 0.05 (20 evaluations);  ``rk4``: torchdiffeq's rk4, step 0.25 (16 evaluations);
- ``dopri5``: rtol = atol = 1e-3, at initialisation; ``rk4-adjoint``, ``dopri5-adjoint``: the same with adjoint
  gradients (the fast path leaves adjoint blocks as they are, see :mod:`nodelib.fast`: these rows time the same
  eager model twice, a measure of the noise).

Reported per configuration and path: ms per iteration (median over the timed iterations), forward and
backward NFE per iteration, peak memory (CUDA: ``max_memory_allocated``), and the speed-up. ``--smoke`` runs
everything at toy size on the CPU (tests); CPU timings say nothing about a GPU.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from nodelib.nfe import backward_counted

CONFIGS: dict[str, dict[str, Any]] = {
    "resnet": {},
    "euler": {"method": "euler", "options": {"step_size": 0.05}, "adjoint": False},
    "rk4": {"method": "rk4", "options": {"step_size": 0.25}, "adjoint": False},
    "dopri5": {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "adjoint": False},
    "rk4-adjoint": {"method": "rk4", "options": {"step_size": 0.25}, "adjoint": True},
    "dopri5-adjoint": {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "adjoint": True},
}


def _time_path(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, warmup: int, iterations: int,
               device: torch.device) -> dict[str, Any]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    counter = getattr(model, "counter", None)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        backward_counted(torch.nn.functional.cross_entropy(model(x), y), counter)
        optimizer.step()

    for _ in range(warmup):
        step()
    if counter is not None:
        counter.reset()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    counts = counter.reset() if counter is not None else {"forward": 0, "backward": 0}
    return {
        "ms_per_iteration": 1000 * statistics.median(times),
        "nfe_forward": counts["forward"] / iterations, "nfe_backward": counts["backward"] / iterations,
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def measure(config: str, batch: int, warmup: int, iterations: int, device: torch.device, compile_mode: str | None,
        compile_backend: str | None) -> dict[str, Any]:
    from nodelib.classification import build_classifier
    from nodelib.fast import fast_ode_block
    from nodelib.utils import count_parameters

    torch.manual_seed(0)
    arch = "resnet" if config == "resnet" else "odenet"
    eager = build_classifier(arch, 1, 10, solver=CONFIGS[config] or None).to(device)
    fast: Any = copy.deepcopy(eager)
    if arch == "resnet":
        compile_kwargs: dict[str, Any] = {k: v for k, v in (("mode", compile_mode), ("backend", compile_backend)) if v}
        fast.body = torch.compile(fast.body, **compile_kwargs)
        how = "torch.compile of the six blocks"
    else:
        fast.body[0], how = fast_ode_block(fast.body[0], mode=compile_mode, backend=compile_backend)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)
    row: dict[str, Any] = {"config": config, "parameters": count_parameters(eager), "fast_path": how,
           "torchdiffeq": _time_path(eager, x, y, warmup, iterations, device),
           "nodelib_fast": _time_path(fast, x, y, warmup, iterations, device)}
    row["speedup"] = row["torchdiffeq"]["ms_per_iteration"] / row["nodelib_fast"]["ms_per_iteration"]
    return row


@dataclass(frozen=True)
class Config:
    """nodelib's fast path against torchdiffeq, same model, one process: every setting of the run."""

    configs: tuple[str, ...] = field(default=tuple(CONFIGS), metadata={"help": f"among {', '.join(CONFIGS)}"})
    batch: int = field(default=128, metadata={"help": "images per iteration"})
    warmup: int = field(default=5, metadata={"help": "iterations before timing"})
    iterations: int = field(default=50, metadata={"help": "timed iterations"})
    compile_mode: Optional[str] = field(default="reduce-overhead", metadata={
        "help": "torch.compile mode (reduce-overhead: CUDA graphs; none: the default)"})
    compile_backend: Optional[str] = field(default=None, metadata={"help": "torch.compile backend (none: inductor)"})

    def __post_init__(self) -> None:
        unknown = sorted(set(self.configs) - set(CONFIGS))
        if unknown or not self.configs:
            raise ValueError(f"configs must be among {', '.join(CONFIGS)}; got {', '.join(unknown) or 'none'}")
        if min(self.batch, self.iterations) < 1 or self.warmup < 0:
            raise ValueError("batch and iterations must be >= 1, warmup >= 0")


def run(config: Config, ctx: Any) -> dict[str, Any]:
    from nodelib.utils import get_device

    from ._common import header, write_json_atomic

    device = get_device(ctx.device)
    rows = []
    for name in config.configs:
        row = measure(name, config.batch, config.warmup, config.iterations, device, config.compile_mode,
                      config.compile_backend)
        rows.append(row)
        a, b = row["torchdiffeq"], row["nodelib_fast"]
        print(f"{name:15s} torchdiffeq {a['ms_per_iteration']:8.2f} ms  fast {b['ms_per_iteration']:8.2f} ms  "
              f"x{row['speedup']:5.2f}  NFE {b['nfe_forward']:.0f}/{b['nfe_backward']:.0f}  ({row['fast_path']})",
              flush=True)
    result = {**header("gpu-speed", config, ctx, device), "rows": rows}
    write_json_atomic(ctx.result_path, result)
    return result
