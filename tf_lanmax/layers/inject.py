"""`tl.inject_faults`: a copy of any Keras model whose layers' stored parameters are faulty."""

import keras
from keras import ops

from tf_lanmax.errors import UnsupportedLayerError
from tf_lanmax.layers.deployment import _is_functional
from tf_lanmax.layers.injection import FaultInjection

_L = keras.layers
#: The Keras layer types whose stored parameters `inject_faults` reads faulty (exact classes);
#: MultiHeadAttention through its EinsumDense sublayers, biases and BatchNorm's four vectors
#: included.
COVERED = (
    _L.Dense,
    _L.Conv1D,
    _L.Conv2D,
    _L.Conv3D,
    _L.DepthwiseConv2D,
    _L.SeparableConv2D,
    _L.EinsumDense,
    _L.Embedding,
    _L.MultiHeadAttention,
    _L.BatchNormalization,
    _L.LayerNormalization,
)


def covered_layers():
    """Names of the layer types `inject_faults` covers."""
    return sorted(cls.__name__ for cls in COVERED)


def inject_faults(model, fault_model="bit_flip", fault_rate=1e-3, include=None, exclude=None,
                  seed=None, **memory_args):  # fmt: skip
    """A copy of `model` whose selected layers read their stored parameters through faults.

    Each selected layer is cloned with its weights and wrapped in a `FaultInjection` of the
    same name: its float parameters (float32 / float16 / bfloat16 kernels, biases, embeddings,
    BatchNorm vectors) are read as IEEE bit patterns, its Keras-quantized int8 / int4 codes
    as stored bytes and its Keras float8 kernels as the e4m3fn codes Keras casts them to, each
    bit faulty with probability p (the layer's non-trainable `fault_rate` variable), with fresh
    faults at every call. The other layers are cloned with their weights;
    `model` is untouched. The copy works with `tl.LaNMax`, `tl.summary`,
    `tl.evaluate_under_faults`, `tl.faults_disabled` and `.keras` saving.

    Args:
        model: a built Sequential or Functional Keras model (nested ones included), float or
            quantized by `model.quantize("int8" | "int4" | "float8")`.
        fault_model: a bit-wise `tf_lanmax.faults` model. Defaults to `"bit_flip"`.
        fault_rate: initial p in (0, 0.5]. Defaults to `1e-3`.
        include: names of the layers to make faulty, or None for every layer with weights.
            Defaults to `None`.
        exclude: names of layers to leave reliable. Defaults to `None`.
        seed: int seed; layer i (in selection order) draws from `seed + i`. Defaults to `None`
            (random).
        **memory_args: the other `FaultInjection` arguments: `fault_persistence`,
            `fault_scales`, `field_rates`, `protected_msbs`, `protected_rate`,
            `protected_bit_energy`.

    Returns:
        A new, uncompiled `keras.Model`.

    Raises:
        UnsupportedLayerError: a selected layer type that is not covered (the message lists
            the covered ones); exclude it or leave it out of `include`.
        ValueError: `include` / `exclude` naming layers the model lacks, a subclassed model, or a
            memory argument the selected layers' stored format cannot take
            (named).

    Example:
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    >>> model.quantize("int8")
    >>> faulty = inject_faults(model, fault_rate=1e-3, seed=0)
    >>> [layer.name for layer in tl.faulty_layers(faulty)]
    ['d']
    """
    if not isinstance(model, keras.Sequential) and not _is_functional(model):
        raise ValueError(
            f"`model` must be a Sequential or Functional Keras model (subclassed models cannot "
            f"be cloned). Received: {type(model).__name__}"
        )
    selected = _select(model, include, exclude)
    counter = [0]

    def clone(layer):
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, clone_function=clone)
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a functional operation (`a + b`): no state
        copy = _copy_layer(layer)
        if layer.name not in selected:
            return copy
        layer_seed = None if seed is None else seed + counter[0]
        counter[0] += 1
        return FaultInjection(
            copy, fault_model=fault_model, fault_rate=fault_rate, seed=layer_seed, **memory_args
        )

    return keras.models.clone_model(model, clone_function=clone)


def _copy_layer(layer):
    copy = type(layer).from_config(layer.get_config())
    build_config = layer.get_build_config() if layer.built else None
    if build_config is not None:
        copy.build_from_config(build_config)
    if layer.weights:
        # Matched by path inside the layer: a quantized layer rebuilt from its config may
        # create its variables in another order (Keras' float8 mode does).
        sources = {_inner_path(v, layer.name): v for v in layer.weights}
        for target in copy.weights:
            # A copy: on JAX two models must not share one buffer (a step may donate it).
            target.assign(ops.copy(sources[_inner_path(target, layer.name)].value))
    return copy


def _inner_path(variable, layer_name):
    """The variable's path below the layer (`query/kernel` of `model/attention/query/kernel`)."""
    parts = variable.path.split("/")
    last = len(parts) - 1 - parts[::-1].index(layer_name) if layer_name in parts else -1
    return "/".join(parts[last + 1 :])


def _names(argument, names, known):
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(
            f"`{argument}` must be a list of layer names or None. Received: {argument}={names!r}"
        )
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(
            f"`{argument}` names layers the model does not have: {unknown}. "
            f"Allowed: {sorted(known)}"
        )
    return set(names)


def _model_layers(model):
    """The layers `clone_model` hands to the clone function: nested models' layers included,
    a layer's own sublayers (MultiHeadAttention's EinsumDense) not."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _model_layers(layer)
        else:
            yield layer


def _select(model, include, exclude):
    layers = {layer.name: layer for layer in _model_layers(model)}
    include = _names("include", include, layers)
    exclude = _names("exclude", exclude, layers) or set()
    chosen = include if include is not None else {n for n, la in layers.items() if la.weights}
    chosen -= exclude
    for name in sorted(chosen):
        layer = layers[name]
        if type(layer) not in COVERED:
            raise UnsupportedLayerError(
                f"{name} ({type(layer).__name__}); exclude it or leave it out of `include`",
                covered_layers(),
                "inject_faults",
            )
    if not chosen:
        raise ValueError(f"`include`/`exclude` select no layer of model '{model.name}'.")
    return chosen
