# The README's two commands: `make demo` and `make test`. Each sets up .venv by itself when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EXTRAS ?= cpu,test,jax,docs
# CPU torch for `make test-torch`: the pinned CPU wheel, else PyTorch's CPU index, else plain
# `torch` (a plain `pip install torch` on Linux pulls ~3 GB of CUDA wheels).
TORCH_CPU ?= torch==2.13.0+cpu
TORCH_STAMP := $(VENV)/.torch-installed
# The backend-agnostic core (`core` mark, listed once in tests/conftest.py): the suite that
# `make test-jax` and `make test-torch` run; `make test` runs everything on TensorFlow.
CORE := -m core
# pytest-xdist workers for the suites: CI's 2 cores ran the TensorFlow suite in 17 min with 2
# workers. `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS)

.PHONY: demo test test-jax test-torch test-slow test-wheel lint bench clean venv torch docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	# TF Serving's protos, for the tests that read warm-up requests back (writing them needs no
	# extra package); --no-deps: it declares full `tensorflow`, which would replace tensorflow-cpu.
	$(PY) -m pip install -q --no-deps "tensorflow-serving-api>=2.16"
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(PY) -m tf_lanmax demo --run_dir runs/demo --draws 20

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q $(XDIST)

# The backend-agnostic core on the JAX backend (three full suites do not fit CI's 60 minutes).
# tests/conftest.py sets XLA_FLAGS to compile without LLVM's optimisations: 1251 s -> 650 s.
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PY) -m pytest -q $(XDIST) $(CORE)

torch: $(TORCH_STAMP)

$(TORCH_STAMP): $(STAMP)
	$(PY) -m pip install -q "$(TORCH_CPU)" \
	  || $(PY) -m pip install -q --index-url https://download.pytorch.org/whl/cpu torch \
	  || $(PY) -m pip install -q torch
	touch $@

# The backend-agnostic core on the torch backend (CPU torch).
test-torch: $(TORCH_STAMP)
	KERAS_BACKEND=torch $(PY) -m pytest -q $(XDIST) $(CORE)

# End-to-end runs (demo, tutorials, README blocks), shared between the xdist workers; tests that
# share a module fixture (the demo run, the built wheel) stay on one worker (--dist loadgroup).
# With TF_LANMAX_WHEEL_TEST=1 (CI) the wheel tests run here too, beside the tutorials.
test-slow: $(TORCH_STAMP)  # the plain-PyTorch tutorial runs on torch
	$(PY) -m pytest -q $(XDIST) --dist loadgroup --run-slow -m slow

# The sdist and wheel (uv build); the wheel alone, installed with its `cpu` extra into a fresh
# venv by uv (pip took 25 min on 2 cores, uv seconds), runs the demo and a tutorial. CI runs
# these inside `make test-slow` (TF_LANMAX_WHEEL_TEST=1); this target runs them alone.
test-wheel: $(STAMP)
	TF_LANMAX_WHEEL_TEST=1 $(PY) -m pytest -q -s --run-slow tests/test_wheel.py

# The docs site (mkdocs.yml): maths pages, tutorials, results, API reference from the
# docstrings, into site/. --strict: any warning (a broken link, a bad docstring) fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict --quiet

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) bench/faults_overhead.py

clean:
	rm -rf $(VENV) runs site .pytest_cache .ruff_cache
