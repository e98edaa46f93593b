"""nodelib.report: checked lines that read the same on any CPU, and glue for the prose."""
from __future__ import annotations

import warnings

import pytest

from nodelib.report import UnstableLine, above, below, fmt_bound, glue, relation, sci


def test_bounds_print_as_people_write_them():
    assert fmt_bound(1e-8) == "1e-8" and fmt_bound(0.05) == "0.05" and fmt_bound(2500.0) == "2500"
    assert sci(2.3e-5) == "2 × 10⁻⁵" and sci(1e-9) == "10⁻⁹" and sci(0.0123, 1) == "1.2 × 10⁻²" and sci(0) == "0"


def test_a_value_far_from_its_bound_prints_a_stable_line_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert below(3e-11, 1e-8) == "< 1e-8"
        assert below(-3e-11, 1e-8) == "< 1e-8"  # magnitudes
        assert below(5.0, 0.1) == ">= 0.1"
        assert above(0.97, 0.8) == "> 0.8" and above(0.5, 0.8) == "<= 0.8"
        assert relation(1.0, 10.0) == "lower" and relation(10.0, 1.0) == "higher"
        assert relation(1.0, 1.1) == "within a factor 1.5"


def test_a_value_round_off_could_push_across_its_bound_warns():
    """The margin is what makes the line CPU-proof: within it, the author is told to choose another bound."""
    with pytest.warns(UnstableLine, match="factor 10"):
        assert below(3e-9, 1e-8) == "< 1e-8"
    with pytest.warns(UnstableLine):
        above(0.82, 0.8)
    with pytest.warns(UnstableLine):
        relation(1.45, 1.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="bound must be positive"):
        below(1.0, 0.0)
    with pytest.raises(TypeError, match="real number"):
        below(float("nan"), 1.0)
    with pytest.raises(ValueError, match="margin"):
        below(1.0, 2.0, margin=1.0)
    with pytest.raises(ValueError, match="positive values"):
        relation(-1.0, 2.0)
    with pytest.raises(ValueError, match="glue name"):
        glue("two words", 1)


def test_glue_writes_what_myst_nb_reads(monkeypatch):
    """The output is myst-nb's own format (a papermill record, not displayed), read by the book's build."""
    shown = []

    class Shell:
        pass

    import IPython
    import IPython.display

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    monkeypatch.setattr(IPython.display, "display", lambda data, **kw: shown.append((data, kw)))
    assert glue("auc", "0.81") is None
    (data, kw), = shown
    assert data == {"application/papermill.record/text/plain": "'0.81'"} and kw["raw"]
    assert kw["metadata"]["scrapbook"] == {"name": "auc", "mime_prefix": "application/papermill.record/"}
    from myst_nb.core.variables import format_plain_text

    assert format_plain_text(data["application/papermill.record/text/plain"], "") == "0.81"  # no quotes in the prose


def test_glue_outside_a_notebook_does_nothing():
    assert glue("x", 1) is None
