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

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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


def run(config: str, batch: int, warmup: int, iterations: int, device: torch.device, compile_mode: str | None,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.gpu_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda or cuda:N (default: the best available)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, among {', '.join(CONFIGS)}")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--compile-mode", default="reduce-overhead", help="torch.compile mode (reduce-overhead: CUDA graphs)")
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (default: inductor)")
    parser.add_argument("--smoke", action="store_true", help="toy size on the CPU: batch 4, 1 warm-up, 2 iterations, aot_eager")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_speed.json"))
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown or not configs:
        parser.error(f"configs must be among {', '.join(CONFIGS)}; got {', '.join(unknown) or 'none'}")
    if args.smoke:
        args.device, args.batch, args.warmup, args.iterations = "cpu", 4, 1, 2
        args.compile_mode, args.compile_backend = None, "aot_eager"
    if min(args.batch, args.iterations) < 1 or args.warmup < 0:
        parser.error("--batch and --iterations must be >= 1, --warmup >= 0")
    from nodelib.utils import get_device

    from ._common import describe_machine, write_json_atomic

    try:
        device = get_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    rows = []
    for config in configs:
        row = run(config, args.batch, args.warmup, args.iterations, device, args.compile_mode, args.compile_backend)
        rows.append(row)
        a, b = row["torchdiffeq"], row["nodelib_fast"]
        print(f"{config:15s} torchdiffeq {a['ms_per_iteration']:8.2f} ms  fast {b['ms_per_iteration']:8.2f} ms  "
              f"x{row['speedup']:5.2f}  NFE {b['nfe_forward']:.0f}/{b['nfe_backward']:.0f}  ({row['fast_path']})", flush=True)
    write_json_atomic(args.out, {
        "experiment": "gpu_speed",
        "command": " ".join(["python -m nodelib.experiments.gpu_speed", *(argv if argv is not None else sys.argv[1:])]),
        "config": {"batch": args.batch, "warmup": args.warmup, "iterations": args.iterations,
                   "compile_mode": args.compile_mode, "compile_backend": args.compile_backend},
        "machine": describe_machine(device), "rows": rows,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
