"""The float parameters a model keeps outside its fault-prone memory, counted in bits.

LaNMax stores only the kernels of its faulty layers in unreliable memory; biases, BatchNorm's
gamma, beta and moving statistics, and any plain Keras layer's weights are assumed to sit in
reliable memory (Henwood et al., arXiv:1912.10764). They are read at every inference all the
same, so an energy total that leaves them out must say how many bits it leaves out.
"""

import re

import numpy as np

from tf_lanmax._walk import has_fault_memory, iter_layers

#: How `tl.memory_energy` / `tl.summary` treat them: left out of the total and reported on
#: their own line ("excluded"), or counted in the total at eta = 1 ("reliable").
FLOAT_PARAMETERS = ("excluded", "reliable")


def _float_bits(dtype):
    """Bits of one value of a floating dtype; 0 for integer and boolean dtypes."""
    name = str(dtype)
    if "float" not in name:
        return 0
    try:
        return np.dtype(name).itemsize * 8
    except TypeError:  # bfloat16 / float8 names numpy does not know without ml_dtypes
        digits = re.search(r"float(\d+)", name)
        return int(digits.group(1)) if digits else 0


def _not_parameters(model):
    """Ids of the variables that are not reliable parameters: fault-prone kernels and the
    bookkeeping of fault-prone layers (its fault rate, chip maps: its non-trainable weights)."""
    ids = set()
    for layer in iter_layers(model):
        if not has_fault_memory(layer):
            continue
        if hasattr(layer, "faulty_variables"):
            # A `tl.inject_faults` wrapper: the parameters it reads faulty, its fault rate and
            # Keras' quantization metadata (float8 amax histories); the wrapped layer's
            # reliable parameters (quantization scales) stay float parameters.
            ids.update(id(v) for v in [*layer.faulty_variables(), layer.fault_rate])
            ids.update(id(v) for v in layer.metadata_variables())
            continue
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            ids.add(id(kernel))
        ids.update(id(v) for v in layer.non_trainable_weights)
    return ids


def float_parameter_bits(model):
    """Bits of the float parameters `model` holds outside its fault-prone memory.

    Counts every floating-point variable of `model`'s layers (each once) except the kernels of
    fault-prone layers (counted by `tl.memory_energy` in their stored format) and the
    non-trainable variables of those layers (the fault rate, fault maps: bookkeeping, not
    parameters). So biases, BatchNorm's gamma, beta, moving mean and variance, and the weights
    of plain Keras layers count, each at its dtype's width (float32: 32 bits per value).

    Args:
        model: a built Keras model or layer, or a `torch.nn.Module` holding Keras layers.

    Returns:
        An int.

    Example:
    >>> float_parameter_bits(model)  # e.g. 32 * (biases + 4 * BatchNorm channels)
    """
    skip = _not_parameters(model)
    seen, total = set(), 0
    # Every layer's weights, not `model.weights`: a plain torch module holding Keras layers
    # (torch backend) has no `weights`; for a Keras model the union is the same variables.
    weights = [v for layer in iter_layers(model) for v in getattr(layer, "weights", ())]
    for variable in weights:
        if id(variable) in seen or id(variable) in skip:
            continue
        seen.add(id(variable))
        total += int(np.prod(variable.shape, dtype=np.int64)) * _float_bits(variable.dtype)
    return total
