"""One rule for verdicts on a paper's claims: the research chapters (6-8) declare, the runs decide.

A research chapter tests what a paper says, so its verdicts must come from a rule fixed before the numbers are
seen, the same rule in every chapter. A :class:`Claim` is declared before the runs (in the experiment's
configuration, which writes it into the result file before the first run starts): the paper's statement and
where it makes it, the metric, which variant should win and against which, and for a "matches" claim the
margin within which two results count as the same. :func:`judge` then reads the recorded runs:

1. runs are **paired by seed** (each seed trains both variants from the same data order); the rule needs
   ``min_seeds`` pairs (5);
2. the paired differences ``d_s`` (oriented so that ``d > 0`` favours the claimed variant) give a 95%
   interval ``mean ± t(0.975, n-1) · sd / sqrt(n)``;
3. the verdict is

   - ``"holds"``: the interval lies on the claimed side (above 0 for ``"better"``; inside ``(-margin, margin)``
     for ``"matches"``; above ``-margin`` for ``"not worse"``);
   - ``"does not hold"``: the interval lies on the other side (below ``meaningful`` for ``"better"``; wholly
     outside the margin for ``"matches"``; below ``-margin`` for ``"not worse"``);
   - ``"inconclusive at this scale"``: otherwise, with the smallest difference the runs could have detected
     (80% power), or when there are fewer than ``min_seeds`` pairs;
   - ``"not testable here"``: declared so, with the reason (data we do not have, compute we cannot spend);

4. a run that was **still improving** when it stopped (its validation score had not plateaued) caps the
   verdict at ``"inconclusive at this scale"``, and the evidence says what the rule would have said.

An **interaction** ("the gap between A and B is larger than the gap between C and D") is a claim with
``versus=(C, D)``: each seed's difference is ``(A - B) - (C - D)``, from the four runs of that seed, and the same
rule judges it.

A deterministic claim (a parameter count, an overhead in percent) is a ``"within"`` claim: one value against
a declared interval. :func:`table` renders a chapter's claims with the verdict as the second column (readable
on a phone) and the evidence after it; :func:`glue_verdicts` puts each verdict into the prose.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

from .report import glue

__all__ = ["VERDICTS", "Claim", "Verdict", "judge", "judge_all", "table", "tally", "glue_verdicts", "paired_values"]

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE, NOT_TESTABLE = ("holds", "does not hold", "inconclusive at this scale",
                                                    "not testable here")
#: The four verdicts, in the order a table sorts them.
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE, NOT_TESTABLE)
KINDS = ("better", "matches", "not worse", "within")


@dataclass(frozen=True)
class Claim:
    """A claim of a paper, declared before the runs that test it.

    Attributes:
        key: a short identifier (also the glue name of its verdict), e.g. ``"ch7-config2-beats-baseline"``.
        statement: the claim in the book's words.
        source: where the paper makes it, e.g. ``"Zhang et al. 2019, Table 2"``.
        metric: the key of a run's record that is compared, e.g. ``"test_accuracy_at_best"``.
        model, baseline: the variants compared (``model`` is the one the claim favours).
        kind: ``"better"``, ``"matches"``, ``"not worse"`` or ``"within"`` (one deterministic value).
        direction: ``"higher"`` or ``"lower"``: which values of ``metric`` are better.
        margin: for ``"matches"`` and ``"not worse"``: the largest difference that counts as none (metric units).
        meaningful: for ``"better"``: an interval wholly below this makes the claim fail (default 0: the
            claimed variant is confidently not better).
        low, high: for ``"within"``: the interval the value must lie in.
        scale, unit: how differences are shown (``scale=100, unit=" points"`` for accuracies).
        not_testable: the reason, for a claim this book cannot test (the verdict is then "not testable here").
        min_seeds: paired seeds the rule needs.
        by: the record key that names the variant (``"variant"``, ``"schedule"``, ...).
        versus: for an interaction, two more variants ``(C, D)``: the claim is then that ``model - baseline``
            exceeds ``C - D`` (kinds ``"better"`` and ``"not worse"``), or equals it within the margin.
    """

    key: str
    statement: str
    source: str
    metric: str = ""
    model: str = ""
    baseline: str = ""
    kind: str = "better"
    direction: str = "higher"
    margin: float = 0.0
    meaningful: float = 0.0
    low: float = -math.inf
    high: float = math.inf
    scale: float = 1.0
    unit: str = ""
    not_testable: str = ""
    min_seeds: int = 5
    by: str = "variant"
    versus: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "versus", tuple(self.versus))
        if not self.key or any(c.isspace() for c in self.key) or ":" in self.key:
            raise ValueError(f"a claim's key is a word without spaces or ':', got {self.key!r}")
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.key}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"claim {self.key}: direction must be 'higher' or 'lower', got {self.direction!r}")
        if self.not_testable:
            return
        if not self.metric:
            raise ValueError(f"claim {self.key}: name the metric it compares")
        if self.kind in ("matches", "not worse") and not self.margin > 0:
            raise ValueError(f"claim {self.key}: a {self.kind!r} claim needs a positive margin, declared before the "
                             "runs (the largest difference that counts as none)")
        if self.kind == "within" and not self.low <= self.high:
            raise ValueError(f"claim {self.key}: need low <= high, got {self.low} and {self.high}")
        if self.kind != "within" and not (self.model and self.baseline) or self.model == self.baseline and self.model:
            raise ValueError(f"claim {self.key}: name two different variants, model and baseline")
        if self.versus and (self.kind == "within" or len(self.versus) != 2 or len(set(self.variants)) != 4):
            raise ValueError(f"claim {self.key}: versus names two more variants (C, D), all four different, for a "
                             f"claim that model - baseline exceeds C - D; got {self.versus!r}")
        if not (isinstance(self.min_seeds, int) and self.min_seeds >= 2):
            raise ValueError(f"claim {self.key}: min_seeds must be an integer >= 2, got {self.min_seeds!r}")

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants the claim compares: model, baseline and, for an interaction, the two of ``versus``."""
        return (self.model, self.baseline, *self.versus)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["versus"] = list(self.versus)
        for name in ("low", "high"):  # JSON has no infinity
            if math.isinf(data[name]):
                data[name] = None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        values = dict(data)
        for name, default in (("low", -math.inf), ("high", math.inf)):
            if values.get(name) is None:
                values[name] = default
        return cls(**values)


@dataclass(frozen=True)
class Verdict:
    """The rule's answer for one claim, with the numbers behind it (differences in the metric's units, oriented
    so that a positive difference favours the claimed variant)."""

    claim: Claim
    verdict: str
    reason: str
    n: int = 0
    mean_difference: float = math.nan
    interval: tuple[float, float] = (math.nan, math.nan)
    detectable: float = math.nan
    model_mean: float = math.nan
    model_std: float = math.nan
    baseline_mean: float = math.nan
    baseline_std: float = math.nan
    still_improving: int = 0
    uncapped: str = ""
    seeds: tuple[int, ...] = field(default=())

    @property
    def decimals(self) -> int:
        """Decimals that show what the runs resolve: at least two, or as many as give the interval's width (or the
        larger spread of the runs) two significant digits (an AUC difference of 0.013 in an interval 0.017 wide is
        not printed as +0.01 [+0.00, +0.02]), at most four."""
        c = self.claim
        widths = [abs(self.interval[1] - self.interval[0]), self.model_std, self.baseline_std]
        widths = [w * c.scale for w in widths if math.isfinite(w) and w > 0]
        if not widths:
            return 2
        return min(4, max(2, 1 - math.floor(math.log10(max(widths)))))

    def format(self, x: float, signed: bool = False) -> str:
        """``x`` (in the metric's units) in the claim's scale, with :attr:`decimals` decimals."""
        return f"{x * self.claim.scale:{'+' if signed else ''}.{self.decimals}f}"

    def evidence(self) -> str:
        """The numbers behind the verdict, in one paragraph."""
        c = self.claim
        if self.verdict == NOT_TESTABLE or self.n == 0 and c.kind != "within":
            return self.reason
        num = self.format

        if c.kind == "within":
            return f"{num(self.model_mean)}{c.unit}; declared interval [{_bound(c.low, c, self.decimals)}, " \
                   f"{_bound(c.high, c, self.decimals)}]. " + self.reason
        lo, hi = self.interval
        first, second = (f"{c.model} − {c.baseline}", f"{c.versus[0]} − {c.versus[1]}") if c.versus else (c.model,
                                                                                                        c.baseline)
        parts = [f"{first} {num(self.model_mean)} ± {num(self.model_std)} vs {second} "
                 f"{num(self.baseline_mean)} ± {num(self.baseline_std)} (mean ± sd, {self.n} seeds)"]
        if self.n >= 2:
            parts.append(f"paired difference {num(self.mean_difference, True)}{c.unit}, 95% CI "
                         f"[{num(lo, True)}, {num(hi, True)}]")
            if self.verdict == INCONCLUSIVE and math.isfinite(self.detectable):
                parts.append(f"the runs could detect a difference of {num(self.detectable)}{c.unit} or more")
        if c.kind in ("matches", "not worse"):
            parts.append(f"margin ±{num(c.margin)}{c.unit}")
        text = "; ".join(parts) + "."
        return f"{text} {self.reason}".strip()


def _bound(x: float, claim: Claim, decimals: int = 2) -> str:
    return "−∞" if x == -math.inf else "∞" if x == math.inf else f"{x * claim.scale:.{decimals}f}"


def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def paired_values(claim: Claim, runs: Iterable[Mapping[str, Any]]) -> dict[int, tuple[Mapping[str, Any], ...]]:
    """``{seed: (model run, baseline run[, versus runs])}`` for the seeds that ran every variant of the claim."""
    by_variant: dict[str, dict[int, Mapping[str, Any]]] = {name: {} for name in claim.variants}
    for run in runs:
        name = run.get(claim.by)
        if name in by_variant:
            seed = int(run["seed"])
            if seed in by_variant[name]:
                raise ValueError(f"claim {claim.key}: two runs of {name!r} with seed {seed}")
            by_variant[name][seed] = run
    common = sorted(set.intersection(*(set(seeds) for seeds in by_variant.values())))
    return {s: tuple(by_variant[name][s] for name in claim.variants) for s in common}


def _improving(run: Mapping[str, Any]) -> bool:
    return bool(run.get("still_improving", False))


def judge(claim: Claim, runs: Optional[Iterable[Mapping[str, Any]]] = None, *, value: Optional[float] = None) -> Verdict:
    """The verdict of the one rule (see the module's docstring) on ``runs`` (records with the claim's ``by``
    key, ``"seed"``, the metric and, if known, ``"still_improving"``), or on one deterministic ``value`` for a
    ``"within"`` claim."""
    if claim.not_testable:
        return Verdict(claim, NOT_TESTABLE, f"Not testable here: {claim.not_testable}")
    if claim.kind == "within":
        if value is None or not math.isfinite(value):
            raise ValueError(f"claim {claim.key}: a 'within' claim is judged on one finite value, got {value!r}")
        inside = claim.low <= value <= claim.high
        return Verdict(claim, HOLDS if inside else DOES_NOT_HOLD,
                       "Inside the interval." if inside else "Outside the interval.", n=1, model_mean=value)
    if runs is None:
        raise ValueError(f"claim {claim.key}: pass the recorded runs")
    pairs = paired_values(claim, runs)
    sign = 1.0 if claim.direction == "higher" else -1.0
    raw = [[float(r[claim.metric]) for r in group] for group in pairs.values()]
    if any(not math.isfinite(x) for group in raw for x in group):
        raise ValueError(f"claim {claim.key}: a run has no finite {claim.metric}")
    # an interaction compares two contrasts of the same seed: (model - baseline) against (C - D)
    values = [(g[0] - g[1], g[2] - g[3]) if claim.versus else (g[0], g[1]) for g in raw]
    n = len(values)
    if n == 0:
        return Verdict(claim, INCONCLUSIVE, f"No seed ran {' and '.join(claim.variants)}.")
    model = [x for x, _ in values]
    base = [y for _, y in values]
    diffs = [sign * (x - y) for x, y in values]
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else math.nan
    common: dict[str, Any] = dict(n=n, mean_difference=mean, model_mean=statistics.fmean(model), baseline_mean=statistics.fmean(base),
                  model_std=statistics.stdev(model) if n > 1 else 0.0,
                  baseline_std=statistics.stdev(base) if n > 1 else 0.0, seeds=tuple(pairs))
    if n < 2:
        return Verdict(claim, INCONCLUSIVE, f"Only {n} paired seed; the rule needs {claim.min_seeds}.", **common)
    half = _t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    detectable = (_t_quantile(0.975, n - 1) + _t_quantile(0.8, n - 1)) * sd / math.sqrt(n)
    common.update(interval=(lo, hi), detectable=detectable)
    if claim.kind == "better":
        rule = HOLDS if lo > 0 else DOES_NOT_HOLD if hi < claim.meaningful else INCONCLUSIVE
    elif claim.kind == "matches":
        m = claim.margin
        rule = HOLDS if -m < lo and hi < m else DOES_NOT_HOLD if lo >= m or hi <= -m else INCONCLUSIVE
    else:  # not worse
        rule = HOLDS if lo > -claim.margin else DOES_NOT_HOLD if hi < -claim.margin else INCONCLUSIVE
    if n < claim.min_seeds:
        return Verdict(claim, INCONCLUSIVE, f"Only {n} paired seeds; the rule needs {claim.min_seeds} (with these, "
                       f"it would say '{rule}').", uncapped=rule, **common)
    improving = sum(_improving(r) for pair in pairs.values() for r in pair)
    total = len(claim.variants) * n
    if improving and rule != INCONCLUSIVE:
        return Verdict(claim, INCONCLUSIVE, f"{improving} of {total} runs were still improving when they stopped, so "
                       f"the rule's '{rule}' is capped.", still_improving=improving, uncapped=rule, **common)
    reason = f"{improving} of {total} runs were still improving when they stopped." if improving else ""
    return Verdict(claim, rule, reason, still_improving=improving, uncapped=rule, **common)


def judge_all(claims: Sequence[Claim], runs: Iterable[Mapping[str, Any]],
              values: Optional[Mapping[str, float]] = None) -> list[Verdict]:
    """Every claim's verdict on the same runs (``values`` holds the value of each ``"within"`` claim by key)."""
    runs = list(runs)
    values = dict(values or {})
    out = []
    for claim in claims:
        if claim.kind == "within" and not claim.not_testable:
            if claim.key not in values:
                raise ValueError(f"claim {claim.key} is a 'within' claim: pass its value in values[{claim.key!r}]")
            out.append(judge(claim, value=values[claim.key]))
        else:
            out.append(judge(claim, runs))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(verdicts: Sequence[Verdict]) -> str:
    """A Markdown table: claim (with its source), verdict, evidence; one row per claim, in the given order."""
    rows = ["| claim | verdict | evidence |", "|---|---|---|"]
    for v in verdicts:
        claim = f"{_cell(v.claim.statement)} ({_cell(v.claim.source)})"
        rows.append(f"| {claim} | **{v.verdict}** | {_cell(v.evidence())} |")
    return "\n".join(rows)


def tally(verdicts: Sequence[Verdict]) -> str:
    """How many claims got each verdict, in words, e.g. ``"9 claims: 1 holds, 8 inconclusive at this scale"``
    (the verdicts that no claim got are left out)."""
    counts = {name: sum(v.verdict == name for v in verdicts) for name in VERDICTS}
    plural = {HOLDS: "hold", DOES_NOT_HOLD: "do not hold"}
    parts = [f"{n} {plural.get(name, name) if n > 1 else name}" for name, n in counts.items() if n]
    return f"{len(verdicts)} claim{'s' if len(verdicts) != 1 else ''}: " + ", ".join(parts)


def glue_verdicts(verdicts: Sequence[Verdict]) -> None:
    """Glue each verdict under its claim's key, and its paired difference and interval (``KEY-diff``,
    ``KEY-ci``) in the claim's units, for the prose."""
    for v in verdicts:
        c = v.claim
        glue(c.key, v.verdict)
        if v.n >= 2 and c.kind != "within":
            glue(f"{c.key}-diff", f"{v.format(v.mean_difference, True)}{c.unit}")
            glue(f"{c.key}-ci", f"[{v.format(v.interval[0], True)}, {v.format(v.interval[1], True)}]{c.unit}")
