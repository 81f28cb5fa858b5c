"""SECDED error-correcting code on the stored words of a faulty memory.

A word holds `word_bits` data bits (whole weights) and the Hamming SECDED check bits: r parity
bits with ``2**r >= word_bits + r + 1`` plus one overall parity bit (72 bits for 64 data bits,
13 for 8). The check bits are computed from the clean data, stored in the same memory and read
at the same rate through the same fault model. The decoder's outcome is modelled from the number
e of bits of the word (data and check) that read wrong:

- e = 0: clean; e = 1: corrected (the data read back exactly);
- e = 2: detected, uncorrectable: with `policy="zero"` the word's weights read 0, with
  `policy="keep"` the raw (faulty) data is used;
- e >= 3: beyond SECDED's guarantees; the model keeps the raw faulty data (a real decoder may
  also flip one more bit when it miscorrects; that extra bit is not modelled).

With stuck-at faults a faulty cell that already holds its stuck value reads right, so only the
bits that actually differ count as errors. Vectorised over words: no per-word Python.

Reference: Hamming, Bell Syst. Tech. J. 1950; Hsiao, IBM J. Res. Dev. 1970 (SECDED); Salami et
al., DSN 2018 (ECC on undervolted FPGA BRAM).
"""

import math

import numpy as np
from keras import ops

from tf_lanmax._validation import check_int, check_one_of
from tf_lanmax.faults.base import bit_planes, draw_fault_pattern, pack_bits

POLICIES = ("zero", "keep")


def check_bit_count(word_bits):
    """SECDED check bits for `word_bits` data bits: r + 1 with ``2**r >= word_bits + r + 1``."""
    r = 1
    while 2**r < word_bits + r + 1:
        r += 1
    return r + 1


def parity_matrix(word_bits):
    """The (word_bits, check bits) 0/1 matrix: check bit j = XOR of the data bits in column j.

    Hamming layout: data bit i sits at the i-th position (1-based) of the codeword that is not a
    power of two; parity bit j covers the positions with bit j set. The last column is the
    overall parity of data and Hamming bits, written as a sum over data bits (mod 2).
    """
    r = check_bit_count(word_bits) - 1
    positions = [p for p in range(1, word_bits + r + 1) if p & (p - 1)][:word_bits]
    hamming = np.array([[(p >> j) & 1 for j in range(r)] for p in positions], dtype=np.int64)
    overall = (1 + hamming.sum(axis=1)) % 2
    return np.concatenate([hamming, overall[:, None]], axis=1).astype(np.float32)


class SECDED:
    """Single-error-correcting, double-error-detecting code over words of whole weights.

    Args:
        word_bits: data bits per word, a positive multiple of the weight's bits. Defaults to `64`.
        policy: what a detected double error does to the word's weights: `"zero"` or `"keep"`.
            Defaults to `"zero"`.
        bits: bits per stored weight (the format's), to check `word_bits` against.
        context: e.g. the layer name, for error messages. Defaults to `None`.

    Example:
    >>> SECDED(64, bits=8).check_bits  # 8 check bits per 64 data bits
    """

    def __init__(self, word_bits=64, policy="zero", bits=1, context=None):
        word_bits = check_int("ecc_word_bits", word_bits, low=1, context=context)
        if word_bits % bits:
            raise ValueError(
                f"`ecc_word_bits` must be a positive multiple of the weight's {bits} bits"
                f"{f' (in {context})' if context else ''}. Received: ecc_word_bits={word_bits}"
            )
        self.word_bits = word_bits
        self.policy = check_one_of("ecc_policy", policy, POLICIES, context=context)
        self.bits = bits
        self.check_bits = check_bit_count(word_bits)
        self._parity = parity_matrix(word_bits)

    def words(self, weights):
        """Words needed for `weights` stored weights (the last one padded)."""
        return math.ceil(weights / (self.word_bits // self.bits))

    def stored_check_bits(self, weights):
        """Check bits the memory holds for `weights` stored weights."""
        return self.words(weights) * self.check_bits

    def read(self, codes, fault_model, bit_rates, rate, seed):
        """Reads `codes` through faults and the decoder.

        Args:
            codes: `int32` codes of any shape, `self.bits` bits each.
            fault_model: a bitwise `FaultModel`.
            bit_rates: scalar or `(bits,)` fault rates of the data bit positions.
            rate: fault rate of the check bits.
            seed: a `keras.random.SeedGenerator` or seed.

        Returns:
            `(codes', keep)`: the decoded codes and a float32 0/1 `keep` (0 = zeroed by a
            detected double error), both shaped like `codes`.
        """
        shape, bits = tuple(codes.shape), self.bits
        n = math.prod(shape)
        per_word = self.word_bits // bits
        n_words = self.words(n)
        flat = ops.pad(ops.reshape(codes, (-1,)), [[0, n_words * per_word - n]])
        data = ops.reshape(bit_planes(ops.reshape(flat, (n_words, per_word)), bits), (n_words, -1))
        check = ops.cast(ops.mod(ops.matmul(ops.cast(data, "float32"), self._parity), 2.0), "int32")
        stored = ops.concatenate([data, check], axis=-1)
        rates = ops.concatenate(
            [
                ops.tile(ops.broadcast_to(ops.cast(bit_rates, "float32"), (bits,)), (per_word,)),
                ops.broadcast_to(ops.cast(rate, "float32"), (self.check_bits,)),
            ],
            axis=0,
        )
        # 1-bit "codes" per stored cell: the fault model acts cell by cell.
        errors, polarity = draw_fault_pattern(
            stored.shape, 1, ops.expand_dims(rates, -1), seed, fault_model.polarity_fraction
        )
        read, _ = fault_model.apply_pattern(stored, errors, polarity, 1)
        wrong = ops.sum(ops.bitwise_xor(read, stored), axis=-1)
        raw = read[:, : self.word_bits]
        decoded = ops.where(ops.expand_dims(ops.equal(wrong, 1), -1), data, raw)
        codes_out = pack_bits(ops.reshape(decoded, (n_words, per_word, bits)), bits)
        keep = ops.ones((n_words,), "float32")
        if self.policy == "zero":
            keep = ops.cast(ops.not_equal(wrong, 2), "float32")
        keep = ops.broadcast_to(ops.expand_dims(keep, -1), (n_words, per_word))
        codes_out = ops.reshape(ops.reshape(codes_out, (-1,))[:n], shape)
        return codes_out, ops.reshape(ops.reshape(keep, (-1,))[:n], shape)
