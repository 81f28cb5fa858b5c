"""The exceptions a caller may need to tell apart, one class per case.

Every class here also derives from the built-in exception that the same failure raised before
it existed (`ValueError`, and `FileNotFoundError` for missing data), so existing
``except ValueError`` code keeps working. Plain argument checks still raise `ValueError` (bad
value) or `TypeError` (wrong type) and name the argument, its value and what is allowed.

Example:
>>> import tf_lanmax as tl
>>> issubclass(tl.errors.UnsupportedLayerError, ValueError)
True
>>> try:
...     raise tl.errors.UnsupportedLayerError("LSTM", ["Dense", "Conv2D"], "MemSE")
... except ValueError as error:
...     print(error)
MemSE does not support layer 'LSTM'; supported: Dense, Conv2D
"""


class UnsupportedLayerError(ValueError):
    """A layer (or layer type) that an operation does not cover.

    Args:
        layer: the layer's name (or type name).
        supported: the layer types the operation does cover, listed in the message.
        operation: what was asked of the layer, e.g. `"MemSE"` or `"inject_faults"`.
    """

    def __init__(self, layer, supported, operation="this operation"):
        self.layer = str(layer)
        self.supported = tuple(str(s) for s in supported)
        self.operation = str(operation)
        super().__init__(
            f"{self.operation} does not support layer {self.layer!r}; "
            f"supported: {', '.join(self.supported)}"
        )

    def __reduce__(self):
        return type(self), (self.layer, self.supported, self.operation)


class UnknownNameError(ValueError):
    """A name looked up in one of the package's registries (a device preset, a training rule,
    a fault model, a dataset ...) that the registry does not hold; the message lists the
    names it does hold."""


class DatasetUnavailableError(FileNotFoundError, ValueError):
    """A dataset that is neither prepared locally nor downloadable (offline); the message says
    how to get it."""


__all__ = ["DatasetUnavailableError", "UnknownNameError", "UnsupportedLayerError"]
