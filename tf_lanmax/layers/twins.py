"""The faulty-layer family: each faulty layer and its Keras twin, declared once.

`TWINS` pairs every faulty layer class with the plain Keras layer it extends. Both conversions
read it: `to_faulty` (a Keras layer -> its faulty counterpart, weights kept) and `to_deployment`
(a faulty layer -> its Keras twin holding the stored kernel); MemSE resolves a faulty layer's
mirror rule through its twin, and the tests are parametrized over the same table.
"""

import keras

from tf_lanmax.layers.base import FaultyKernelMixin
from tf_lanmax.layers.faulty_conv import FaultyConv1D, FaultyConv2D
from tf_lanmax.layers.faulty_dense import FaultyDense

#: Faulty layer class -> the Keras layer class it extends (the deployment twin).
TWINS = {
    FaultyDense: keras.layers.Dense,
    FaultyConv1D: keras.layers.Conv1D,
    FaultyConv2D: keras.layers.Conv2D,
}

#: Keras layer class -> its faulty counterpart: the same pairs, read the other way.
FAULTY = {twin: faulty for faulty, twin in TWINS.items()}

# Keras arguments a faulty layer does not take (it refuses Keras quantization and LoRA).
_KERAS_ONLY = ("quantization_config", "lora_rank", "lora_alpha")


def twin_class(layer_or_class):
    """The Keras twin class of a faulty layer (or layer class), or None for any other class.

    Example:
    >>> twin_class(tl.FaultyDense).__name__
    'Dense'
    """
    cls = layer_or_class if isinstance(layer_or_class, type) else type(layer_or_class)
    return next((twin for faulty, twin in TWINS.items() if issubclass(cls, faulty)), None)


def to_faulty(layer, **memory_args):
    """A faulty layer with `layer`'s Keras config and memory `memory_args`, weights copied.

    Args:
        layer: a built Keras layer whose exact class is in `FAULTY` (Dense, Conv1D, Conv2D).
        **memory_args: the faulty layer's memory arguments (`weight_format`, `fault_model`,
            `fault_rate`, `seed`, ...; see `FaultyKernelMixin.memory_arguments`).

    Returns:
        A new built faulty layer holding copies of `layer`'s kernel and bias.

    Raises:
        ValueError: for a layer class without a faulty counterpart (listing those with one), or
            a bad memory argument (the faulty layer's own error, naming it).

    Example:
    >>> dense = keras.layers.Dense(3)
    >>> _ = dense(keras.ops.ones((1, 4)))
    >>> tuple(to_faulty(dense, weight_format="fixed_point", fault_rate=1e-3).kernel.shape)
    (4, 3)
    """
    target = FAULTY.get(type(layer))
    if target is None:
        raise ValueError(
            f"`layer` '{layer.name}' of class {type(layer).__name__} has no faulty counterpart. "
            f"Allowed: {sorted(cls.__name__ for cls in FAULTY)}"
        )
    config = {k: v for k, v in layer.get_config().items() if k not in _KERAS_ONLY}
    faulty = target(**config, **memory_args)
    faulty.build_from_config(layer.get_build_config())
    # Copies: on JAX two layers must not share one buffer (a compiled step may donate it).
    faulty.kernel.assign(keras.ops.copy(layer.kernel.value))
    if layer.use_bias:
        faulty.bias.assign(keras.ops.copy(layer.bias.value))
    return faulty


def to_deployment(layer):
    """The Keras twin of a faulty layer, holding its clean stored kernel and its bias.

    Args:
        layer: a built faulty layer (an instance of a class in `TWINS`).

    Returns:
        A new built Keras layer: no random op, the weights the hardware holds.

    Raises:
        ValueError: for a layer that is not a faulty layer.

    Example:
    >>> faulty = tl.FaultyDense(3, seed=0)
    >>> _ = faulty(keras.ops.ones((1, 4)))
    >>> type(to_deployment(faulty)).__name__
    'Dense'
    """
    twin = twin_class(layer)
    if twin is None or not isinstance(layer, FaultyKernelMixin):
        raise ValueError(
            f"`layer` '{layer.name}' of class {type(layer).__name__} is not a faulty layer. "
            f"Allowed: {sorted(cls.__name__ for cls in TWINS)}"
        )
    memory = FaultyKernelMixin.memory_arguments()
    config = {k: v for k, v in layer.get_config().items() if k not in memory}
    config["kernel_constraint"] = None  # the latent clip is a training concern
    deployed = twin.from_config(config)
    deployed.build_from_config(layer.get_build_config())
    deployed.kernel.assign(layer.stored_kernel())
    if layer.use_bias:
        deployed.bias.assign(keras.ops.copy(layer.bias.value))
    return deployed
