"""Value semantics from `get_config`: one mixin for the plain configurable objects."""


def _frozen(value):
    # A hashable, order-independent form of a config value (dicts and lists included).
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


class ConfigValue:
    """Equality, hash, repr and `from_config` of an object defined by its `get_config()`.

    Used by weight formats, fault models and the crossbar: two instances with equal configs are
    interchangeable, and `repr` shows the config.
    """

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, _frozen(self.get_config())))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
