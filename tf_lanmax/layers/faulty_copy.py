"""`faulty_copy`: a float Keras model turned into the same model on faulty digital memory.

The "to faulty" direction of the faulty-layer family (`tf_lanmax.layers.twins`); the other
direction is `deployment_model`.
"""

import math

import keras
import numpy as np
from keras import ops

from tf_lanmax import formats
from tf_lanmax._validation import check_int, check_probability
from tf_lanmax.layers.twins import FAULTY, to_faulty


def fixed_point_for(kernel, bits=8):
    """`FixedPoint(bits, f)` with ``f = bits - 1 - ceil(log2 max|w|)``,
    so the largest weight just fits; f is clipped to [0, bits - 1].

    Example:
    >>> fixed_point_for(keras.ops.convert_to_tensor([0.3, -1.5]), bits=8)
    FixedPoint(bits=8, fraction_bits=6)
    """
    bits = check_int("bits", bits, low=2, high=formats.fixed_point.MAX_BITS)
    if isinstance(kernel, keras.Variable):  # its value: np.array(variable) warns on JAX
        kernel = kernel.value
    peak = float(np.max(np.abs(ops.convert_to_numpy(kernel))))
    integer_bits = math.ceil(math.log2(peak)) if peak > 0 else -(bits - 1)
    fraction = min(max(bits - 1 - integer_bits, 0), bits - 1)
    return formats.FixedPoint(bits=bits, fraction_bits=fraction)


def faulty_copy(model, weight_format="fixed_point", fault_model="bit_flip", fault_rate=1e-3,
                bits=8, seed=0):  # fmt: skip
    """A copy of `model` whose Dense / Conv1D / Conv2D layers are faulty layers.

    The copies hold the same latent weights; the other layers (BatchNorm, pooling, ...) are
    cloned with their weights. With `weight_format="fixed_point"` each layer gets the
    fraction bits that fit its largest weight.

    Args:
        model: a built Sequential or Functional model.
        weight_format: `"fixed_point"` (per-layer fraction bits), `"binary"` or a
            `tf_lanmax.formats` instance. Defaults to `"fixed_point"`.
        fault_model: a `tf_lanmax.faults` identifier. Defaults to `"bit_flip"`.
        fault_rate: per-bit fault probability p in (0, 0.5]. Defaults to `1e-3`.
        bits: bits per weight for `"fixed_point"`. Defaults to `8`.
        seed: seed of the layers' fault draws (layer i gets `seed + i`). Defaults to `0`.

    Returns:
        The new model.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> digital = faulty_copy(model, fault_rate=1e-3)  # then e.g. tl.memse.MemSE(digital, ...)
    >>> [type(layer).__name__ for layer in digital.layers]
    ['FaultyDense']
    """
    fault_rate = check_probability("fault_rate", fault_rate)
    seed = check_int("seed", seed, low=0)
    counter = [0]

    def clone(layer):
        if type(layer) not in FAULTY:
            return type(layer).from_config(layer.get_config())
        fmt = weight_format
        if weight_format == "fixed_point":
            fmt = fixed_point_for(layer.kernel, bits)
        counter[0] += 1
        return to_faulty(
            layer,
            weight_format=fmt,
            fault_model=fault_model,
            fault_rate=fault_rate,
            seed=seed + counter[0],
        )

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers, strict=True):
        if type(old) not in FAULTY:  # to_faulty copied the faulty layers' weights
            # values, not get_weights(): reading a Variable into NumPy warns on JAX (NumPy 2)
            for target, source in zip(new.weights, old.weights, strict=True):
                target.assign(source.value)
    return copy
