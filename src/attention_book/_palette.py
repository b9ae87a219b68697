"""The book's colours: one colormap and one palette, shared by the plots and the widgets."""

from __future__ import annotations

#: Colormap for weights and other quantities in [0, 1]; perceptually uniform.
CMAP = "viridis"

#: Okabe & Ito's colour-blind-safe palette, in the order lines are drawn.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#D55E00",  # vermillion
    "#CC79A7",  # purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
