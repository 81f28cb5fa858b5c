"""Which faults draw k reads: the seed of a transient layer and the chip of persistent layers."""

import hashlib


def draw_seed(seed, draw, layer_index):
    """The seed of one layer in one draw: a hash of (seed, draw, layer), independent of order."""
    digest = hashlib.blake2b(f"{seed}/{draw}/{layer_index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def chip_index(seed, k):
    """The chip evaluated as chip `k` of base seed `seed`: a hash of (seed, k), in [0, 2**31).

    Every persistent faulty layer of the model reads this chip (`tl.layers.set_chip`), so
    chip `k` of an evaluation is reproduced by ``tl.layers.set_chip(model, chip_index(seed, k))``.
    Its input differs from `draw_seed`'s, so the chips of an evaluation are not the seeds its
    transient layers draw from.

    Args:
        seed: the evaluation's base seed, an int.
        k: the chip's position in the evaluation, an int >= 0.

    Returns:
        An int in [0, 2**31).

    Example:
    >>> chip_index(0, 0) == chip_index(0, 0) != chip_index(0, 1)
    True
    """
    digest = hashlib.blake2b(f"chip/{seed}/{k}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF
