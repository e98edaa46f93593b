"""nodelib.plotting: the helpers draw what they are given, and the book style is what the chapters need."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from nodelib.plotting import BOOK_COLUMN_INCHES, BOOK_RC, plot_trajectory, use_book_style


def test_book_style_sets_legible_defaults():
    applied = use_book_style()
    assert applied == BOOK_RC
    assert plt.rcParams["figure.dpi"] == 100 and plt.rcParams["axes.grid"]
    for key in ("font.size", "axes.titlesize", "legend.fontsize"):
        assert float(plt.rcParams[key]) >= 9, f"{key} below 9 pt"
    # a cell's output area is 784 px wide: a figure of BOOK_COLUMN_INCHES is shrunk by less than 10%
    assert BOOK_COLUMN_INCHES * plt.rcParams["figure.dpi"] * 0.9 <= 784


def test_plot_trajectory_rejects_the_wrong_shape():
    fig, ax = plt.subplots()
    plot_trajectory(ax, torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"\(T, 2\) or \(T, B, 2\)"):
        plot_trajectory(ax, torch.zeros(5, 3))
    plt.close(fig)
