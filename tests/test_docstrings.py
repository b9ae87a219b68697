"""Every "Introduced in" reference names the page where the reader first meets the name.

The rule: pages are read in the order of ``_toc.yml`` (a chapter entry ``notebooks/X`` has
its source in ``book/X.md``), and only their code cells count. A page *meets* a name when a
code cell

- imports it: ``from attention_book... import name`` (or ``name as alias``);
- uses it as an attribute of a module of the package, bound by an import in a code cell:
  ``ab.name``, ``checks.name``, ``vit.name``, ``ab.models.vit.name``;
- or defines it from scratch: ``def name(`` or ``class name(`` (a page builds the idea, then
  imports the package's version).

A public function or class of the package (what the API page documents) that says
``Introduced in :ref:`sec-x``` must point at a label that exists, and the page holding that
label must be the first page that meets the name. A name that no page's code meets (a helper
the package uses internally) only needs an existing label.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml

from tests.test_api_docs import MODULES

ROOT = Path(__file__).resolve().parent.parent
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.M | re.S)
LABEL = re.compile(r"^\((sec-[\w-]+)\)=$", re.M)
REF = re.compile(r"Introduced in :ref:`(sec-[\w-]+)`")
FROM_IMPORT = re.compile(r"^\s*from (attention_book(?:\.\w+)*) import (\([^)]*\)|[^\n]*)", re.M)
IMPORT_AS = re.compile(r"^\s*import (attention_book(?:\.\w+)*)(?: as (\w+))?", re.M)


def _pages() -> list[Path]:
    """The book's pages in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]] + [
        chapter["file"] for part in toc["parts"] for chapter in part["chapters"]
    ]
    return [ROOT / "book" / (f.split("/", 1)[1] + ".md") for f in files]


def _met(code: str) -> tuple[list[object], set[str]]:
    """What the code cells ``code`` meet: the package's objects and modules, and defined names.

    Objects are resolved, so ``seq2seq.exact_match`` is not ``captioner.exact_match``.
    """
    objects: list[object] = []
    aliases: dict[str, object] = {}
    for module, imported in FROM_IMPORT.findall(code):
        for item in imported.strip("()").split(","):
            words = item.split("#")[0].split()
            if not words:
                continue
            parent = importlib.import_module(module)
            try:
                obj = importlib.import_module(f"{module}.{words[0]}")
            except ImportError:
                obj = getattr(parent, words[0], None)
            objects += [parent, obj]
            aliases[words[-1]] = obj
    for module, alias in IMPORT_AS.findall(code):
        aliases[alias or "attention_book"] = importlib.import_module(
            module if alias else "attention_book"
        )
        objects.append(importlib.import_module(module))
    for alias, bound in aliases.items():
        for chain in re.findall(rf"(?<![\w.]){re.escape(alias)}((?:\.\w+)+)", code):
            obj = bound
            for attr in chain.strip(".").split("."):
                obj = getattr(obj, attr, None)
                if obj is None:
                    break
                objects.append(obj)
    defined = set(re.findall(r"^\s*(?:def|class) (\w+)\b", code, re.M))
    return objects, defined


PAGES = _pages()
CODE = {page: "\n".join(CODE_CELL.findall(page.read_text(encoding="utf-8"))) for page in PAGES}
MET = {page: _met(code) for page, code in CODE.items()}
LABELS = {
    label: page
    for page in ROOT.joinpath("book").rglob("*.md")
    for label in LABEL.findall(page.read_text(encoding="utf-8"))
}
DOCUMENTED = sorted(
    {
        (module, name)
        for module in MODULES
        for name in getattr(importlib.import_module(module), "__all__", [])
        if inspect.isfunction(getattr(importlib.import_module(module), name))
        or inspect.isclass(getattr(importlib.import_module(module), name))
    }
)


def _meets(page: Path, module: str, name: str) -> bool:
    """Whether ``page`` imports or uses ``module.name``, or defines ``name`` next to ``module``."""
    objects, defined = MET[page]
    obj, home = getattr(importlib.import_module(module), name), importlib.import_module(module)
    if any(o is obj for o in objects):
        return True
    return name in defined and any(o is home for o in objects)


def _first_page(module: str, name: str) -> Path | None:
    return next((page for page in PAGES if _meets(page, module, name)), None)


def test_the_pages_are_found():
    assert all(page.exists() for page in PAGES)
    assert sum(bool(code) for code in CODE.values()) > 30  # the chapter pages have code


def test_the_rule_reads_imports_attributes_and_definitions():
    code = (
        "import attention_book as ab\nfrom attention_book import checks\n"
        "from attention_book.models import vit as V\n"
        "from attention_book.attention import (\n    softmax,\n    causal_mask as cm,\n)\n"
        "ab.plots.use_style()\nchecks.check_rope(f)\nV.ViT(8)\ndef patchify(x):\n    pass\n"
        "torch.softmax(x)  # not the package's\nF.tiled(x)\n"
    )
    objects, defined = _met(code)
    from attention_book import attention, checks, plots
    from attention_book.models import vit

    for obj in (attention.softmax, attention.causal_mask, plots.use_style, checks.check_rope):
        assert any(o is obj for o in objects)
    assert any(o is vit.ViT for o in objects)
    assert defined == {"patchify"}


@pytest.mark.parametrize(("module", "name"), DOCUMENTED, ids=lambda x: x)
def test_introduced_in_names_the_first_page_that_meets_the_name(module, name):
    doc = inspect.getdoc(getattr(importlib.import_module(module), name)) or ""
    ref = REF.search(doc)
    if ref is None:
        pytest.skip("no 'Introduced in' (test_api_docs asks for one where it must be)")
    label = ref.group(1)
    assert label in LABELS, f"{module}.{name}: no page has the label {label}"
    first = _first_page(module, name)
    if first is None:
        return  # no page's code meets it: used inside the package only
    page = LABELS[label]
    first_labels = [lbl for lbl, p in LABELS.items() if p == first]
    assert page == first, (
        f"{module}.{name} says 'Introduced in {label}' ({page.relative_to(ROOT)}), but the "
        f"first page that imports, uses or defines it is {first.relative_to(ROOT)} "
        f"({', '.join(first_labels) or 'no label'})"
    )
