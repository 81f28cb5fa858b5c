# The README's two commands: `make demo` and `make test`. Each sets up .venv by itself when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EXTRAS ?= cpu,test,jax

.PHONY: demo test test-jax test-slow test-wheel lint bench clean venv

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
	$(PY) -m pytest -q

# The same suite on the JAX backend; TensorFlow-only tests (export, tf.distribute) skip.
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q --run-slow -m slow

# The wheel alone, installed with its `cpu` extra into a fresh venv, runs the demo and a tutorial.
# Not in CI: the venv downloads TensorFlow unless pip's cache or PIP_FIND_LINKS has it (25 min).
test-wheel: $(STAMP)
	TF_LANMAX_WHEEL_TEST=1 $(PY) -m pytest -q -s --run-slow tests/test_wheel.py

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) bench/faults_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
