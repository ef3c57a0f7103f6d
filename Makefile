# The two commands: `make demo` (lumos's main job on its embedded default) and `make test`;
# `make docs` builds the documentation site into site/ (offline, --strict).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The stamp re-installs only when pyproject.toml changes.
STAMP := $(VENV)/.installed-dev
# zennit-crp 0.6 (the CRP oracle of tests and benches) pins zennit<=0.4.6 and torch<2: it lives
# in a folder of its own with zennit 0.5.1 and runs in a subprocess (tests/crp/zcrp.py).
ORACLE := $(VENV)/zennit-crp/.installed

.PHONY: demo test docs lint typecheck bench oracle zennit-crp clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1 || $(PIP) install --quiet "torch>=2.3" "torchvision>=0.18"
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

$(ORACLE): | $(STAMP)
	$(PIP) install --quiet --upgrade --no-deps --target $(VENV)/zennit-crp zennit-crp==0.6.0 zennit==0.5.1
	touch $(ORACLE)

zennit-crp: $(ORACLE)

demo: $(STAMP)
	$(VENV)/bin/lumos demo

test: $(STAMP) $(ORACLE)
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider --timeout=900

# Quantus (GPL, never a lumos dependency) lives in its own venv for bench/metrics_oracle.py and
# bench/metrics_speed.py: torch, quantus==0.6.0, zennit 0.5.1 (quantus.explain's LRP) and this
# checkout (-e, without extras).
QVENV := .venv-quantus
$(QVENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(QVENV)
	$(QVENV)/bin/pip install --quiet --upgrade pip
	$(QVENV)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 || $(QVENV)/bin/pip install --quiet "torch>=2.3" "torchvision>=0.18"
	$(QVENV)/bin/pip install --quiet quantus==0.6.0 zennit==0.5.1 safetensors h5py pillow mlxtend scikit-image
	$(QVENV)/bin/pip install --quiet --no-deps -e .
	touch $(QVENV)/.installed

oracle: $(QVENV)/.installed
	$(QVENV)/bin/python bench/metrics_oracle.py

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP) $(ORACLE)
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
