"""Fresh bit faults drawn by the gaps between them: random numbers per faulty bit, not per byte.

At a rate p most stored bits are fault-free, yet `draw_error_bytes` still draws one integer
per stored byte. Read the stored bits as one stream (bit j of code c at ``c * bits + j``); the
faulty ones form a Bernoulli process, whose gaps (fault-free bits before the next fault) are
independent geometric variables, ``G = floor(log(1 - U) / log(1 - p))`` for U uniform on
[0, 1). Summing gaps gives the faulty positions, and a segment sum packs them into codes, so a
draw costs random numbers in proportion to the expected faults, ``p * bits * count``, not to
``bits * count / 8``.

The stream is cut into chunks of at most 2**23 bits, and each chunk draws a budget of gaps:
the expected faults plus a six-standard-deviation margin. Where shapes are static (JAX's jit
and XLA) the budget is that of the smallest of `RATE_TIERS` at or above p (`keras.ops.switch`
picks the tier at run time, so a rate that LaNMax moves stays cheap); TensorFlow's shapes may
be tensors, so there the budget is that of p itself, with no switch (whose untaken branches
its graph executor would visit) and no gaps drawn for the tier's higher rate. With one rate
per bit position, or for a stream of fewer than `MIN_GAP_BITS` bits, the draw is
`draw_error_bytes`'. The chunk whose budget runs out before its end (rarely; above the largest
tier, whose budget such a rate draws, ever more often) is completed exactly: after the
budget's last fault the process starts afresh (the Bernoulli process is memoryless at each
fault), so the bits after it are read from an independent `draw_error_bytes` draw, masked to
those bits.

U is ``r / 2**31`` for a random integer r from 1 (U is never 0), so whether a gap is 0
(``U < p``) is resolved to 4.7e-10, as `draw_error_bytes` resolves each byte pattern. r stays
below ``2**31 - 128``: a larger r rounds in float32 to 2**31, U to 1 and its gap to infinity (every
later fault of its chunk lost); so U is at most ``1 - 2**-24``, the longest gap
``16.6 / -log(1 - p)`` bits (longer ones have probability below 6e-8 together). Partial sums of
gaps below 2**24 are exact in float32, which is why chunks hold at most 2**23 bits. On
TensorFlow, where its float32 matrix product is exact (no TensorFloat-32), the partial sums are
a product of blocks of `_ROW` gaps with a triangle of ones (`_prefix_sums`), and the budget is
a whole number of blocks. A fault's value in its code, ``2**k``, is summed as an unsigned
integer (``2**31`` fits) and the sum read back as the signed code's bits, so the sign bit needs
no case of its own.

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
#: Streams of fewer bits draw one integer per byte: there the gap draw's fixed cost (its
#: budget, completion check and some 20 ops) outweighs the bytes it saves (on TensorFlow's CPU
#: at p = 1e-2, both measured equal near 2**13.5 bits; gaps 1.4x faster at 2**15, 1.9x at
#: 2**16).
MIN_GAP_BITS = 2**14
#: r in [1, _RANGE): the largest, 2**31 - 129, reads as ``U = 1 - 2**-24`` in float32, not 1.
_RANGE = 2**31 - 128
#: Gaps per block of `_prefix_sums`' matrix product (measured on TensorFlow's CPU: 64 and 256
#: no faster).
_ROW = 128


def gap_budget(chunk_bits, rate):
    """Gaps drawn per chunk of `chunk_bits` for rates up to `rate`: the expected faults at
    `rate` plus six standard deviations (and 16). An int for a float `rate` (a tier), an int32
    scalar tensor for a tensor (TensorFlow's run-time budget)."""
    xp = math if isinstance(rate, float) else ops
    mean = chunk_bits * rate
    budget = xp.ceil(mean + 6.0 * xp.sqrt(mean * (1.0 - rate)) + 16.0)
    return int(budget) if xp is math else ops.cast(budget, "int32")


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

    def uniforms(budget, by_matmul=False):
        if by_matmul:  # whole blocks of `_ROW` gaps for `_prefix_sums`: the budget rounded up
            budget = (budget + (_ROW - 1)) // _ROW * _ROW
        return krandom.randint((chunks, budget), 1, _RANGE, dtype="int32", seed=seed)

    def sparse(r, by_matmul=False):
        return _sparse(r, count, bits, chunk_codes, rate, dtype, by_matmul)

    if keras.backend.backend() == "tensorflow":  # shapes may be tensors: the budget of p
        from tf_lanmax.faults.matmul_tensorflow import float32_matmul_is_exact

        by_matmul = float32_matmul_is_exact()
        # Above the largest tier, the largest tier's budget: it runs out, and the completion
        # below draws the rest of each chunk.
        budget = gap_budget(chunk_bits, ops.minimum(rate, RATE_TIERS[-1]))
        errors, last = sparse(uniforms(budget, by_matmul), by_matmul)
    else:
        # The smallest tier at or above p; above the largest, the largest.
        tiers = ops.convert_to_tensor(RATE_TIERS[:-1], "float32")
        tier = ops.sum(ops.cast(rate > tiers, "int32"))
        budgets = [gap_budget(chunk_bits, t) for t in RATE_TIERS]
        index = concrete_value(tier)
        if index is not None:  # eager: run the one branch (JAX would compile them all per call)
            errors, last = sparse(uniforms(budgets[int(index)]))
        else:  # a branch returns static shapes: the whole draw (JAX runs the taken one only)
            errors, last = ops.switch(tier, [lambda b=b: sparse(uniforms(b)) for b in budgets])
    # One completion after the draw, not one per tier: the program that holds every tier
    # stays small.
    ran_out = ops.any(last < chunk_bits)

    def completed():
        return _complete(errors, last, bits, rate, seed, chunk_codes, chunks, dtype)

    concrete = concrete_value(ran_out)
    if concrete is None:
        errors = ops.cond(ran_out, completed, lambda: errors)
    elif bool(concrete):
        errors = completed()
    return ops.reshape(errors, shape)


def _sparse(r, count, bits, chunk_codes, rate, dtype, by_matmul=False):
    """The faults of `count` codes from `r`, random integers in [1, _RANGE), one row of gaps
    per chunk of `chunk_codes` codes: the flat errors and each chunk's last drawn fault (at or
    past the chunk's end when its row of gaps sufficed). `by_matmul`: the gaps' sums by
    `_prefix_sums`' matrix product (rows of `r` a whole number of `_ROW`)."""
    chunks = -(-count // chunk_codes)
    chunk_bits = chunk_codes * bits
    # G = floor(log(1 - U) / log(1 - p)): +inf at p = 0 (no fault), cut at the chunk's end.
    per_log = 1.0 / ops.log1p(-rate)  # one division per draw, not one per gap
    minus_u = ops.cast(r, "float32") * -(2.0**-31)
    gaps = ops.minimum(ops.floor(ops.log1p(minus_u) * per_log), float(chunk_bits))
    ends = _prefix_sums(gaps + 1.0, by_matmul) - 1.0  # each fault's position in its chunk
    # A fault past the chunk's end reads as bit 0 of code `chunk_codes`: each chunk sums into
    # `chunk_codes + 1` codes, and the spare one is dropped. The index arithmetic stays in
    # float32, exact below 2**24: TensorFlow's CPU spreads its integer shifts and masks over
    # threads, which costs more than they compute at this size and, while a layer's matrix
    # product holds the threads, waits for them.
    position = ops.minimum(ends, float(chunk_bits))
    code = ops.floor(position / bits)  # exact: the quotient of integers below 2**24
    value = ops.cast(_power_of_two(position - code * bits), _UNSIGNED[dtype])
    code = ops.cast(code, "int32")
    spare = chunk_codes + 1
    if chunks > 1:  # in int32: the stream's code indices may pass 2**24
        code = code + ops.arange(chunks, dtype="int32")[:, None] * spare
    errors = _sum_into_codes(value, code, chunks * spare, bits, dtype)
    if chunks > 1:  # drop each chunk's spare code
        errors = ops.reshape(ops.reshape(errors, (chunks, spare))[:, :chunk_codes], (-1,))
    return errors[:count], ends[:, -1]  # the last chunk's padding codes dropped too


def _prefix_sums(steps, by_matmul):
    """The running sums along each row of `steps`, whole float32 numbers: exact below 2**24;
    a sum of 2**24 or more is rounded, but stays above 2**23, past every chunk's end.

    `by_matmul`: each row cut into blocks of `_ROW`, each block times an upper triangle of ones
    (its running sums, one matrix product) plus the totals of the blocks before it. On
    TensorFlow's CPU this is some four times faster than `cumsum` over a row of 2**14 gaps,
    whose scan runs element by element. Only where the float32 product is exact
    (`matmul_tensorflow.float32_matmul_is_exact`).
    """
    if not by_matmul:
        return ops.cumsum(steps, axis=1)
    blocks = ops.reshape(steps, (steps.shape[0], -1, _ROW))
    sums = ops.matmul(blocks, ops.convert_to_tensor(np.triu(np.ones((_ROW, _ROW), "float32"))))
    totals = sums[:, :, -1]
    before = ops.cumsum(totals, axis=1) - totals
    return ops.reshape(sums + before[:, :, None], (steps.shape[0], -1))


#: The unsigned integers the faulty bits' values are summed in, by the codes' dtype.
_UNSIGNED = {"int32": "uint32", "int8": "uint8"}


def _sum_into_codes(value, code, count, bits, dtype):
    """The sum of the unsigned `value`s (distinct powers of two within a code: no carry) that
    go to each of `count` codes, read as `dtype` codes of those bits."""
    value, code = ops.reshape(value, (-1,)), ops.reshape(code, (-1,))
    if keras.backend.backend() == "torch":
        # Keras' torch backend holds uint32 as int64; its segment sum adds in float32, exact
        # only below 2**24, and torch's indexed accumulation adds in the values' dtype. The
        # cast to `dtype` keeps the low bits.
        if bits > 24:
            zeros = ops.zeros((count,), value.dtype)
            sums = ops.scatter_update(zeros, code[:, None], value, reduction="add")
        else:
            sums = ops.segment_sum(value, code, num_segments=count)
        return ops.cast(sums, dtype)
    return ops.view(ops.segment_sum(value, code, num_segments=count), dtype)


def _power_of_two(bit):
    """``2.0**bit`` for whole floats `bit` in [0, 32): the float32 whose exponent field is
    ``bit + 127`` (and mantissa 0), built as that bit pattern, exact in a few elementwise ops
    (an integer shift spreads over threads; a product of binary digits takes dozens of ops)."""
    pattern = ops.cast((bit + 127.0) * 2.0**23, "int32")
    # Viewed as a column: `ops.view` reads the length of the last axis, unknown in a
    # TensorFlow trace (whose budget is a run-time length).
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
