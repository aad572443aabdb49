# Two commands set up a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all bench notebooks docs figures install dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps make re-installs cheap: they are redone only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[nn]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,nn,docs]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/asgd reproduce --quick

# Both cores: tests are spread over two workers that share compiled programs through JAX's
# persistent compilation cache (tests/conftest.py points it at .cache/jax).
test: dev
	$(PY) -m pytest -n 2 --dist worksteal --durations=10

test-all: dev
	$(PY) -m pytest -n 2 --dist worksteal --run-slow

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .cache notebooks/executed

# Executed notebooks, outputs and figures kept (docs/execute_notebooks.py: inline backend, so the
# figures are embedded; a copy without figures is an error). Full size by default, into
# notebooks/executed/ (git-ignored), figures to notebooks/figures/. FAST=1: small sizes
# (ASGD_FAST=1), into build/notebooks-fast/ so they never pass for the full-size copies.
# A copy is redone when its notebook or the library changes.
NOTEBOOKS := $(wildcard notebooks/*.ipynb)
LIBRARY := $(wildcard objectives/*.py simulate/*.py analysis/*.py theory/*.py figures/*.py asgd/*.py asgd/experiments/*.toml)
ifeq ($(FAST),1)
EXECUTED := build/notebooks-fast
NOTEBOOK_ENV := ASGD_FAST=1 ASGD_FIGURES=$(CURDIR)/$(EXECUTED)/figures
else
EXECUTED := notebooks/executed
NOTEBOOK_ENV := ASGD_FIGURES=$(CURDIR)/notebooks/figures
endif
EXECUTED_NOTEBOOKS := $(NOTEBOOKS:notebooks/%=$(EXECUTED)/%)

$(EXECUTED)/%.ipynb: notebooks/%.ipynb $(LIBRARY) docs/execute_notebooks.py | $(VENV)/.installed-dev
	$(NOTEBOOK_ENV) $(PY) docs/execute_notebooks.py $(EXECUTED) $<

notebooks: $(EXECUTED_NOTEBOOKS)

# The figures committed in notebooks/ (the README's and the guides'), redone at full size: the
# headline and the digits network by their experiments (metadata.json and results.csv kept in
# notebooks/measured/, which tests/test_readme.py checks against today's configs and version),
# the exact law and state-dependent noise by notebooks 07 and 10 (their sizes and the version recorded
# beside each PNG by docs/record_figure.py, checked by tests/test_readme.py). Then commit them by hand.
FIGURE_RUNS := build/figure-runs
figures: | $(VENV)/.installed-dev
	$(VENV)/bin/asgd reproduce sharp_flat_tradeoff nn --out $(FIGURE_RUNS) --fresh --quiet
	cp $(FIGURE_RUNS)/sharp_flat_tradeoff/tradeoff.png notebooks/tradeoff_sharp_flat.png
	cp $(FIGURE_RUNS)/nn/accuracy_sharpness.png notebooks/small_network_digits.png
	for run in sharp_flat_tradeoff nn; do mkdir -p notebooks/measured/$$run && \
		cp $(FIGURE_RUNS)/$$run/metadata.json $(FIGURE_RUNS)/$$run/results.csv notebooks/measured/$$run/; done
	ASGD_FIGURES=$(CURDIR)/notebooks/figures $(PY) docs/execute_notebooks.py notebooks/executed \
		notebooks/07_exact_long_run_law.ipynb notebooks/10_noise_that_follows_the_landscape.ipynb
	cp notebooks/figures/07_exact_law_sharp_flat.png notebooks/exact_law_sharp_flat.png
	cp notebooks/figures/noise_that_follows_the_landscape.png notebooks/noise_that_follows_the_landscape.png
	$(PY) docs/record_figure.py notebooks/07_exact_long_run_law.ipynb notebooks/exact_law_sharp_flat.png
	$(PY) docs/record_figure.py notebooks/10_noise_that_follows_the_landscape.ipynb notebooks/noise_that_follows_the_landscape.png

# The documentation site in build/site/ (open build/site/index.html): getting started, the
# command-line reference, the API reference from the docstrings and the executed notebooks.
# Strict: a broken cross-reference or link fails the build. `make docs FAST=1`: the notebooks at
# small sizes (13 min on the loaded 2 cores, docs/index.md); a quick look at the pages, without
# the notebooks: `ASGD_DOCS_NOTEBOOKS=none .venv/bin/mkdocs build` (about 20 s) or `serve`.
docs: $(EXECUTED_NOTEBOOKS) | $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 ASGD_DOCS_NOTEBOOKS=$(EXECUTED) $(VENV)/bin/mkdocs build --strict --site-dir build/site
