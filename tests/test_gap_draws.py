"""Fresh faults drawn by the gaps between faulty bits (`tf_lanmax.faults.gap_draws`): the same
i.i.d. per-bit distribution as one draw per bit, in every rate tier, across chunks and when a
chunk's gap budget runs out."""

import keras
import numpy as np
import pytest
from helpers import assert_bits_fault_at, binomial_interval_holds, bit_matrix
from keras import ops

from tf_lanmax.faults import gap_draws
from tf_lanmax.faults.byte_draws import draw_error_bytes
from tf_lanmax.faults.gap_draws import MIN_GAP_BITS, RATE_TIERS, draw_error_gaps


# Rates in the lowest, a middle and the top tier of the gap budget, one above them (the largest
# budget runs out, the byte draw completes it), and 24-bit codes (a width that is not a power of
# two: code and bit by division).
@pytest.mark.parametrize(
    "rate, bits, dtype",
    [
        (1e-3, 32, "int32"),
        (1e-2, 8, "int8"),
        (0.025, 16, "int32"),
        (0.2, 8, "int8"),
        (0.2, 32, "int32"),  # several faults in most codes, some 31 bits apart
        (0.005, 24, "int32"),
    ],
)
def test_every_bit_faults_at_the_rate_in_every_tier(rate, bits, dtype):
    n = max(20000, int(400 / rate))
    errors = draw_error_gaps((n,), bits, rate, seed=11, dtype=dtype)
    assert tuple(errors.shape) == (n,) and str(ops.convert_to_numpy(errors).dtype) == dtype
    assert_bits_fault_at(errors, bits, rate)


def test_neighbouring_bits_fault_independently_within_and_across_codes():
    # Adjacent positions of the stream: the case a wrong gap length would break first.
    rate, n = 0.025, 200000
    matrix = bit_matrix(draw_error_gaps((n,), 16, rate, seed=3), 16)
    pairs = [(matrix[:, 0], matrix[:, 1]), (matrix[:, 7], matrix[:, 8])]
    pairs.append((matrix[:-1, 15], matrix[1:, 0]))  # last bit of a code, first of the next
    for a, b in pairs:
        both = int((a & b).sum())
        assert binomial_interval_holds(both, len(a), rate * rate), both
        assert not binomial_interval_holds(both, len(a), 2 * rate * rate), both


def _five_gaps_per_chunk_of_800_bits(monkeypatch):
    # Blocks of five gaps for the prefix sums by matrix product, or the budget would be
    # rounded up to a whole block of 128.
    monkeypatch.setattr(gap_draws, "gap_budget", lambda chunk_bits, tier: 5)
    monkeypatch.setattr(gap_draws, "_ROW", 5)
    monkeypatch.setattr(gap_draws, "_CHUNK_BITS", 800)


def test_a_chunk_whose_budget_runs_out_is_completed_exactly(monkeypatch):
    # Five gaps per chunk of 800 bits: every chunk runs out, the rest comes from the bytes.
    _five_gaps_per_chunk_of_800_bits(monkeypatch)
    n = 30001  # not a whole number of chunks
    for bits, dtype in [(8, "int8"), (32, "int32"), (16, "int32")]:
        errors = draw_error_gaps((n,), bits, 0.01, seed=5, dtype=dtype)
        matrix = assert_bits_fault_at(errors, bits, 0.01)
        chunks = -(-n * bits // 800)
        assert matrix.sum() > 5 * chunks  # the completion contributed


def test_chunks_cover_the_stream_with_no_seam(monkeypatch):
    # Chunks of 96 bits (12 codes) and a last chunk of padding: every position at the rate.
    monkeypatch.setattr(gap_draws, "_CHUNK_BITS", 96)
    rate, n = 0.02, 60001
    assert_bits_fault_at(draw_error_gaps((n,), 8, rate, seed=9, dtype="int8"), 8, rate)


def test_edge_rates_and_per_bit_rates():
    assert not np.any(ops.convert_to_numpy(draw_error_gaps((5, 7), 32, 0.0, seed=0)))
    ones = ops.convert_to_numpy(draw_error_gaps((4,), 8, 1.0, seed=0, dtype="int8"))
    np.testing.assert_array_equal(ones, np.full(4, -1, "int8"))  # every bit flips
    # One rate per bit position cannot be drawn by gaps: the byte draw, bit for bit.
    rates = ops.convert_to_tensor(np.linspace(0.01, 0.2, 16).astype("float32"))
    np.testing.assert_array_equal(
        ops.convert_to_numpy(draw_error_gaps((100,), 16, rates, seed=4)),
        ops.convert_to_numpy(draw_error_bytes((100,), 16, rates, seed=4)),
    )
    assert list(RATE_TIERS) == sorted(RATE_TIERS)


def test_small_streams_take_the_byte_draw_and_large_ones_the_gaps():
    small = MIN_GAP_BITS // 8 - 1  # one-byte codes, one code short of the threshold
    for n, same in [(small, True), (small + 1, False)]:
        gaps = ops.convert_to_numpy(draw_error_gaps((n,), 8, 0.01, seed=4, dtype="int8"))
        bytes_ = ops.convert_to_numpy(draw_error_bytes((n,), 8, 0.01, seed=4, dtype="int8"))
        assert np.array_equal(gaps, bytes_) == same, n


def test_a_fresh_draw_per_call_from_a_generator():
    generator = keras.random.SeedGenerator(1)
    first = ops.convert_to_numpy(draw_error_gaps((10000,), 8, 0.01, generator))
    second = ops.convert_to_numpy(draw_error_gaps((10000,), 8, 0.01, generator))
    assert first.any() and not np.array_equal(first, second)


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="`bits` must be a positive multiple of 8"):
        draw_error_gaps((3,), 4, 0.1, seed=0)
    with pytest.raises(ValueError, match="`dtype` must be 'int32', or 'int8' for 8-bit"):
        draw_error_gaps((3,), 16, 0.1, seed=0, dtype="int8")


class _Draws(keras.layers.Layer):
    """A layer whose output is one gap draw at the rate in its variable: `predict_on_batch`
    runs it compiled (tf.function, jax.jit), where the tier and the completion are chosen
    inside the program."""

    def __init__(self, count, bits, dtype):
        super().__init__()
        self.count, self.bits, self.code_dtype = count, bits, dtype
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False)
        self.generator = keras.random.SeedGenerator(7)

    def call(self, x):
        errors = draw_error_gaps(
            (self.count,), self.bits, self.rate, self.generator, self.code_dtype
        )
        return ops.cast(errors, "int32")[None] + ops.cast(x[:, :1] * 0, "int32")


@pytest.mark.parametrize("tiny_budget", [False, True])
def test_compiled_draws_pick_the_tier_at_run_time(monkeypatch, tiny_budget):
    if tiny_budget:  # every chunk runs out: the completion inside the compiled program
        _five_gaps_per_chunk_of_800_bits(monkeypatch)
    n, bits = 20001, 8
    draws = _Draws(n, bits, "int8")
    model = keras.Sequential([keras.Input((1,)), draws])
    for rate in (1e-3, 1e-2, 0.025, 0.2):  # one program: every tier, and above them
        draws.rate.assign(rate)
        errors = model.predict_on_batch(np.zeros((1, 1), "float32"))[0]
        matrix = bit_matrix(errors, bits)
        total = int(matrix.sum())
        assert binomial_interval_holds(total, n * bits, rate) and not binomial_interval_holds(
            total, n * bits, 2 * rate
        ), rate


def test_codes_beyond_two_to_the_24_are_placed_exactly():
    # 2**24 + 2**16 bytes: 17 chunks; code indices past 2**24 are not float32 integers, so
    # index arithmetic in float32 would put every fault there on an even code.
    n, rate = 2**24 + 2**16, 1e-3
    errors = ops.convert_to_numpy(draw_error_gaps((n,), 8, rate, seed=2, dtype="int8"))
    faulty = np.nonzero(errors[2**24 :])[0]
    bits = np.unpackbits(errors[2**24 :][faulty].view(np.uint8)).sum()
    assert binomial_interval_holds(bits, 2**16 * 8, rate), bits
    odd = faulty % 2 == 1
    assert binomial_interval_holds(int(odd.sum()), len(faulty), 0.5), (odd.sum(), len(faulty))


def test_the_largest_random_integer_gives_a_finite_gap(monkeypatch):
    # Every r at its largest: U = 1 - 2**-24, each gap floor(log(2**-24) / log(1 - p)), so
    # faults fall at a fixed spacing to the end of the stream (a U rounded to 1 would give an
    # infinite gap and no fault at all).
    rate, count = 0.01, 2**14
    monkeypatch.setattr(
        gap_draws.krandom,
        "randint",
        lambda shape, minval, maxval, **kwargs: keras.ops.full(shape, maxval - 1, "int32"),
    )
    errors = draw_error_gaps((count,), 8, rate, seed=0, dtype="int32")
    gap = int(np.floor(np.float32(np.log(2.0**-24)) / np.float32(np.log1p(-rate))))
    positions = np.flatnonzero(bit_matrix(errors, 8).reshape(-1))
    np.testing.assert_array_equal(positions, np.arange(gap, count * 8, gap + 1))


def test_the_value_of_every_bit_place_is_its_exact_power_of_two():
    bits = np.arange(32, dtype="float32")
    values = ops.convert_to_numpy(gap_draws._power_of_two(ops.convert_to_tensor(bits)))
    np.testing.assert_array_equal(values, 2.0**bits)


def test_faulty_bits_far_apart_in_one_code_are_summed_exactly():
    # Bits 0, 30 and 31 of one 32-bit code: a sum in float32 would drop bit 0.
    values = ops.cast(ops.convert_to_tensor([1.0, 2.0**30, 2.0**31, 4.0]), "uint32")
    codes = ops.convert_to_tensor([0, 0, 0, 2], "int32")
    summed = ops.convert_to_numpy(gap_draws._sum_into_codes(values, codes, 3, 32, "int32"))
    np.testing.assert_array_equal(summed, np.array([1 + 2**30 - 2**31, 0, 4], "int32"))


@pytest.mark.parametrize("by_matmul", [False, True])
def test_prefix_sums_are_exact_below_two_to_the_24_and_stay_past_it(by_matmul):
    # Gaps of every size up to a chunk's whole length + 1, in two chunks of 40 blocks: the
    # running sums against numpy's in float64, exact while below 2**24 and past it after.
    rng = np.random.default_rng(0)
    steps = rng.integers(1, 300, (2, 40 * gap_draws._ROW)).astype("float32")
    steps[0, 100:102] = gap_draws._CHUNK_BITS + 1  # a chunk's longest gap, twice: past 2**24
    steps[1, -3:] = [2.0**22 - 1, 2.0**22 + 3, 2.0**23 + 1]
    sums = ops.convert_to_numpy(gap_draws._prefix_sums(ops.convert_to_tensor(steps), by_matmul))
    exact = np.cumsum(steps.astype("float64"), axis=1)
    below = exact < 2**24
    np.testing.assert_array_equal(sums[below], exact[below])
    assert np.all(sums[~below] >= 2**23) and (~below).sum() > 1000


@pytest.mark.tensorflow_only
def test_the_gaps_are_summed_by_matrix_product_only_where_it_is_exact(monkeypatch):
    import tensorflow as tf

    from tf_lanmax.faults.matmul_tensorflow import float32_matmul_is_exact

    monkeypatch.delenv("TF_SET_ONEDNN_FPMATH_MODE", raising=False)
    if not tf.config.list_logical_devices("GPU"):  # a GPU rounds with TensorFloat-32
        assert float32_matmul_is_exact()  # a CPU in oneDNN's default math mode
    monkeypatch.setenv("TF_SET_ONEDNN_FPMATH_MODE", "BF16")
    assert not float32_matmul_is_exact()
    # Drawn either way, the faults are at the rate (the running sums by `cumsum`).
    assert_bits_fault_at(draw_error_gaps((20000,), 32, 0.01, seed=1), 32, 0.01)
