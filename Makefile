# Paying Attention: the two commands a reader needs are `make book` and `make test`.
# Each creates the environment (.venv) first when it is missing or out of date.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ASSETS := _assets/.complete
SITE := _build/html
PDF := _build/latex/paying-attention.pdf
# Debian's TeX Live for `make pdf` (91 packages, from the Debian mirror) and poppler for its test
TEX_PACKAGES := texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk \
	fonts-dejavu-core poppler-utils
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
export PYTHONHASHSEED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help env assets notebooks labs solutions assignments book pdf bench bench-gpu test lint unit nbval robust format \
	site-test pdf-test clean

help:
	@echo "make book       build the site into $(SITE) (creates $(VENV) if needed)"
	@echo "make pdf        build the whole book as one PDF, $(PDF), and check it"
	@echo "make test       lint, unit tests, nbval on every notebook, site build, browser test"
	@echo "make notebooks  execute book/**/*.md into notebooks/ (PAGES=book/... for some)"
	@echo "make labs       make the student labs (no solutions) in notebooks/labs/"
	@echo "make solutions  write instructors/solutions/, every exercise's worked solution"
	@echo "make assignments write assignments/: otter-grader masters, an nbgrader source/"
	@echo "make bench      time, memory and error of every attention implementation against N"
	@echo "make bench-gpu  time the Triton FlashAttention kernels against SDPA (needs a CUDA GPU)"
	@echo "make robust     run every chapter page under seeds 1 and 2 and another CPU code path"
	@echo "make format     format the code cells of book/ (80 columns, as notebooks/ruff.toml)"

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

env: $(STAMP)

$(ASSETS): scripts/fetch_assets.sh
	bash scripts/fetch_assets.sh

assets: $(ASSETS)

notebooks: $(STAMP)
	$(PY) scripts/build_notebooks.py $(PAGES)
	$(PY) scripts/solutions.py  # the instructors' solutions carry the pages' new outputs

labs: $(STAMP)
	$(PY) scripts/build_notebooks.py --labs $(PAGES)

# One solutions notebook per chapter for instructors, from the executed pages (no execution).
solutions: $(STAMP)
	$(PY) scripts/solutions.py

# otter-grader master notebooks and an nbgrader course's source/, from book/ (no execution).
assignments: $(STAMP)
	$(PY) scripts/assignments.py

bench: $(STAMP)
	$(PY) -m benchmarks.efficient
	$(PY) -m benchmarks.caches
	$(PY) -m benchmarks.linear
	$(PY) -m benchmarks.selection

bench-gpu: $(STAMP)
	$(PY) -m benchmarks.gpu

book: $(STAMP) $(ASSETS)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The site is built: open $(CURDIR)/$(SITE)/index.html"

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts benchmarks notebooks conftest.py book/_ext
	$(PY) -m ruff format --check src tests scripts benchmarks conftest.py book/_ext notebooks \
	  --exclude notebooks/labs  # labs are generated stubs; their pages are checked
	$(PY) scripts/format_book.py --check
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/site --ignore=tests/pdf

# nbval re-executes every notebook and compares its outputs with the stored ones (see
# conftest.py): the chapter pages that train on one thread, two at a time; then their labs, on
# PyTorch's second CPU code path, two at a time; then the pages that time code and their labs,
# alone. Pages and labs run in separate sessions so that the book's wall time is the pages' own.
NBVAL := $(PY) -m pytest --nbval --nbval-sanitize-with nbval_sanitize.cfg \
	  --nbval-cell-timeout=300 -p no:cacheprovider
nbval: $(STAMP)
	rm -f _build/nbval-times.json
	$(NBVAL) notebooks --ignore=notebooks/labs --timing-pages=skip -n 2 --dist loadfile
	$(NBVAL) notebooks/labs --timing-pages=skip -n 2 --dist loadfile
	$(NBVAL) notebooks --timing-pages=only

# Every chapter page under two other seeds and PyTorch's unvectorised CPU kernels.
robust: $(STAMP)
	$(PY) scripts/robust.py $(PAGES)

format: $(STAMP)
	$(PY) scripts/format_book.py

# The whole book as one PDF: Jupyter Book's LaTeX builder and XeLaTeX, offline. The stored
# notebooks' outputs are printed as they are on the site; a copy goes beside the site.
pdf: $(STAMP) $(ASSETS)
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null && command -v pdftotext >/dev/null \
	  && fc-list | grep -q DejaVuSerif || { echo "installing Debian's TeX Live for the PDF"; \
	  apt-get install -y -qq $(TEX_PACKAGES) >/dev/null || { apt-get update -qq && \
	  apt-get install -y -qq $(TEX_PACKAGES) >/dev/null; }; }
	@start=$$(date +%s); \
	$(VENV)/bin/jupyter-book build . --builder pdflatex -W -n --keep-going; \
	echo "make pdf: $(PDF) built in $$(( $$(date +%s) - start )) s"
	$(MAKE) --no-print-directory pdf-test
	mkdir -p $(SITE) && cp $(PDF) $(SITE)/paying-attention.pdf

pdf-test: $(STAMP)
	$(PY) -m pytest tests/pdf --pdf $(PDF)

site-test: $(STAMP)
	@test -x "$(CHROMIUM)" || { echo "installing Debian's chromium for the browser test"; \
	  apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }
	$(PY) -m pytest tests/site --site $(SITE)

test: $(STAMP) $(ASSETS)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint unit nbval book pdf site-test; \
	echo "make test: all checks passed in $$(( $$(date +%s) - start )) s"

clean:
	rm -rf _build .pytest_cache .mypy_cache .ruff_cache .hypothesis
