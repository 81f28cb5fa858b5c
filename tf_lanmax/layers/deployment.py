"""The deployment view of a faulty model: plain Keras layers holding the stored weights.

What the hardware holds: TF Serving exports it, and analog-noise evaluation perturbs it (noise
acts on the deployed +-1 or fixed-point values, never on the latent float weights).
"""

import keras

from tf_lanmax.layers.base import FaultyKernelMixin
from tf_lanmax.layers.faulty_conv import FaultyConv1D, FaultyConv2D
from tf_lanmax.layers.faulty_dense import FaultyDense

_FAULT_KEYS = FaultyKernelMixin.memory_arguments()
_TWINS = {
    FaultyDense: keras.layers.Dense,
    FaultyConv2D: keras.layers.Conv2D,
    FaultyConv1D: keras.layers.Conv1D,
}


def _twin(layer):
    twin_class = next(t for c, t in _TWINS.items() if isinstance(layer, c))
    config = {k: v for k, v in layer.get_config().items() if k not in _FAULT_KEYS}
    config["kernel_constraint"] = None  # the latent clip is a training concern
    return twin_class.from_config(config)


def deployment_model(model):
    """A copy of `model` with each faulty layer replaced by its Keras twin holding the stored
    (quantised, fault-free) kernel: what the hardware holds, with no random op in its graph.

    Other layers are shared with `model` (same variables). Subclassed models cannot be cloned by
    Keras; for them None is returned and the caller falls back to the faulty model at p = 0.

    Args:
        model: a built Sequential or Functional Keras model.

    Returns:
        A `keras.Model`, or None for subclassed models.

    Example:
    >>> clean = deployment_model(model)
    >>> clean.predict(x)  # deterministic, equals `model.predict(x)` inside tl.faults_disabled
    """
    if not isinstance(model, keras.Sequential) and not _is_functional(model):
        return None
    pairs = []

    def clone(layer):
        if isinstance(layer, FaultyKernelMixin):
            twin = _twin(layer)
            pairs.append((layer, twin))
            return twin
        if isinstance(layer, keras.Model):
            return deployment_model(layer) or layer
        return layer

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer, twin in pairs:
        twin.kernel.assign(layer.stored_kernel())
        if layer.use_bias:
            twin.bias.assign(layer.bias)
    return copy


def _is_functional(model):
    # `keras.Model(inputs, outputs)` builds an instance of Keras' Functional class; subclassed
    # models are user classes. Only the former can be cloned layer by layer.
    return type(model).__name__ == "Functional" and type(model).__module__.startswith("keras")
