"""Sphinx extension with the book's fixes to the default Jupyter Book 1 site and PDF.

sphinx-thebe 0.3.1 adds its inline configuration script (``const THEBE_JS_URL = ...``) after
the HTML builder has started, and Sphinx 7 then lists it twice on every page; the second copy
throws "Identifier 'THEBE_JS_URL' has already been declared". We drop the duplicate (same
body and attributes) from each page's scripts.

In print, an output that only a live page can show is dropped: a widget view with no picture
beside it, which is a progress bar (its text form would print "0%"). The interactive figures
are HTML, not widgets, and carry a PNG of their first frame (``attention_book._explorer``),
which the PDF shows instead.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PICTURES = {"image/png", "image/jpeg", "image/svg+xml"}


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


class DropLiveOnlyOutputs(SphinxPostTransform):
    """In the PDF, drop the outputs that are a widget and nothing to print (progress bars)."""

    default_priority = 3  # before MyST-NB picks one type from each bundle (priority 4)
    formats = ("latex",)

    def run(self, **kwargs: Any) -> None:
        for bundle in list(self.document.findall(nodes.container)):
            if bundle.get("nb_element") != "mime_bundle":
                continue
            types = {child.get("mime_type") for child in bundle.children}
            if WIDGET_VIEW in types and not types & PICTURES:
                bundle.parent.remove(bundle)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.add_post_transform(DropLiveOnlyOutputs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
