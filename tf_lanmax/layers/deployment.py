"""The deployment view of a faulty model: plain Keras layers holding the stored weights.

What the hardware holds: TF Serving exports it, and analog-noise evaluation perturbs it (noise
acts on the deployed +-1 or fixed-point values, never on the latent float weights).
"""

import keras

from tf_lanmax.layers.base import FaultyKernelMixin
from tf_lanmax.layers.twins import to_deployment


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

    def clone(layer):
        if isinstance(layer, FaultyKernelMixin):
            return to_deployment(layer)
        if isinstance(layer, keras.Model):
            return deployment_model(layer) or layer
        return layer

    return keras.models.clone_model(model, clone_function=clone)


def _is_functional(model):
    # `keras.Model(inputs, outputs)` builds an instance of Keras' Functional class; subclassed
    # models are user classes. Only the former can be cloned layer by layer.
    return type(model).__name__ == "Functional" and type(model).__module__.startswith("keras")
