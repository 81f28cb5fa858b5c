"""Finding the faulty layers of a model and switching their faults off for deployment."""

import contextlib

from keras import ops

from tf_lanmax._validation import check_probability
from tf_lanmax._walk import iter_layers
from tf_lanmax.layers.base import FaultyKernelMixin
from tf_lanmax.layers.injection import FaultInjection


def faulty_layers(model_or_layer):
    """Lists the faulty layers of a model (nested models and sublayers included), in order.

    Args:
        model_or_layer: a Keras model or layer.

    Returns:
        A list of layers with a `fault_rate` variable (`FaultyKernelMixin` and the
        `FaultInjection` wrappers of `tl.inject_faults`), each once.

    Example:
    >>> [layer.name for layer in faulty_layers(model)]
    """
    return [
        layer
        for layer in iter_layers(model_or_layer)
        if isinstance(layer, (FaultyKernelMixin, FaultInjection))
    ]


def set_fault_rates(model_or_layer, rates):
    """Assigns p to the faulty layers: one float for all, or a dict {layer name: p}.

    Args:
        model_or_layer: a Keras model or layer.
        rates: a float in (0, 0.5] or a dict mapping layer names to such floats.

    Raises:
        ValueError: for a rate outside (0, 0.5] or a name that is not a faulty layer.
    """
    layers = {layer.name: layer for layer in faulty_layers(model_or_layer)}
    if not isinstance(rates, dict):
        rates = dict.fromkeys(layers, rates)
    unknown = sorted(set(rates) - set(layers))
    if unknown:
        raise ValueError(
            f"`rates` names layers that are not faulty layers of the model: {unknown}. "
            f"Allowed: {sorted(layers)}"
        )
    checked = {n: check_probability("fault_rate", p, context=n) for n, p in rates.items()}
    for name, rate in checked.items():
        layers[name].fault_rate.assign(rate)


@contextlib.contextmanager
def faults_disabled(model_or_layer):
    """Deployment view: the faulty layers return their clean stored weights inside the block.

    Sets every faulty layer's `fault_rate` to exactly 0 (so no bit can fault: the draws compare
    uniform [0, 1) numbers against p) and restores the previous rates on exit, even on error.
    Works with already-compiled `predict`/`evaluate` functions without retracing, because p is a
    variable the compiled graph reads.

    Args:
        model_or_layer: a Keras model or layer.

    Example:
    >>> with tf_lanmax.faults_disabled(model):
    ...     clean = model.predict(x)
    """
    layers = faulty_layers(model_or_layer)
    saved = [ops.convert_to_numpy(layer.fault_rate.value) for layer in layers]
    try:
        for layer in layers:
            layer.fault_rate.assign(0.0)
        yield model_or_layer
    finally:
        for layer, rate in zip(layers, saved, strict=True):
            layer.fault_rate.assign(rate)
