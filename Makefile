# `make install` builds .venv; `make test` installs if needed, then runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint demo serve browser gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,app,onnx]"
	touch $(STAMP)

test: $(STAMP) browser
	$(PY) -m pytest -q

# The quick tests only (no `slow` marker: CLI end-to-end runs, browsers, killed subprocesses).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Debian's Chromium and ChromeDriver for the web app's browser tests (installed where we are root with
# apt-get, as on CI; elsewhere those tests skip and say what is missing).
browser:
	@command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; }; } || \
		echo "no chromium-driver: the browser tests will skip (apt-get install chromium chromium-driver)"

# The web app on http://127.0.0.1:7860 with the shipped emotion model (or CKPT=run_folder).
serve: $(STAMP)
	$(PY) -m finetune serve $(if $(CKPT),--ckpt $(CKPT))

# Zero-download demo: synthesise the emotional-speech corpus, run the default recipe with one seed
# (pretrained:small fine-tuned + probed, the tiny model from scratch at 30 epochs, descriptors heads), print metrics
# and the submission path.
demo: $(STAMP)
	$(PY) -m finetune demo

# On a machine with a CUDA GPU: train, probe, predict and submit there and compare with the CPU.
gpu-check: $(STAMP)
	$(PY) -m finetune.gpu_check

# ruff (style, imports, bugbear) and mypy (types; configured in pyproject.toml): CI runs both.
lint: $(STAMP)
	$(VENV)/bin/ruff check w2v2 pretrain finetune tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs demo .pytest_cache
