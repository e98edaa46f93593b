"""Fixed-step solves, nodelib against torchdiffeq: time per step, side by side, in one run.

    python -m nodelib.experiments.solver_speed
    python -m nodelib.experiments.solver_speed --threads 1 --repeats 9 --out runs/solver_speed.json

The field is a small MLP (``dim -> hidden -> dim``, tanh; 2 -> 32 -> 2 by default) on a batch of 256 states,
solved over [0, 1] with step 0.01 (100 steps) in float32. For each method the two packages solve the same
problem with the same number of evaluations (checked), forward only (under ``torch.no_grad``) and forward plus
``backward()`` (backpropagation through the steps). The measurements are interleaved: each repeat times
nodelib and torchdiffeq back to back (which goes first alternates), so that both see the same machine load.
The clock is the process's CPU time by default (``--clock cpu``): with one thread it counts the work done
and not the time the process waited for a core, so that other programs on a shared machine disturb it far
less than wall time (``--clock wall``). Reported per row: the median time per step of each package over the
repeats, their ratio (nodelib / torchdiffeq; below 1 means nodelib is faster), the ratio of the fastest
repeats, and the smallest and largest ratio of one repeat.

Pairs: ``euler``, ``midpoint`` (the same arithmetic in both), ``rk4`` (nodelib's classical RK4 against
torchdiffeq's ``rk4``, which is the 3/8 rule: four evaluations each) and ``rk38`` (nodelib's 3/8 rule
against the same). This is a benchmark, not a test: the numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

#: (nodelib's method, torchdiffeq's method) timed against each other
PAIRS = {"euler": ("euler", "euler"), "midpoint": ("midpoint", "midpoint"), "rk4": ("rk4", "rk4"),
         "rk38": ("rk38", "rk4")}
MODES = ("forward", "forward+backward")


class _Field(torch.nn.Module):
    """The MLP field, counting its evaluations."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, dim))
        self.calls = 0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(y)


def _solvers(field: _Field, y0: torch.Tensor, t: torch.Tensor, step: float, pair: tuple[str, str]
             ) -> dict[str, Callable[[], torch.Tensor]]:
    import torchdiffeq

    from nodelib import odeint

    ours, theirs = pair
    return {
        "nodelib": lambda: odeint(field, y0, t, method=ours, step_size=step),
        "torchdiffeq": lambda: torchdiffeq.odeint(field, y0, t, method=theirs, options={"step_size": step}),
    }


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def _time_once(solve: Callable[[], torch.Tensor], mode: str, field: _Field, inner: int,
               clock: Callable[[], float] = time.process_time) -> tuple[float, int]:
    """Seconds per solve (mean over ``inner`` solves) and evaluations per solve."""
    field.calls = 0
    start = clock()
    for _ in range(inner):
        if mode == "forward":
            with torch.no_grad():
                solve()
        else:
            field.zero_grad(set_to_none=True)
            solve()[-1].pow(2).mean().backward()
    elapsed = clock() - start
    return elapsed / inner, field.calls // inner


def measure(methods: list[str], *, dim: int = 2, hidden: int = 32, batch: int = 256, step: float = 0.01,
            repeats: int = 7, inner: int = 5, modes: tuple[str, ...] = MODES, seed: int = 0, clock: str = "cpu"
            ) -> list[dict[str, Any]]:
    """One row per (method, mode): median seconds per step of each package, the ratio and its spread."""
    torch.manual_seed(seed)
    field = _Field(dim, hidden)
    y0 = torch.randn(batch, dim)
    t = torch.tensor([0.0, 1.0])
    rows = []
    for method in methods:
        solvers = _solvers(field, y0, t, step, PAIRS[method])
        for mode in modes:
            for solve in solvers.values():  # warm-up: first-call costs outside the measurement
                _time_once(solve, mode, field, 1)
            per_solve: dict[str, list[float]] = {name: [] for name in solvers}
            nfe: dict[str, int] = {}
            order = list(solvers)
            for r in range(repeats):
                for name in order if r % 2 == 0 else order[::-1]:
                    seconds, nfe[name] = _time_once(solvers[name], mode, field, inner, CLOCKS[clock])
                    per_solve[name].append(seconds)
            if nfe["nodelib"] != nfe["torchdiffeq"]:
                raise RuntimeError(f"{method}: nodelib made {nfe['nodelib']} evaluations per solve and torchdiffeq "
                                   f"{nfe['torchdiffeq']}; the comparison per step needs the same grid")
            steps = round(1.0 / step)
            ratios = [a / b for a, b in zip(per_solve["nodelib"], per_solve["torchdiffeq"])]
            rows.append({
                "method": method, "torchdiffeq_method": PAIRS[method][1], "mode": mode, "steps": steps,
                "nfe_per_solve": nfe["nodelib"],
                "nodelib_us_per_step": 1e6 * statistics.median(per_solve["nodelib"]) / steps,
                "torchdiffeq_us_per_step": 1e6 * statistics.median(per_solve["torchdiffeq"]) / steps,
                "ratio": statistics.median(per_solve["nodelib"]) / statistics.median(per_solve["torchdiffeq"]),
                "ratio_fastest": min(per_solve["nodelib"]) / min(per_solve["torchdiffeq"]),
                "ratio_min": min(ratios), "ratio_max": max(ratios),
            })
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'method':9s} {'mode':17s} {'nodelib us/step':>16s} {'torchdiffeq us/step':>20s} {'ratio':>6s} "
             f"{'fastest':>8s}  range"]
    for r in rows:
        lines.append(f"{r['method']:9s} {r['mode']:17s} {r['nodelib_us_per_step']:16.1f} "
                     f"{r['torchdiffeq_us_per_step']:20.1f} {r['ratio']:6.2f} {r['ratio_fastest']:8.2f}  "
                     f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodelib.experiments.solver_speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="euler,midpoint,rk4,rk38", help=f"comma-separated, among {list(PAIRS)}")
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--step", type=float, default=0.01, help="step size over [0, 1]")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved measurements per row")
    parser.add_argument("--inner", type=int, default=5, help="solves per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="process CPU time (default; robust on a shared machine) or wall time")
    parser.add_argument("--device", default="cpu", help="only cpu is measured")
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run (tests)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    if not methods or any(m not in PAIRS for m in methods):
        parser.error(f"methods must be among {list(PAIRS)}, got {args.methods!r}")
    if args.device != "cpu":
        parser.error("this benchmark times the CPU (per-step overhead); --device must be cpu")
    for name in ("dim", "hidden", "batch", "repeats", "inner", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if not 0 < args.step <= 1:
        parser.error("--step must be in (0, 1]")
    if args.smoke:
        args.repeats, args.inner, args.step = 2, 1, 0.1
    torch.set_num_threads(args.threads)
    rows = measure(methods, dim=args.dim, hidden=args.hidden, batch=args.batch, step=args.step, repeats=args.repeats,
                   inner=args.inner, clock=args.clock)
    print(format_rows(rows))
    if args.out is not None:
        from nodelib.experiments._common import describe_machine, write_json_atomic

        write_json_atomic(args.out, {
            "experiment": "solver_speed",
            "command": " ".join(["python -m nodelib.experiments.solver_speed",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "config": {"methods": methods, "dim": args.dim, "hidden": args.hidden, "batch": args.batch,
                       "step": args.step, "repeats": args.repeats, "inner": args.inner, "clock": args.clock,
                       "threads": args.threads, "dtype": "float32",
                       "smoke": args.smoke},
            "machine": describe_machine(torch.device("cpu")),
            "rows": rows,
        })
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
