"""Fixtures of the PDF test: the built book, its text (pdftotext) and XeLaTeX's log."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pdf", default="_build/latex/paying-attention.pdf", help="the built book's PDF"
    )


@pytest.fixture(scope="session")
def pdf(request: pytest.FixtureRequest) -> Path:
    path = Path(request.config.getoption("--pdf")).resolve()
    if not path.is_file():
        pytest.fail(f"no PDF at {path}: run `make pdf` first")
    return path


@pytest.fixture(scope="session")
def pages(pdf: Path) -> list[str]:
    """The text of every page, in reading order."""
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing: apt-get install poppler-utils")
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text.split("\f")[:-1]


@pytest.fixture(scope="session")
def text(pages: list[str]) -> str:
    return "\n".join(pages)


@pytest.fixture(scope="session")
def log(pdf: Path) -> str:
    """XeLaTeX's log of the last run."""
    return pdf.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
