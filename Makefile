# `make install` builds .venv; `make test` installs if needed, then runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# Zero-download demo: synthesise the emotional-speech corpus, fine-tune the tiny model on CPU,
# print metrics and the submission path (python -m finetune with no arguments).
demo: $(STAMP)
	$(PY) -m finetune

lint: $(STAMP)
	$(VENV)/bin/ruff check w2v2 pretrain finetune tests

clean:
	rm -rf $(VENV) runs demo .pytest_cache
