"""Pages show ideas, not plotting code: a cell with more than eight lines of drawing is collapsed.

A figure cell that needs more than about eight lines of matplotlib calls either becomes one
``plots.`` call or carries the tag ``hide-input``, so that the page shows the figure and its
caption and a reader opens the drawing code only on request (issue 19).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_notebooks  # noqa: E402

# A line that draws: a pyplot call, a method of an axes or a figure, a colour bar.
DRAWING = re.compile(
    r"^\s*(plt\.|ax\b|ax[\w\[\]\d, ]*\.|axes?\b.*\.|fig\.|cbar\.|plots\.attention_heatmap"
    r"|\w+\.set_(title|xlabel|ylabel|xticks|yticks|xlim|ylim)|.*\.colorbar\()"
)
MOST = 8


def drawing_lines(source: str) -> int:
    return sum(bool(DRAWING.match(line)) for line in source.splitlines())


def test_the_rule_counts_drawing_lines():
    cell = (
        "x = 1\nfig, ax = plt.subplots()\nax.plot(x)\naxes[0].set_title('t')\ncbar.set_label('w')"
    )
    assert drawing_lines(cell) == 3  # not the line that makes the figure


@pytest.mark.parametrize("source", build_notebooks.chapter_sources(), ids=lambda p: p.stem)
def test_long_drawing_cells_are_collapsed(source):
    notebook = jupytext.read(source)
    long = [
        (index, drawing_lines(cell.source))
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and drawing_lines(cell.source) > MOST
        and not {"hide-input", "remove-input"} & set(cell.metadata.get("tags", []))
    ]
    assert not long, (
        f"cells (index, drawing lines) with more than {MOST} lines of drawing code: {long}; "
        "tag them hide-input or move the drawing into attention_book.plots"
    )
