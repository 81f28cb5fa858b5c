"""Walking a Keras model's layers with the public API only (no `_flatten_layers`)."""

import keras


def _children(layer):
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    # Plain layers that hold sublayers as attributes; a plain `torch.nn.Module` holding Keras
    # layers (on the torch backend) keeps them in its `_modules` dict.
    found = []
    for value in vars(layer).values():
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, keras.layers.Layer):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if isinstance(v, keras.layers.Layer))
    return found


def iter_layers(model_or_layer):
    """Yields the layer and every layer nested in it, depth first, each once."""
    seen, stack = set(), [model_or_layer]
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack[0:0] = _children(layer)


def has_fault_memory(layer):
    """The energy protocol: a layer with a `fault_rate` variable and a `stored_bits` count."""
    return hasattr(layer, "fault_rate") and hasattr(type(layer), "stored_bits")
