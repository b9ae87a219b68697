"""Sphinx extension with the book's fixes to the default Jupyter Book 1 site.

sphinx-thebe 0.3.1 adds its inline configuration script (``const THEBE_JS_URL = ...``) after
the HTML builder has started, and Sphinx 7 then lists it twice on every page; the second copy
throws "Identifier 'THEBE_JS_URL' has already been declared". We drop the duplicate (same
body and attributes) from each page's scripts.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _drop_duplicate_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        # the two copies differ only in filename: None in one, "" in the other
        filename = str(getattr(script, "filename", script) or "")
        attributes = tuple(
            sorted((str(k), str(v)) for k, v in getattr(script, "attributes", {}).items())
        )
        if (filename, attributes) in seen:
            continue
        seen.add((filename, attributes))
        unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
