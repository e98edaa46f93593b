"""Plotting helpers shared by the chapters: trajectories, vector fields, convergence plots.

Each helper draws on a Matplotlib ``Axes`` that you pass in and returns it, so figures stay composable.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.ticker import NullFormatter
from torch import Tensor

from .solvers import estimate_order

#: Widest figure for the book, in inches at Matplotlib's 100 dpi. The rendered column is 848 px and a cell's
#: output area 784 px, so such a figure is shown at 94% or more of its size: 10-point labels stay above 9 points.
BOOK_COLUMN_INCHES = 8.4
BOOK_RC: dict[str, Any] = {
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
    "axes.titlesize": 10,
    "legend.fontsize": 9,
}


def use_book_style(high_dpi: bool = True) -> dict:
    """The chapters' Matplotlib settings: 100-dpi layout, a light grid, labels of at least 9 points.

    With ``high_dpi`` (the default) a notebook's inline figures are stored at twice the resolution and shown
    at their nominal size, so they stay sharp on high-density screens. Returns the rc settings applied.
    Figures for the book should be at most ``BOOK_COLUMN_INCHES`` wide (wider ones are shrunk, labels too).
    """
    import matplotlib.pyplot as plt

    plt.rcParams.update(BOOK_RC)  # type: ignore[arg-type]  # the stubs list every key as a Literal
    if high_dpi:
        try:
            from matplotlib_inline.backend_inline import set_matplotlib_formats
        except ImportError:  # not in IPython: nothing to configure
            pass
        else:
            set_matplotlib_formats("retina")
    return dict(BOOK_RC)


def _numpy(x: object) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def plot_trajectory(ax: Axes, ys: object, *, label: Optional[str] = None, start_marker: bool = True, **kwargs) -> Axes:
    """Draw planar trajectories. ``ys`` has shape ``(T, 2)`` or ``(T, B, 2)`` (time first, as odeint returns)."""
    y = _numpy(ys)
    if y.ndim == 2:
        y = y[:, None, :]
    if y.ndim != 3 or y.shape[-1] != 2:
        raise ValueError(f"plot_trajectory expects shape (T, 2) or (T, B, 2), got {y.shape}")
    lines = ax.plot(y[:, :, 0], y[:, :, 1], **kwargs)
    if label is not None and lines:
        lines[0].set_label(label)
    if start_marker:
        ax.scatter(y[0, :, 0], y[0, :, 1], s=18, color=lines[0].get_color(), zorder=3)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return ax


def plot_vector_field(
    ax: Axes,
    func: Callable[[Tensor, Tensor], Tensor],
    xlim: Sequence[float] = (-2.0, 2.0),
    ylim: Sequence[float] = (-2.0, 2.0),
    *,
    t: float = 0.0,
    n: int = 21,
    stream: bool = False,
    dtype: torch.dtype = torch.float64,
    **kwargs,
) -> Axes:
    """Draw the planar field ``func(t, z)`` on an ``n``-by-``n`` grid, as arrows or (``stream=True``) streamlines."""
    xs = np.linspace(xlim[0], xlim[1], n)
    ys = np.linspace(ylim[0], ylim[1], n)
    X, Y = np.meshgrid(xs, ys)
    z = torch.tensor(np.stack([X.ravel(), Y.ravel()], axis=-1), dtype=dtype)
    with torch.no_grad():
        v = _numpy(func(torch.tensor(t, dtype=dtype), z))
    U, V = v[:, 0].reshape(X.shape), v[:, 1].reshape(X.shape)
    if stream:
        kwargs.setdefault("color", "0.6")
        kwargs.setdefault("density", 1.0)
        kwargs.setdefault("linewidth", 0.8)
        ax.streamplot(X, Y, U, V, **kwargs)
    else:
        kwargs.setdefault("color", "0.6")
        ax.quiver(X, Y, U, V, **kwargs)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return ax


def plot_convergence(
    ax: Axes,
    results: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str = "step size $h$",
    ylabel: str = "global error at $T$",
    fit: bool = True,
) -> Axes:
    """Log-log plot of error against step size for each method; the legend gives each fitted slope (order)."""
    for name, (h, err) in results.items():
        label = name
        if fit:
            label = f"{name} (slope {estimate_order(h, err):.2f})"
        ax.loglog(h, err, "o-", label=label)
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels on a log axis collide
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax
