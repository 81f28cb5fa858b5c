"""A copy of a model whose faulty layers sit on another memory (persistence, ECC, rate, ...)."""

import keras
from keras import ops

from tf_lanmax.layers.base import FaultyKernelMixin


def with_memory(model, **faulty_layer_args):
    """Returns a copy of `model` whose faulty layers take new memory arguments, weights kept.

    The usual question after training with transient faults: how does the trained network do on
    real chips (persistent maps), with ECC, with protected MSBs or another fault model? The copy
    has the same architecture and weights (learned fault rates included, unless `fault_rate` is
    given); every faulty layer is rebuilt from its config updated with `faulty_layer_args`. The
    input model is untouched. The copy is not compiled.

    Args:
        model: a built Keras model (Sequential or functional) with faulty layers.
        **faulty_layer_args: arguments of the faulty layers, e.g. `fault_persistence`, `ecc`,
            `ecc_word_bits`, `ecc_policy`, `protected_msbs`, `fault_model`, `fault_rate`.

    Returns:
        A new `keras.Model`.

    Raises:
        ValueError: for an argument the faulty layers do not take (the layers' own validation
            names the argument), or a model without faulty layers.

    Example:
    >>> chips = tl.layers.with_memory(model, fault_persistence="persistent")
    """
    allowed = set(FaultyKernelMixin.memory_arguments())
    unknown = sorted(set(faulty_layer_args) - allowed)
    if unknown:
        raise ValueError(
            f"`with_memory` got arguments the faulty layers' memory does not take: {unknown}. "
            f"Allowed: {sorted(allowed)}"
        )
    found = []

    def clone(layer):
        if isinstance(layer, FaultyKernelMixin):
            found.append(layer.name)
            # The constructor itself (not `from_config`, which wraps errors in TypeError), so a
            # bad value raises the layer's own ValueError naming the argument.
            return layer.__class__(**{**layer.get_config(), **faulty_layer_args})
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    if not found:
        raise ValueError(f"Model '{model.name}' has no faulty layer to put on another memory.")
    keep_rate = "fault_rate" in faulty_layer_args
    for old, new in zip(model.layers, copy.layers, strict=True):
        _copy_weights(old, new, keep_rate)
    return copy


def _copy_weights(old, new, keep_new_rate):
    if isinstance(old, FaultyKernelMixin):
        pairs = [(old.kernel, new.kernel)]
        if old.use_bias:
            pairs.append((old.bias, new.bias))
        if not keep_new_rate:
            pairs.append((old.fault_rate, new.fault_rate))
        for source, target in pairs:
            # A copy: on JAX the two models must not share one buffer (a compiled step may
            # donate it, which deletes the other model's array).
            target.assign(ops.copy(source.value))
        return
    if isinstance(old, keras.Model):
        for a, b in zip(old.layers, new.layers, strict=True):
            _copy_weights(a, b, keep_new_rate)
        return
    new.set_weights(old.get_weights())
