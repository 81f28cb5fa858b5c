"""One fault draw for several tensors of codes (`tf_lanmax.faults.stream_draws`): each tensor's
bits faulty at p as with a draw of its own, the tensors independent, and a `FaultInjection`
layer drawing its kernel and bias together."""

import keras
import numpy as np
import pytest
from helpers import assert_bits_fault_at, binomial_interval_holds, bit_matrix

import tf_lanmax as tl
from tf_lanmax.faults import base, stream_draws
from tf_lanmax.faults.stream_draws import draw_errors_together

SPECS = [((20001,), 8, "int8"), ((7000, 2), 32, "int32"), ((9000,), 16, "int32")]
#: All 32 bits wide: one stream of words.
WORD_SPECS = [((20001,), 32, "int32"), ((7000, 2), 32, "int32")]


@pytest.mark.parametrize("specs", [SPECS, WORD_SPECS], ids=["bytes", "words"])
@pytest.mark.parametrize("rate", [0.01, 0.2])  # a gap tier, and above the tiers (bytes)
def test_every_bit_of_every_tensor_faults_at_the_rate(rate, specs):
    errors = draw_errors_together(specs, rate, seed=3)
    for (shape, bits, dtype), error in zip(specs, errors, strict=True):
        assert tuple(error.shape) == shape and keras.backend.standardize_dtype(error.dtype) == dtype
        assert_bits_fault_at(error, bits, rate)


def test_the_tensors_fault_independently_of_one_another():
    rate, n = 0.1, 40000
    first, second = draw_errors_together([((n,), 8, "int8"), ((n,), 32, "int32")], rate, seed=8)
    a, b = bit_matrix(first, 8), bit_matrix(second, 32)
    # Code i of each tensor: bit 7 of the byte, bit 0 and bit 31 of the word.
    for x, y in [(a[:, 7], b[:, 0]), (a[:, 0], b[:, 31])]:
        both = int((x & y).sum())
        assert binomial_interval_holds(both, n, rate * rate), both
        assert not binomial_interval_holds(both, n, 2 * rate * rate), both


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="`codes` must list at least one"):
        draw_errors_together([], 0.1, seed=0)
    with pytest.raises(ValueError, match="`rate` must be a scalar"):
        draw_errors_together([((3,), 8, "int8")], np.full(8, 0.1, "float32"), seed=0)
    with pytest.raises(ValueError, match=r"`codes\[1\]`: `bits` must be a positive multiple"):
        draw_errors_together([((3,), 8, "int8"), ((3,), 12, "int32")], 0.1, seed=0)


def _counting(monkeypatch, module):
    calls = []
    original = module.draw_error_gaps

    def counted(*args, **kwargs):
        calls.append(tuple(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "draw_error_gaps", counted)
    return calls


def _dense_wrapper(**options):
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(20)])
    return tl.inject_faults(model, fault_rate=0.05, seed=0, **options).layers[0]


def test_a_layer_draws_its_kernel_and_bias_in_one_draw(monkeypatch):
    together, apart = _counting(monkeypatch, stream_draws), _counting(monkeypatch, base)
    wrapper = _dense_wrapper()
    reads = wrapper.read_parameters()
    assert together == [(30 * 20 + 20,)] and apart == []  # one stream of all the 32-bit words
    # The call reads the same draw after the same reseed.
    wrapper.reseed(4)
    reads = {path.split("/")[-1]: v for path, v in wrapper.read_parameters().items()}
    wrapper.reseed(4)
    x = np.random.default_rng(0).normal(size=(3, 30)).astype("float32")
    expected = x @ keras.ops.convert_to_numpy(reads["kernel"]) + keras.ops.convert_to_numpy(
        reads["bias"]
    )
    got = keras.ops.convert_to_numpy(wrapper(x))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-4, atol=1e-4)


def test_protected_bits_draw_each_parameter_apart(monkeypatch):
    # A rate per bit place (protected MSBs) cannot share one stream at one rate.
    together, apart = _counting(monkeypatch, stream_draws), _counting(monkeypatch, base)
    _dense_wrapper(protected_msbs=2).read_parameters()
    assert together == [] and sorted(apart) == [(20,), (30, 20)]


@pytest.mark.parametrize("count", [4000, 4001])  # whole 32-bit words of bytes, and not
@pytest.mark.parametrize("model", ["bit_flip", "stuck_at_1"])
def test_int8_codes_read_four_to_a_word_fault_bit_by_bit_at_the_rate(count, model):
    fault_model, rate = tl.faults.get(model), 0.05
    shape, bits, dtype = fault_model.fresh_errors((count,), "int8", 8)
    assert (shape, bits, dtype) == (
        ((count // 4,), 32, "int32") if count % 4 == 0 else ((count,), 8, "int8")
    )
    codes = keras.ops.convert_to_tensor(np.zeros((count,), "int8"))
    faulty, keep = fault_model.fresh(codes, 8, rate, seed=5)
    assert keep is None and keras.backend.standardize_dtype(faulty.dtype) == "int8"
    assert tuple(faulty.shape) == (count,)
    assert_bits_fault_at(faulty, 8, rate)  # from all-zero codes, each set bit is a fault
