"""Make a student lab from a chapter page's MyST source: the exercises without solutions.

- Each code cell tagged ``solution`` becomes a stub. A function or class keeps its
  signature, its docstring and the source's ``# Hint:`` comments, and its body becomes
  ``raise NotImplementedError``: the page's ``check_*`` cell then prints "not implemented
  yet" instead of stopping the notebook. Free code (no definitions) becomes its hints and a
  ``# Your code here.`` line, so the lab still runs top to bottom.
- Everything else between ``{solution-start}`` and ``{solution-end}`` (written solutions,
  the dropdown itself) is removed.
- ``{exercise}`` directives become plain Markdown, readable in Jupyter and Colab.
"""

from __future__ import annotations

import ast
import re

HINT = "# Hint:"
CHECK_CALL = re.compile(r"checks\.(check_\w+)\((\w+)")  # a check cell's checker and answer
STUB = "raise NotImplementedError"
LAB_NOTE = (
    "> **Lab version.** The exercises at the end of this notebook have no solutions: write "
    "your code where it says `raise NotImplementedError` or `# Your code here.`, then run the "
    "check cell below it for feedback."
)
FENCE = re.compile(r"^(`{3,})\{([\w-]+)\}(.*)$")


def _blocks(lines: list[str]) -> list[tuple[str | None, list[str]]]:
    """Split MyST text into top-level directive blocks and plain text runs."""
    blocks: list[tuple[str | None, list[str]]] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if blocks and blocks[-1][0] is None:
                blocks[-1][1].append(lines[i])
            else:
                blocks.append((None, [lines[i]]))
            i += 1
            continue
        fence, name = match.group(1), match.group(2)
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != fence:
            end += 1
        blocks.append((name, lines[i : end + 1]))
        i = end + 1
    return blocks


def _tags(block: list[str]) -> list[str]:
    for line in block[1:]:
        match = re.match(r"^:tags:\s*\[(.*)\]\s*$", line)
        if match:
            return [t.strip().strip("'\"") for t in match.group(1).split(",")]
    return []


def _split_code_cell(block: list[str]) -> tuple[list[str], list[str]]:
    """Return the (header with options, code) lines of a ``{code-cell}`` block."""
    body = block[1:-1]
    header = [block[0]]
    if body and body[0].strip() == "---":  # YAML options
        close = body.index("---", 1) if "---" in body[1:] else 0
        header += body[: close + 1]
        body = body[close + 1 :]
    else:
        while body and body[0].startswith(":"):
            header.append(body.pop(0))
    return header, body


def _hints(lines: list[str]) -> list[str]:
    """The ``# Hint:`` comments of some lines, each with the comment lines that continue it."""
    hints: list[str] = []
    in_hint = False
    for line in lines:
        comment = line.strip().startswith("#")
        in_hint = line.strip().startswith(HINT) or (in_hint and comment)
        if in_hint:
            hints.append(line)
    return hints


def _stub_def(node: ast.FunctionDef | ast.ClassDef, lines: list[str]) -> list[str]:
    """Signature, docstring and hints of a definition, with its body replaced by a stub."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    body = node.body
    if ast.get_docstring(node, clean=False) is not None:
        out = lines[first : body[0].end_lineno]  # signature and docstring
        rest = body[1:]
    else:  # the signature, without comments other than hints
        out = [ln for ln in lines[first : body[0].lineno - 1] if not ln.strip().startswith("#")]
        out += _hints(lines[first : body[0].lineno - 1])
        rest = body
    end = node.end_lineno or node.lineno
    if isinstance(node, ast.FunctionDef):
        after_signature = lines[len(out) + first : end] if rest else []
        return [*out, *_hints(after_signature), " " * body[0].col_offset + STUB]
    if rest:  # a class: hints before its first member, then each member
        out += _hints(lines[len(out) + first : rest[0].lineno - 1])
    for stmt in rest:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            out += ["", *_stub_def(stmt, lines)]
        else:  # class attributes stay
            out += lines[stmt.lineno - 1 : stmt.end_lineno]
    return out


def stub_solution(code: str) -> str:
    """Replace the solution in a code cell's source by a stub a student fills in."""
    lines = code.splitlines()
    tree = ast.parse(code)
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    if not defs:
        hints = [line.strip() for line in _hints(lines)]
        return "\n".join([*hints, "# Your code here."])
    out: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            out += lines[stmt.lineno - 1 : stmt.end_lineno]
        elif isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            out += (["", ""] if out else []) + _stub_def(stmt, lines)
    return "\n".join(out)


def _exercise_markdown(block: list[str], number: int) -> list[str]:
    """``{exercise}`` directive -> a bold "Exercise n" paragraph and its text."""
    match = FENCE.match(block[0])
    title = match.group(3).strip() if match else ""
    body = [line for line in block[1:-1] if not line.startswith(":")]
    while body and not body[0].strip():
        body.pop(0)
    heading = f"**Exercise {number}{': ' + title if title else ''}.**"
    return [heading, "", *body]


def to_lab(text: str) -> str:
    """Turn a chapter page's MyST source into its student lab's MyST source."""
    lines = text.splitlines()
    out: list[str] = []
    in_solution, exercises = False, 0
    for name, block in _blocks(lines):
        if name == "solution-start":
            in_solution = True
        elif name == "solution-end":
            in_solution = False
        elif name == "code-cell" and "solution" in _tags(block):
            header, code = _split_code_cell(block)
            blank = [""] if len(header) > 1 else []  # after the cell's options
            out += [*header, *blank, stub_solution("\n".join(code)), block[-1]]
        elif in_solution:
            continue  # a written solution: not in the lab
        elif name == "exercise":
            exercises += 1
            out += _exercise_markdown(block, exercises)
        else:
            out += block
    if in_solution:
        raise ValueError("a {solution-start} has no {solution-end}")
    title = next((i for i, line in enumerate(out) if line.startswith("# ")), None)
    if title is not None:  # say under the page's title that this is the lab
        out[title + 1 : title + 1] = ["", LAB_NOTE]
    return "\n".join(out) + "\n"
