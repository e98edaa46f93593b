"""What a chapter prints and glues: lines that read the same on every CPU, and numbers for the prose.

The book checks the outputs of some cells on every test run (nbval), on whatever processor the test meets:
a laptop's, Colab's, a course's JupyterHub, the next CI machine. Those cells must print what does not change
with the instruction set (AVX-512, AVX2, SSE), the BLAS back-end or the thread count. Round-off changes the
last digits of an error of 1e-10 and, through training, the digits of a loss or an accuracy; a *statement with
a margin* does not:

- :func:`below` and :func:`above` compare a value with a bound and print ``"< 1e-8"`` or ``"> 0.9"``;
- :func:`relation` says whether one value is lower than, higher than, or within a factor of another.

Each warns (:class:`UnstableLine`) when the value sits so close to its bound that round-off elsewhere could
flip the printed line: the author then picks a bound with room, and a reader on another processor sees the
same words. The exact values go in cells that are shown but not compared.

:func:`glue` stores a value for the prose (myst-nb's ``glue``, without needing myst-nb in the kernel): a
markdown cell writes ``{glue:text}`name``` and the book inserts the value the computation produced, so a
number in the text can never drift from the output it describes.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

__all__ = ["UnstableLine", "below", "above", "relation", "glue", "fmt_bound", "sci"]

#: The mime prefix myst-nb's glue uses for a value stored without being displayed.
GLUE_PREFIX = "application/papermill.record/"


class UnstableLine(UserWarning):
    """A printed comparison whose value is too close to its bound to read the same on every CPU."""


def fmt_bound(bound: float) -> str:
    """A bound as people write it: ``1e-8`` (not ``1e-08``), ``0.05``, ``2.5e+03`` -> ``2.5e3``."""
    text = f"{bound:g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(value: float, digits: int = 0) -> str:
    """A number as prose writes it: ``sci(2.3e-5)`` is ``"2 × 10⁻⁵"``, ``sci(1e-9)`` is ``"10⁻⁹"``,
    ``sci(0.0123, 1)`` is ``"1.2 × 10⁻²"`` (``digits`` after the point of the mantissa)."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    power = "10" + str(int(exponent)).translate(_SUPERSCRIPT)
    return power if mantissa in ("1", "1." + "0" * digits) else f"{mantissa} × {power}"


def _check(value: float, bound: float, margin: float, what: str) -> None:
    for name, x in (("value", value), ("bound", bound)):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
            raise TypeError(f"{what}: {name} must be a real number, got {x!r}")
    if not margin > 1:
        raise ValueError(f"{what}: margin must be a factor > 1, got {margin!r}")
    if not bound > 0:
        raise ValueError(f"{what}: bound must be positive (compare magnitudes), got {bound!r}")


def below(value: float, bound: float, *, margin: float = 10.0) -> str:
    """``"< bound"`` when ``|value| < bound``, else ``">= bound"``; warns unless ``|value|`` is a factor
    ``margin`` away from the bound on either side (then no round-off can change the line).

    >>> below(3e-11, 1e-8)
    '< 1e-8'
    """
    _check(value, bound, margin, "below")
    size = abs(value)
    if bound / margin <= size <= bound * margin:
        warnings.warn(f"|{value:.3g}| is within a factor {margin:g} of the bound {fmt_bound(bound)}: the printed "
                      "line may differ on another CPU; choose a bound with more room", UnstableLine, stacklevel=2)
    return f"< {fmt_bound(bound)}" if size < bound else f">= {fmt_bound(bound)}"


def above(value: float, bound: float, *, margin: float = 1.1) -> str:
    """``"> bound"`` when ``value > bound``, else ``"<= bound"``; warns unless ``value`` is a factor ``margin``
    away from the bound (an accuracy of 0.96 is safely above 0.8 with the default margin of 1.1)."""
    _check(value, bound, margin, "above")
    if bound / margin <= value <= bound * margin:
        warnings.warn(f"{value:.4g} is within a factor {margin:g} of the bound {fmt_bound(bound)}: the printed "
                      "line may differ on another CPU; choose a bound with more room", UnstableLine, stacklevel=2)
    return f"> {fmt_bound(bound)}" if value > bound else f"<= {fmt_bound(bound)}"


def relation(value: float, reference: float, *, factor: float = 1.5, margin: float = 1.2) -> str:
    """How ``value`` compares with ``reference`` (both positive, e.g. two losses): ``"lower"`` (below
    ``reference / factor``), ``"higher"`` (above ``reference * factor``) or ``"within a factor F"``. Warns when
    the ratio is within a factor ``margin`` of ``factor`` or ``1 / factor`` (an edge round-off could cross)."""
    if not (value > 0 and reference > 0):
        raise ValueError(f"relation compares positive values, got {value!r} and {reference!r}")
    if not (factor > 1 and margin > 1):
        raise ValueError(f"factor and margin must be > 1, got {factor!r} and {margin!r}")
    ratio = value / reference
    for edge in (factor, 1 / factor):
        if edge / margin <= ratio <= edge * margin:
            warnings.warn(f"the ratio {ratio:.3g} is within a factor {margin:g} of {edge:.3g}: the printed word may "
                          "differ on another CPU", UnstableLine, stacklevel=2)
    if ratio < 1 / factor:
        return "lower"
    if ratio > factor:
        return "higher"
    return f"within a factor {factor:g}"


def glue(name: str, value: Any) -> None:
    """Store ``value`` under ``name`` for the book's prose (``{glue:text}`name``` in a markdown cell), without
    displaying it (and returning nothing, so that a cell ending with a glue shows no output). Strings are
    inserted as they are, so format numbers first (``glue("auc", f"{auc:.3f}")``), or glue the number and
    format in the role (``{glue:text}`auc:.3f```).

    The output is the one myst-nb's ``glue(name, value, display=False)`` writes; outside IPython this does
    nothing, so library code and scripts may call it too.
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or ":" in name:
        raise ValueError(f"a glue name is a non-empty word without spaces or ':', got {name!r}")
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with every notebook kernel
        return
    if get_ipython() is None:
        return
    display({GLUE_PREFIX + "text/plain": repr(value)}, raw=True,
            metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}})
