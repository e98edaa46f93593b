"""The one training loop of nodelib: every chapter, experiment and sweep trains through :func:`fit`.

A model is trained for a number of *epochs*; an epoch is a pass over ``batches(epoch)`` for every *phase* of a
:class:`Strategy`, then an evaluation:

- :class:`Joint`: one phase, one optimiser over the trainable parameters, the task loss plus an optional
  penalty;
- :class:`Alternating`: Algorithm 1 of Jhin et al. (2021), chapter 6: a phase that trains one set of
  parameters on the task loss with the other frozen, then a phase that trains the other set on the task loss
  plus a penalty (per epoch, or per mini-batch).

After each epoch ``validate(model)`` returns the validation metrics and the run keeps the parameters of the
best epoch by the ``select`` metric, which never comes from the test set (``test(model)`` is recorded beside
it, for the report). A non-finite selection metric (an AUC with no positive case among the validation
examples) is an error that says so, or, with ``fallback``, the run is selected by another validation metric
and says which; it is never silently ignored. ``patience`` stops a run whose selection metric has not improved
for that many epochs; a run that stops before that happens is flagged ``still_improving`` (its best epoch was
too recent to call the run finished), and the verdicts of :mod:`nodelib.claims` take that into account.

Checkpoints (``checkpoint=PATH``) are written atomically after every epoch and hold everything a resumed run
needs to end bit for bit where an uninterrupted one ends (provided the batches of an epoch depend only on the
seed and the epoch: ``seed`` reseeds PyTorch's generator at the start of each epoch). ``diagnostics`` are
callables run after each epoch whose numbers join the epoch's record (chapter 6 records the norm of the
attention parameters and how far the attention moves). :func:`make_optimizer` and :func:`make_scheduler` are
the one optimiser and schedule factory.

:func:`train` is the same loop seen step by step (chapters 3 and 4: a loss per step, no validation), and
:func:`fit_windows` chapter 3's protocol on top of it.
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._impl.atomic import atomic_path
from ._impl.checks import check_positive_int
from .errors import RunError, SelectionUndefined

__all__ = ["make_optimizer", "make_scheduler", "frozen", "Phase", "Joint", "Alternating", "Strategy",
           "SelectionUndefined", "FitResult", "fit", "History", "train", "fit_windows", "train_latent_ode"]

OPTIMIZERS = ("sgd", "adam", "rmsprop")


# --- optimisers and schedules ---------------------------------------------------------------------------------

def make_optimizer(params: Any, name: str = "adam", lr: float = 1e-3, *, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimiser ``name`` (``"sgd"`` with momentum, ``"adam"`` or ``"rmsprop"``) over ``params`` (a list of
    parameters, or parameter groups)."""
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be a positive number, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    params = list(params)
    if not params:
        raise ValueError("the optimiser has no parameters to train")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, milestones: Sequence[int] = (), gamma: float = 0.1
                   ) -> torch.optim.lr_scheduler.MultiStepLR:
    """The learning rate multiplied by ``gamma`` after each epoch in ``milestones`` (none: constant)."""
    steps = sorted(int(m) for m in milestones)
    if any(m < 1 for m in steps):
        raise ValueError(f"milestones are epochs >= 1, got {list(milestones)}")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, gamma)


@contextmanager
def frozen(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Parameters with ``requires_grad`` off inside the block (restored after it)."""
    params = list(params)
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


# --- strategies -----------------------------------------------------------------------------------------------

@dataclass
class Phase:
    """One kind of optimiser step: which optimiser, which parameters it leaves frozen, what it adds to the loss."""

    name: str
    optimizer: torch.optim.Optimizer
    frozen: list[nn.Parameter] = field(default_factory=list)
    penalty: Optional[Callable[[], Tensor]] = None

    def step(self, loss: Callable[[], Tensor], *, backward: Optional[Callable[[], ContextManager[Any]]] = None,
             clip_grad_norm: Optional[float] = None) -> float:
        """One optimiser step on ``loss() + penalty()`` with the phase's frozen parameters frozen (the loop's step,
        on its own: a chapter can show what one phase of Algorithm 1 moves). Returns the task loss."""
        with frozen(self.frozen):
            task = loss()
            total = task + self.penalty() if self.penalty is not None else task
            self.optimizer.zero_grad(set_to_none=True)
            with backward() if backward is not None else nullcontext():
                total.backward()
            if clip_grad_norm is not None:
                params = [p for group in self.optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
            self.optimizer.step()
        return float(task.detach())


class Strategy:
    """How an epoch trains: its phases, and whether they alternate per epoch or per mini-batch."""

    phases: list[Phase]
    alternate: str = "epoch"

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def state_dict(self) -> dict[str, Any]:
        return {p.name: p.optimizer.state_dict() for p in self.phases}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for p in self.phases:
            p.optimizer.load_state_dict(state[p.name])

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [p.optimizer for p in self.phases]


class Joint(Strategy):
    """One optimiser over everything, on ``task loss + penalty()`` (no penalty: the task loss alone)."""

    def __init__(self, optimizer: torch.optim.Optimizer, penalty: Optional[Callable[[], Tensor]] = None) -> None:
        self.phases = [Phase("joint", optimizer, [], penalty)]


class Alternating(Strategy):
    """Alternate two optimisers, each with the other's parameters frozen (Algorithm 1 of Jhin et al. 2021).

    Phase ``"h"`` trains ``first`` (all parameters but ``second``) on the task loss; phase ``"a"`` trains
    ``second`` on the task loss plus ``penalty()``. With ``alternate="epoch"`` an epoch is a pass of ``"h"``
    steps then a pass of ``"a"`` steps (Algorithm 1); with ``"batch"`` both steps are taken on each mini-batch.
    Each phase has its own optimiser, so neither phase's momentum moves the other's parameters, and a frozen
    set is left bit for bit unchanged.
    """

    def __init__(self, first: Sequence[nn.Parameter], second: Sequence[nn.Parameter], *, optimizer: str = "adam",
                 lr: float = 1e-3, lr_second: Optional[float] = None, weight_decay: float = 0.0,
                 penalty: Optional[Callable[[], Tensor]] = None, alternate: str = "epoch") -> None:
        if alternate not in ("epoch", "batch"):
            raise ValueError(f"alternate must be 'epoch' or 'batch', got {alternate!r}")
        first, second = list(first), list(second)
        if not first or not second:
            raise ValueError("alternating training needs two non-empty sets of parameters (for ACE: θ_g, the "
                             "attention ODE's, and all the others)")
        if {id(p) for p in first} & {id(p) for p in second}:
            raise ValueError("the two sets of parameters of alternating training overlap")
        self.alternate = alternate
        self.phases = [
            Phase("h", make_optimizer(first, optimizer, lr, weight_decay=weight_decay), second, None),
            Phase("a", make_optimizer(second, optimizer, lr if lr_second is None else lr_second,
                                      weight_decay=weight_decay), first, penalty),
        ]


# --- results --------------------------------------------------------------------------------------------------

@dataclass
class FitResult:
    """What :func:`fit` did. ``history`` holds one record per epoch (training loss, validation and test metrics,
    diagnostics, NFE per iteration, seconds, learning rate); ``best`` is the record of the selected epoch."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = math.nan
    selected_by: str = ""
    still_improving: bool = False
    stopped_early: bool = False
    seconds: float = 0.0
    note: str = ""

    @property
    def best(self) -> dict[str, Any]:
        return self.history[self.best_epoch - 1] if self.best_epoch else {}

    @property
    def epochs(self) -> int:
        return len(self.history)

    def record(self, **extra: Any) -> dict[str, Any]:
        """A flat record for a result file: selection, every metric of the best epoch (``*_at_best``), the final
        test metrics, plateau flags, seconds and the history; ``extra`` (variant, seed, parameters) first."""
        out: dict[str, Any] = dict(extra)
        out.update(best_epoch=self.best_epoch, selected_by=self.selected_by, best_score=self.best_score,
                   epochs=self.epochs, still_improving=self.still_improving, stopped_early=self.stopped_early,
                   seconds=self.seconds)
        for key, value in self.best.items():
            if key.startswith(("validation_", "test_")):
                out[f"{key}_at_best"] = value
        if self.history:
            out.update({f"final_{k}": v for k, v in self.history[-1].items() if k.startswith("test_")})
        if self.note:
            out["note"] = self.note
        out["history"] = self.history
        return out


def _better(score: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(best):
        return True
    return score > best + min_delta if mode == "max" else score < best - min_delta


def _split_loss(out: Any) -> tuple[Tensor, Mapping[str, Any]]:
    if isinstance(out, tuple):
        loss, extras = out
        return loss, extras
    return out, {}


def fit(
    model: Optional[nn.Module],
    batches: Callable[[int], Iterable[Any]],
    loss: Callable[[Any, Any], Any],
    strategy: Strategy,
    *,
    epochs: int,
    validate: Optional[Callable[[Any], Mapping[str, float]]] = None,
    select: Optional[str] = None,
    mode: str = "max",
    fallback: Optional[str] = None,
    fallback_mode: str = "min",
    patience: Optional[int] = None,
    min_delta: float = 0.0,
    test: Optional[Callable[[Any], Mapping[str, float]]] = None,
    diagnostics: Sequence[Callable[[Any], Mapping[str, float]]] = (),
    schedulers: Sequence[Any] = (),
    seed: Optional[int] = None,
    checkpoint: Optional[Union[str, Path]] = None,
    resume: bool = False,
    run_config: Optional[Mapping[str, Any]] = None,
    restore_best: bool = True,
    net: Optional[Any] = None,
    counter: Optional[Any] = None,
    clip_grad_norm: Optional[float] = None,
    backward_context: Optional[Callable[[], ContextManager[Any]]] = None,
    on_step: Optional[Callable[[int, float], None]] = None,
    on_epoch: Optional[Callable[[dict[str, Any]], None]] = None,
    reduce: Optional[Callable[[list[float]], list[float]]] = None,
    main_process: bool = True,
    progress: bool = True,
    batch_progress: bool = False,
    n_batches: Optional[int] = None,
    desc: str = "training",
) -> FitResult:
    """Train ``model`` for at most ``epochs`` epochs and return the :class:`FitResult` (the model is left with the
    parameters of the best epoch when ``restore_best`` and a selection metric are given).

    Args:
        model: the module whose parameters are trained and checkpointed (None for a bare loss, as in :func:`train`).
        batches: ``batches(epoch)`` (epochs counted from 0) gives the epoch's mini-batches, in an order that
            depends only on the epoch (and the run's seed) if resuming is to be exact.
        loss: ``loss(net, batch)`` returns the task loss, or ``(loss, extras)`` where ``extras`` maps names to
            numbers averaged over the epoch (weighted by ``extras["n"]`` when present), e.g. the accuracy.
        strategy: :class:`Joint` or :class:`Alternating`.
        epochs: the largest number of epochs.
        validate: ``validate(model)`` returns validation metrics (keys starting ``validation_``); runs under
            ``torch.no_grad()`` with the model in eval mode.
        select, mode: the validation metric that picks the best epoch, and whether higher (``"max"``) or lower
            (``"min"``) is better. Default: the first key ``validate`` returns.
        fallback, fallback_mode: the metric that selects instead when ``select`` is undefined from the first
            epoch on (e.g. ``"validation_loss"``); without one, an undefined metric raises
            :class:`SelectionUndefined`.
        patience, min_delta: stop after ``patience`` epochs without an improvement larger than ``min_delta``.
        test: ``test(model)`` returns test metrics (keys starting ``test_``), recorded, never used to select.
        diagnostics: callables ``d(model)`` whose numbers join the epoch's record (no gradient).
        schedulers: learning-rate schedules stepped after every epoch.
        seed: reseeds PyTorch's generator with ``seed * 100003 + epoch`` at the start of each epoch.
        checkpoint, resume, run_config: the checkpoint file (written after every epoch, atomically); continue
            from it with ``resume``; ``run_config`` must then equal the one stored (except its ``"epochs"``).
        net: what ``loss`` calls (e.g. a DistributedDataParallel wrapper of ``model``); default ``model``.
        counter: an evaluation counter (``phase(name)`` and ``reset()``), e.g. an ODE block's: the epoch's record
            gets the mean forward and backward NFE per optimiser step.
        clip_grad_norm: clip the global gradient norm before each step.
        backward_context: a factory of a context manager entered around ``backward()``.
        on_step: called with the global step number and the loss after every optimiser step.
        on_epoch: called with the epoch's record before the checkpoint is written (it may add entries).
        reduce: sums a list of numbers over processes (distributed training); the loop's epoch sums go through it.
        main_process: only the main process writes checkpoints.
        progress, batch_progress, n_batches, desc: progress bars over epochs and (optionally) mini-batches.

    Raises:
        FloatingPointError: the loss became NaN or infinite (with the epoch and step).
        SelectionUndefined: the selection metric is undefined and there is no fallback.
    """
    check_positive_int("epochs", epochs)
    if mode not in ("max", "min") or fallback_mode not in ("max", "min"):
        raise ValueError(f"mode and fallback_mode must be 'max' or 'min', got {mode!r} and {fallback_mode!r}")
    if patience is not None:
        check_positive_int("patience", patience)
    if (select or fallback) and validate is None:
        raise ValueError("select and fallback name validation metrics: pass validate")
    if resume and checkpoint is None:
        raise ValueError("resume needs the checkpoint file")
    net = model if net is None else net
    path = Path(checkpoint) if checkpoint is not None else None
    result = FitResult(selected_by=select or "")
    best_state: Optional[dict[str, Any]] = None
    since_best = 0
    first_epoch = 0
    if resume and path is not None and path.exists():
        state = torch.load(path, map_location=_device_of(model), weights_only=False)
        stored = dict(state.get("run_config") or {})
        wanted = dict(run_config or {})
        differ = sorted(k for k in set(stored) | set(wanted) if k != "epochs" and stored.get(k) != wanted.get(k))
        if differ:
            raise RunError(f"{path} was written by a run with other settings ({', '.join(differ)}); resume with "
                           "the same settings, or start afresh")
        if model is not None:
            model.load_state_dict(state["model"])
        strategy.load_state_dict(state["strategy"])
        for schedule, saved in zip(schedulers, state["schedulers"]):
            schedule.load_state_dict(saved)
        result = FitResult(**state["result"])
        best_state, since_best, first_epoch = state["best_state"], state["since_best"], len(result.history)
    started = time.perf_counter() - result.seconds
    step = sum(int(row.get("steps", 0)) for row in result.history)
    bar = tqdm(range(first_epoch, epochs), desc=desc, disable=not (progress and main_process) or batch_progress,
               leave=False)
    for epoch in bar:
        if patience is not None and since_best >= patience:
            break
        if seed is not None:
            torch.manual_seed(seed * 100003 + epoch)
        if model is not None:
            model.train()
        epoch_started = time.perf_counter()
        sums: dict[str, float] = {}
        steps_before = step
        nfe = [0.0, 0.0]

        def one_step(phase: Phase, batch: Any) -> None:
            nonlocal step
            captured: dict[str, Any] = {}

            def task_loss() -> Tensor:
                task, extras = _split_loss(loss(net, batch))
                value = float(task.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"the loss became {value} at epoch {epoch + 1}, step {step + 1}; lower "
                                             "the learning rate or check the data")
                captured["extras"] = extras
                return task

            backward = backward_context if backward_context is not None else (
                (lambda: counter.phase("backward")) if counter is not None else None)
            value = phase.step(task_loss, backward=backward, clip_grad_norm=clip_grad_norm)
            extras = captured["extras"]
            step += 1
            if counter is not None:
                counts = counter.reset()
                nfe[0] += counts.get("forward", 0)
                nfe[1] += counts.get("backward", 0)
            weight = float(extras.get("n", 1))
            prefixes = [""] if len(strategy.phases) == 1 else ["", f"{phase.name}_"]  # all phases, and this one
            for prefix in prefixes:
                for key, number in (("loss", value), *((k, v) for k, v in extras.items() if k != "n")):
                    sums[prefix + key] = sums.get(prefix + key, 0.0) + float(number) * weight
                sums[prefix + "n"] = sums.get(prefix + "n", 0.0) + weight
            if on_step is not None:
                on_step(step, value)

        inner = None
        if batch_progress and main_process and progress:
            inner = tqdm(total=n_batches * (len(strategy.phases) if strategy.alternate == "epoch" else 1)
                         if n_batches else None, desc=f"{desc} epoch {epoch + 1}/{epochs}", leave=False)
        if strategy.alternate == "epoch":
            for phase in strategy.phases:
                with frozen(phase.frozen):
                    for batch in batches(epoch):
                        one_step(phase, batch)
                        if inner is not None:
                            inner.update()
        else:
            for batch in batches(epoch):
                for phase in strategy.phases:
                    with frozen(phase.frozen):
                        one_step(phase, batch)
                if inner is not None:
                    inner.update()
        if inner is not None:
            inner.close()
        for schedule in schedulers:
            schedule.step()
        names = sorted(sums)
        totals = reduce([sums[k] for k in names]) if reduce is not None else [sums[k] for k in names]
        sums = dict(zip(names, totals))
        row: dict[str, Any] = {"epoch": epoch + 1}
        phase_prefixes = [f"{p.name}_" for p in strategy.phases] if len(strategy.phases) > 1 else []
        for prefix in ["", *phase_prefixes]:
            weight = sums.get(prefix + "n", 0.0)
            for key in names:
                own = key.startswith(prefix) and not any(key.startswith(p) for p in phase_prefixes if p != prefix)
                if prefix == "" and any(key.startswith(p) for p in phase_prefixes):
                    continue
                if own and key != prefix + "n" and weight:
                    row[f"train_{key}"] = sums[key] / weight
        row["steps"] = step - steps_before
        row["seconds"] = time.perf_counter() - epoch_started
        if counter is not None:
            row["nfe_forward"] = nfe[0] / max(row["steps"], 1)
            row["nfe_backward"] = nfe[1] / max(row["steps"], 1)
        row["lr"] = strategy.phases[0].optimizer.param_groups[0]["lr"]
        evaluated = _evaluate(model, validate, test, diagnostics)
        if counter is not None:
            counter.reset()
        row.update(evaluated)
        if validate is not None:
            chosen = select or next(iter(k for k in evaluated if k.startswith("validation_")), "")
            if chosen not in row:
                raise ValueError(f"the selection metric {chosen!r} is not among validate's metrics "
                                 f"{sorted(k for k in evaluated if k.startswith('validation_'))}")
            result.selected_by = result.selected_by or chosen
            by_fallback = result.selected_by != chosen
            if not by_fallback and not math.isfinite(float(row[chosen])):
                undefined = float(row[chosen])
                if fallback is None:
                    raise SelectionUndefined(
                        f"the validation metric {chosen!r} is {undefined} at epoch {epoch + 1} (an AUC is undefined "
                        "when the validation set holds one class only, e.g. no deaths among its patients); fix the "
                        "split (stratify it), or pass fallback='validation_loss' to select by that instead")
                if result.history:
                    raise SelectionUndefined(f"the validation metric {chosen!r} became {undefined} at epoch "
                                             f"{epoch + 1} after being defined: a run cannot switch metrics half-way")
                if fallback not in row:
                    raise SelectionUndefined(f"the validation metric {chosen!r} is {undefined} and the fallback "
                                             f"{fallback!r} is not among validate's metrics")
                result.selected_by, by_fallback = fallback, True
                result.note = f"selected by {fallback}: {chosen} was {undefined} on the validation set"
            key, direction = (result.selected_by, fallback_mode) if by_fallback else (chosen, mode)
            score = float(row[key])
            if not math.isfinite(score):
                raise SelectionUndefined(f"the selection metric {key!r} is {score} at epoch {epoch + 1}")
            if _better(score, result.best_score, direction, min_delta):
                result.best_score, result.best_epoch, since_best = score, epoch + 1, 0
                if model is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
            row["improved"] = since_best == 0
        result.history.append(row)
        result.seconds = time.perf_counter() - started
        if on_epoch is not None:
            on_epoch(row)
        if path is not None and main_process:
            with atomic_path(path) as tmp:
                torch.save({"model": model.state_dict() if model is not None else None,
                            "strategy": strategy.state_dict(), "schedulers": [s.state_dict() for s in schedulers],
                            "result": {**result.__dict__, "history": list(result.history)}, "best_state": best_state,
                            "since_best": since_best, "run_config": dict(run_config or {})}, tmp)
        if progress and main_process and not batch_progress:
            shown = {k: f"{row[k]:.4g}" for k in ("train_loss", result.selected_by) if k in row}
            bar.set_postfix(shown, refresh=False)
    if validate is not None:
        plateaued = patience is not None and since_best >= patience
        result.stopped_early = plateaued and result.epochs < epochs
        result.still_improving = not plateaued if patience is not None else result.best_epoch == result.epochs
    result.seconds = time.perf_counter() - started
    if restore_best and best_state is not None and model is not None:
        model.load_state_dict(best_state)
    if model is not None:
        model.eval()
    return result


def _device_of(model: Optional[nn.Module]) -> torch.device:
    if model is None:
        return torch.device("cpu")
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _evaluate(model: Optional[nn.Module], validate: Any, test: Any, diagnostics: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if validate is None and test is None and not diagnostics:
        return out
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    with torch.no_grad():
        for what, function in (("validation", validate), ("test", test)):
            if function is None:
                continue
            for key, value in dict(function(model)).items():
                if not key.startswith(f"{what}_"):
                    raise ValueError(f"{what}(model) must return keys starting with '{what}_', got {key!r}")
                out[key] = float(value)
        for function in diagnostics:
            out.update({k: (float(v) if isinstance(v, (int, float, Tensor)) else v) for k, v in dict(function(model)).items()})
    if model is not None:
        model.train(was_training)
    return out


# --- the loop step by step: chapters 3 and 4 ------------------------------------------------------------------

@dataclass
class History:
    """What happened during :func:`train`: per-step loss and time, plus whatever the callbacks recorded."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time since the start, at each step
    evals: dict[str, list[float]] = field(default_factory=dict)
    eval_steps: list[int] = field(default_factory=list)
    snapshots: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


def train(
    loss_fn: Callable[[int], Tensor],
    optimizer: torch.optim.Optimizer,
    n_steps: int,
    *,
    eval_fn: Optional[Callable[[], dict[str, float]]] = None,
    eval_every: int = 0,
    snapshot_fn: Optional[Callable[[], Any]] = None,
    snapshot_every: int = 0,
    clip_grad_norm: Optional[float] = None,
    backward_context: Optional[Callable[[], ContextManager[Any]]] = None,
    on_step_end: Optional[Callable[[int], None]] = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Run ``n_steps`` optimizer steps on ``loss_fn(step)`` through :func:`fit` and return the :class:`History`.

    Args:
        loss_fn: computes the loss of step ``step`` (1, 2, ...; draw the mini-batch inside, from a seeded generator).
        optimizer: any ``torch.optim`` optimizer over the model's parameters.
        n_steps: number of optimizer steps.
        eval_fn, eval_every: every ``eval_every`` steps (and after the last), record ``eval_fn()``'s numbers.
        snapshot_fn, snapshot_every: likewise keep ``snapshot_fn()`` (e.g. a predicted trajectory) for plots.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        backward_context: a factory of a context manager entered around ``loss.backward()``, e.g.
            ``lambda: counter.phase("backward")`` to count an adjoint's evaluations as backward ones.
        on_step_end: called with the step number after each optimizer step (e.g. to read and reset counters).
        progress: show a tqdm progress bar (in notebooks, a widget where available).

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite (with the step at which it happened).
    """
    check_positive_int("n_steps", n_steps)
    for name, every in (("eval_every", eval_every), ("snapshot_every", snapshot_every)):
        if every < 0:
            raise ValueError(f"{name} must be >= 0 (0 turns it off), got {every}")
    history = History()
    start = time.perf_counter()

    def after_step(step: int, value: float) -> None:
        if on_step_end is not None:
            on_step_end(step)
        history.steps.append(step)
        history.losses.append(value)
        history.seconds.append(time.perf_counter() - start)
        last = step == n_steps
        if eval_fn is not None and eval_every and (step % eval_every == 0 or last):
            history.eval_steps.append(step)
            for key, v in eval_fn().items():
                history.evals.setdefault(key, []).append(float(v))
        if snapshot_fn is not None and snapshot_every and (step % snapshot_every == 0 or last):
            history.snapshots.append((step, snapshot_fn()))

    try:
        fit(None, lambda epoch: range(1, n_steps + 1), lambda net, step: loss_fn(step), Joint(optimizer), epochs=1,
            clip_grad_norm=clip_grad_norm, backward_context=backward_context, on_step=after_step, progress=progress,
            batch_progress=True, n_batches=n_steps, desc=desc)
    except FloatingPointError as err:
        step = len(history.steps) + 1
        raise FloatingPointError(f"the loss became non-finite at step {step}; lower the learning rate or check the "
                                 f"data ({err})") from None
    return history


def fit_windows(
    field: Callable[[Tensor, Tensor], Tensor],
    params: list[Tensor],
    t: Tensor,
    z: Tensor,
    *,
    epochs: int,
    window: int = 10,
    batch: int = 50,
    lr: float = 1e-3,
    solve: Optional[Callable[..., Tensor]] = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "fit",
    snapshot_every: int = 0,
) -> History:
    """Fit a vector field to one evenly sampled trajectory on short windows (chapter 3's protocol).

    Each epoch shuffles all windows of ``window`` consecutive samples and takes one RMSprop step per full batch
    of ``batch`` windows (the windows left over, fewer than ``batch``, are not used that epoch): every window is
    integrated from its first sample and compared with the samples in it (mean squared error).
    ``solve(field, z0, t)`` is the ODE solver (default: ``nodelib.odeint`` with RK4 on the sample grid).
    Snapshots, if asked for, hold the prediction of the whole trajectory from ``z[0]``.
    """
    from .solvers import odeint

    if solve is None:
        solve = lambda f, y0, s: odeint(f, y0, s, method="rk4")  # noqa: E731
    if len(t) != len(z) or len(t) < window:
        raise ValueError(f"need len(t) == len(z) >= window, got {len(t)}, {len(z)}, window={window}")
    gaps = torch.diff(t)
    if not torch.allclose(gaps, gaps[0].expand_as(gaps), rtol=1e-4, atol=0):
        raise ValueError("fit_windows needs evenly spaced samples; for irregular times fit the whole trajectory")
    starts = torch.arange(len(t) - window + 1)
    per_epoch = max(1, len(starts) // batch)
    generator = torch.Generator().manual_seed(seed)
    order: list[Tensor] = []
    offsets = torch.arange(window)[:, None]

    def loss_fn(step: int) -> Tensor:
        k = (step - 1) % per_epoch
        if k == 0:
            order[:] = [starts[torch.randperm(len(starts), generator=generator)]]
        chosen = order[0][k * batch : (k + 1) * batch]
        pred = solve(field, z[chosen], t[:window] - t[0])
        return ((pred - z[chosen[None, :] + offsets]) ** 2).mean()

    def snapshot() -> Tensor:
        with torch.no_grad():
            return solve(field, z[0], t).detach().clone()

    optimizer = make_optimizer(params, "rmsprop", lr)
    return train(loss_fn, optimizer, epochs * per_epoch, snapshot_fn=snapshot, snapshot_every=snapshot_every,
                 progress=progress, desc=desc)


def train_latent_ode(model: Any, x: Tensor, t: Tensor, *, noise_std: float, steps: int, batch: int = 50,
                     lr: float = 1e-2, seed: int = 0, progress: bool = True) -> History:
    """Fit a :class:`~nodelib.latent.LatentODE` to sequences ``x`` ``(T, n, obs_dim)`` observed at ``t`` by
    minimising the negative ELBO (chapter 3). Mini-batches of ``batch`` sequences are drawn with a seeded
    generator; returns the :class:`History` of :func:`train`."""
    from .latent import negative_elbo

    if x.dim() != 3:
        raise ValueError(f"x must have shape (T, n, obs_dim), got {tuple(x.shape)}")
    generator = torch.Generator().manual_seed(seed)

    def loss_fn(step: int) -> Tensor:
        idx = torch.randint(0, x.shape[1], (min(batch, x.shape[1]),), generator=generator)
        pred, mean, logvar = model(x[:, idx], t)
        return negative_elbo(pred, x[:, idx], mean, logvar, noise_std)

    return train(loss_fn, make_optimizer(model.parameters(), "adam", lr), steps, progress=progress,
                 desc="latent ODE")
