"""The mirror rule of every supported layer class, and `register_mirror` for custom ones."""

import keras

from tf_lanmax.errors import UnsupportedLayerError
from tf_lanmax.layers.twins import TWINS, twin_class
from tf_lanmax.memse.mapped_layers import ConvRule, DenseRule, DepthwiseConvRule
from tf_lanmax.memse.mirror_layers import (
    ActivationRule,
    AddRule,
    AveragePoolRule,
    BatchNormRule,
    GlobalAveragePoolRule,
    GlobalMaxPoolRule,
    IdentityRule,
    MaxPoolRule,
    MirrorRule,
    ReLURule,
    ReshapeRule,
    SoftmaxRule,
)

_L = keras.layers
MIRRORS = {
    _L.Dense: DenseRule,
    _L.Conv1D: ConvRule,
    _L.Conv2D: ConvRule,
    _L.DepthwiseConv2D: DepthwiseConvRule,
    _L.BatchNormalization: BatchNormRule,
    _L.ReLU: ReLURule,
    _L.Activation: ActivationRule,
    _L.Softmax: SoftmaxRule,
    _L.MaxPooling1D: MaxPoolRule,
    _L.MaxPooling2D: MaxPoolRule,
    _L.AveragePooling1D: AveragePoolRule,
    _L.AveragePooling2D: AveragePoolRule,
    _L.GlobalAveragePooling1D: GlobalAveragePoolRule,
    _L.GlobalAveragePooling2D: GlobalAveragePoolRule,
    _L.GlobalMaxPooling1D: GlobalMaxPoolRule,
    _L.GlobalMaxPooling2D: GlobalMaxPoolRule,
    _L.Flatten: ReshapeRule,
    _L.Reshape: ReshapeRule,
    _L.Permute: ReshapeRule,
    _L.ZeroPadding1D: ReshapeRule,
    _L.ZeroPadding2D: ReshapeRule,
    _L.Cropping1D: ReshapeRule,
    _L.Cropping2D: ReshapeRule,
    _L.Concatenate: ReshapeRule,
    _L.Add: AddRule,
    _L.Dropout: IdentityRule,
    _L.SpatialDropout1D: IdentityRule,
    _L.SpatialDropout2D: IdentityRule,
    _L.GaussianDropout: IdentityRule,
    _L.GaussianNoise: IdentityRule,
    _L.AlphaDropout: IdentityRule,
    _L.Identity: IdentityRule,
}
# Operations that the functional API creates for `a + b` or `keras.ops.relu(x)` on symbolic
# tensors; they are not layers, so they are matched by class name.
OPERATIONS = {"Add": AddRule, "Relu": ReLURule}


def register_mirror(layer_class, rule_class):
    """Registers the mirror rule of a custom layer class (exact class match).

    Every call of a `layer_class` layer in a mirrored model then gets ``rule_class(layer)``;
    `MirrorRule` documents what a rule implements, with a worked example.

    Args:
        layer_class: a `keras.layers.Layer` subclass.
        rule_class: a `MirrorRule` subclass.

    Raises:
        ValueError: if `rule_class` is not a `MirrorRule` subclass.
    """
    if not (isinstance(rule_class, type) and issubclass(rule_class, MirrorRule)):
        raise ValueError(
            f"`rule_class` must be a MirrorRule subclass. Received: rule_class={rule_class!r}"
        )
    MIRRORS[layer_class] = rule_class


def supported_layers():
    """Names of the supported layer classes (and functional operations)."""
    names = sorted({cls.__name__ for cls in [*MIRRORS, *TWINS]})
    return names + [f"keras.ops.{name.lower()} (functional)" for name in OPERATIONS]


def rule_for(op):
    """The mirror rule of one layer or functional operation.

    Raises:
        UnsupportedLayerError: for an unsupported layer (a ValueError), naming it and its
            class and listing the supported ones.
    """
    # A faulty layer is mirrored by its Keras twin's rule (`tl.layers.TWINS`).
    cls = MIRRORS.get(type(op)) or MIRRORS.get(twin_class(op))
    if cls is None and not isinstance(op, keras.layers.Layer):
        cls = OPERATIONS.get(type(op).__name__)
    if cls is None:
        raise UnsupportedLayerError(
            f"{getattr(op, 'name', op)} ({type(op).__name__})",
            supported_layers(),
            "MemSE",
        )
    return cls(op)
