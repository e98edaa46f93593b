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

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

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


@dataclass(frozen=True)
class Config:
    """Fixed-step solves of nodelib against torchdiffeq's, same field and grid: every setting of the run."""

    methods: tuple[str, ...] = field(default=("euler", "midpoint", "rk4", "rk38"), metadata={
        "help": f"among {', '.join(PAIRS)}"})
    dim: int = field(default=2, metadata={"help": "size of the state"})
    hidden: int = field(default=32, metadata={"help": "width of the MLP field"})
    batch: int = field(default=256, metadata={"help": "states solved at once"})
    step: float = field(default=0.01, metadata={"help": "step size over [0, 1]"})
    repeats: int = field(default=7, metadata={"help": "interleaved measurements per row"})
    inner: int = field(default=5, metadata={"help": "solves per measurement"})
    threads: int = field(default=1, metadata={"help": "torch threads"})
    clock: Literal["cpu", "wall"] = field(default="cpu", metadata={
        "help": "process CPU time (robust on a shared machine) or wall time"})

    def __post_init__(self) -> None:
        if not self.methods or any(m not in PAIRS for m in self.methods):
            raise ValueError(f"methods must be among {list(PAIRS)}, got {self.methods}")
        for name in ("dim", "hidden", "batch", "repeats", "inner", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 < self.step <= 1:
            raise ValueError("step must be in (0, 1]")


def run(config: Config, ctx: Any) -> dict[str, Any]:
    from nodelib.experiments._common import header, write_json_atomic

    if ctx.device not in (None, "cpu"):
        raise ValueError("this benchmark times the CPU (per-step overhead); the device must be cpu")
    torch.set_num_threads(config.threads)
    rows = measure(list(config.methods), dim=config.dim, hidden=config.hidden, batch=config.batch, step=config.step,
                   repeats=config.repeats, inner=config.inner, clock=config.clock)
    print(format_rows(rows))
    result = {**header("solver-speed", config, ctx, torch.device("cpu")), "dtype": "float32", "rows": rows}
    write_json_atomic(ctx.result_path, result)
    return result
