# dupesift: `make demo` runs the main job on a sample library; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SHARED ?= ../shared
DEMO ?= var/demo
TORCH ?= torch==2.13.0

.PHONY: demo test install install-dev bench clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Serving needs no torch.
install: $(VENV)/bin/activate
	$(PIP) install -q -e .

# Tests also check the torch model against its ONNX export and run a smoke training, so they need
# torch. The local CPU build is installed first so no package pulls a multi-GB CUDA build.
install-dev: $(VENV)/bin/activate
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[train,workers,test]'

demo: install
	rm -rf $(DEMO)
	$(PY) $(SHARED)/eval/make_library.py $(DEMO) --split eval
	$(VENV)/bin/dupesift --data-dir $(DEMO)/data ingest $(DEMO)/library
	$(VENV)/bin/dupesift --data-dir $(DEMO)/data groups | head -n 40
	$(VENV)/bin/dupesift --data-dir $(DEMO)/data groups --json > $(DEMO)/groups.json
	$(PY) $(SHARED)/eval/score.py $(DEMO)/truth.json $(DEMO)/groups.json

test: install-dev
	bash scripts/ensure-services.sh
	$(PY) -m pytest -q

bench: install-dev
	$(PY) bench/ingest.py

clean:
	rm -rf var .pytest_cache
