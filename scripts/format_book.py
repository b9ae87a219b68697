"""Format the code cells of the book's MyST sources with ruff, at the notebooks' line length.

    python scripts/format_book.py            # rewrite book/**/*.md in place
    python scripts/format_book.py --check    # list the pages that would change; exit 1 if any

The code cells of a page are put into a scratch notebook (so that ruff understands `%pip` and
other IPython lines), formatted with the settings of `notebooks/ruff.toml` (80 characters, the
width the site's column shows), and written back between the same fences, with the cell's
options untouched. A line that ends in `# fmt: skip` is left as it is.

Ruff wraps code but not prose, so before it runs, comments and one-line docstrings longer than
80 characters are wrapped here: a comment over several comment lines, a comment that ends a
line of code onto its own line above, a docstring over several lines. Long strings are split
by hand, as adjacent literals ("..." "..."), which Python joins into the same string. None of
this changes what a cell computes, so the stored notebooks take it without re-execution
(`build_notebooks.py --text-only`).
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import subprocess
import sys
import tempfile
import textwrap
import tokenize
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

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


WIDTH = 80
# comments that tools read must stay on their line
PRAGMA = re.compile(r"#\s*(noqa|type:|fmt:|pragma)")
# a comment line that continues the sentence above it (not a list item, a blank, or code)
CONTINUED = re.compile(r"^\s*# +[a-z(]")


def _wrap(indent: str, text: str, prefix: str) -> list[str]:
    """Wrap ``text`` into lines ``indent + prefix + ...`` of at most WIDTH characters."""
    width = max(WIDTH - len(indent) - len(prefix), 20)
    return [indent + prefix + part for part in textwrap.wrap(text, width, break_long_words=False)]


def docstring_node(node: ast.AST) -> ast.Expr | None:
    """The docstring statement of a module, function or class, or None when it has none."""
    if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return None
    first = node.body[0] if node.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


def _docstring_lines(code: str) -> set[int]:
    """Line numbers (1-based) of the one-line docstrings in ``code`` (none when it won't parse)."""
    try:  # IPython lines (%pip) become calls first, one line for one line
        tree = ast.parse(TransformerManager().transform_cell(code))
    except SyntaxError:
        return set()
    docstrings = [docstring_node(node) for node in ast.walk(tree)]
    return {d.lineno for d in docstrings if d is not None and d.lineno == d.end_lineno}


def wrap_long_lines(code: str) -> str:
    """Wrap the comments and one-line docstrings of ``code`` that are longer than WIDTH.

    A line of IPython (``%pip ...``) or one that does not tokenize is left as it is.
    """
    lines = code.split("\n")
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return code
    comments = {t.start[0]: t for t in tokens if t.type == tokenize.COMMENT}
    docstrings = _docstring_lines(code)
    for number in sorted(set(comments) | docstrings, reverse=True):
        line = lines[number - 1]
        if len(line) <= WIDTH:
            continue
        indent = line[: len(line) - len(line.lstrip())]
        comment = comments.get(number)
        if comment is not None and not PRAGMA.search(comment.string):
            text = comment.string.lstrip("#").strip()
            before = line[: comment.start[1]].rstrip()
            end = number
            if not before:  # a comment line: reflow it with the comment lines that go on with it
                while end < len(lines) and CONTINUED.match(lines[end]):
                    if not lines[end].startswith(indent + "#"):
                        break
                    text += " " + lines[end].strip().lstrip("#").strip()
                    end += 1
            new = _wrap(indent, text, "# ")
            lines[number - 1 : end] = new + ([before] if before else [])
        elif number in docstrings:
            stripped = line.strip()
            if stripped.startswith('"""') and stripped.endswith('"""') and len(stripped) > 6:
                text = stripped[3:-3].strip()
                width = WIDTH - 3  # room for the closing quotes
                new = textwrap.wrap(
                    text, width, initial_indent=indent + '"""', subsequent_indent=indent
                )
                lines[number - 1 : number] = [*new[:-1], new[-1] + '"""']
    return "\n".join(lines)


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
    codes = format_cells([wrap_long_lines(m.group("code")) for m in cells])
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
            changed.append(page.relative_to(ROOT) if page.is_relative_to(ROOT) else page)
            if not args.check:
                page.write_text(new, encoding="utf-8")
    verb = "would reformat" if args.check else "reformatted"
    for page in changed:
        print(f"{verb} {page}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
