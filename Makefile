# `make install` builds .venv; `make test` installs if needed, then runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint demo gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# Zero-download demo: synthesise the emotional-speech corpus, run the default recipe with one seed
# (pretrained:small fine-tuned + probed), print metrics and the submission path (python -m finetune).
demo: $(STAMP)
	$(PY) -m finetune

# On a machine with a CUDA GPU: train, probe, predict and submit there and compare with the CPU.
gpu-check: $(STAMP)
	$(PY) -m finetune.gpu_check

lint: $(STAMP)
	$(VENV)/bin/ruff check w2v2 pretrain finetune tests

clean:
	rm -rf $(VENV) runs demo .pytest_cache
