"""The interactive figures: live sliders on the site, a static picture in print."""

import base64

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from attention_book import _widgets, plots

PNG = b"\x89PNG\r\n\x1a\n"


def _parts(widget):
    (query_slider, temp_slider), view = widget.children[0].children, widget.children[1]
    return query_slider, temp_slider, view


def test_temperature_widget_starts_where_asked_and_reports_entropy():
    widget = plots.temperature_widget(torch.tensor([0.0, 1.0, 4.0]), query=1.0, temperature=2.0)
    query_slider, temp_slider, view = _parts(widget)
    assert (query_slider.min, query_slider.max, query_slider.value) == (0.0, 4.0, 1.0)
    assert temp_slider.value == pytest.approx(2.0)
    scores = -((1.0 - np.array([0.0, 1.0, 4.0])) ** 2) / 2.0
    weights = np.exp(scores) / np.exp(scores).sum()
    entropy = -(weights * np.log(weights)).sum()
    assert f"entropy {entropy:.2f} nats" in view.value
    assert f"log 3 = {np.log(3):.2f}" in view.value
    assert f"largest weight {weights.max():.2f}" in view.value
    assert view.value.count("position:absolute") > 3  # bars, marker and axis


def test_temperature_widget_redraws_when_a_slider_moves():
    query_slider, temp_slider, view = _parts(plots.temperature_widget([0.0, 1.0, 2.0, 5.0]))
    assert query_slider.value == 2.5  # halfway by default
    before = view.value
    temp_slider.value = 10.0
    hotter = view.value
    assert hotter != before
    query_slider.value = 0.0
    assert view.value != hotter
    temp_slider.value = 0.01  # cold: all weight on the key at the query
    assert "largest weight 1.00" in view.value and "entropy 0.00 nats" in view.value


def test_temperature_widget_slider_range_covers_the_initial_temperature():
    _, temp_slider, _ = _parts(plots.temperature_widget([0.0, 1.0], temperature=1000.0))
    assert temp_slider.value == pytest.approx(1000.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (
            (np.ones((2, 2)),),
            {},
            ValueError,
            r"positions must be \(M,\) with M >= 2, got shape \(2, 2\)",
        ),
        (([1.0],), {}, ValueError, r"positions must be \(M,\) with M >= 2, got shape \(1,\)"),
        ((["a", "b"],), {}, TypeError, "positions must hold numbers, got dtype <U1"),
        (
            ("ab",),
            {},
            TypeError,
            "positions must be a sequence, array or tensor of numbers, got str",
        ),
        (([0.0, np.nan],), {}, ValueError, "positions must be finite"),
        (([2.0, 2.0],), {}, ValueError, "positions must not all be equal"),
        (
            ([0.0, 1.0],),
            {"temperature": 0.0},
            ValueError,
            "temperature must be a finite number > 0",
        ),
        (([0.0, 1.0],), {"temperature": "hot"}, TypeError, "temperature must be a number, got str"),
        (([0.0, 1.0],), {"query": "middle"}, TypeError, "query must be a number, got str"),
        (([0.0, 1.0],), {"query": True}, TypeError, "query must be a number, got bool"),
        (([0.0, 1.0],), {"query": 3.0}, ValueError, r"query must lie in \[0, 1\].*got 3.0"),
    ],
)
def test_temperature_widget_rejects_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        plots.temperature_widget(*args, **kwargs)


def _bundle(widget):
    return widget._repr_mimebundle_()


def test_widgets_print_as_a_picture_of_their_current_state():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    colours = np.eye(3)
    lookup = plots.soft_lookup_widget(keys, colours, ["r", "g", "b"])
    line = plots.temperature_widget([0.0, 1.0, 4.0])
    for widget in (lookup, line):
        bundle = _bundle(widget)
        # the site shows the live view, the PDF the picture, a terminal the text
        assert {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"} <= set(
            bundle
        )
        assert base64.b64decode(bundle["image/png"]).startswith(PNG)
    # the picture follows the sliders: another state draws another image
    before = _bundle(line)["image/png"]
    line.children[0].children[1].value = 0.05
    assert _bundle(line)["image/png"] != before


def test_widgets_are_documented_where_readers_look():
    assert plots.soft_lookup_widget is _widgets.soft_lookup_widget
    assert plots.temperature_widget.__module__ == "attention_book.plots"
