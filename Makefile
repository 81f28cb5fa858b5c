# The README's two commands: `make demo` and `make test`. Each sets up .venv by itself when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EXTRAS ?= cpu,test,jax,docs

.PHONY: demo test test-jax test-slow lint bench clean venv docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	# TF Serving's protos for warm-up requests; --no-deps: it declares full `tensorflow`.
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
