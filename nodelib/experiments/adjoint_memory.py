"""Chapter 2's full experiment: memory and time of three gradients as the number of solver steps grows.

    python -m nodelib.experiments run adjoint-memory
    python -m nodelib.experiments run adjoint-memory --device cuda

For each method (backpropagation through the solver, the adjoint, checkpointing every sqrt(N) steps) and
each number of RK4 steps N, a fresh Python process builds an MLP field, runs one forward and backward pass,
and reports the peak memory the pass added (process high-water mark on the CPU, PyTorch's peak allocation on
a GPU), the bytes autograd saved between forward and backward, the wall time and the function evaluations.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch

METHODS = ("backprop", "adjoint", "checkpointed")


def measure_one(method: str, n_steps: int, device: torch.device, dim: int, hidden: int, batch: int) -> dict:
    from nodelib import odeint, seed_everything
    from nodelib.adjoint import AdjointStats, odeint_adjoint, odeint_checkpointed
    from nodelib.blocks import MLPField
    from nodelib.memory import peak_memory, saved_tensor_bytes

    seed_everything(0)
    field = MLPField(dim, hidden=hidden, n_hidden=2).to(device)
    z0 = torch.randn(batch, dim, device=device)
    t = torch.tensor([0.0, 1.0], device=device)
    every = max(1, round(math.sqrt(n_steps)))
    adjoint_stats = AdjointStats()

    def solve(steps: int):
        h = 1.0 / steps
        if method == "backprop":
            return odeint(field, z0, t, method="rk4", step_size=h, return_stats=True)
        if method == "adjoint":
            return odeint_adjoint(field, z0, t, method="rk4", step_size=h, stats=adjoint_stats), None
        return odeint_checkpointed(field, z0, t, method="rk4", step_size=h, checkpoint_every=every, return_stats=True)

    def step(steps: int):
        field.zero_grad()
        (ys, stats), saved = saved_tensor_bytes(lambda: solve(steps))
        ys[-1].pow(2).mean().backward()
        return stats, saved

    step(2)  # warm-up: load kernels and thread pools outside the measurement
    start = time.perf_counter()
    (stats, saved), peak = peak_memory(lambda: step(n_steps), device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    nfe = adjoint_stats.forward_nfe + adjoint_stats.backward_nfe if method == "adjoint" else stats.nfe
    return {"method": method, "n_steps": n_steps, "peak_bytes": peak, "saved_bytes": saved, "seconds": elapsed, "nfe": nfe,
            "checkpoint_every": every if method == "checkpointed" else None}


@dataclass(frozen=True)
class Config:
    """Chapter 2's memory experiment: every setting of the run."""

    steps: tuple[int, ...] = field(default=(10, 30, 100, 300, 1000), metadata={"help": "numbers of RK4 steps"})
    dim: int = field(default=32, metadata={"help": "size of the state"})
    hidden: int = field(default=256, metadata={"help": "width of the MLP field's two hidden layers"})
    batch: int = field(default=256, metadata={"help": "states solved at once"})

    def __post_init__(self) -> None:
        if not self.steps or min(self.steps) < 1 or min(self.dim, self.hidden, self.batch) < 1:
            raise ValueError("steps must be positive numbers, dim, hidden and batch positive integers")


def run(config: Config, ctx: Any) -> dict[str, Any]:
    """Measure every method at every number of steps, each in a fresh process; write and return the result."""
    from tqdm.auto import tqdm

    from nodelib.utils import get_device

    from ._common import header, write_json_atomic

    device = get_device(ctx.device)
    # On the CPU the peak is the process's resident-set high-water mark, which only tracks live memory if
    # freed blocks go back to the system. With glibc's defaults they often do not: autograd's backward thread
    # gets its own malloc arena, and after large blocks are freed the mmap threshold rises so that later ones
    # land on the heap, where freed memory stays resident, and identical runs peak at very different heights.
    # One arena and a fixed 64 KiB mmap threshold (every large tensor is mmapped and unmapped when freed) make
    # the mark follow live memory, at some cost in speed for all methods.
    child_env = dict(os.environ)
    if device.type == "cpu":
        child_env.update(MALLOC_ARENA_MAX="1", MALLOC_MMAP_THRESHOLD_="65536")
    rows = []
    jobs = [(m, n) for n in config.steps for m in METHODS]
    for method, n in tqdm(jobs, desc="adjoint memory", disable=not ctx.progress):
        cmd = [sys.executable, "-m", "nodelib.experiments.adjoint_memory", "--single", method, str(n), "--device",
               str(device), "--dim", str(config.dim), "--hidden", str(config.hidden), "--batch", str(config.batch)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=child_env)
        if out.returncode != 0:
            raise RuntimeError(f"the measurement of {method} with {n} steps failed:\n{out.stderr[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {**header("adjoint-memory", config, ctx, device), "model": {"hidden_layers": 2, "method": "rk4",
              "dtype": "float32", "cpu_allocator": "glibc, MALLOC_ARENA_MAX=1, MALLOC_MMAP_THRESHOLD_=65536"},
              "rows": rows}
    write_json_atomic(ctx.result_path, result)
    return result


def _child(argv: list[str]) -> int:
    """One measurement in this fresh process, printed as JSON (what :func:`run` starts for each point)."""
    import argparse

    from nodelib.utils import get_device

    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.adjoint_memory")
    parser.add_argument("--single", nargs=2, metavar=("METHOD", "N_STEPS"), required=True)
    parser.add_argument("--device", default=None)
    for name in ("dim", "hidden", "batch"):
        parser.add_argument(f"--{name}", type=int, required=True)
    args = parser.parse_args(argv)
    method, n = args.single
    print(json.dumps(measure_one(method, int(n), get_device(args.device), args.dim, args.hidden, args.batch)))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
