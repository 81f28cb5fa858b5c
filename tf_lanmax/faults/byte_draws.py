"""Fresh bit faults drawn one stored byte at a time: one random integer per byte, not per bit.

`draw_fault_pattern` draws two float uniforms per stored bit, sixteen per int8 code, so in a
faulty step of a quantized model the draws cost more than the layer itself. That per-bit map
is what a persistent chip needs (its faulty bits at p1 < p2 must be a subset of those at p2,
for the same uniforms); transient faults, fresh at every read, only need the right
distribution. A byte's 8-bit error pattern e (bit b faulty with probability p_b, independently)
has probability ``prod_b p_b**e_b (1 - p_b)**(1 - e_b)``, so one integer r uniform on
``[0, 2**31 - 1)`` picks it by inverse CDF over the 256 patterns (`keras.ops.searchsorted`).
The patterns are ordered as the signed bytes -128 ... 127, so the position found is the
pattern itself (the int8 byte ``i - 128``, the bits ``i ^ 128``) with no table look-up, and the
fault-free byte 0 sits in the middle: the thresholds below it are sums of the probabilities
of the patterns with bit 7 faulty, those above it the range minus sums of the patterns after
them, all small numbers kept to float32 relative precision. Each threshold is rounded to an
integer, so every pattern's probability is resolved to about one part in ``2**31 - 1`` (4.7e-10;
relative 2e-4 for a single-bit pattern at p = exp(-12.8)).

Reference: L. Devroye, Non-Uniform Random Variate Generation, Springer 1986, ch. III.2
(inversion by sequential/binary search).
"""

import numpy as np
from keras import ops
from keras import random as krandom

from tf_lanmax._seeds import draw_seed

#: The range of the random integer that picks a byte's pattern: ``[0, _RANGE)``.
_RANGE = 2**31 - 1
#: (256, 8) bits of the byte patterns in inverse-CDF order, the signed bytes -128 ... 127:
#: row i holds the bits of ``i ^ 128``, bit b in column b.
_PLANES = (((np.arange(256)[:, None] ^ 128) >> np.arange(8)) & 1).astype(bool)


def byte_pattern_thresholds(rates):
    """The inverse-CDF thresholds of one byte's error patterns, as `int32` integers.

    Args:
        rates: the fault probability of each of the byte's 8 bits, a `(8,)` float tensor.

    Returns:
        `(255,)` non-decreasing `int32` tensor: a draw r in ``[0, 2**31 - 1)`` reads the
        pattern at ``i = searchsorted(thresholds, r, side="right")``: the int8 byte
        ``i - 128``, whose bits are ``i ^ 128``.
    """
    rates = ops.cast(rates, "float32")
    probabilities = ops.prod(ops.where(_PLANES, rates, 1.0 - rates), axis=1)
    below = ops.cumsum(probabilities[:128])  # through the patterns -128 ... j < 0
    above = ops.flip(ops.cumsum(ops.flip(probabilities[129:])))  # the patterns j ... 127, j > 0
    # Through pattern j >= 0: the range less the patterns j + 1 ... 127, in integers (float32
    # cannot hold 2**31 - 1 - x exactly).
    return ops.concatenate([_units(below), _RANGE - _units(above)])


def _units(probabilities):
    """Probabilities in units of ``1 / (2**31 - 1)``, rounded, as `int32`."""
    scaled = ops.round(ops.cast(probabilities, "float32") * float(_RANGE))
    return ops.cast(ops.clip(scaled, 0.0, float(2**31 - 128)), "int32")  # float32 below 2**31


def check_byte_codes(bits, dtype):
    """Raises ValueError unless `bits` is a positive multiple of 8 and `dtype` can hold them."""
    if bits <= 0 or bits % 8:
        raise ValueError(f"`bits` must be a positive multiple of 8. Received: bits={bits}")
    if dtype not in ("int32", "int8") or (dtype == "int8" and bits != 8):
        raise ValueError(
            f"`dtype` must be 'int32', or 'int8' for 8-bit codes. Received: dtype={dtype!r} "
            f"with bits={bits}"
        )


def draw_error_bytes(shape, bits, rate, seed, dtype="int32"):
    """Fresh i.i.d. faults on every stored bit, packed into `int32` words, one draw per byte.

    The same distribution as `draw_error_bits` (bit k of a word faulty with probability
    ``rate`` or ``rate[k]``, independently of every other bit), with one random integer per
    stored byte instead of two uniforms per bit. For transient faults only: the faulty bits at
    two rates are not nested for one seed.

    Args:
        shape: shape of the codes tensor.
        bits: bits per code, a multiple of 8.
        rate: per-bit fault probability (scalar tensor or float), or a `(bits,)` tensor of one
            rate per bit position.
        seed: a `keras.random.SeedGenerator` (fresh draw per call) or an int seed.
        dtype: `"int32"`, or `"int8"` for 8-bit codes XORed as the stored bytes themselves
            (bit 7 is then the sign bit). Defaults to `"int32"`.

    Returns:
        Tensor of `shape` and `dtype`, bit k set where bit k of the code is faulty.

    Raises:
        ValueError: `bits` not a positive multiple of 8, or `dtype` "int8" for wider codes.

    Example:
    >>> errors = draw_error_bytes((2, 3), 8, 0.5, seed=0)  # int32 in [0, 256)
    """
    check_byte_codes(bits, dtype)
    nbytes = bits // 8
    rate = ops.cast(rate, "float32")
    count = int(np.prod(shape, dtype=np.int64))
    draws = krandom.randint((nbytes, count), 0, _RANGE, dtype="int32", seed=draw_seed(seed))
    per_bit = len(rate.shape) > 0
    if not per_bit:  # one rate: every byte's pattern from one table, in one search
        thresholds = byte_pattern_thresholds(ops.full((8,), rate))
        positions = ops.searchsorted(thresholds, ops.reshape(draws, (-1,)), side="right")
        positions = ops.reshape(positions, (nbytes, count))
    patterns = []
    for k in range(nbytes):
        if per_bit:
            thresholds = byte_pattern_thresholds(rate[8 * k : 8 * k + 8])
            position = ops.searchsorted(thresholds, draws[k], side="right")
        else:
            position = positions[k]
        if dtype == "int8":
            return ops.reshape(ops.cast(position - 128, "int8"), shape)
        patterns.append(ops.bitwise_xor(position, 128))
    return ops.reshape(join_bytes(patterns), shape)


def join_bytes(parts):
    """One `int32` word per element from its unsigned bytes (`int32` tensors in [0, 256)),
    lowest first: byte k holds bits 8k to 8k + 7.

    Example:
    >>> keras.ops.convert_to_numpy(join_bytes([keras.ops.convert_to_tensor([1]),
    ...     keras.ops.convert_to_tensor([2])]))
    array([513], dtype=int32)
    """
    word = parts[0]
    for k, part in enumerate(parts[1:], 1):
        word = ops.bitwise_or(word, ops.left_shift(part, 8 * k))
    return word
