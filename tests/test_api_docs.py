"""Every public function documents its arguments and names the page that introduces it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import attention_book

ROOT = Path(__file__).resolve().parent.parent
_WALKED = list(pkgutil.walk_packages(attention_book.__path__, "attention_book."))
# a package with __all__ (attention_book.efficient) is documented as one module: it re-exports
# what its submodules define, and the reader imports it from there
FACADES = {
    info.name
    for info in _WALKED
    if info.ispkg and hasattr(importlib.import_module(info.name), "__all__")
}
MODULES = ["attention_book", *sorted(FACADES)] + [
    info.name
    for info in _WALKED
    if not info.ispkg
    and not info.name.rsplit(".", 1)[-1].startswith("_")
    and info.name.rsplit(".", 1)[0] not in FACADES
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
CLASSES = [
    (module, name)
    for module in MODULES
    for name in getattr(importlib.import_module(module), "__all__", [])
    if inspect.isclass(getattr(importlib.import_module(module), name))
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


@pytest.mark.parametrize(("module", "name"), CLASSES, ids=lambda x: x)
def test_public_class_is_documented(module, name):
    cls = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(cls)
    assert doc, f"{module}.{name} has no docstring"
    ref = re.search(r"Introduced in :ref:`(sec-[\w-]+)`", doc)
    assert ref, f"{name}: say which page introduces it"
    assert ref.group(1) in LABELS, f"{name}: no page has the label {ref.group(1)}"


@pytest.mark.parametrize("module", MODULES[1:])
def test_every_module_is_in_the_api_reference(module):
    assert hasattr(importlib.import_module(module), "__all__"), f"{module} needs __all__"
    assert f".. automodule:: {module}\n" in (ROOT / "book" / "api.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("package", sorted(FACADES))
def test_a_facade_reexports_every_public_name_of_its_modules(package):
    facade = importlib.import_module(package)
    for info in pkgutil.iter_modules(facade.__path__, f"{package}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        for name in importlib.import_module(info.name).__all__:
            assert name in facade.__all__, f"{info.name}.{name} is not in {package}.__all__"
            obj = getattr(facade, name)
            if callable(obj):  # data (a table) is documented by a #: comment in the facade
                assert obj.__module__ == package, f"{name} is documented elsewhere"
