"""Low-voltage SRAM memory model: persistent per-chip fault maps, stuck-at mixes, SECDED, robust
MSBs (`fault_persistence`, `faults.StuckAtMix`, `ecc`, `protected_msbs`, `tl.layers.set_chip`).

Oracles: numpy bit arithmetic on the codes a layer reads back (an 8-bit fixed-point code's XOR
with the clean code is its fault pattern under bit flips), set inclusion over a grid of rates,
an exact enumeration of all 2**13 error patterns of an 8+5-bit SECDED word through a textbook
Hamming encoder, and binomial / chi-squared tests at a stated confidence. Each statistical check
is also run against a wrong hypothesis (2p, another policy, reliable check bits, redrawn maps)
and shown to reject it, so it can fail.
"""

import math

import keras
import numpy as np
import pytest
from helpers import assert_config_covers_init
from keras import ops
from scipy import stats

import tf_lanmax as tl
from tf_lanmax import faults, formats
from tf_lanmax.faults.ecc import parity_matrix

CONFIDENCE = 0.999
ALPHA = 1.0 - CONFIDENCE
INT8 = formats.FixedPoint(8, 0)  # integer weights: the value is the two's-complement code
SPLIT = 2.0**-10  # below it the fault draw is split in two stages (faults/base.py)
JAX = keras.backend.backend() == "jax"
# One kernel shape wherever the test allows: eager JAX compiles every op once per shape.
SHAPE = (128, 128)


def to_np(x):
    return np.asarray(ops.convert_to_numpy(x))


# --------------------------------------------------------------------------------------------
# numpy references
# --------------------------------------------------------------------------------------------


def codes_of(values, bits=8):
    """8-bit two's-complement codes of integer-valued weights (INT8)."""
    return np.mod(np.rint(np.asarray(values, np.float64)).astype(np.int64), 2**bits)


def planes_of(codes, bits=8):
    """(..., bits) 0/1 planes, bit k at index k."""
    return (np.asarray(codes, np.int64)[..., None] >> np.arange(bits)) & 1


def in_interval(count, n, p, confidence=CONFIDENCE):
    lo, hi = stats.binom.interval(confidence, n, p)
    return lo <= count <= hi


def chi2_pvalue(observed, probabilities):
    """Pearson chi-squared p-value of counts against probabilities; bins expecting < 5 pooled."""
    observed = np.asarray(observed, np.float64)
    expected = np.asarray(probabilities, np.float64) / np.sum(probabilities) * observed.sum()
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        if obs[-1] > 0:
            return 0.0  # an outcome the hypothesis calls impossible
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp).pvalue)


def textbook_check_bits(data):
    """SECDED check bits of 0/1 data (last axis), from the Hamming layout itself.

    Data bits fill the codeword positions 1, 2, ... that are not powers of two; parity bit j
    (position 2**j) makes the XOR over the positions with bit j set even; the last check bit is
    the overall parity of the whole Hamming codeword.
    """
    m = data.shape[-1]
    r = 1
    while 2**r < m + r + 1:
        r += 1
    length = m + r
    word = np.zeros((*data.shape[:-1], length + 1), np.int64)  # index = position, 0 unused
    data_positions = [pos for pos in range(1, length + 1) if pos & (pos - 1)]
    word[..., data_positions] = data
    hamming = []
    for j in range(r):
        covered = [pos for pos in range(1, length + 1) if pos >> j & 1 and pos != 2**j]
        hamming.append(word[..., covered].sum(axis=-1) % 2)
    hamming = np.stack(hamming, axis=-1)
    overall = (data.sum(axis=-1) + hamming.sum(axis=-1)) % 2
    return np.concatenate([hamming, overall[..., None]], axis=-1)


def secded_read_oracle(code, p, policy, fault_model="bit_flip", f=0.5, check_faulty=True):
    """Exact distribution of the code a one-weight SECDED word (8 data + 5 check bits) reads.

    Enumerates all 2**13 patterns of cells that read wrong, with their probabilities: a cell
    reads wrong with probability p under bit flips, p if it holds the other value under
    stuck-at, p*(1-f) / p*f for a stored 0 / 1 under a stuck-at mix. Then the decoder: e <= 1
    wrong bits read the data, e = 2 zero the word ("zero") or read the raw data ("keep"), e >= 3
    read the raw data.

    Returns:
        `(distribution over the 256 codes read, {clean, corrected, detected, beyond})`.
    """
    data = planes_of(code)
    stored = np.concatenate([data, textbook_check_bits(data)])
    n = stored.size
    if fault_model == "bit_flip":
        q = np.full(n, p)
    elif fault_model == "stuck_at_0":
        q = p * stored
    elif fault_model == "stuck_at_1":
        q = p * (1 - stored)
    else:
        q = p * np.where(stored == 1, f, 1 - f)
    q = q.astype(np.float64)
    if not check_faulty:
        q[8:] = 0.0
    wrong = planes_of(np.arange(2**n), n)
    prob = np.prod(np.where(wrong == 1, q, 1 - q), axis=1)
    errors = wrong.sum(axis=1)
    raw = ((stored[:8] ^ wrong[:, :8]) << np.arange(8)).sum(axis=1)
    read = np.where(errors <= 1, code, raw)
    if policy == "zero":
        read = np.where(errors == 2, 0, read)
    classes = {
        "clean": prob[errors == 0].sum(),
        "corrected": prob[errors == 1].sum(),
        "detected": prob[errors == 2].sum(),
        "beyond": prob[errors >= 3].sum(),
    }
    return np.bincount(read, weights=prob, minlength=256), classes


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------


def int8_dense(codes=None, seed=0, **kwargs):
    """A built bias-free 8-bit FaultyDense of SHAPE holding `codes` (random by default)."""
    kwargs.setdefault("weight_format", INT8)
    layer = tl.FaultyDense(SHAPE[1], use_bias=False, seed=seed, **kwargs)
    layer.build((None, SHAPE[0]))
    if codes is None:
        codes = np.random.default_rng(seed).integers(-128, 128, SHAPE)
    layer.kernel.assign(np.broadcast_to(np.asarray(codes, "float32"), SHAPE))
    return layer


def read(layer):
    return to_np(layer.read_stored(layer.kernel))


def fault_bits(layer, rate=None):
    """(in, units, 8) 0/1 planes of the bits that read wrong (the fault map under bit flips)."""
    if rate is not None:
        tl.set_fault_rates(layer, rate)
    clean = codes_of(to_np(layer.kernel))
    return planes_of(codes_of(read(layer)) ^ clean).astype(bool)


class _TraceCounter(keras.layers.Layer):
    """Counts Python executions of `call`: each one is a trace of a compiled function."""

    traces = 0

    def call(self, x):
        type(self).traces += 1
        return x


def identity_model(layer):
    """`predict(eye)` returns the layer's faulty kernel, read inside the compiled function."""
    model = keras.Sequential([keras.Input((SHAPE[0],)), _TraceCounter(), layer])
    # The compiled step: tf.function on TensorFlow; on JAX only jit_compile=True compiles.
    model.compile(loss="mse", jit_compile=JAX)
    return model


# --------------------------------------------------------------------------------------------
# (1), (2), (6) persistent maps in eager and compiled reads, chips, no retrace
# --------------------------------------------------------------------------------------------


def test_a_chip_reads_one_map_eagerly_in_compiled_predict_and_evaluate_and_after_set_chip():
    layer = int8_dense(fault_rate=0.05, fault_persistence="persistent", seed=3)
    eye = np.eye(SHAPE[0], dtype="float32")
    eager = [read(layer) for _ in range(3)]
    for other in eager[1:]:
        np.testing.assert_array_equal(other, eager[0])
    assert np.mean(eager[0] != to_np(layer.stored_kernel())) > 0.2  # faulty, not vacuous

    model = identity_model(layer)
    _TraceCounter.traces = 0
    first = model.predict(eye, batch_size=64, verbose=0)  # 2 batches, each reads the memory
    np.testing.assert_array_equal(first, eager[0])
    np.testing.assert_array_equal(model.predict(eye, batch_size=64, verbose=0), first)
    assert model.evaluate(eye, eager[0], batch_size=64, verbose=0) == 0.0
    traces = _TraceCounter.traces

    assert tl.layers.set_chip(model, 5) == 1
    assert layer.chip == 5
    chip5 = model.predict(eye, batch_size=64, verbose=0)
    assert np.mean(chip5 != first) > 0.2
    np.testing.assert_array_equal(read(layer), chip5)  # eager agrees with compiled on chip 5
    tl.layers.set_chip(model, 0)
    np.testing.assert_array_equal(model.predict(eye, batch_size=64, verbose=0), first)
    assert _TraceCounter.traces == traces  # set_chip reached the compiled function untraced


def test_a_transient_layer_redraws_so_the_identity_checks_can_fail():
    # Eager reads only: redraws inside compiled steps are tested in test_layers.py, and each
    # compiled predict costs seconds on JAX.
    layer = int8_dense(fault_rate=0.05, seed=3)
    a, b = read(layer), read(layer)
    assert np.mean(a != b) > 0.2


def test_chips_have_independent_maps_and_a_map_depends_only_on_seed_name_and_chip():
    p = 0.1
    layer = int8_dense(fault_rate=p, fault_persistence="persistent", seed=1, name="m")
    maps = []
    for chip in range(4):
        tl.layers.set_chip(layer, chip)
        maps.append(fault_bits(layer))
    n = maps[0].size
    for i in range(4):
        for j in range(i + 1, 4):
            both = int(np.sum(maps[i] & maps[j]))
            # Independent maps share each bit with probability p**2; one map for all chips would
            # share p: rejected.
            assert in_interval(both, n, p * p), (i, j, both)
            assert not in_interval(both, n, p)
    twin = int8_dense(fault_rate=p, fault_persistence="persistent", seed=1, name="m")
    tl.layers.set_chip(twin, 3)
    np.testing.assert_array_equal(fault_bits(twin), maps[3])  # same (seed, name, chip)
    renamed = int8_dense(fault_rate=p, fault_persistence="persistent", seed=1, name="n")
    reseeded = int8_dense(fault_rate=p, fault_persistence="persistent", seed=2, name="m")
    for other in (renamed, reseeded):
        assert in_interval(int(np.sum(fault_bits(other) & maps[0])), n, p * p)


# --------------------------------------------------------------------------------------------
# (3) rate per chip, (4) nested maps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1e-4, 1e-2, 0.2])
def test_faulty_fraction_per_chip_is_binomial_at_p_and_not_at_2p(p):
    layer = int8_dense(fault_rate=p, fault_persistence="persistent", seed=7)
    chips = 8
    counts = []
    for chip in range(chips):
        tl.layers.set_chip(layer, chip)
        counts.append(int(fault_bits(layer).sum()))
    n = math.prod(SHAPE) * 8
    for count in counts:
        assert in_interval(count, n, p), (counts, n * p)
    # The pooled count over the chips rejects 2p (and p/2).
    assert in_interval(sum(counts), chips * n, p)
    assert not in_interval(sum(counts), chips * n, 2 * p)
    assert not in_interval(sum(counts), chips * n, p / 2)


RATE_GRID = [1e-5, 1e-4, 5e-4, SPLIT * 0.999, SPLIT, SPLIT * 1.001, 2e-3, 1e-2, 0.1, 0.3, 0.5]


@pytest.mark.parametrize(
    "fault_model", ["bit_flip", faults.StuckAtMix(0.5)], ids=["bit_flip", "stuck_at_mix"]
)
def test_faults_at_a_lower_rate_are_a_subset_of_those_at_every_higher_rate(fault_model):
    for chip in (0, 1):
        layer = int8_dense(
            fault_rate=0.1,
            fault_model=fault_model,
            fault_persistence="persistent",
            seed=2,
        )
        if chip:
            tl.layers.set_chip(layer, chip)
        clean = codes_of(to_np(layer.kernel))
        masks, reads = [], []
        for rate in RATE_GRID:
            tl.set_fault_rates(layer, rate)
            reads.append(codes_of(read(layer)))
            masks.append(planes_of(reads[-1] ^ clean).astype(bool))
        counts = [int(m.sum()) for m in masks]
        for i in range(len(RATE_GRID)):
            for j in range(i + 1, len(RATE_GRID)):
                assert not np.any(masks[i] & ~masks[j]), (RATE_GRID[i], RATE_GRID[j])
                if fault_model != "bit_flip":
                    # A stuck cell that reads wrong at p_i reads the same value at p_j.
                    wrong = masks[i]
                    assert np.array_equal(planes_of(reads[i])[wrong], planes_of(reads[j])[wrong]), (
                        RATE_GRID[i],
                        RATE_GRID[j],
                    )
        assert counts[1] > 0  # non-vacuous below the split: ~13 faults at 1e-4 (bit flips)
        assert counts == sorted(counts) and counts[-1] > counts[-2] > counts[2] > counts[1]


def test_the_subset_check_fails_for_redrawn_transient_faults():
    layer = int8_dense(fault_rate=0.1, seed=2)
    low, high = fault_bits(layer, 1e-2), fault_bits(layer, 0.1)
    assert np.sum(low & ~high) > 100


# --------------------------------------------------------------------------------------------
# (5) stuck-at mix
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault_model", ["stuck_at_mix", faults.StuckAtMix(0.8)], ids=["0.5", "0.8"]
)
def test_stuck_at_mix_fraction_reading_zero_is_f_and_a_stuck_value_never_changes(fault_model):
    f = faults.get(fault_model).stuck_at_0_fraction
    p, shape = 0.2, SHAPE
    layer = int8_dense(
        fault_rate=p, fault_model=fault_model, fault_persistence="persistent", seed=5
    )
    # The map depends on (seed, name, chip, shape) only: all-zero data shows the cells stuck at
    # 1, all-one data (code -1 = 0xFF) the cells stuck at 0.
    layer.kernel.assign(np.zeros(shape, "float32"))
    stuck_1 = planes_of(codes_of(read(layer))).astype(bool)
    layer.kernel.assign(-np.ones(shape, "float32"))
    stuck_0 = ~planes_of(codes_of(read(layer))).astype(bool)
    assert not np.any(stuck_0 & stuck_1)
    n_bits, n0, n1 = stuck_0.size, int(stuck_0.sum()), int(stuck_1.sum())
    assert in_interval(n0 + n1, n_bits, p)
    assert in_interval(n0, n0 + n1, f), (n0 / (n0 + n1), f)
    assert not in_interval(n0, n0 + n1, f + 0.05)
    assert not in_interval(n0, n0 + n1, f - 0.05)

    # A persistent cell reads its stuck value at every read and at every rate.
    layer.kernel.assign(np.random.default_rng(0).integers(-128, 128, shape).astype("float32"))
    clean = planes_of(codes_of(to_np(layer.kernel)))
    at_low = [planes_of(codes_of(read(layer))) for _ in range(2)]
    np.testing.assert_array_equal(*at_low)
    tl.set_fault_rates(layer, 0.05)
    low = planes_of(codes_of(read(layer)))
    wrong_low = low != clean
    assert wrong_low.sum() > 1000
    np.testing.assert_array_equal(low[wrong_low], at_low[0][wrong_low])
    np.testing.assert_array_equal(low[wrong_low & stuck_0], 0)
    np.testing.assert_array_equal(low[wrong_low & stuck_1], 1)
    assert not np.any(wrong_low & ~(stuck_0 | stuck_1))


def test_stuck_values_of_a_transient_mix_change_between_reads_so_the_check_can_fail():
    layer = int8_dense(fault_rate=0.2, fault_model=faults.StuckAtMix(0.5), seed=5)
    clean = planes_of(codes_of(to_np(layer.kernel)))
    first, second = (planes_of(codes_of(read(layer))) for _ in range(2))
    wrong = first != clean
    assert np.sum(second[wrong] != first[wrong]) > 100


# --------------------------------------------------------------------------------------------
# (6) saving: chip, persistence and every new argument, the seed-generator state
# --------------------------------------------------------------------------------------------

NEW_ARGS = {
    "fault_persistence": "persistent",
    "ecc": "secded",
    "ecc_word_bits": 16,
    "ecc_policy": "keep",
    "protected_msbs": 2,
    "protected_rate": 1e-3,
    "protected_bit_energy": 2.5,
}
LAYER_FACTORIES = {
    "dense": lambda **kw: tl.FaultyDense(6, **kw),
    "conv2d": lambda **kw: tl.FaultyConv2D(4, 3, padding="same", **kw),
    "conv1d": lambda **kw: tl.FaultyConv1D(4, 3, padding="causal", **kw),
}
INPUT_SHAPES = {"dense": (7,), "conv2d": (6, 6, 2), "conv1d": (9, 2)}


def _x(kind, batch=4, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *INPUT_SHAPES[kind])).astype("float32")


def test_keras_round_trip_keeps_chip_persistence_every_new_argument_and_the_faulty_output(
    tmp_path,
):
    # One layer kind: the conv kinds' configs are covered by the get_config test below, and
    # every compiled predict costs seconds on JAX.
    layer = LAYER_FACTORIES["dense"](
        weight_format=formats.FixedPoint(8, 6),
        fault_model=faults.StuckAtMix(0.7),
        fault_rate=0.02,
        seed=3,
        **NEW_ARGS,
    )
    model = keras.Sequential([keras.Input(INPUT_SHAPES["dense"]), layer])
    assert tl.layers.set_chip(model, 7) == 1
    tl.set_fault_rates(model, 0.2)
    x = _x("dense", batch=16)
    before = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    new = loaded.layers[0]
    assert type(new) is type(layer)
    assert new.get_config() == layer.get_config()
    for name, value in NEW_ARGS.items():
        assert getattr(new, name) == value, name
    assert new.fault_model == layer.fault_model
    assert new.chip == 7
    np.testing.assert_array_equal(to_np(new.chip_seed.state), to_np(layer.chip_seed.state))
    assert float(to_np(new.fault_rate)) == pytest.approx(0.2)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)  # the same faults
    tl.layers.set_chip(loaded, 8)
    assert not np.array_equal(loaded.predict(x, verbose=0), before)  # not the clean output


def test_seed_generator_state_survives_save_weights_and_resumes_the_draws(tmp_path):
    def build():
        layer = int8_dense(fault_rate=0.1, seed=1)
        return keras.Sequential([keras.Input((SHAPE[0],)), layer]), layer

    model, layer = build()
    first = [read(layer) for _ in range(2)]
    assert not np.array_equal(*first)
    np.testing.assert_array_equal(to_np(layer.seed_generator.state), [1, 2])
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    expected_next = read(layer)  # the third draw
    new_model, new = build()
    new.kernel.assign(np.zeros(SHAPE, "float32"))
    new_model.load_weights(path)
    np.testing.assert_array_equal(to_np(new.seed_generator.state), [1, 2])
    np.testing.assert_array_equal(read(new), expected_next)


def test_a_store_written_before_the_draw_state_was_saved_still_loads():
    layer = tl.FaultyDense(4, weight_format="fixed_point", seed=3)
    layer.build((None, 5))
    state = to_np(layer.seed_generator.state)
    kernel = np.full((5, 4), 0.25, "float32")
    old = {"0": kernel, "1": np.arange(4, dtype="float32"), "2": np.float32(0.0625)}
    layer.load_own_variables(old)
    np.testing.assert_array_equal(to_np(layer.kernel), kernel)
    np.testing.assert_array_equal(to_np(layer.bias), old["1"])
    assert float(to_np(layer.fault_rate)) == 0.0625
    np.testing.assert_array_equal(to_np(layer.seed_generator.state), state)
    with pytest.raises(ValueError, match="expected 5 variables"):
        layer.load_own_variables({**old, "3": state})


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_get_config_covers_every_init_argument_with_the_new_ones_set(kind):
    layer = LAYER_FACTORIES[kind](weight_format="fixed_point", fault_rate=0.05, seed=4, **NEW_ARGS)
    assert_config_covers_init(layer)
    config = layer.get_config()
    assert {k: config[k] for k in NEW_ARGS} == NEW_ARGS
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


# --------------------------------------------------------------------------------------------
# (7) - (9) SECDED
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word_bits", [8, 16, 32, 64, 128])
def test_parity_matrix_gives_a_distance_4_code_with_the_textbook_check_bits(word_bits):
    parity = parity_matrix(word_bits).astype(np.int64)
    c = parity.shape[1]
    assert c == {8: 5, 16: 6, 32: 7, 64: 8, 128: 9}[word_bits]
    data = np.random.default_rng(word_bits).integers(0, 2, (200, word_bits))
    np.testing.assert_array_equal(data @ parity % 2, textbook_check_bits(data))
    # Parity-check matrix H = [P^T | I]: distance >= 4 iff its columns are nonzero, distinct and
    # no three of them sum to 0 (every error of weight <= 3 has a nonzero syndrome).
    columns = np.concatenate([parity, np.eye(c, dtype=np.int64)]) @ (1 << np.arange(c))
    assert np.all(columns > 0) and len(set(columns)) == len(columns)
    assert not np.any(np.isin(columns[:, None] ^ columns[None, :], columns))
    if word_bits == 8:  # ... and exactly 4: some codeword has weight 4
        words = planes_of(np.arange(1, 256))
        weights = words.sum(1) + textbook_check_bits(words).sum(1)
        assert weights.min() == 4


def _secded_reads(code, p, policy, fault_model="bit_flip", draws=8):
    layer = int8_dense(
        codes=code if code < 128 else code - 256,
        fault_rate=p,
        fault_model=fault_model,
        ecc="secded",
        ecc_word_bits=8,  # one 8-bit weight per word: 8 data + 5 check bits
        ecc_policy=policy,
        seed=11,
    )
    return np.concatenate([codes_of(read(layer)).ravel() for _ in range(draws)])


@pytest.mark.parametrize("policy", ["zero", "keep"])
def test_secded_outcomes_of_a_13_bit_word_match_the_enumeration_of_all_error_patterns(policy):
    code, p = 0b01011011, 0.05  # 5 ones: a raw read of 0 needs >= 5 wrong bits
    reads = _secded_reads(code, p, policy)
    n = reads.size
    observed = np.bincount(reads, minlength=256)
    dist, classes = secded_read_oracle(code, p, policy)
    binomial = stats.binom.pmf([0, 1, 2], 13, p)
    np.testing.assert_allclose(
        [classes["clean"], classes["corrected"], classes["detected"]], binomial, rtol=1e-12
    )
    assert classes["beyond"] == pytest.approx(stats.binom.sf(2, 13, p), rel=1e-12)
    # Per observable class, binomial 99.9 % intervals: exact (clean, corrected, or only check
    # bits wrong), zero (a detected double error under "zero") and any other value.
    exact, zero = observed[code], observed[0]
    assert in_interval(exact, n, dist[code]), (exact / n, dist[code])
    assert in_interval(zero, n, dist[0]), (zero / n, dist[0])
    assert in_interval(n - exact - zero, n, 1 - dist[code] - dist[0])
    if policy == "zero":
        assert dist[0] == pytest.approx(classes["detected"], rel=1e-3)
    # The whole value distribution, chi-squared at 99.9 %.
    assert chi2_pvalue(observed, dist) > ALPHA
    # Wrong hypotheses are rejected: the other policy, reliable check bits, 1.2 p.
    other = secded_read_oracle(code, p, "keep" if policy == "zero" else "zero")[0]
    assert chi2_pvalue(observed, other) < ALPHA
    assert chi2_pvalue(observed, secded_read_oracle(code, p, policy, check_faulty=False)[0]) < ALPHA
    assert chi2_pvalue(observed, secded_read_oracle(code, 1.2 * p, policy)[0]) < ALPHA


@pytest.mark.parametrize(
    ("fault_model", "f", "code"),
    [
        ("stuck_at_0", None, 0b01011011),
        ("stuck_at_0", None, 0b00000001),
        ("stuck_at_1", None, 0b01011011),
        ("stuck_at_1", None, 0b11111111),
        ("stuck_at_mix", 0.8, 0b01011011),
    ],
)
def test_with_stuck_at_faults_only_cells_that_hold_the_other_value_are_ecc_errors(
    fault_model, f, code
):
    # At p = 0.5 counting every faulty cell as an error (bit flips at p) would make 2+ errors in
    # most words; a cell that already holds its stuck value reads right and is no error.
    p = 0.5
    model = faults.StuckAtMix(f) if f is not None else fault_model
    reads = _secded_reads(code, p, "zero", fault_model=model, draws=4)
    observed = np.bincount(reads, minlength=256)
    dist, _ = secded_read_oracle(code, p, "zero", fault_model=fault_model, f=f)
    assert chi2_pvalue(observed, dist) > ALPHA
    every_faulty_cell_an_error = secded_read_oracle(code, p, "zero")[0]
    assert chi2_pvalue(observed, every_faulty_cell_an_error) < ALPHA


def test_stuck_at_0_on_all_zero_data_reads_clean_words_with_ecc_even_at_p_one_half():
    layer = int8_dense(
        codes=0,
        fault_rate=0.5,
        fault_model="stuck_at_0",
        fault_persistence="persistent",
        ecc="secded",
        seed=1,
    )
    np.testing.assert_array_equal(read(layer), 0.0)
    # Words whose data is a single 1 (the first weight of every 64-bit word reads code 1): only
    # the w cells holding a 1 can read wrong. The word reads 1 when e <= 1 of them fail, or when
    # e >= 3 fail but not the data cell; if the 72 - w zero cells counted too (e ~ Bin(72, p)),
    # it would read 1 only when its data cell survives: probability 1/2.
    data = np.eye(64, dtype=np.int64)[0]
    w = 1 + int(textbook_check_bits(data).sum())
    p = 0.5
    expected = stats.binom.cdf(1, w, p) + (1 - p) * stats.binom.sf(2, w - 1, p)
    codes = np.zeros(SHAPE)
    codes[:, ::8] = 1
    layer.kernel.assign(codes.astype("float32"))
    out = codes_of(read(layer))
    assert set(np.unique(out)) <= {0, 1}
    np.testing.assert_array_equal(out[:, 1::8], 0)
    ones, words = int(np.sum(out[:, ::8] == 1)), out[:, ::8].size
    assert in_interval(ones, words, expected), (ones / words, expected)
    assert not in_interval(ones, words, 0.5)


def test_secded_corrupts_at_most_a_tenth_of_the_weights_bit_flips_corrupt_at_p_1e_4():
    def corrupted(p, ecc, draws):
        layer = int8_dense(fault_rate=p, ecc=ecc, seed=21)
        clean = to_np(layer.kernel)
        return sum(int(np.sum(read(layer) != clean)) for _ in range(draws)), draws * clean.size

    # 96 draws of 2048 64-bit words: C(72, 2) p**2 = 2.6e-5 of the words hold 2 errors, ~5 words
    # zeroed (~40 weights) against 8.0e-4 of the weights corrupted without ECC. The bound, 10 %
    # (~126 weights, ~16 words), has P(Poisson(5) >= 16) ~ 1e-4.
    plain, n = corrupted(1e-4, None, 16)
    assert in_interval(plain, n, 1 - (1 - 1e-4) ** 8)
    protected, n_ecc = corrupted(1e-4, "secded", 96)
    assert protected / n_ecc <= 0.1 * plain / n, (protected / n_ecc, plain / n)
    # The bound is not vacuous: at p = 1e-2 a 72-bit word often holds 2 errors and is zeroed.
    plain, n = corrupted(1e-2, None, 1)
    protected, n_ecc = corrupted(1e-2, "secded", 1)
    assert protected / n_ecc > plain / n


@pytest.mark.parametrize(
    ("weight_format", "shape", "word_bits", "data", "check"),
    [
        (INT8, (8, 8), 64, 512, 64),  # 72/64
        (INT8, (10, 10), 64, 800, 13 * 8),  # 13 words, the last one padded
        (INT8, (10, 10), 8, 800, 100 * 5),
        (INT8, (10, 10), 16, 800, 50 * 6),
        (INT8, (10, 10), 128, 800, 7 * 9),
        ("binary", (10, 10), 64, 100, 2 * 8),
        ("binary", (16, 16), 32, 256, 8 * 7),
    ],
)
def test_stored_check_and_rated_bits(weight_format, shape, word_bits, data, check):
    layer = tl.FaultyDense(
        shape[1], weight_format=weight_format, ecc_word_bits=word_bits, kernel_initializer="zeros"
    )
    layer.build((None, shape[0]))
    assert (layer.stored_bits, layer.check_bits, layer.rated_bits) == (data, 0, data)
    weights = math.prod(shape)
    bits = data // weights
    k = 1 if bits == 1 else 3
    layer = tl.FaultyDense(
        shape[1],
        weight_format=weight_format,
        ecc="secded",
        ecc_word_bits=word_bits,
        kernel_initializer="zeros",
    )
    layer.build((None, shape[0]))
    words = math.ceil(weights * bits / word_bits)
    assert check == words * {8: 5, 16: 6, 32: 7, 64: 8, 128: 9}[word_bits]
    assert (layer.stored_bits, layer.check_bits) == (data + check, check)
    assert (layer.protected_bits, layer.rated_bits) == (0, data + check)
    layer = tl.FaultyDense(
        shape[1],
        weight_format=weight_format,
        ecc="secded",
        ecc_word_bits=word_bits,
        protected_msbs=k,
        kernel_initializer="zeros",
    )
    layer.build((None, shape[0]))
    assert (layer.protected_bits, layer.rated_bits) == (weights * k, data + check - weights * k)


def test_kernel_moments_refuse_ecc_and_protected_bits():
    for kwargs in ({"ecc": "secded"}, {"protected_msbs": 1}):
        layer = tl.FaultyDense(3, kernel_initializer="zeros", **kwargs)
        layer.build((None, 4))
        with pytest.raises(ValueError, match="Monte-Carlo"):
            layer.kernel_moments()


# --------------------------------------------------------------------------------------------
# (10) protected MSBs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("protected_rate", [None, 0.01, 0.3])
def test_protected_msbs_fault_at_the_protected_rate_and_the_others_at_p(k, protected_rate):
    p = 0.2
    layer = int8_dense(fault_rate=p, protected_msbs=k, protected_rate=protected_rate)
    per_bit = fault_bits(layer).reshape(-1, 8).sum(axis=0)
    n = math.prod(SHAPE)
    robust = math.exp(-12.8) if protected_rate is None else min(protected_rate, p)
    for bit in range(8):
        rate = robust if bit >= 8 - k else p
        assert in_interval(per_bit[bit], n, rate), (bit, per_bit[bit] / n, rate)
        if rate > 1e-3:
            assert not in_interval(per_bit[bit], n, 2 * rate)
        else:
            assert not in_interval(per_bit[bit], n, p)
    assert (layer.protected_bits, layer.rated_bits) == (n * k, n * (8 - k))


def test_faults_disabled_reads_the_clean_kernel_with_protected_msbs_and_ecc():
    layer = int8_dense(fault_rate=0.3, protected_msbs=2, ecc="secded")
    assert np.mean(read(layer) != to_np(layer.stored_kernel())) > 0.1
    with tl.faults_disabled(layer):
        np.testing.assert_array_equal(read(layer), to_np(layer.stored_kernel()))


def test_binary_with_its_sign_bit_protected_reads_clean_at_p_0_3():
    def wrong_signs(draws=3, **kwargs):
        layer = tl.FaultyDense(SHAPE[1], fault_rate=0.3, seed=3, **kwargs)
        layer.build((None, SHAPE[0]))
        clean = to_np(layer.stored_kernel())
        return sum(int(np.sum(read(layer) != clean)) for _ in range(draws)), layer

    n = 3 * math.prod(SHAPE)
    wrong, layer = wrong_signs(protected_msbs=1)
    assert (layer.protected_bits, layer.rated_bits) == (n // 3, 0)
    # The sign bit sits in a robust cell: read at exp(-12.8) (~0.14 flips expected), not at 0.3.
    assert in_interval(wrong, n, math.exp(-12.8)) and not in_interval(wrong, n, 1e-3)
    assert wrong_signs(protected_msbs=1, protected_rate=0.0)[0] == 0
    assert in_interval(wrong_signs(protected_msbs=0)[0], n, 0.3)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument", "shown", "allowed"),
    [
        ({"fault_persistence": "sometimes"}, "fault_persistence", "'sometimes'", "persistent"),
        ({"ecc": "hamming"}, "ecc", "'hamming'", "secded"),
        ({"ecc": "secded", "ecc_word_bits": 12}, "ecc_word_bits", "12", "multiple"),
        ({"ecc": "secded", "ecc_word_bits": 0}, "ecc_word_bits", "0", "[1, inf]"),
        ({"ecc": "secded", "ecc_word_bits": -8}, "ecc_word_bits", "-8", "[1, inf]"),
        ({"ecc_word_bits": 0}, "ecc_word_bits", "0", "[1, inf]"),
        ({"ecc_policy": "drop"}, "ecc_policy", "'drop'", "'keep', 'zero'"),
        ({"ecc": "secded", "ecc_policy": "drop"}, "ecc_policy", "'drop'", "'keep', 'zero'"),
        ({"protected_msbs": 8}, "protected_msbs", "8", "[0, 7]"),
        ({"protected_msbs": -1}, "protected_msbs", "-1", "[0, 7]"),
        ({"weight_format": "binary", "protected_msbs": 2}, "protected_msbs", "2", "[0, 1]"),
        ({"protected_rate": 0.7}, "protected_rate", "0.7", "0.5]"),
        ({"ecc": "secded", "fault_model": "bit_mask"}, "ecc", "'bit_mask'", "bit_flip"),
    ],
)
def test_bad_memory_arguments_name_the_argument_the_value_and_what_is_allowed(
    kwargs, argument, shown, allowed
):
    kwargs = {"weight_format": "fixed_point", **kwargs}
    with pytest.raises(ValueError, match=f"`{argument}") as err:
        tl.FaultyDense(3, name="my_dense", **kwargs)
    message = str(err.value)
    assert "my_dense" in message and shown in message and allowed in message, message


def test_set_chip_refuses_transient_models_and_bad_chips():
    transient = keras.Sequential([keras.Input((3,)), tl.FaultyDense(2, seed=0)])
    with pytest.raises(ValueError, match="persistent"):
        tl.layers.set_chip(transient, 1)
    persistent = keras.Sequential(
        [keras.Input((3,)), tl.FaultyDense(2, seed=0, fault_persistence="persistent")]
    )
    for bad in (-1, 2**31, 1.5, "3"):
        with pytest.raises(ValueError, match=r"`chip` must be an integer") as err:
            tl.layers.set_chip(persistent, bad)
        assert repr(bad) in str(err.value)
    assert tl.layers.set_chip(persistent, 2**31 - 1) == 1
    assert persistent.layers[0].chip == 2**31 - 1
