# Two commands set up a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all bench notebooks install dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps make re-installs cheap: they are redone only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[nn]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,nn]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/asgd reproduce --quick

# Both cores: tests are spread over two workers that share compiled programs through JAX's
# persistent compilation cache (tests/conftest.py points it at .cache/jax).
test: dev
	$(PY) -m pytest -n 2 --dist worksteal

test-all: dev
	$(PY) -m pytest -n 2 --dist worksteal --run-slow

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .cache

# All notebooks in full mode (publication sizes); figures go to notebooks/figures/.
notebooks: dev
	ASGD_FIGURES=$(CURDIR)/notebooks/figures MPLBACKEND=Agg $(PY) -c "import glob, nbformat; from nbclient import NotebookClient; [NotebookClient(nbformat.read(p, as_version=4), timeout=None, kernel_name='python3', resources={'metadata': {'path': 'notebooks'}}).execute() for p in sorted(glob.glob('notebooks/*.ipynb'))]"
