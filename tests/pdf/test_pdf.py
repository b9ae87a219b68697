"""The whole book as one PDF (`make pdf`): everything on the site that can print, printed.

Run after `make pdf`: `pytest tests/pdf --pdf _build/latex/paying-attention.pdf`.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = [
    ROOT / "book" / (c["file"].removeprefix("notebooks/") + ".md")
    for part in TOC["parts"]
    for c in part["chapters"]
    if c["file"].startswith("notebooks/")
]
SOURCES = {p: p.read_text(encoding="utf-8") for p in CHAPTERS}


def _title(source: str) -> str:
    return re.search(r"^# (.+)$", source, re.M).group(1).strip()


def _plain(text: str) -> str:
    """Text without math, markup and hyphenation, with one space between words."""
    return " ".join(text.replace("-\n", "").split())


def test_every_part_and_chapter_page_is_in_the_book(text):
    flat = _plain(text)
    for part in TOC["parts"]:
        assert part["caption"] in flat
    for source in SOURCES.values():
        title = re.sub(r"\$[^$]*\$|[`*]", "", _title(source))
        assert _plain(title) in flat, title


def test_no_unresolved_reference_or_citation(text, log):
    assert "??" not in text, [line for line in text.splitlines() if "??" in line]
    assert "[?]" not in text
    assert "undefined" not in " ".join(re.findall(r"LaTeX Warning: .*", log))


def test_no_missing_glyph(log, text):
    """XeLaTeX reports each character its font lacks; the book needs none of them missing."""
    missing = sorted(set(re.findall(r"Missing character: There is no (.) \((U\+\w+)\)", log)))
    assert not missing, missing
    # characters the pages print outside math: ×, ≤, arrows (Greek letters sit in math)
    for char in "×≤→":
        assert char in text, char


def test_math_is_typeset_not_printed_as_source(text, log):
    """Math comes out in the math font's italic letters, and no environment leaks as source."""
    math_letters = re.findall(r"[\U0001D400-\U0001D7FF]", text)
    assert len(math_letters) > 2000, len(math_letters)
    assert "\\begin{" not in text and "\\end{" not in text
    assert "Undefined control sequence" not in log


def test_every_captioned_figure_is_printed_with_its_caption(text, log):
    captions = sum(len(re.findall(r"^\s+caption: ", s, re.M)) for s in SOURCES.values())
    printed = re.findall(r"^Fig\. \d+\.\d+\.\d+: ", text, re.M)  # Fig. 3.2.1: page 3.2
    assert len(printed) >= captions > 50, (len(printed), captions)
    assert "not found" not in " ".join(re.findall(r"(?:File|Image) .* not found", log))


def test_every_exercise_prints_with_its_solution(text):
    solutions = sum(s.count("```{solution-start}") for s in SOURCES.values())
    exercises = sum(s.count("```{exercise}") for s in SOURCES.values())
    assert len(re.findall(r"^Exercise \d+$", text, re.M)) >= exercises > 50
    assert len(re.findall(r"^Solution to Exercise \d+$", text, re.M)) == solutions


def test_the_bibliography_lists_every_cited_work(text):
    cited = {
        key.strip()
        for source in [*SOURCES.values(), *(ROOT / "book").glob("*.md")]
        for keys in re.findall(r"\{cite\w*\}`([^`]+)`", str(source))
        for key in keys.split(",")
    }
    # the bibliography numbers its entries [1] to [n]; the book cites them as [Author, year]
    numbers = {int(n) for n in re.findall(r"^\[(\d+)\]\s+[A-Z]", text, re.M)}
    assert set(range(1, len(cited) + 1)) <= numbers, sorted(set(range(1, len(cited) + 1)) - numbers)
    assert len(cited) > 20
    assert "[Vaswani et al., 2017]" in _plain(text)


def test_interactive_figures_print_as_pictures_and_progress_bars_not_at_all(text):
    figures = {}  # page -> the bundles of its interactive figures (plots.explorer)
    for page in CHAPTERS:
        nb = nbformat.read(
            ROOT / "notebooks" / page.relative_to(ROOT / "book").with_suffix(".ipynb"), as_version=4
        )
        bundles = [
            o.data
            for c in nb.cells
            for o in c.get("outputs", [])
            if 'class="pa-explorer"' in str(o.get("data", {}).get("text/html", ""))
        ]
        if bundles:
            figures[page] = bundles
    assert len(figures) >= 7, (
        f"interactive figures on {len(figures)} pages: has the test gone stale?"
    )
    for page, bundles in figures.items():
        assert all("image/png" in b for b in bundles), page
    # the print shows the picture, not the figure's text stand-in or its script
    assert "<interactive figure" not in text and "paExplorer" not in text
    assert "InteractiveFigure(" not in text and "VBox(children" not in text
    assert not re.search(r"\d+%\|", text), "a progress bar was printed"


def test_nothing_sticks_out_of_the_page(log):
    """Sphinx wraps long code lines; an overfull line may stick out a little, not a lot."""
    overfull = [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]
    assert all(x < 30 for x in overfull), sorted(overfull)[-5:]
