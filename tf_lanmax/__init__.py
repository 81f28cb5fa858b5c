"""tf_lanmax: Keras 3 networks that stay accurate on unreliable, low-energy memory.

Example:
>>> import tf_lanmax as tl
>>> model = tl.models.binary_cnn(fault_rate=1e-3, seed=0)
>>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
>>> model.fit(tl.data.load("fashion_mnist_subset", "train"), epochs=3)
>>> tl.summary(model)
>>> tl.evaluate_under_faults(model, tl.data.load("fashion_mnist_subset", "test"), draws=10)
"""

from tf_lanmax import (
    analog,
    data,
    distribute,
    energy,
    errors,
    evaluation,
    faults,
    formats,
    lanmax,
    layers,
    memory,
    memse,
    models,
    noise,
    reports,
    sam,
    tuning,
)
from tf_lanmax._version import __version__  # noqa: E402
from tf_lanmax.energy import EnergyModel, memory_energy
from tf_lanmax.evaluation import evaluate_under_faults, evaluate_under_noise, sensitivity
from tf_lanmax.lanmax import LaNMax
from tf_lanmax.layers import (
    FaultyConv1D,
    FaultyConv2D,
    FaultyDense,
    faults_disabled,
    faulty_layers,
    inject_faults,
    set_fault_rates,
)
from tf_lanmax.reports import summary
from tf_lanmax.sam import SharpnessAwareModel


def __getattr__(name):
    # `tl.export` (SavedModel, TF Serving) imports TensorFlow: loaded on first use, so that
    # `import tf_lanmax` stays TensorFlow-free on the JAX backend.
    if name == "export":
        import importlib

        return importlib.import_module("tf_lanmax.export")
    raise AttributeError(f"module 'tf_lanmax' has no attribute {name!r}")


__all__ = [
    "EnergyModel",
    "FaultyConv1D",
    "FaultyConv2D",
    "FaultyDense",
    "LaNMax",
    "SharpnessAwareModel",
    "__version__",
    "analog",
    "data",
    "distribute",
    "energy",
    "errors",
    "evaluate_under_faults",
    "evaluate_under_noise",
    "evaluation",
    "export",
    "faults",
    "faults_disabled",
    "faulty_layers",
    "formats",
    "inject_faults",
    "lanmax",
    "layers",
    "memory",
    "memory_energy",
    "memse",
    "models",
    "noise",
    "reports",
    "sam",
    "sensitivity",
    "set_fault_rates",
    "summary",
    "tuning",
]
