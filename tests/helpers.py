"""Public-API checks shared by the layer tests (keras.src.testing is private)."""

import inspect


def assert_config_covers_init(layer):
    """Every `__init__` argument of the layer's class (and its Keras base) is in `get_config`."""
    config = layer.get_config()
    missing = []
    for cls in type(layer).__mro__:
        if "__init__" not in vars(cls) or cls.__module__.startswith("builtins"):
            continue
        if not cls.__module__.startswith(("tf_lanmax", "keras")):
            continue
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if name in ("quantization_config", "lora_rank", "lora_alpha", "input_dim", "rank"):
                continue  # Keras features faulty layers refuse or do not store.
            if cls.__name__ in ("Layer", "Operation", "KerasSaveable"):
                continue
            if name not in config:
                missing.append(f"{cls.__name__}.{name}")
    assert not missing, f"get_config misses __init__ arguments: {missing}"
