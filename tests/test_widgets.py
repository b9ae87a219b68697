"""Chapter 1's interactive figures: every slider position computed, a picture for print."""

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from attention_book import _widgets, plots

PNG = b"\x89PNG\r\n\x1a\n"


def _data(figure):
    found = re.search(r'class="pa-data">(.*?)</script>', figure.html(), re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def _panel(data, key, i):
    """Panel ``i`` of frame ``key`` as the script sees it: the first frame's fields, the frame's
    own, and every pooled array or label list looked up."""
    panel = {**data["base"][i], **data["frames"][key]["panels"][i]}
    return {
        k: data["pool"][v["$"]] if isinstance(v, dict) and "$" in v else v for k, v in panel.items()
    }


def _bars(data, key):
    """The weights drawn in frame ``key``."""
    packed = _panel(data, key, 0)["bars"]
    return np.array(packed["q"]) / packed["scale"]


def test_temperature_widget_starts_where_asked_and_reports_entropy():
    figure = plots.temperature_widget(torch.tensor([0.0, 1.0, 4.0]), query=1.0, temperature=2.0)
    data = _data(figure)
    query, temp = data["controls"]
    assert query["kind"] == temp["kind"] == "slider"
    assert (query["options"][0], query["options"][-1]) == ("0.00", "4.00")
    assert query["options"][query["initial"]] == "1.00"
    assert float(temp["options"][temp["initial"]]) == pytest.approx(2.0, rel=0.2)
    key = f"{query['initial']},{temp['initial']}"
    t = float(temp["options"][temp["initial"]])
    scores = -((1.0 - np.array([0.0, 1.0, 4.0])) ** 2) / t
    weights = np.exp(scores) / np.exp(scores).sum()
    entropy = -(weights * np.log(weights)).sum()
    caption = data["frames"][key]["caption"]
    assert f"entropy {entropy:.2f} of at most {np.log(3):.2f} nats" in caption
    assert f"largest weight {weights.max():.2f}" in caption
    np.testing.assert_allclose(_bars(data, key), weights, atol=1e-3)


def test_temperature_widget_has_a_frame_for_every_slider_position():
    data = _data(plots.temperature_widget([0.0, 1.0, 2.0, 5.0]))
    query, temp = data["controls"]
    assert query["options"][query["initial"]] == "2.50"  # halfway by default
    assert len(data["frames"]) == len(query["options"]) * len(temp["options"])
    cold = f"0,{temp['options'].index('0.01')}"  # query on the first key, T = 0.01
    assert "largest weight 1.00" in data["frames"][cold]["caption"]
    hot = f"0,{len(temp['options']) - 1}"
    assert _bars(data, hot).max() < _bars(data, cold).max()


def test_temperature_widget_slider_range_covers_the_initial_temperature():
    temp = _data(plots.temperature_widget([0.0, 1.0], temperature=1000.0))["controls"][1]
    assert float(temp["options"][temp["initial"]]) == pytest.approx(1000.0)


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


def test_soft_lookup_widget_looks_up_the_colour_of_the_nearest_key_when_cold():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    figure = plots.soft_lookup_widget(keys, np.eye(3), ["r", "g", "b"], angle=90.0)
    data = _data(figure)
    angle = data["controls"][0]
    assert angle["options"][angle["initial"]] == "90°"
    cold = f"{angle['initial']},0"  # the coldest temperature, 0.01
    swatch = _panel(data, cold, 1)
    assert swatch["text"] == ["#00ff00"]  # all weight on the key at 90°: green
    np.testing.assert_allclose(_bars(data, cold), [0, 1, 0], atol=1e-3)


def test_widgets_print_as_a_picture_and_need_no_kernel():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    lookup = plots.soft_lookup_widget(keys, np.eye(3), ["r", "g", "b"])
    line = plots.temperature_widget([0.0, 1.0, 4.0])
    for figure in (lookup, line):
        bundle = figure._repr_mimebundle_()
        # the site and Jupyter show the HTML, the PDF the picture, a terminal the text
        assert {"text/html", "image/png", "text/plain"} <= set(bundle)
        assert "application/vnd.jupyter.widget-view+json" not in bundle
        assert base64.b64decode(bundle["image/png"]).startswith(PNG)
        assert len(bundle["text/html"]) < 400_000  # every frame inlined, still light


def test_widgets_are_documented_where_readers_look():
    assert plots.soft_lookup_widget is _widgets.soft_lookup_widget
    assert plots.temperature_widget.__module__ == "attention_book.plots"
