"""nodelib.claims: the one rule for verdicts, checked on runs whose answer is known."""
from __future__ import annotations

import math

import pytest

from nodelib.claims import Claim, judge, judge_all, table, tally

BETTER = Claim("ch-better", "B beats A", "Paper 2021, Table 1", metric="acc", model="B", baseline="A")


def _runs(a, b, improving=()):
    return ([{"variant": "A", "seed": s, "acc": v, "still_improving": s in improving} for s, v in enumerate(a)]
            + [{"variant": "B", "seed": s, "acc": v, "still_improving": False} for s, v in enumerate(b)])


def test_a_clear_gain_over_five_paired_seeds_holds():
    v = judge(BETTER, _runs([0.80, 0.81, 0.79, 0.82, 0.80], [0.83, 0.84, 0.82, 0.85, 0.83]))
    assert v.verdict == "holds" and v.n == 5 and v.interval[0] > 0 and v.mean_difference == pytest.approx(0.03)


def test_pairing_by_seed_detects_what_unpaired_means_would_hide():
    """The seeds vary a lot, the difference within a seed hardly: paired, the gain is clear."""
    a = [0.70, 0.80, 0.90, 0.75, 0.85]
    v = judge(BETTER, _runs(a, [x + 0.01 for x in a]))
    assert v.verdict == "holds" and v.interval[1] - v.interval[0] < 1e-9


def test_a_loss_does_not_hold_and_noise_is_inconclusive_with_the_detectable_effect():
    assert judge(BETTER, _runs([0.83, 0.84, 0.82, 0.85, 0.83], [0.80, 0.81, 0.79, 0.82, 0.80])).verdict == \
        "does not hold"
    v = judge(BETTER, _runs([0.80, 0.82, 0.79, 0.83, 0.80], [0.81, 0.80, 0.82, 0.80, 0.81]))
    assert v.verdict == "inconclusive at this scale" and v.detectable > 0
    assert "could detect" in v.evidence()


def test_fewer_than_five_seeds_or_runs_still_improving_cap_the_verdict():
    few = judge(BETTER, _runs([0.80, 0.81, 0.79], [0.90, 0.91, 0.89]))
    assert few.verdict == "inconclusive at this scale" and few.uncapped == "holds" and "needs 5" in few.reason
    capped = judge(BETTER, _runs([0.80, 0.81, 0.79, 0.82, 0.80], [0.83, 0.84, 0.82, 0.85, 0.83], improving=(2,)))
    assert capped.verdict == "inconclusive at this scale" and capped.uncapped == "holds"
    assert "1 of 10 runs were still improving" in capped.reason


def test_matches_needs_its_margin_and_judges_equivalence():
    with pytest.raises(ValueError, match="positive margin"):
        Claim("m", "B matches A", "P", metric="acc", model="B", baseline="A", kind="matches")
    same = Claim("m", "B matches A", "P", metric="acc", model="B", baseline="A", kind="matches", margin=0.01)
    assert judge(same, _runs([0.80, 0.81, 0.79, 0.82, 0.80], [0.801, 0.809, 0.791, 0.821, 0.799])).verdict == "holds"
    assert judge(same, _runs([0.80, 0.81, 0.79, 0.82, 0.80], [0.75, 0.76, 0.74, 0.77, 0.75])).verdict == \
        "does not hold"
    wide = judge(same, _runs([0.80, 0.85, 0.75, 0.82, 0.78], [0.79, 0.80, 0.81, 0.78, 0.83]))
    assert wide.verdict == "inconclusive at this scale"


def test_lower_is_better_and_deterministic_and_untestable_claims():
    error = Claim("e", "B has lower error", "P", metric="acc", model="B", baseline="A", direction="lower")
    assert judge(error, _runs([0.20, 0.21, 0.19, 0.22, 0.20], [0.10, 0.11, 0.09, 0.12, 0.10])).verdict == "holds"
    within = Claim("w", "overhead below 7%", "P, Table 3", metric="overhead", kind="within", low=0.0, high=7.0)
    assert judge(within, value=3.7).verdict == "holds" and judge(within, value=8.0).verdict == "does not hold"
    far = Claim("f", "works on ImageNet", "P", not_testable="no ImageNet here")
    assert judge(far).verdict == "not testable here" and "no ImageNet" in judge(far).evidence()
    verdicts = judge_all([BETTER, within, far], _runs([0.8] * 5, [0.9] * 5), values={"w": 1.0})
    assert [v.verdict for v in verdicts] == ["holds", "holds", "not testable here"]
    rows = table(verdicts).splitlines()
    assert rows[0] == "| claim | verdict | evidence |" and "| **holds** |" in rows[2]  # the verdict second
    assert math.isclose(verdicts[0].mean_difference, 0.1)


def test_declarations_round_trip_through_a_result_file():
    import json

    claim = Claim("w", "overhead below 7%", "P", metric="o", kind="within", high=7.0)
    assert Claim.from_dict(json.loads(json.dumps(claim.to_dict()))) == claim
    with pytest.raises(ValueError, match="two different variants"):
        Claim("x", "s", "P", metric="acc", model="A", baseline="A")


def _four(values):
    return [{"variant": name, "seed": s, "acc": v, "still_improving": False}
            for name, column in values.items() for s, v in enumerate(column)]


def test_an_interaction_compares_two_contrasts_of_the_same_seed():
    """(A - B) - (C - D) per seed: a gap that exists under one condition and not under the other."""
    claim = Claim("ch-interaction", "the gap A - B exceeds C - D", "ours", metric="acc", model="A", baseline="B",
                  versus=("C", "D"))
    seeds = [0.80, 0.70, 0.90, 0.75, 0.85]  # large seed effects, shared by the four variants of a seed
    gap = judge(claim, _four({"A": [x + 0.02 for x in seeds], "B": seeds, "C": seeds,
                              "D": [x + 0.001 * (-1) ** i for i, x in enumerate(seeds)]}))
    assert gap.verdict == "holds" and gap.mean_difference == pytest.approx(0.02, abs=1e-3)
    assert "A − B" in gap.evidence() and "C − D" in gap.evidence()
    reversed_ = judge(claim, _four({"A": [x + 0.02 for x in seeds], "B": seeds, "C": [x + 0.04 for x in seeds],
                                    "D": [x + 0.001 * (-1) ** i for i, x in enumerate(seeds)]}))
    assert reversed_.verdict == "does not hold"
    missing = judge(claim, _four({"A": seeds, "B": seeds, "C": seeds}))
    assert missing.verdict == "inconclusive at this scale" and missing.n == 0
    assert Claim.from_dict(claim.to_dict()) == claim and claim.to_dict()["versus"] == ["C", "D"]
    with pytest.raises(ValueError, match="versus"):
        Claim("bad", "s", "p", metric="acc", model="A", baseline="B", versus=("A", "D"))


def test_numbers_are_printed_to_what_the_runs_resolve():
    """An AUC gain of 0.013 with an interval 0.017 wide is not printed as +0.01 [+0.00, +0.02]; accuracy in
    points keeps two decimals."""
    auc = judge(BETTER, _runs([0.800, 0.812, 0.795, 0.806, 0.801], [0.815, 0.818, 0.815, 0.812, 0.820]))
    assert auc.decimals == 3 and auc.format(auc.mean_difference, True) == "+0.013"
    assert "+0.013, 95% CI [+0.0" in auc.evidence() and "B 0.816 ± 0.003 vs A 0.803 ±" in auc.evidence()
    points = Claim("ch-points", "B beats A", "Paper 2021", metric="acc", model="B", baseline="A", scale=100.0)
    pts = judge(points, _runs([0.80, 0.81, 0.79, 0.82, 0.80], [0.83, 0.85, 0.82, 0.86, 0.83]))
    assert pts.decimals == 2 and pts.format(pts.mean_difference, True) == "+3.40"
    assert Claim("ch-none", "x", "y", not_testable="no data") and judge(
        Claim("ch-none", "x", "y", not_testable="no data"), []).decimals == 2


def test_the_tally_counts_each_verdict_in_words():
    holds = judge(BETTER, _runs([0.80, 0.81, 0.79, 0.82, 0.80], [0.83, 0.84, 0.82, 0.85, 0.83]))
    fails = judge(BETTER, _runs([0.83, 0.84, 0.82, 0.85, 0.83], [0.80, 0.81, 0.79, 0.82, 0.80]))
    few = judge(BETTER, _runs([0.80, 0.81], [0.90, 0.91]))
    assert tally([holds, holds, fails, few]) == "4 claims: 2 hold, 1 does not hold, 1 inconclusive at this scale"
    assert tally([fails, fails]) == "2 claims: 2 do not hold" and tally([few]) == "1 claim: 1 inconclusive at this scale"
