"""The exceptions a caller may need to tell apart, one class per case.

Every class here also derives from the built-in exception that the same failure raised before
it existed (`ValueError`, and `FileNotFoundError` for missing data), so existing
``except ValueError`` code keeps working. Plain argument checks raise `ValueError` (bad value)
or `ArgumentTypeError`, a `TypeError` (wrong type), and name the argument, its value and what
is allowed.

Example:
>>> import tf_lanmax as tl
>>> issubclass(tl.errors.UnsupportedLayerError, ValueError)
True
>>> try:
...     tl.memory.get("dram")
... except tl.errors.UnknownNameError as error:
...     print(error.name, error.allowed[:2])
dram ['exponential_law', 'profiled_sram']
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
    names it does hold.

    Args:
        argument: the argument that named it, e.g. `"device"`.
        name: the name looked up.
        allowed: the names the registry holds.
        also: what else the argument may be, e.g. `"a config dict or a tl.analog.Device"`.
            Defaults to `None`.
    """

    def __init__(self, argument, name, allowed, also=None):
        self.argument = str(argument)
        self.name = name
        self.allowed = list(allowed)
        self.also = also
        more = f", {also}" if also else ""
        super().__init__(
            f"`{self.argument}` must be one of {self.allowed}{more}. "
            f"Received: {self.argument}={name!r}"
        )

    def __reduce__(self):
        return type(self), (self.argument, self.name, self.allowed, self.also)


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a string where a number goes, a float where an integer
    goes, `1` where `True` or `False` goes). A `TypeError`, and also a `ValueError` because the
    package raised `ValueError` for it before."""


class DatasetUnavailableError(FileNotFoundError, ValueError):
    """A dataset that is neither prepared locally nor downloadable (offline); the message says
    how to get it."""


__all__ = [
    "ArgumentTypeError",
    "DatasetUnavailableError",
    "UnknownNameError",
    "UnsupportedLayerError",
]
