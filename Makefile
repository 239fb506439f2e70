# bpnet: two commands for a newcomer.
#   make demo   run the whole tutorial (notebooks/ in order, demo profile) into runs/demo/
#   make test   run the whole test suite (unit, integration, notebooks)
# Both create .venv on first use (Python 3.10-3.12, CPU-only TensorFlow) and reuse it afterwards.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bpnet-installed
EXTRAS ?= notebooks,deploy,dev

.PHONY: install demo test test-fast bench clean strip

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

demo: install
	$(PY) -m bpnet_core tutorial run . --profile demo

test: install
	$(PY) -m pytest tests

test-fast: install
	$(PY) -m pytest tests -m "not slow and not notebook and not ui" -q -n 2

bench: install
	$(VENV)/bin/bpnet bench -o runs/bench

strip: install
	$(VENV)/bin/nbstripout --extra-keys "metadata.widgets metadata.kernelspec.display_name metadata.language_info" notebooks/*.ipynb

clean:
	rm -rf runs .pytest_cache
