"""Base class of fault models: what an unreliable memory does to stored bits at rate p."""

import numpy as np
from keras import ops
from keras.backend import standardize_dtype

from tf_lanmax._config import ConfigValue
from tf_lanmax._seeds import uniform
from tf_lanmax.faults.gap_draws import draw_error_gaps


def bit_planes(codes, bits):
    """Splits `int32` codes into their bits: shape ``codes.shape + (bits,)``, bit k at index k."""
    shifts = ops.arange(bits, dtype="int32")
    return ops.bitwise_and(ops.right_shift(ops.expand_dims(codes, -1), shifts), 1)


def draw_error_bits(shape, bits, rate, seed):
    """Draws an i.i.d. Bernoulli(`rate`) fault on every stored bit, packed into an `int32` word.

    Uniform draws per stored bit compared with `rate`; bit k of the returned word is set when
    bit k of the stored code is faulty. `rate` may be a scalar variable: comparing against it keeps
    the traced graph independent of its value, so assigning p never retraces.

    Args:
        shape: shape of the codes tensor.
        bits: bits per code.
        rate: per-bit fault probability (scalar tensor or float), or a `(bits,)` tensor of one
            rate per bit position (bits in robust cells read at a lower rate).
        seed: a `keras.random.SeedGenerator` (fresh draw per call) or an int seed.

    Returns:
        `int32` tensor of `shape`, the error pattern.
    """
    errors, _ = draw_fault_pattern(shape, bits, rate, seed)
    return errors


def draw_fault_pattern(shape, bits, rate, seed, polarity_fraction=None):
    """Faulty bits and, optionally, the value each faulty cell reads, packed into `int32` words.

    One uniform draw per stored bit and stage, so a fixed seed gives a fixed map of uniforms: bit
    b is faulty iff its uniforms fall below p (`_faulty`), hence the bits faulty at p1 < p2 are a
    subset of those faulty at p2 for the same seed (a persistent per-chip map). With
    `polarity_fraction` f a third uniform per bit decides whether a faulty cell reads 0
    (probability f) or 1.

    Args:
        shape: shape of the codes tensor.
        bits: bits per code.
        rate: scalar fault probability or a `(bits,)` tensor of per-position rates.
        seed: a `keras.random.SeedGenerator` or an int seed.
        polarity_fraction: the stuck-at-0 fraction f, or None for no polarity plane. Defaults
            to `None`.

    Returns:
        `(errors, polarity)`: `int32` tensors of `shape`; bit k of `errors` is set when bit k is
        faulty, bit k of `polarity` when that cell reads 1 (None without `polarity_fraction`).
    """
    stages = 2 if polarity_fraction is None else 3
    # `uniform` draws from `draw_seed`: a generator's (stream, counter) state is hashed where the
    # backend would otherwise collapse it (torch), so no two layers or reads share a pattern.
    u = uniform((stages, *shape, bits), seed)
    hits = ops.cast(_faulty(u[0], u[1], ops.cast(rate, "float32")), "int32")
    polarity = None
    if polarity_fraction is not None:
        polarity = pack_bits(ops.cast(ops.greater_equal(u[2], polarity_fraction), "int32"), bits)
    return pack_bits(hits, bits), polarity


def pack_bits(planes, bits):
    """Packs 0/1 `int32` planes (last axis: bit k at index k) into `int32` words."""
    if bits == 1:
        return planes[..., 0]
    weights = ops.left_shift(ops.ones((bits,), "int32"), ops.arange(bits, dtype="int32"))
    return ops.sum(planes * weights, axis=-1)


# float32 uniforms come on a grid of 2**-23, so `u < p` would fault at least 1.2e-7 of the bits
# and over-count rates near p0 = exp(-12.8) by ~4%. Below 2**-10 the draw is split in two stages,
# P = 2**-10 * (p * 2**10), each on the grid with relative error < 5e-5 down to p ~ 1e-9.
_SPLIT = 2.0**-10


def _faulty(u, v, rate):
    # Monotone in `rate` for fixed (u, v): a bit faulty at p stays faulty at any p' > p.
    first = ops.maximum(rate, _SPLIT)
    return ops.logical_and(ops.less(u, first), ops.less(v, rate / first))


class FaultModel(ConfigValue):
    """A fault model on `bits`-bit codes: ``apply(codes, errors, bits) -> (codes', keep)``.

    `keep` is None or a float 0/1 tensor multiplied into the decoded weight: it lets a model zero
    a value that no code represents (a masked binary weight). Subclasses implement `apply` and
    `moments`.
    """

    name = None

    #: The fraction of faulty cells that read 0 when the model needs to know which value each
    #: faulty cell reads (a polarity pattern drawn with the faults), else None.
    polarity_fraction = None

    #: Whether the model acts bit by bit (its `apply` returns no `keep`), so it can also act on
    #: ECC check bits and on int8 codes read four to a word (bit masking, which reads the sign
    #: bit, cannot).
    bitwise = True

    def apply(self, codes, errors, bits):
        """Applies the error pattern `errors` (bit k set = bit k faulty) to `codes`."""
        raise NotImplementedError

    def apply_pattern(self, codes, errors, polarity, bits):
        """Applies a drawn pattern: `errors` and, for models that need it, `polarity`."""
        return self.apply(codes, errors, bits)

    def __call__(self, codes, bits, rate, seed):
        """Draws fresh faults at `rate` and applies them.

        Args:
            codes: `int32` codes from a `WeightFormat`.
            bits: bits per code.
            rate: per-bit fault probability.
            seed: a `keras.random.SeedGenerator` or seed.

        Returns:
            `(faulty_codes, keep)`; `keep` is None or a float32 0/1 tensor.
        """
        codes = ops.cast(codes, "int32")
        errors, polarity = draw_fault_pattern(codes.shape, bits, rate, seed, self.polarity_fraction)
        return self.apply_pattern(codes, errors, polarity, bits)

    def fresh(self, codes, bits, rate, seed, errors=None):
        """As `__call__` for transient faults: the same distribution, drawn by the gaps between
        faulty bits (`draw_error_gaps`: random numbers per fault, not per bit; one integer per
        stored byte with per-bit rates, and after the largest budget above its rate tiers).
        `int8` codes of 8 bits (a quantized layer's stored bytes as they are) stay `int8` for
        the bit-wise models, with no widening to `int32` and back, and are read four to a
        32-bit word where they fill whole words (`fresh_errors`). Models with a polarity
        plane, and codes of a width that is not whole bytes, draw as `__call__`.

        `errors`: a pattern drawn already (`draw_errors_together`, one draw for all of a
        layer's parameters), as `fresh_errors` describes it; only where `draws_bytes`.

        Example:
        >>> codes, _ = BitFlip().fresh(keras.ops.convert_to_tensor([0, 3]), 8, 0.5, seed=0)
        """
        if not self.draws_bytes(bits):
            return self(codes, bits, rate, seed)
        codes_dtype = standardize_dtype(codes.dtype)
        shape, error_bits, dtype = self.fresh_errors(tuple(codes.shape), codes_dtype, bits)
        if errors is None:
            errors = draw_error_gaps(shape, error_bits, rate, seed, dtype)
        if error_bits != bits:  # int8 codes, four to a word: a bit-wise model acts alike
            words = ops.view(ops.reshape(codes, (-1,)), "int32")
            faulty, _ = self.apply(words, errors, error_bits)  # bit by bit: no `keep`
            return ops.reshape(ops.view(faulty, "int8"), codes.shape), None
        return self.apply(ops.cast(codes, dtype), errors, bits)

    def draws_bytes(self, bits):
        """Whether `fresh` draws faults on codes of `bits` bits byte-wise (`draw_error_gaps`):
        whole bytes, and no polarity plane."""
        return self.polarity_fraction is None and bits % 8 == 0

    def fresh_errors(self, shape, codes_dtype, bits):
        """The error pattern `fresh` draws and applies for codes of `shape`, `codes_dtype` and
        `bits` bits, as `(shape, bits, dtype)` (a `draw_error_gaps` call or an entry of
        `draw_errors_together`).

        8-bit `int8` codes under a bit-wise model (a quantized layer's stored bytes) take
        their faults as they are stored: as 32-bit `int32` words, four codes to a word, where
        they fill whole words (a quarter of the elements to draw into and combine), else as
        `int8` bytes. Other codes take `int32` patterns of their own shape and width.

        Example:
        >>> BitFlip().fresh_errors((4, 3), "int8", 8)
        ((3,), 32, 'int32')
        """
        if bits == 8 and self.bitwise and codes_dtype == "int8":
            count = int(np.prod(shape, dtype=np.int64))
            return ((count // 4,), 32, "int32") if count % 4 == 0 else (shape, 8, "int8")
        return shape, bits, "int32"

    def corrupt(self, weight_format, weights, rate, seed):
        """Float weights -> the faulty stored weights read back (no gradient path)."""
        codes, keep = self(weight_format.encode(weights), weight_format.bits, rate, seed)
        values = weight_format.decode(codes, weights)
        return values if keep is None else values * keep

    def code_moments(self, codes, bits, rate):
        """Closed-form mean and variance of the faulty code's integer value."""
        raise NotImplementedError

    def binary_moments(self, weights_b, alpha, rate):
        """Mean and variance of a faulty binary weight ``alpha * (+-1)``."""
        raise NotImplementedError

    def moments(self, weight_format, weights, rate):
        """Closed-form per-weight mean and variance of the faulty stored weight.

        Args:
            weight_format: the `WeightFormat` the weights are stored in.
            weights: latent float weights.
            rate: per-bit fault probability.

        Returns:
            `(mean, variance)` tensors shaped like `weights`, in weight units.
        """
        rate = ops.cast(rate, "float32")
        if weight_format.bits == 1:
            alpha = weight_format.step(weights)
            return self.binary_moments(weight_format.quantize(weights), alpha, rate)
        codes = weight_format.encode(weights)
        step = weight_format.step(weights)
        mean, var = self.code_moments(codes, weight_format.bits, rate)
        return mean * step, var * step * step

    def get_config(self):
        return {}


def signed_value(codes, bits):
    """Two's-complement value of `bits`-bit codes as float32."""
    sign = ops.right_shift(codes, bits - 1)
    return ops.cast(codes - ops.left_shift(sign, bits), "float32")


def weighted_bit_sum(bit_planes_, bits, low_only):
    """``sum_k b_k 4**k`` over all bits, or only the bits below the sign (`low_only`)."""
    n = bits - 1 if low_only else bits
    powers = ops.convert_to_tensor([4.0**k for k in range(n)], "float32")
    return ops.sum(ops.cast(bit_planes_[..., :n], "float32") * powers, axis=-1)
