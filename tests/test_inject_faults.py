"""`tl.inject_faults`: faults on the stored bits of any covered Keras layer, float or quantized."""

import keras
import ml_dtypes
import numpy as np
import pytest
from helpers import binomial_interval_holds, bit_matrix, trainable_gradients
from keras import ops
from scipy import stats

import tf_lanmax as tl
from tf_lanmax.faults import BitFlip
from tf_lanmax.faults.byte_draws import byte_pattern_thresholds, draw_error_bytes
from tf_lanmax.formats.float8 import Float8Word
from tf_lanmax.formats.stored import StoredWord
from tf_lanmax.layers.injection import FaultInjection

_L = keras.layers
# One factory and input per covered layer type: each entry of tl.layers.COVERED (checked below).
COVERED = {
    "Dense": (lambda dt: _L.Dense(16, dtype=dt), (40,)),
    "Conv1D": (lambda dt: _L.Conv1D(8, 3, dtype=dt), (5, 8)),
    "Conv2D": (lambda dt: _L.Conv2D(8, 3, dtype=dt), (3, 3, 8)),
    "Conv3D": (lambda dt: _L.Conv3D(4, 2, dtype=dt), (2, 2, 2, 8)),
    "DepthwiseConv2D": (lambda dt: _L.DepthwiseConv2D(3, dtype=dt), (3, 3, 16)),
    "SeparableConv2D": (lambda dt: _L.SeparableConv2D(8, 3, dtype=dt), (3, 3, 8)),
    "EinsumDense": (lambda dt: _L.EinsumDense("ab,bc->ac", (16,), bias_axes="c", dtype=dt), (40,)),
    "Embedding": (lambda dt: _L.Embedding(64, 10, dtype=dt), "tokens"),
    "MultiHeadAttention": (lambda dt: _L.MultiHeadAttention(2, 4, dtype=dt), "sequence"),
    "BatchNormalization": (lambda dt: _L.BatchNormalization(dtype=dt), (64,)),
    "LayerNormalization": (lambda dt: _L.LayerNormalization(dtype=dt), (64,)),
}
QUANTIZABLE = ("Dense", "EinsumDense", "Embedding")
FLOAT8 = ("Dense", "EinsumDense")  # the layers Keras quantizes to float8


def _input(kind, dtype="float32", batch=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = COVERED[kind][1]
    if shape == "tokens":
        return rng.integers(0, 64, (batch, 6)).astype("int32")
    if shape == "sequence":
        shape = (4, 8)
    return rng.normal(size=(batch, *shape)).astype(dtype)


def _built(kind, dtype="float32", quantize=None):
    layer = COVERED[kind][0](dtype)
    x = _input(kind, "float32")
    if kind == "MultiHeadAttention":
        layer(x, x)
    else:
        layer(x)
    if kind == "BatchNormalization":  # stored statistics that differ from 0 and 1
        layer.moving_mean.assign(np.linspace(-1, 1, 64).astype("float32"))
        layer.moving_variance.assign(np.linspace(0.5, 2, 64).astype("float32"))
    if quantize is not None:
        layer.quantize(quantize)
    return layer, x


def _call(layer, x):
    return layer(x, x) if "attention" in layer.name else layer(x)


def test_the_table_covers_every_declared_layer_type():
    assert sorted(COVERED) == tl.layers.covered_layers()


# -- IEEE and integer words against numpy ------------------------------------------------------


def test_a_flip_of_bit_k_of_a_float32_equals_the_numpy_bit_reference_for_every_k():
    values = np.array([1.0, -2.5, 3.0e-3, 6.0e4, -0.0, 1.0e-40], dtype=np.float32)
    word = StoredWord("float32")
    for k in range(32):
        errors = ops.full(values.shape, np.int32(np.uint32(1 << k).view(np.int32)), "int32")
        codes, _ = BitFlip().apply(word.to_codes(values), errors, 32)
        got = ops.convert_to_numpy(word.from_codes(codes))
        expected = (values.view(np.uint32) ^ np.uint32(1 << k)).view(np.float32)
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32), err_msg=k)


@pytest.mark.parametrize(
    "dtype,fields",
    [
        ("float16", {"mantissa": (0, 10), "exponent": (10, 15), "sign": (15, 16)}),
        ("bfloat16", {"mantissa": (0, 7), "exponent": (7, 15), "sign": (15, 16)}),
        ("int8", {"value": (0, 7), "sign": (7, 8)}),
    ],
)
def test_narrow_words_round_trip_and_name_their_fields(dtype, fields):
    word = StoredWord(dtype)
    assert word.fields == fields
    values = ops.convert_to_tensor(np.array([1, -2, 3, -128 if dtype == "int8" else 0.5]), dtype)
    codes = word.to_codes(values)
    assert int(ops.max(codes)) < 2**word.bits and int(ops.min(codes)) >= 0
    np.testing.assert_array_equal(
        ops.convert_to_numpy(ops.cast(word.from_codes(codes), "float32")),
        ops.convert_to_numpy(ops.cast(values, "float32")),
    )


# -- transient faults drawn one byte at a time --------------------------------------------------


def test_byte_draws_fault_each_bit_independently_at_its_own_rate():
    rates = np.linspace(0.02, 0.3, 16).astype("float32")  # one rate per bit of 16-bit words
    n = 20000
    errors = ops.convert_to_numpy(draw_error_bytes((n,), 16, ops.convert_to_tensor(rates), 4))
    bits = bit_matrix(errors, 16)
    for k in range(16):  # each bit at its rate, and the count rejects twice the rate
        assert binomial_interval_holds(bits[:, k].sum(), n, rates[k]), k
        assert not binomial_interval_holds(bits[:, k].sum(), n, 2 * rates[k]), k
    for a, b in [(0, 1), (6, 7), (7, 8), (0, 15)]:  # pairs inside a byte and across bytes
        both = int((bits[:, a] & bits[:, b]).sum())
        assert binomial_interval_holds(both, n, rates[a] * rates[b]), (a, b)
    # The whole 8-bit pattern: its number of faulty bits is Binomial(8, p), and not (8, 2p).
    int8_errors = draw_error_bytes((n,), 8, 0.1, seed=5, dtype="int8")
    counts = bit_matrix(ops.convert_to_numpy(int8_errors), 8).sum(axis=1)
    observed = np.bincount(counts, minlength=9)[:5]
    for p, accepted in [(0.1, True), (0.2, False)]:
        expected = stats.binom.pmf(np.arange(5), 8, p)
        expected = np.append(expected, 1 - expected.sum()) * n
        _, pvalue = stats.chisquare(np.append(observed, n - observed.sum()), expected)
        assert (pvalue > 1e-3) == accepted, (p, pvalue)


def test_byte_draws_resolve_tiny_rates_and_refuse_partial_bytes():
    thresholds = ops.convert_to_numpy(byte_pattern_thresholds(np.full(8, 1e-6, "float32")))
    # Draws in [0, 2**31 - 1) per pattern, the patterns in signed-byte order (bits i ^ 128).
    draws = np.diff(np.concatenate([[0], thresholds.astype(np.int64), [2**31 - 1]]))
    single = draws[(1 << np.arange(8)) ^ 128]
    assert set(single) <= {2147, 2148}  # 1e-6 of the range (2147.48), each rounded
    faulty = draws.sum() - draws[128]  # every pattern but the fault-free byte
    assert abs(faulty - 8e-6 * (2**31 - 1)) <= 2 and single.sum() == faulty
    with pytest.raises(ValueError, match="`bits` must be a positive multiple of 8"):
        draw_error_bytes((3,), 4, 0.1, seed=0)
    with pytest.raises(ValueError, match="`dtype` must be 'int32', or 'int8' for 8-bit"):
        draw_error_bytes((3,), 16, 0.1, seed=0, dtype="int8")


# -- the flipped-bit fraction per field, per covered layer type and format ----------------------


def _flip_counts(wrapper, reads):
    """(flipped, stored) bits per field over `reads` faulty reads of every stored parameter,
    drawn as the call draws them (`read_parameters`: one draw for kernel and bias)."""
    flipped, total = {}, {}
    draws = [wrapper.read_parameters() for _ in range(reads)]
    for variable in wrapper.faulty_variables():
        word = wrapper.stored_word(variable)
        clean = bit_matrix(ops.convert_to_numpy(word.to_codes(variable.value)), word.bits)
        for draw in draws:
            faulty = draw[variable.path]
            diff = bit_matrix(ops.convert_to_numpy(word.to_codes(faulty)), word.bits) ^ clean
            for field, (low, high) in word.fields.items():
                flipped[field] = flipped.get(field, 0) + int(diff[:, low:high].sum())
                total[field] = total.get(field, 0) + diff[:, low:high].size
    return flipped, total


#: Each count's interval: about 150 counts (every case's fields) are checked per backend, so
#: at 99.999 % each the whole family fails by chance with probability about 0.15 % (at 99.9 %
#: each, about 14 %: any change of the random stream could fail a case by chance alone).
CONFIDENCE = 0.99999


def _assert_binomial(flipped, total, p):
    for field in total:
        n, k = total[field], flipped[field]
        low, high = stats.binom.interval(CONFIDENCE, n, p)
        assert low <= k <= high, (field, k, n, p)
        # ... and the count is powerful enough to reject twice the rate.
        low2, high2 = stats.binom.interval(CONFIDENCE, n, 2 * p)
        assert not low2 <= k <= high2, (field, k, n, 2 * p)


CASES = [(kind, dtype, None) for kind in COVERED for dtype in ("float32", "float16", "bfloat16")]
CASES += [(kind, "float32", mode) for kind in QUANTIZABLE for mode in ("int8", "int4")]
CASES += [(kind, "float32", "float8") for kind in FLOAT8]


@pytest.mark.parametrize("kind,dtype,mode", CASES)
def test_the_flipped_fraction_of_each_field_is_binomial_at_p(kind, dtype, mode):
    layer, _ = _built(kind, dtype, mode)
    p = 0.1
    # A float8 scale is one value per kernel: too few bits for the interval.
    fault_scales = mode in ("int8", "int4")
    wrapper = FaultInjection(layer, fault_rate=p, seed=1, fault_scales=fault_scales)
    per_read = {}
    for v in wrapper.faulty_variables():
        for field, (low, high) in wrapper.stored_word(v).fields.items():
            per_read[field] = per_read.get(field, 0) + int(np.prod(v.shape)) * (high - low)
    # >= 1200 bits per field: the `CONFIDENCE` intervals at p and 2p are disjoint.
    flipped, total = _flip_counts(wrapper, reads=-(-1200 // min(per_read.values())))
    _assert_binomial(flipped, total, p)


def test_robust_fields_and_protected_msbs_read_at_their_own_rate():
    layer, _ = _built("Dense")
    wrapper = FaultInjection(
        layer, fault_rate=0.05, seed=2, field_rates={"exponent": 0.0}, protected_msbs=1,
        protected_rate=0.0,
    )  # fmt: skip
    flipped, total = _flip_counts(wrapper, reads=1)
    assert flipped["exponent"] == 0 and flipped["sign"] == 0
    _assert_binomial({"mantissa": flipped["mantissa"]}, {"mantissa": total["mantissa"]}, 0.05)
    assert wrapper.protected_bits == (40 * 16 + 16) * 9
    assert wrapper.rated_bits == (40 * 16 + 16) * 23


# -- exactness, gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(COVERED))
def test_at_a_tiny_rate_the_outputs_equal_the_original_layer_exactly(kind):
    layer, x = _built(kind)
    expected = ops.convert_to_numpy(_call(layer, x))
    wrapper = FaultInjection(layer, fault_rate=1e-9, seed=0)
    np.testing.assert_array_equal(ops.convert_to_numpy(_call(wrapper, x)), expected)


def test_the_straight_through_gradient_reaches_the_float_parameters():
    layer, x = _built("Dense")
    # Mantissa faults only (finite values): the gradient of sum(x W + b) in W is x^T 1 whatever
    # W is, so it is the straight-through gradient exactly, and b's is the batch size.
    wrapper = FaultInjection(layer, fault_rate=0.3, seed=0, field_rates={"sign": 0, "exponent": 0})
    assert not np.array_equal(
        ops.convert_to_numpy(wrapper(x)), ops.convert_to_numpy(layer(x))
    )  # faults act
    grads = trainable_gradients(wrapper, lambda y: ops.sum(y), x)
    names = [v.path.split("/")[-1] for v in wrapper.trainable_variables]
    by_name = dict(zip(names, grads, strict=True))
    np.testing.assert_allclose(by_name["kernel"], x.T @ np.ones((3, 16)), rtol=1e-6)
    np.testing.assert_allclose(by_name["bias"], np.full(16, 3.0))


# -- Keras' own quantized layers ---------------------------------------------------------------


def _quantized_model(mode, use_bias=True):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            _L.Dense(8, activation="relu", name="a", use_bias=use_bias),
            _L.Dense(3, name="b", use_bias=use_bias),
        ]
    )
    model.quantize(mode)
    return model


def _unpack_int4(packed, rows):
    """Signed int4 codes from Keras' packing (two per byte along axis 0, low nibble first)."""
    u = packed.astype(np.int16) & 0xFF
    low, high = u & 0xF, u >> 4
    codes = np.stack([low, high], axis=1).reshape(-1, *packed.shape[1:])[:rows]
    return np.where(codes >= 8, codes - 16, codes)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_faults_act_on_the_stored_codes_of_a_keras_quantized_model(mode):
    model = _quantized_model(mode)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    faulty = tl.inject_faults(model, fault_rate=1e-9, seed=0)
    with tl.faults_disabled(faulty):
        np.testing.assert_array_equal(faulty.predict(x, verbose=0), model.predict(x, verbose=0))
    # Exactly Keras' own quantized call on the faulty codes: decode the codes with numpy too.
    wrapper = faulty.get_layer("a")
    wrapper.fault_rate.assign(0.1)
    wrapper.reseed(5)
    # The stored parameters as the call reads them (one draw for kernel and bias).
    reads = {
        path.split("/")[-1]: ops.convert_to_numpy(value)
        for path, value in wrapper.read_parameters().items()
    }
    assert sorted(reads) == ["bias", "kernel"]  # the scale stays reliable by default
    wrapper.reseed(5)
    got = ops.convert_to_numpy(wrapper(x))
    # Exactly Keras' own quantized call on the faulty stored values.
    reference = _quantized_model(mode).get_layer("a")
    stored = {v.path.split("/")[-1]: v for v in reference.weights}
    stored["kernel"].assign(reads["kernel"])
    stored["bias"].assign(reads["bias"])
    np.testing.assert_array_equal(got, ops.convert_to_numpy(reference(x)))
    clean = ops.convert_to_numpy(model.get_layer("a").weights[1].value)
    if mode == "int4":
        faulty_codes, clean_codes = _unpack_int4(reads["kernel"], 6), _unpack_int4(clean, 6)
        assert np.mean(faulty_codes != clean_codes) > 0.1  # the faults hit the stored codes
        return
    assert np.mean(reads["kernel"] != clean) > 0.1
    # numpy decode of the int8 codes and scale: w = q / scale (Keras also quantizes the inputs,
    # hence the tolerance).
    w = reads["kernel"].astype(np.float32) / ops.convert_to_numpy(stored["kernel_scale"].value)
    expected = np.maximum(x @ w + reads["bias"], 0)
    np.testing.assert_allclose(got, expected, atol=0.03 * np.abs(expected).max())


def test_a_keras_int8_model_with_faults_trains_and_leaves_its_reliable_scales_alone():
    # The scales are read, not updated, by the call: writing them back (torch assigns in place)
    # broke the backward pass of the forward that used them.
    model = tl.inject_faults(_quantized_model("int8"), fault_rate=1e-2, seed=0)
    model.compile("adam", "mse", jit_compile=False)
    scales = [v for v in model.non_trainable_variables if v.path.endswith("kernel_scale")]
    before = [ops.convert_to_numpy(v.value).copy() for v in scales]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 6)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert len(scales) == 2 and np.isfinite(history.history["loss"][0])
    for b, v in zip(before, scales, strict=True):
        np.testing.assert_array_equal(b, ops.convert_to_numpy(v.value))


def test_every_e4m3fn_code_decodes_and_encodes_as_ml_dtypes_does():
    codes = np.arange(256)
    reference = codes.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    assert (
        np.isnan(reference[[0x7F, 0xFF]]).all()
        and np.isfinite(np.delete(reference, [0x7F, 0xFF])).all()
    )
    word = Float8Word(ops.convert_to_tensor(0.25))
    values = ops.convert_to_numpy(word.from_codes(ops.convert_to_tensor(codes, "int32")))
    np.testing.assert_array_equal(values, reference * 0.25)  # NaN where ml_dtypes has NaN
    np.testing.assert_array_equal(ops.convert_to_numpy(word.to_codes(values)), codes)
    # Keras' cast: w / s clipped to +-448 and rounded to the nearest e4m3fn value.
    w = np.array([0.3, -100.0, 1e-4, 113.0], np.float32)
    expected = np.clip(w / 0.25, -448, 448).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    got = ops.convert_to_numpy(word.to_codes(ops.convert_to_tensor(w)))
    np.testing.assert_array_equal(got, expected)


def test_float8_faults_act_on_the_e4m3fn_codes_keras_casts_the_kernel_to():
    model = _quantized_model("float8")
    weights = {v.path.split("/")[-1]: v for v in model.get_layer("a").weights}
    kernel = ops.convert_to_numpy(weights["kernel"].value)
    scale = float(np.abs(kernel).max() / 100)  # codes over most of the e4m3fn range
    weights["kernel_scale"].assign(scale)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    faulty = tl.inject_faults(model, fault_rate=1e-9, seed=0)
    with tl.faults_disabled(faulty):
        np.testing.assert_array_equal(faulty.predict(x, verbose=0), model.predict(x, verbose=0))
    wrapper = faulty.get_layer("a")
    assert [row["format"] for row in wrapper.stored_parameters()] == ["float8_e4m3fn", "float32"]
    assert wrapper.stored_bits == 6 * 8 * 8 + 8 * 32
    # Reliable float parameters: the two kernel scales; not Keras' amax histories (metadata).
    assert tl.summary(faulty, print_fn=None)["float_parameter_bits"] == 2 * 32
    wrapper.fault_rate.assign(0.1)
    wrapper.reseed(5)
    reads = {
        path.split("/")[-1]: ops.convert_to_numpy(value)
        for path, value in wrapper.read_parameters().items()
    }
    assert sorted(reads) == ["bias", "kernel"]
    # The read kernel is exactly an e4m3fn code times the scale (numpy decode), and its codes
    # differ from the ones Keras casts the clean kernel to in a binomial fraction of the bits.
    e4m3 = ml_dtypes.float8_e4m3fn
    codes = (reads["kernel"] / np.float32(scale)).astype(e4m3)
    np.testing.assert_array_equal(reads["kernel"], codes.astype(np.float32) * np.float32(scale))
    clean = np.clip(kernel / np.float32(scale), -448, 448).astype(e4m3)
    flipped = int(bit_matrix(codes.view(np.uint8) ^ clean.view(np.uint8), 8).sum())
    low, high = stats.binom.interval(0.999, kernel.size * 8, 0.1)
    assert low <= flipped <= high, flipped
    # The layer's output is Keras' own float8 call on those values.
    wrapper.reseed(5)
    got = ops.convert_to_numpy(wrapper(x))
    reference = _quantized_model("float8").get_layer("a")
    stored = {v.path.split("/")[-1]: v for v in reference.weights}
    stored["kernel_scale"].assign(scale)
    stored["kernel"].assign(reads["kernel"])
    stored["bias"].assign(reads["bias"])
    np.testing.assert_array_equal(got, ops.convert_to_numpy(reference(x)))


# -- whole models ------------------------------------------------------------------------------


def _tiny_transformer(vocab=16, length=6, dim=8):
    tokens = keras.Input((length,), dtype="int32")
    x = _L.Embedding(vocab, dim, name="embedding")(tokens)
    x = _L.LayerNormalization(name="norm")(x + _L.MultiHeadAttention(2, 4, name="attention")(x, x))
    h = _L.Dense(16, activation="relu", name="ff_in")(x)
    x = _L.GlobalAveragePooling1D()(x + _L.Dense(dim, name="ff_out")(h))
    return keras.Model(tokens, _L.Dense(3, activation="softmax", name="head")(x))


def test_a_tiny_transformer_fits_with_lanmax_reports_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    model = _tiny_transformer()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, (64, 6)).astype("int32")
    y = (x[:, 0] % 3).astype("int32")
    before = [ops.convert_to_numpy(w.value) for w in model.weights]
    # Exponents in robust cells: a flipped exponent MSB turns a weight into ~1e38.
    faulty = tl.inject_faults(
        model, fault_rate=1e-3, seed=0, exclude=["head"], field_rates={"exponent": 1e-9}
    )
    assert [la.name for la in tl.faulty_layers(faulty)] == [
        "embedding", "attention", "norm", "ff_in", "ff_out"
    ]  # fmt: skip
    faulty.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    lanmax = tl.LaNMax(alpha=1.0, warmup_epochs=0, seed=0)
    faulty.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[lanmax])
    assert set(lanmax.rates) == {la.name for la in tl.faulty_layers(faulty)}
    assert any(p != pytest.approx(1e-3) for p in lanmax.rates.values())  # p was learned
    for old, new in zip(before, model.weights, strict=True):  # the input model is untouched
        np.testing.assert_array_equal(old, ops.convert_to_numpy(new.value))
    info = tl.summary(faulty, print_fn=None)
    rows = {row["name"]: row for row in info["layers"]}
    assert [p["name"].split("/", 1)[1] for p in rows["attention"]["parameters"]][:2] == [
        "query/kernel", "query/bias"
    ]  # fmt: skip
    assert rows["ff_in"]["stored_bits"] == (8 * 16 + 16) * 32
    assert rows["ff_in"]["protected_bits"] == (8 * 16 + 16) * 8
    assert info["float_parameter_bits"] == (8 * 3 + 3) * 32  # the reliable head
    path = str(tmp_path / "transformer.keras")
    faulty.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("attention")) is FaultInjection
    with tl.faults_disabled(faulty), tl.faults_disabled(loaded):
        np.testing.assert_array_equal(faulty.predict(x, verbose=0), loaded.predict(x, verbose=0))
    for name, p in lanmax.rates.items():
        assert float(loaded.get_layer(name).fault_rate.value) == pytest.approx(p, rel=1e-6)


@pytest.mark.parametrize("seed", [0, None])
def test_a_chip_and_the_draw_position_survive_a_keras_round_trip(tmp_path, seed):
    model = _quantized_model("int8")
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    path = str(tmp_path / "chip.keras")
    chip = tl.inject_faults(model, fault_rate=0.05, seed=seed, fault_persistence="persistent")
    tl.layers.set_chip(chip, 3)
    on_chip_3 = chip.predict(x, verbose=0)
    chip.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [layer.chip for layer in tl.faulty_layers(loaded)] == [3, 3]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), on_chip_3)  # the same map
    tl.layers.set_chip(loaded, 4)
    assert not np.array_equal(loaded.predict(x, verbose=0), on_chip_3)  # another chip's map
    # Transient faults: the reloaded model draws what the saved one draws next.
    transient = tl.inject_faults(model, fault_rate=0.05, seed=seed)
    transient.predict(x, verbose=0)
    transient.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), transient.predict(x, verbose=0))


def test_draws_with_non_finite_outputs_are_counted():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), _L.Dense(3, activation="softmax", name="d")])
    x = np.random.default_rng(1).normal(size=(16, 8)).astype("float32")
    y = np.zeros(16, "int32")
    for rate in (0.3, 1e-9):
        faulty = tl.inject_faults(model, fault_rate=rate, seed=0)
        faulty.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        result = tl.evaluate_under_faults(faulty, (x, y), draws=12, seed=0, verbose=0)
        non_finite = sum(not np.isfinite(loss) for loss in result.per_draw_loss)
        # A third of the exponent bits flipped: about 4 draws in 10 overflow (measured on JAX),
        # so 12 draws all finite would happen about once in 500 seeds.
        assert (non_finite > 0) == (rate == 0.3)
        assert result.non_finite_draws == non_finite
        assert result.to_dict()["non_finite_draws"] == non_finite
        assert ("non-finite" in str(result)) == bool(non_finite)


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_names_the_argument_and_what_is_allowed():
    model = keras.Sequential(
        [keras.Input((4, 3)), _L.LSTM(2, name="lstm"), _L.Dense(2, name="dense")]
    )
    with pytest.raises(tl.errors.UnsupportedLayerError, match="lstm.*supported: .*Dense"):
        tl.inject_faults(model)
    assert len(tl.faulty_layers(tl.inject_faults(model, exclude=["lstm"]))) == 1
    with pytest.raises(ValueError, match="`include` names layers .*'nope'.*Allowed"):
        tl.inject_faults(model, include=["nope"])
    with pytest.raises(ValueError, match="`exclude` names layers .*'nope'"):
        tl.inject_faults(model, include=["dense"], exclude=["nope"])
    with pytest.raises(ValueError, match="`fault_model` 'bit_mask'.*float32"):
        tl.inject_faults(model, include=["dense"], fault_model="bit_mask")
    with pytest.raises(ValueError, match="`protected_msbs` must be below the 32 bits"):
        tl.inject_faults(model, include=["dense"], protected_msbs=32)
    with pytest.raises(ValueError, match="`field_rates` must be a dict with keys in"):
        tl.inject_faults(model, include=["dense"], field_rates={"fraction": 0.0})
    with pytest.raises(ValueError, match="`fault_rate`"):
        tl.inject_faults(model, include=["dense"], fault_rate=0.7)
    quantized = _quantized_model("int4", use_bias=False)
    with pytest.raises(ValueError, match="`fault_model` 'bit_mask'.*int4"):
        tl.inject_faults(quantized, fault_model="bit_mask")
    with pytest.raises(ValueError, match="`fault_model` 'bit_mask'.*float8"):
        tl.inject_faults(_quantized_model("float8"), fault_model="bit_mask")
    assert len(tl.faulty_layers(tl.inject_faults(_quantized_model("int8", False), "bit_mask"))) == 2
