"""Fresh faults for several tensors of codes from one draw: all their bits read as one stream.

A layer stores several parameters (an int8 kernel and a float32 bias, say). Drawing each one's
faults apart pays each draw's fixed cost (its random-number op, its budget and completion
check) once per tensor, and for a small bias that costs more than its bits. Bits faulty
independently at one rate p, tensor by tensor, are the same thing as the bits of one stream
holding every tensor's bits faulty independently at p: one `draw_error_gaps` over the
concatenated codes, cut back into the tensors, gives each tensor exactly the distribution of a
draw of its own, and the tensors stay independent of one another. The stream is one of 32-bit
words when every tensor's codes are 32 bits wide (float32 parameters, and int8 codes four to a
word: `FaultModel.fresh_errors`), else one of bytes (byte k of a wider code is its bits 8k to
8k + 7).
"""

import numpy as np
from keras import ops

from tf_lanmax.faults.byte_draws import check_byte_codes, join_bytes
from tf_lanmax.faults.gap_draws import draw_error_gaps


def draw_errors_together(codes, rate, seed):
    """Fresh i.i.d. faults at `rate` on every stored bit of several tensors, in one draw.

    Args:
        codes: list of `(shape, bits, dtype)`, one per tensor of codes: `bits` a positive
            multiple of 8, `dtype` "int32", or "int8" for 8-bit codes XORed as the stored bytes
            (as `draw_error_gaps`). When every entry is 32 bits wide the stream is drawn as
            32-bit words (fewer elements than bytes), else as bytes.
        rate: the per-bit fault probability, a scalar (float or tensor).
        seed: a `keras.random.SeedGenerator` (a fresh draw per call) or an int.

    Returns:
        A list with one tensor per entry of `codes`, of its shape and dtype, bit k set where bit
        k of the code is faulty.

    Raises:
        ValueError: `codes` empty, `rate` not a scalar, or a width / dtype that
            `draw_error_gaps` refuses (naming the entry).

    Example:
    >>> kernel, bias = draw_errors_together([((4, 3), 8, "int8"), ((3,), 32, "int32")], 0.01, 0)
    """
    if not codes:
        raise ValueError("`codes` must list at least one (shape, bits, dtype). Received: []")
    rate = ops.cast(rate, "float32")
    if len(rate.shape) > 0:
        raise ValueError(
            f"`rate` must be a scalar: one rate for every bit of the stream. "
            f"Received: rate of shape {tuple(rate.shape)}"
        )
    sizes = []
    for i, (shape, bits, dtype) in enumerate(codes):
        try:
            check_byte_codes(bits, dtype)
        except ValueError as error:
            raise ValueError(f"`codes[{i}]`: {error}") from None
        sizes.append(int(np.prod(shape, dtype=np.int64)) * (bits // 8))
    if all(bits == 32 for _, bits, _ in codes):
        # Whole 32-bit words (float32 codes, int8 codes four to a word): one stream of words,
        # cut into the tensors as they are, with no bytes to reassemble.
        words = draw_error_gaps((sum(sizes) // 4,), 32, rate, seed, dtype="int32")
        return _cut(words, [size // 4 for size in sizes], [shape for shape, _, _ in codes])
    stream = draw_error_gaps((sum(sizes),), 8, rate, seed, dtype="int8")
    errors = []
    for (shape, bits, dtype), piece in zip(codes, _cut(stream, sizes), strict=True):
        if dtype == "int8":
            errors.append(ops.reshape(piece, shape))
            continue
        # The unsigned bytes of each code, lowest first, shifted into place and combined.
        data = ops.bitwise_and(ops.cast(ops.reshape(piece, (-1, bits // 8)), "int32"), 255)
        word = join_bytes([data[:, k] for k in range(bits // 8)])
        errors.append(ops.reshape(word, shape))
    return errors


def _cut(stream, sizes, shapes=None):
    """`stream` cut into consecutive pieces of `sizes` elements (reshaped to `shapes`)."""
    pieces, start = [], 0
    for i, size in enumerate(sizes):
        piece = stream[start : start + size]
        pieces.append(piece if shapes is None else ops.reshape(piece, shapes[i]))
        start += size
    return pieces
