"""Format the code cells of the book's MyST sources with ruff, at the notebooks' line length.

    python scripts/format_book.py            # rewrite book/**/*.md in place
    python scripts/format_book.py --check    # list the pages that would change; exit 1 if any

The code cells of a page are put into a scratch notebook (so that ruff understands `%pip` and
other IPython lines), formatted with the settings of `notebooks/ruff.toml` (80 characters, the
width the site's column shows), and written back between the same fences, with the cell's
options untouched. A line that ends in `# fmt: skip` is left as it is.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CONFIG = ROOT / "notebooks" / "ruff.toml"
# A code cell: its fence, its options (":key: value" lines or a "---" YAML block), its code.
CELL = re.compile(
    r"^(?P<head>```\{code-cell\}[^\n]*\n(?:---\n.*?\n---\n|(?::[^\n]*\n)*))(?P<code>.*?)^```$",
    re.M | re.S,
)


def chapter_pages() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.md") if "kernelspec:" in p.read_text()[:600])


def format_cells(codes: list[str]) -> list[str]:
    """Format each cell's code with ruff, as the cells of one notebook."""
    nb = nbformat.v4.new_notebook()
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = kernel
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(code.rstrip("\n")) for code in codes]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.ipynb"
        nbformat.write(nb, path)
        done = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--config", str(CONFIG), str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr or done.stdout)
        formatted = nbformat.read(path, as_version=4)
    return [cell.source + "\n" if cell.source else "" for cell in formatted.cells]


def format_page(text: str) -> str:
    """Return the page with every code cell formatted."""
    cells = list(CELL.finditer(text))
    if not cells:
        return text
    codes = format_cells([m.group("code") for m in cells])
    out, last = [], 0
    for match, code in zip(cells, codes, strict=True):
        out += [text[last : match.start("code")], code]
        last = match.end("code")
    out.append(text[last:])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on a diff")
    parser.add_argument("pages", nargs="*", type=Path, help="pages to format (default: all)")
    args = parser.parse_args(argv)
    changed = []
    for page in [p.resolve() for p in args.pages] or chapter_pages():
        text = page.read_text(encoding="utf-8")
        new = format_page(text)
        if new != text:
            changed.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new, encoding="utf-8")
    verb = "would reformat" if args.check else "reformatted"
    for page in changed:
        print(f"{verb} {page}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
