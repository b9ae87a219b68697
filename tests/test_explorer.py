"""The interactive figures: every frame computed, data packed to 3 digits, one output."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch

from attention_book import plots
from attention_book._explorer import _pack


def weights(n: int, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).random((n, n))
    return w / w.sum(1, keepdims=True)


def two_controls() -> plots.Explorer:
    def frame(head: int, mask: int) -> tuple[list[plots.Matrix], str]:
        w = weights(4, 10 * head + mask)
        return [plots.Matrix(w, "weights", rows=list("abcd"), cols=list("abcd"))], f"{head}/{mask}"

    return plots.explorer(
        {"head": ["0", "1", "2"], "mask": ["none", "causal"]},
        frame,
        alt="weights of three heads under two masks",
        sliders=["head"],
        initial={"mask": 1},
    )


def data_of(html: str) -> dict:
    found = re.search(r'<script type="application/json" class="pa-data">(.*?)</script>', html, re.S)
    assert found, "no data block in the figure's HTML"
    return json.loads(found.group(1).replace("<\\/", "</"))


def test_every_combination_is_a_frame_with_its_caption():
    data = data_of(two_controls().html())
    assert sorted(data["frames"]) == [f"{h},{m}" for h in range(3) for m in range(2)]
    assert data["frames"]["2,1"]["caption"] == "2/1"
    assert [c["kind"] for c in data["controls"]] == ["slider", "select"]
    assert [c["initial"] for c in data["controls"]] == [0, 1]


def test_packed_values_keep_three_significant_digits():
    values = np.array([[0.123456, 0.5], [0.0004, np.nan]])
    packed = _pack(values)
    back = np.array([np.nan if q is None else q / packed["scale"] for q in packed["q"]])
    assert back[0] == pytest.approx(0.123, abs=1e-9)
    assert back[1] == pytest.approx(0.5)
    assert back[2] == 0.0  # below 3 digits of the largest entry
    assert np.isnan(back[3])
    assert packed["shape"] == [2, 2]


def test_the_output_is_self_contained_and_carries_a_picture():
    fig = two_controls()
    bundle = fig._repr_mimebundle_()
    html = bundle["text/html"]
    assert "explorer.js" not in html and 'src="http' not in html  # nothing to fetch
    assert "window.paExplorer" in html  # the script is inlined
    assert 'alt="weights of three heads under two masks"' in html
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG")
    assert "interactive figure" in bundle["text/plain"]


def test_data_cannot_close_the_script_tag():
    def frame(view: int) -> list[plots.Bars]:
        return [plots.Bars([1.0], ["</script><b>"], "x")]

    html = plots.explorer({"view": ["a"]}, frame, alt="a bar").html()
    data_block = html.split('class="pa-data">', 1)[1].split("</figure>", 1)[0]
    assert data_block.count("</script>") == 1  # only the block's own end tag


def test_repeated_arrays_and_labels_are_stored_once():
    w = weights(5, 0)

    def frame(head: int, view: int) -> list:
        return [plots.Lines(w, list("abcde"), "lines"), plots.Matrix(w, "m", rows=list("abcde"))]

    data = data_of(
        plots.explorer({"head": ["0", "1", "2"], "view": ["a", "b"]}, frame, alt="x").html()
    )
    assert len(data["pool"]) == 2  # the weights and the tokens, for 6 frames of 2 panels
    assert data["base"][0]["values"] == data["base"][1]["values"] == {"$": 0}
    assert data["frames"]["2,1"]["panels"] == [{"kind": "lines"}, {"kind": "matrix"}]


def test_the_same_data_give_the_same_html():
    assert two_controls().html() == two_controls().html()


def test_panels_accept_tensors_and_draw_their_first_frame():
    w = torch.softmax(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)), -1)
    panels = [
        plots.Matrix(w, "m"),
        plots.Lines(w, list("abcdef"), "l"),
        plots.Patches(torch.rand(8, 8), (2, 2), torch.rand(4, 4), "p"),
        plots.Bars(torch.tensor([1.0, 2.0]), ["x", "y"], "b", text=["1 B", "2 B"]),
    ]
    fig = plots.explorer({"only": ["one"]}, lambda only: panels, alt="four panels")
    kinds = [p["kind"] for p in data_of(fig.html())["frames"]["0"]["panels"]]
    assert kinds == ["matrix", "lines", "patches", "bars"]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: plots.Matrix(np.ones(3), "m").data(), "values must have 2 dimensions"),
        (lambda: plots.Matrix(np.ones((2, 2)), rows=["a"]).data(), "rows must hold 2 labels"),
        (lambda: plots.Lines(np.ones((2, 3)), ["a", "b"]).data(), r"square \(N, N\)"),
        (
            lambda: plots.Patches(np.ones((8, 8)), (3, 3), np.ones((9, 9))).data(),
            r"grid \(3, 3\) must divide",
        ),
        (
            lambda: plots.Patches(np.ones((8, 8)), (2, 2), np.ones((3, 3))).data(),
            r"values must be \(P, P\) = \(4, 4\)",
        ),
        (lambda: plots.Bars([-1.0], ["a"]).data(), "values must be >= 0"),
    ],
)
def test_bad_panels_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_controls_are_named():
    panel = [plots.Bars([1.0], ["a"])]
    with pytest.raises(ValueError, match="at least one control"):
        plots.explorer({}, lambda: panel, alt="x")
    with pytest.raises(ValueError, match="control 'a' must have at least one choice"):
        plots.explorer({"a": []}, lambda a: panel, alt="x")
    with pytest.raises(ValueError, match=r"among \['a'\], got \['b'\]"):
        plots.explorer({"a": ["1"]}, lambda a: panel, alt="x", sliders=["b"])
    with pytest.raises(ValueError, match=r"initial\['a'\] must be in 0..0, got 3"):
        plots.explorer({"a": ["1"]}, lambda a: panel, alt="x", initial={"a": 3})
    with pytest.raises(ValueError, match="alt must describe"):
        plots.explorer({"a": ["1"]}, lambda a: panel, alt=" ")
    with pytest.raises(TypeError, match="must return Matrix, Lines, Patches or Bars"):
        plots.explorer({"a": ["1"]}, lambda a: ["not a panel"], alt="x")
    with pytest.raises(TypeError, match="values must be an array of numbers"):
        plots.Matrix("abc").data()
