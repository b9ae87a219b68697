"""Every public function documents its arguments and names the page that introduces it."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    "attention_book",
    "attention_book.attention",
    "attention_book.train",
    "attention_book.plots",
    "attention_book.checks",
]
LABELS = {
    m.group(1)
    for page in (ROOT / "book").rglob("*.md")
    for m in re.finditer(r"^\((sec-[\w-]+)\)=$", page.read_text(encoding="utf-8"), re.M)
}
PUBLIC = [
    (module, name)
    for module in MODULES
    for name in importlib.import_module(module).__all__
    if inspect.isfunction(getattr(importlib.import_module(module), name))
]


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=lambda x: x)
def test_public_function_is_documented(module, name):
    fn = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(fn)
    assert doc, f"{module}.{name} has no docstring"
    first = doc.splitlines()[0]
    assert first.endswith(".") and first[0].isupper()
    params = [p for p in inspect.signature(fn).parameters if p not in ("self",)]
    if params:
        assert "Args:" in doc
        for p in params:
            assert re.search(rf"^\s+{p}:", doc, re.M), f"{name}: argument {p} is not documented"
    assert inspect.signature(fn).return_annotation is not inspect.Signature.empty
    ref = re.search(r"Introduced in :ref:`(sec-[\w-]+)`", doc)
    assert ref, f"{name}: say which page introduces it"
    assert ref.group(1) in LABELS, f"{name}: no page has the label {ref.group(1)}"
