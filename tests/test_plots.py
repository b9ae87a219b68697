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


def test_image_overlay_stretches_the_map_over_the_image_and_draws_boxes():
    image = torch.rand(3, 32, 32)
    weights = torch.zeros(8, 8)
    weights[2, 5] = 1.0
    ax = plots.image_overlay(image, weights, boxes=[(4, 6, 12, 14)], title="t")
    picture, overlay = ax.get_images()
    assert picture.get_array().shape == (32, 32, 3)  # (3, H, W) is drawn as (H, W, 3)
    assert overlay.get_extent() == [0, 32, 32, 0] and overlay.get_clim() == (0.0, 1.0)
    fixed = plots.image_overlay(image, weights * 0.5, vmax=1.0).get_images()[1]
    assert fixed.get_clim() == (0.0, 1.0)  # not stretched to the map's maximum of 0.5
    (box,) = ax.patches
    assert box.get_xy() == (4.0, 6.0) and box.get_width() == 8.0
    assert ax.get_title() == "t"
    assert len(plots.image_overlay(np.ones((16, 16))).get_images()) == 1  # grey, no map


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((torch.rand(2, 3, 8, 8),), {}, r"image must be \(3, H, W\)"),
        ((torch.rand(3, 8, 8), torch.rand(4)), {}, r"weights must be \(h, w\)"),
        ((torch.rand(3, 8, 8), torch.rand(2, 2)), {"alpha": 2.0}, r"alpha must be in \[0, 1\]"),
    ],
)
def test_image_overlay_rejects_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.image_overlay(*args, **kwargs)
