"""Chapter 2's full experiment: memory and time of three gradients as the number of solver steps grows.

    python -m nodelib.experiments.adjoint_memory --out nodelib/experiments/results/adjoint_memory_cpu.json
    python -m nodelib.experiments.adjoint_memory --device cuda --out nodelib/experiments/results/adjoint_memory_gpu.json

For each method (backpropagation through the solver, the adjoint, checkpointing every sqrt(N) steps) and
each number of RK4 steps N, a fresh Python process builds an MLP field, runs one forward and backward pass,
and reports the peak memory the pass added (process high-water mark on the CPU, PyTorch's peak allocation on
a GPU), the bytes autograd saved between forward and backward, the wall time and the function evaluations.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.adjoint_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the best available)")
    parser.add_argument("--steps", default="10,30,100,300,1000", help="comma-separated numbers of RK4 steps")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("runs/adjoint_memory.json"))
    parser.add_argument("--single", nargs=2, metavar=("METHOD", "N_STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from nodelib.utils import get_device

    try:
        device = get_device(args.device)
        steps = [int(s) for s in args.steps.split(",")]
        if any(n < 1 for n in steps):
            raise ValueError("every number of steps must be positive")
    except ValueError as err:
        parser.error(str(err))

    if args.single:  # child process: one measurement, printed as JSON
        method, n = args.single
        print(json.dumps(measure_one(method, int(n), device, args.dim, args.hidden, args.batch)))
        return 0

    from tqdm.auto import tqdm

    from ._common import describe_machine, write_json_atomic

    # On the CPU the peak is the process's resident-set high-water mark, which only tracks live memory if
    # freed blocks go back to the system. With glibc's defaults they often do not: autograd's backward thread
    # gets its own malloc arena, and after large blocks are freed the mmap threshold rises so that later ones
    # land on the heap, where freed memory stays resident. Identical runs then peaked anywhere between 180 and
    # 720 MiB. One arena and a fixed 64 KiB mmap threshold (every large tensor is mmapped and unmapped when
    # freed) make the mark follow live memory (seen: 156-213 MiB), at some cost in speed for all methods.
    child_env = dict(os.environ)
    if device.type == "cpu":
        child_env.update(MALLOC_ARENA_MAX="1", MALLOC_MMAP_THRESHOLD_="65536")
    rows = []
    jobs = [(m, n) for n in steps for m in METHODS]
    for method, n in tqdm(jobs, desc="adjoint memory"):
        cmd = [sys.executable, "-m", "nodelib.experiments.adjoint_memory", "--single", method, str(n), "--device", str(device),
               "--dim", str(args.dim), "--hidden", str(args.hidden), "--batch", str(args.batch)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=child_env)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {
        "experiment": "adjoint_memory",
        "command": " ".join(["python -m nodelib.experiments.adjoint_memory", *(argv if argv is not None else sys.argv[1:])]),
        "config": {"dim": args.dim, "hidden": args.hidden, "hidden_layers": 2, "batch": args.batch, "method": "rk4",
                   "dtype": "float32", "cpu_allocator": "glibc, MALLOC_ARENA_MAX=1, MALLOC_MMAP_THRESHOLD_=65536"},
        "machine": describe_machine(device),
        "rows": rows,
    }
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
