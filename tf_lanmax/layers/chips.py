"""Persistent per-chip fault maps: which chip a faulty layer's memory is, and how to pick it."""

import hashlib
import random

import keras
from keras import ops

from tf_lanmax._validation import check_int
from tf_lanmax._walk import iter_layers

PERSISTENCE = ("transient", "persistent")


@keras.saving.register_keras_serializable(package="tf_lanmax")
class ChipSeed(keras.random.SeedGenerator):
    """A seed that does not advance: the state ``[map_key, chip]`` names one chip's fault map.

    `keras.random` functions given this generator draw the same numbers on every call (eager or
    compiled), so a layer reading its stored bits through it sees the same faulty cells on every
    read of the chip. Assigning another chip to ``state[1]`` selects another map without
    retracing, because the compiled step reads the state variable.

    Args:
        map_key: the layer's key, in [0, 2**31). Defaults to `0`.
        name: the generator's name. Defaults to `None`.
    """

    def __init__(self, map_key=0, name=None, **kwargs):
        super().__init__(seed=int(map_key), name=name, **kwargs)

    def next(self, ordered=True):
        return self.state.value * 1

    @property
    def chip(self):
        return int(ops.convert_to_numpy(self.state.value * 1)[1])

    def get_config(self):
        return {"map_key": int(ops.convert_to_numpy(self.state.value * 1)[0]), "name": self.name}


def map_key(seed, name):
    """The key of a layer's fault maps: a hash of (seed, layer name), or random without a seed."""
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    digest = hashlib.blake2b(f"chip-map/{seed}/{name}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def set_chip(model_or_layer, chip):
    """Selects the chip whose persistent fault maps the faulty layers read.

    Every faulty layer with `fault_persistence="persistent"` reads its stored bits through the
    fault map of chip `chip`: a fixed uniform number per stored bit, derived from (the layer's
    key, chip) with `keras.random`, so a bit is faulty iff its number is below p. The same chip
    gives the same faulty cells on every call and in every compiled step; at a lower p (a higher
    supply voltage) a chip's faulty bits are a subset of its faulty bits at a higher p. The chip
    is a variable, so a compiled `predict` / `evaluate` sees the new chip without retracing, and
    it is saved with the weights. Transient layers are left alone.

    Args:
        model_or_layer: a Keras model or layer.
        chip: the chip index, an int in [0, 2**31).

    Returns:
        The number of persistent layers set.

    Raises:
        ValueError: for a bad `chip`, or a model without persistent faulty layers.

    Example:
    >>> layer = tl.FaultyDense(4, fault_persistence="persistent", seed=0)
    >>> tl.layers.set_chip(layer, 3)
    1
    """
    chip = check_int("chip", chip, low=0, high=2**31 - 1)
    layers = [
        layer
        for layer in iter_layers(model_or_layer)
        if getattr(layer, "fault_persistence", None) == "persistent"
    ]
    if not layers:
        raise ValueError(
            f"`set_chip` found no faulty layer with fault_persistence='persistent' in "
            f"'{getattr(model_or_layer, 'name', model_or_layer)}': transient faults have no chip."
        )
    for layer in layers:
        state = layer.chip_seed.state
        key = ops.convert_to_numpy(state.value * 1)[0]
        state.assign(ops.convert_to_tensor([int(key), chip], dtype=state.dtype))
    return len(layers)
