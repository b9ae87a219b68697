"""The MyST -> notebook -> site pipeline: sources, notebooks and TOC agree with each other."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import format_book  # noqa: E402

import build_notebooks  # noqa: E402

SOURCES = build_notebooks.chapter_sources()
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if "labs" not in p.parts)
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def source_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def cells_of(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str], object]]:
    """Each cell's type, source, tags and MyST-NB options (captions, alt text)."""
    return [
        (c.cell_type, c.source, sorted(c.metadata.get("tags", [])), c.metadata.get("mystnb"))
        for c in nb.cells
    ]


def test_there_is_at_least_one_chapter_page():
    assert SOURCES, "no chapter page found in book/"


def test_every_source_has_a_notebook_and_every_notebook_a_source():
    expected = {build_notebooks.notebook_path(s) for s in SOURCES}
    assert set(NOTEBOOKS) == expected


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_notebook_inputs_match_their_source(source):
    """A notebook is never edited by hand: its cells are exactly its MyST source's."""
    stored = nbformat.read(build_notebooks.notebook_path(source), as_version=4)
    fresh = jupytext.read(source)
    assert cells_of(stored) == cells_of(fresh), (
        f"{source_id(source)} changed since its notebook was built: run `make notebooks`"
    )
    # the page's options (budget_s, timing) are what nbval's budgets and schedule read
    assert stored.metadata.get("attention_book") == fresh.metadata.get("attention_book")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=source_id)
def test_notebook_was_executed_top_to_bottom(notebook):
    nb = nbformat.read(notebook, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "execute it with `make notebooks`"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs, "a notebook without outputs would pass nbval trivially"
    assert not [o for o in outputs if o.output_type == "error"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=source_id)
def test_notebook_stays_light(notebook):
    assert notebook.stat().st_size < 1_000_000
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert "image/svg+xml" not in data and "application/pdf" not in data
            if "image/png" in data:
                assert len(base64.b64decode(data["image/png"])) < 200_000


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=source_id)
def test_first_cell_installs_the_package_only_when_missing(notebook):
    first = nbformat.read(notebook, as_version=4).cells
    setup = next(c for c in first if c.cell_type == "code").source
    repo = CONFIG["repository"]["url"]
    assert re.search(r'if \(?\s*importlib\.util\.find_spec\("attention_book"\) is None', setup)
    # a page may ask for an extra, e.g. attention-book[pretrained] for the real MiniLM; the
    # address sits in a variable that IPython expands, so that the line fits the page
    assert re.search(re.escape(f'repo = "git+{repo}"'), setup), setup
    install = re.escape("%pip install --quiet ") + r'"attention-book(\[\w+\])? @ \{repo\}"'
    assert re.search(install, setup), setup


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_chapter_page_has_goals_summary_and_exercises(source):
    text = source.read_text(encoding="utf-8")
    assert re.search(r"^\(sec-[\w-]+\)=\n# ", text, re.M), "label the page title (sec-...)"
    assert ":::{admonition} Learning goals" in text
    assert re.search(r"^## Summary$", text, re.M)
    assert re.search(r"^## Exercises$", text, re.M)
    assert "```{exercise}" in text


def test_toc_lists_front_matter_from_book_and_chapters_from_notebooks():
    files = toc_files()
    assert len(files) == len(set(files))
    for entry in files:
        suffix = ".ipynb" if entry.startswith("notebooks/") else ".md"
        assert (ROOT / f"{entry}{suffix}").is_file(), entry
        assert entry.startswith(("book/", "notebooks/"))
    chapters = {f"{f}.ipynb" for f in files if f.startswith("notebooks/")}
    assert chapters == {source_id(n) for n in NOTEBOOKS}
    front = {f for f in files if f.startswith("book/")}
    assert not front & {f"book/{s.relative_to(ROOT / 'book').with_suffix('')}" for s in SOURCES}


def test_config_keeps_site_offline_and_buttons_working():
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert "path_to_book" not in CONFIG.get("repository", {})
    buttons = CONFIG["launch_buttons"]
    assert buttons["colab_url"] and buttons["binderhub_url"]
    sphinx = CONFIG["sphinx"]["config"]
    assert not sphinx["mathjax_path"].startswith("http")
    assert all(not url.startswith("http") for url in sphinx["nb_ipywidgets_js"])
    assert "sphinx_exercise" in CONFIG["sphinx"]["extra_extensions"]


def test_widget_ids_are_renumbered_deterministically():
    state = {
        "abc123": {"state": {"children": ["IPY_MODEL_def456"]}},
        "def456": {"state": {}},
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {build_notebooks.WIDGET_STATE: {"state": state}}
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc123"}}
    nb.cells.append(
        nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data=view)])
    )
    once = build_notebooks.renumber_widgets(nb, "page.md")
    twice = build_notebooks.renumber_widgets(nb, "page.md")
    assert once == twice
    ids = list(once.metadata["widgets"][build_notebooks.WIDGET_STATE]["state"])
    assert "abc123" not in ids and "def456" not in ids
    model_id = once.cells[0].outputs[0].data["application/vnd.jupyter.widget-view+json"]
    assert model_id["model_id"] == ids[0]
    children = once.metadata["widgets"][build_notebooks.WIDGET_STATE]["state"][ids[0]]
    assert children["state"]["children"] == [f"IPY_MODEL_{ids[1]}"]


def test_build_script_rejects_a_page_outside_book(tmp_path):
    stray = tmp_path / "x.md"
    stray.write_text("---\nkernelspec:\n  name: python3\n---\n")
    with pytest.raises(SystemExit):
        build_notebooks.main([str(stray)])


def test_long_comments_and_docstrings_are_wrapped_to_the_column():
    long = "word " * 20
    code = (
        f"# {long}\n"
        "# and the sentence goes on here.\n"
        f"x = 1  # {long}\n"
        "def f():\n"
        f'    """{long.strip()}."""\n'
        f"    return 1  # noqa: E501 {long}\n"
        "%pip install something\n"
    )
    wrapped = format_book.wrap_long_lines(code)
    lines = wrapped.splitlines()
    assert all(len(line) <= 80 for line in lines if "noqa" not in line), wrapped
    # the comment block is reflowed as one sentence, the trailing comment goes above its line
    assert "the sentence goes on here." in " ".join(lines[:3])
    assert lines[lines.index("x = 1") - 1].startswith("# word")
    # the docstring keeps its text; a pragma and an IPython line stay as they were
    assert '"""word' in wrapped and 'word."""' in wrapped
    assert f"    return 1  # noqa: E501 {long}" in lines
    assert "%pip install something" in lines
    assert format_book.wrap_long_lines("x = 1  # short\n") == "x = 1  # short\n"


def test_a_change_of_layout_keeps_the_program_a_change_of_code_does_not():
    old = 'def f():\n    """Add one."""\n    return g(1)  # one\n\nprint(f"a {x:.2f} b")\n'
    laid_out = (
        'def f():\n    """Add one to\n    the number."""\n    # one\n    return g(\n        1\n'
        '    )\n\n\nprint(\n    f"a {x:.2f}"\n    " b"\n)\n'
    )
    assert build_notebooks.same_program(old, laid_out)
    assert not build_notebooks.same_program(old, old.replace("g(1)", "g(2)"))
    assert not build_notebooks.same_program(old, old.replace('" b"', '"b"').replace(" b", "b"))
    magic = '%pip install --quiet "x @ {repo}"\n'
    assert build_notebooks.same_program(magic, magic)
    assert not build_notebooks.same_program(magic, magic.replace("x @", "y @"))
    assert not build_notebooks.same_program("x = (", "x = 1")
