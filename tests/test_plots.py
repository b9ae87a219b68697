import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attention_book import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_use_style_sets_palette_and_colormap():
    plots.use_style()
    assert matplotlib.rcParams["image.cmap"] == plots.CMAP
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][:2] == list(plots.PALETTE[:2])
    assert matplotlib.rcParams["figure.dpi"] <= 100  # light PNGs


def test_heatmap_draws_weights_with_labels_and_colorbar():
    w = torch.softmax(torch.randn(3, 4), dim=-1)
    ax = plots.attention_heatmap(
        w, query_labels=list("abc"), key_labels=list("wxyz"), annotate=True, title="t"
    )
    image = ax.get_images()[0]
    np.testing.assert_allclose(image.get_array(), w.numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == list("wxyz")
    assert [t.get_text() for t in ax.get_yticklabels()] == list("abc")
    assert len(ax.texts) == 12 and ax.get_title() == "t"
    assert len(ax.figure.axes) == 2  # the heatmap and its colour bar
    assert image.get_clim() == (0.0, 1.0)


def test_heatmap_draws_on_given_axes_without_colorbar():
    fig, ax = plt.subplots()
    assert plots.attention_heatmap(np.eye(2), ax=ax, colorbar=False) is ax
    assert len(fig.axes) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"weights": np.ones(3)}, ValueError, r"weights must be \(N, M\), got shape \(3,\)"),
        ({"weights": [[1.0]]}, TypeError, "weights must be a tensor or an array, got list"),
        ({"weights": np.ones((2, 0))}, ValueError, "at least one row and column"),
        (
            {"weights": np.ones((2, 3)), "key_labels": ["a"]},
            ValueError,
            r"key_labels must have 3 entries for weights \(2, 3\), got 1",
        ),
    ],
)
def test_heatmap_rejects_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        plots.attention_heatmap(**kwargs)
