"""Fresh bit faults drawn by the gaps between them: random numbers per faulty bit, not per byte.

At a rate p most stored bits are fault-free, yet `draw_error_bytes` still draws one integer
per stored byte. Read the stored bits as one stream (bit j of code c at ``c * bits + j``); the
faulty ones form a Bernoulli process, whose gaps (fault-free bits before the next fault) are
independent geometric variables, ``G = floor(log(1 - U) / log(1 - p))`` for U uniform on
[0, 1). Summing gaps gives the faulty positions, and a segment sum packs them into codes, so a
draw costs random numbers in proportion to the expected faults, ``p * bits * count``, not to
``bits * count / 8``.

Shapes stay static (jit and XLA compile it): the stream is cut into chunks of at most 2**23
bits, and each chunk draws a fixed budget of gaps, enough for the smallest of `RATE_TIERS` at
or above p with a six-standard-deviation margin (`keras.ops.switch` picks the tier at run time,
so a rate that LaNMax moves stays cheap; on TensorFlow, whose switch may return different
shapes, a branch is only the budget's random integers, as every op of an untaken branch costs
its graph executor a visit). With one rate per bit position, or for a stream of fewer than
`MIN_GAP_BITS` bits, the draw is `draw_error_bytes`'. The chunk whose budget runs out before
its end (rarely; above the largest tier, whose budget such a rate draws, ever more often) is
completed exactly: after the budget's last fault the process starts afresh (the Bernoulli
process is memoryless at each fault), so the bits after it are read from an independent
`draw_error_bytes` draw, masked to those bits.

U is ``(r + 0.5) / 2**31`` for a random integer r, so whether a gap is 0 (``U < p``) is
resolved to 4.7e-10, as `draw_error_bytes` resolves each byte pattern. r stays below
``2**31 - 128``: a larger r rounds in float32 to 2**31, U to 1 and its gap to infinity (every
later fault of its chunk lost); so U is at most ``1 - 2**-24``, the longest gap
``16.6 / -log(1 - p)`` bits (longer ones have probability below 6e-8 together). Partial sums of
gaps below 2**24 are exact in float32, which is why chunks hold at most 2**23 bits.

Reference: L. Devroye, Non-Uniform Random Variate Generation, Springer 1986, ch. X.2
(geometric variates by inversion) and ch. I.3 (gaps of a Bernoulli process).
"""

import math

import keras
import numpy as np
from keras import ops
from keras import random as krandom

from tf_lanmax._concrete import concrete_value
from tf_lanmax._seeds import draw_seed, tail_seed
from tf_lanmax.faults.byte_draws import check_byte_codes, draw_error_bytes

#: The rates a gap budget is sized for, ascending, half an octave apart (a budget holds at most
#: sqrt(2) times the expected faults, plus its margin); a rate above the last draws its budget,
#: which runs out, and the completion draws the rest one integer per byte.
RATE_TIERS = tuple(2.0 ** (-k / 2) for k in range(18, 9, -1))
#: The most bits in one chunk of the stream: partial sums of its gaps stay exact in float32.
_CHUNK_BITS = 2**23
#: Streams of fewer bits draw one integer per byte: there the gap draw's fixed cost (its tier
#: switch, completion check and some 25 ops) outweighs the bytes it saves (on TensorFlow's
#: CPU at p = 1e-2, both measured equal near 2**14.3 bits; gaps 1.3x faster at 2**16).
MIN_GAP_BITS = 2**15
#: r in [0, _RANGE): the largest, 2**31 - 129, reads as ``U = 1 - 2**-24`` in float32, not 1.
_RANGE = 2**31 - 128


def gap_budget(chunk_bits, tier):
    """Gaps drawn per chunk of `chunk_bits` for rates up to `tier`: the expected faults at
    `tier` plus six standard deviations (and 16)."""
    mean = chunk_bits * tier
    return int(math.ceil(mean + 6.0 * math.sqrt(mean * (1.0 - tier)) + 16))


def draw_error_gaps(shape, bits, rate, seed, dtype="int32"):
    """Fresh i.i.d. faults on every stored bit, packed into words, drawn by the gaps between
    faulty bits.

    The same distribution as `draw_error_bytes` (and `draw_error_bits`): bit k of a word faulty
    with probability ``rate`` (or ``rate[k]``), independently of every other bit. A scalar rate
    up to the largest of `RATE_TIERS` draws random numbers in proportion to the expected number
    of faults (a larger one also draws one integer per byte after the largest budget); one rate
    per bit position, or fewer than `MIN_GAP_BITS` stored bits in all, draws as
    `draw_error_bytes`. For transient faults only: the faulty bits at two rates are not nested
    for one seed.

    Arguments, result and errors as `draw_error_bytes` (same signature): `shape` of the codes,
    `bits` per code (a multiple of 8), `rate` (scalar or one per bit position), `seed` (a
    `keras.random.SeedGenerator` for a fresh draw per call, or an int), `dtype` ("int32", or
    "int8" for 8-bit codes XORed as the stored bytes); returns a tensor of `shape` and `dtype`
    with bit k set where bit k of the code is faulty.

    Example:
    >>> errors = draw_error_gaps((2, 3), 8, 1e-3, seed=0)  # int32 in [0, 256), mostly 0
    """
    check_byte_codes(bits, dtype)
    rate = ops.cast(rate, "float32")
    count = int(np.prod(shape, dtype=np.int64))
    if len(rate.shape) > 0 or count * bits < MIN_GAP_BITS:
        return draw_error_bytes(shape, bits, rate, seed, dtype)
    seed = draw_seed(seed)  # once: every branch reads the same resolved seed
    chunk_codes = max(1, min(count, _CHUNK_BITS // bits))
    chunks = -(-count // chunk_codes)
    chunk_bits = chunk_codes * bits
    # The smallest tier at or above p; above the largest, the largest: its budget runs out
    # and the completion below draws the rest of each chunk.
    tiers = ops.convert_to_tensor(RATE_TIERS[:-1], "float32")
    tier = ops.sum(ops.cast(rate > tiers, "int32"))
    budgets = [gap_budget(chunk_bits, t) for t in RATE_TIERS]

    def uniforms(budget):
        return lambda: krandom.randint((chunks, budget), 0, _RANGE, dtype="int32", seed=seed)

    def sparse(r):
        return _sparse(r, count, bits, chunk_codes, rate, dtype)

    index = concrete_value(tier)
    if index is not None:  # eager: run the one branch (JAX would compile them all per call)
        errors, last = sparse(uniforms(budgets[int(index)])())
    elif keras.backend.backend() == "tensorflow":
        # TensorFlow's switch returns branches of different shapes, and its graph executor
        # visits every op of an untaken branch: a branch is only its random draw.
        errors, last = sparse(ops.switch(tier, [uniforms(b) for b in budgets]))
    else:  # a branch returns static shapes: the whole draw (JAX runs the taken one only)
        errors, last = ops.switch(tier, [lambda b=b: sparse(uniforms(b)()) for b in budgets])
    # One completion after the switch, not one per tier: a branch is only its draw, so the
    # program that holds every tier stays small.
    ran_out = ops.any(last < chunk_bits)

    def completed():
        return _complete(errors, last, bits, rate, seed, chunk_codes, chunks, dtype)

    concrete = concrete_value(ran_out)
    if concrete is None:
        errors = ops.cond(ran_out, completed, lambda: errors)
    elif bool(concrete):
        errors = completed()
    return ops.reshape(errors, shape)


def _sparse(r, count, bits, chunk_codes, rate, dtype):
    """The faults of `count` codes from `r`, random integers in [0, _RANGE), one row of gaps
    per chunk of `chunk_codes` codes: the flat errors and each chunk's last drawn fault (at or
    past the chunk's end when its row of gaps sufficed)."""
    chunks = -(-count // chunk_codes)
    chunk_bits = chunk_codes * bits
    # -U = -(r + 0.5) / 2**31 in one multiply-add (the same float32 as scaling r + 0.5).
    minus_u = ops.cast(r, "float32") * -(2.0**-31) - 2.0**-32
    # G = floor(log(1 - U) / log(1 - p)): +inf at p = 0 (no fault), cut at the chunk's end.
    per_log = 1.0 / ops.log1p(-rate)  # one division per draw, not one per gap
    gaps = ops.minimum(ops.floor(ops.log1p(minus_u) * per_log), float(chunk_bits))
    ends = ops.cumsum(gaps + 1.0, axis=1) - 1.0  # each fault's position in its chunk
    inside = ends < chunk_bits
    # The index arithmetic stays in float32, exact below 2**24: TensorFlow's CPU spreads its
    # integer shifts and masks over threads, which costs more than they compute at this size
    # and, while a layer's matrix product holds the threads, waits for them.
    position = ops.minimum(ends, float(chunk_bits))  # past the chunk: its end (dropped below)
    code = ops.floor(position / bits)  # exact: the quotient of integers below 2**24
    bit = position - code * bits
    value = _power_of_two(bit)  # the faulty bit's value in its code
    sign = 7 if dtype == "int8" else 31  # the stored sign bit reads as -2**sign
    if bits > sign:
        value = ops.where(bit == sign, -value, value)
    value = ops.cast(ops.where(inside, value, 0.0), dtype)  # a fault past the end adds 0
    # A fault past the chunk's end goes to its last code.
    code = ops.cast(ops.minimum(code, chunk_codes - 1.0), "int32")
    if chunks > 1:  # in int32: the stream's code indices may pass 2**24
        code = code + ops.arange(chunks, dtype="int32")[:, None] * chunk_codes
    if chunks * chunk_codes > count:  # the last chunk's padding codes
        value = ops.where(code < count, value, ops.zeros_like(value))
        code = ops.minimum(code, count - 1)
    return _sum_into_codes(value, code, count, bits), ends[:, -1]


def _sum_into_codes(value, code, count, bits):
    """The sum of the `value`s (distinct powers of two within a code: no carry) that go to
    each of `count` codes, in the values' dtype."""
    value, code = ops.reshape(value, (-1,)), ops.reshape(code, (-1,))
    if bits > 24 and keras.backend.backend() == "torch":
        # Keras' torch segment sum adds in float32, exact only below 2**24; torch's indexed
        # accumulation adds in the values' dtype.
        zeros = ops.zeros((count,), value.dtype)
        return ops.scatter_update(zeros, code[:, None], value, reduction="add")
    return ops.segment_sum(value, code, num_segments=count)


def _power_of_two(bit):
    """``2.0**bit`` for whole floats `bit` in [0, 32): the float32 whose exponent field is
    ``bit + 127`` (and mantissa 0), built as that bit pattern, exact in a few elementwise ops
    (an integer shift spreads over threads; a product of binary digits takes dozens of ops)."""
    pattern = ops.cast((bit + 127.0) * 2.0**23, "int32")
    # Viewed as a column: `ops.view` reads the length of the last axis, unknown in a trace of
    # TensorFlow's switch (whose branches draw budgets of different lengths).
    return ops.reshape(ops.view(ops.reshape(pattern, (-1, 1)), "float32"), ops.shape(bit))


def _complete(errors, last, bits, rate, seed, chunk_codes, chunks, dtype):
    """`errors` with the bits after each chunk's `last` fault drawn afresh (`draw_error_bytes`
    from an independent seed), for chunks whose gap budget ended before the chunk did."""
    count = errors.shape[0]
    errors = ops.cast(errors, "int32")
    fresh = ops.reshape(draw_error_bytes((count,), bits, rate, tail_seed(seed)), (-1,))
    fresh = ops.pad(fresh, [(0, chunks * chunk_codes - count)])
    fresh = ops.reshape(fresh, (chunks, chunk_codes))
    # Within each code, the index of the chunk's last sparse fault; keep the bits above it.
    offset = last[:, None] - ops.arange(chunk_codes, dtype="float32")[None, :] * bits
    offset = ops.cast(ops.clip(offset, -1.0, float(bits)), "int32")
    full = -1 if bits == 32 else (1 << bits) - 1
    shifted = ops.bitwise_and(ops.left_shift(full, ops.minimum(offset + 1, bits - 1)), full)
    keep = ops.where(offset < 0, full, ops.where(offset >= bits - 1, 0, shifted))
    tail = ops.reshape(ops.bitwise_and(fresh, keep), (-1,))[:count]
    if dtype == "int8":  # back to the unsigned byte, combined, then the signed byte again
        combined = ops.bitwise_or(ops.bitwise_and(errors, 255), tail)
        return ops.cast(ops.bitwise_xor(combined, 128) - 128, "int8")
    return ops.bitwise_or(errors, tail)
