"""tf_lanmax: Keras 3 networks that stay accurate on unreliable, low-energy memory.

The subpackages load together, so that every serializable class is registered before a model
is loaded: at `import tf_lanmax` when Keras is already imported, else as soon as Keras is
imported (by anyone) or any `tl.<name>` is used. Until then `import tf_lanmax` costs no
TensorFlow or JAX start-up: the `lanmax` command's `--help` relies on it. `tl.export`
(SavedModel, TF Serving) imports TensorFlow and loads on its own first use only.

Example:
>>> import tf_lanmax as tl
>>> model = tl.models.binary_cnn(fault_rate=1e-3, seed=0)
>>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
>>> model.fit(tl.data.load("fashion_mnist_subset", "train"), epochs=3)
>>> tl.summary(model)
>>> tl.evaluate_under_faults(model, tl.data.load("fashion_mnist_subset", "test"), draws=10)
"""

import importlib
import importlib.abc
import importlib.util
import sys

from tf_lanmax import errors  # noqa: F401 - cheap, and in __all__
from tf_lanmax._version import __version__  # noqa: F401

# Subpackages loaded together on first use (their import registers the Keras classes).
_SUBPACKAGES = (
    "analog",
    "data",
    "distribute",
    "energy",
    "evaluation",
    "faults",
    "formats",
    "lanmax",
    "layers",
    "memory",
    "memse",
    "models",
    "noise",
    "reports",
    "sam",
    "tuning",
)
# Names re-exported at the top level: name -> the subpackage that defines it.
_EXPORTS = {
    "EnergyModel": "energy",
    "memory_energy": "energy",
    "evaluate_under_faults": "evaluation",
    "evaluate_under_noise": "evaluation",
    "sensitivity": "evaluation",
    "LaNMax": "lanmax",
    "FaultyConv1D": "layers",
    "FaultyConv2D": "layers",
    "FaultyDense": "layers",
    "faults_disabled": "layers",
    "faulty_layers": "layers",
    "inject_faults": "layers",
    "set_fault_rates": "layers",
    "summary": "reports",
    "SharpnessAwareModel": "sam",
}


def _load():
    for name in _SUBPACKAGES:
        globals()[name] = importlib.import_module(f"tf_lanmax.{name}")
    for name, package in _EXPORTS.items():
        globals()[name] = getattr(globals()[package], name)


def _importing():
    """Whether one of our subpackages is being imported now: Python binds a submodule to its
    package only once it has run, so one in `sys.modules` but not bound here is running."""
    prefix = f"{__name__}."
    return any(
        key.startswith(prefix)
        and "." not in key[len(prefix) :]
        and key[len(prefix) :] not in globals()
        for key in list(sys.modules)
    )


def __getattr__(name):
    if name == "export":
        return importlib.import_module("tf_lanmax.export")
    if name not in _SUBPACKAGES and name not in _EXPORTS:
        raise AttributeError(f"module 'tf_lanmax' has no attribute {name!r}")
    if _importing():  # `from tf_lanmax import faults` inside a subpackage: that one only
        package = importlib.import_module(f"tf_lanmax.{_EXPORTS.get(name, name)}")
        return package if name in _SUBPACKAGES else getattr(package, name)
    _load()
    return globals()[name]


class _LoadAfterKeras(importlib.abc.MetaPathFinder):
    """Loads this package right after the first `import keras`, wherever it happens."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenLoad(spec.loader)
        return spec


class _ThenLoad(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        if not _importing():  # a subpackage importing Keras: `__getattr__` loads the rest
            _load()


def __dir__():
    return sorted({*globals(), *__all__})


__all__ = sorted(["__version__", "errors", "export", *_SUBPACKAGES, *_EXPORTS])

if "keras" in sys.modules:
    _load()
else:
    sys.meta_path.insert(0, _LoadAfterKeras())
