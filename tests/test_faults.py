"""Tests of `tf_lanmax.faults` against numpy bit rules and statistics.

Oracles: a numpy re-implementation of each fault model's bit rule and of two's complement, exact
moments by enumerating every error pattern with its probability, and binomial / chi-squared
intervals at a stated confidence. Every statistical check is also shown to reject a wrong
hypothesis (rate 2p, correlated bits, stale draws), so it can fail.
"""

import inspect
import math

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats

from tf_lanmax import faults, formats

CONFIDENCE = 0.999
RATES = [1e-3, 1e-2, 0.1, 0.5]

MODEL_NAMES = ["bit_flip", "bit_mask", "stuck_at_0", "stuck_at_1"]
FORMAT_FACTORIES = {
    "binary": lambda: formats.Binary(),
    "fixed8_6": lambda: formats.FixedPoint(8, 6),
    "fixed4_1": lambda: formats.FixedPoint(4, 1),
}


def make_model(name):
    return {
        "bit_flip": faults.BitFlip,
        "bit_mask": faults.BitMask,
        "stuck_at_0": lambda: faults.StuckAt(0),
        "stuck_at_1": lambda: faults.StuckAt(1),
    }[name]()


def seed_of(*parts):
    """A fixed integer seed per parameter combination (stable across runs, unlike hash())."""
    key = "/".join(str(p) for p in parts)
    return sum((i + 1) * ord(c) for i, c in enumerate(key)) % (2**31 - 1)


def to_np(x):
    return np.asarray(ops.convert_to_numpy(x))


# --------------------------------------------------------------------------------------------
# numpy references
# --------------------------------------------------------------------------------------------


def np_bit(x, k):
    return (np.asarray(x, np.int64) >> k) & 1


def np_popcount(x, bits):
    return sum(np_bit(x, k) for k in range(bits))


def np_signed(codes, bits):
    """Two's complement: q = -b_(n-1) 2^(n-1) + sum_(k<n-1) b_k 2^k."""
    q = -np_bit(codes, bits - 1) * 2 ** (bits - 1)
    for k in range(bits - 1):
        q = q + np_bit(codes, k) * 2**k
    return q


def np_fault_rule(name, codes, errors, bits):
    """Faulty codes and keep (0/1) from the bit rules, one bit at a time."""
    codes = np.asarray(codes, np.int64)
    errors = np.asarray(errors, np.int64)
    sign = np_bit(codes, bits - 1)
    out = np.zeros_like(codes)
    for k in range(bits):
        b, e = np_bit(codes, k), np_bit(errors, k)
        if name == "bit_flip":
            new = b ^ e
        elif name == "stuck_at_0":
            new = np.where(e == 1, 0, b)
        elif name == "stuck_at_1":
            new = np.where(e == 1, 1, b)
        elif name == "bit_mask":
            # A faulty non-sign bit takes the sign bit's value; the sign bit is handled below.
            new = np.where((e == 1) & (k < bits - 1), sign, b)
        else:
            raise AssertionError(name)
        out = out | (new << k)
    keep = np.ones(codes.shape)
    if name == "bit_mask":
        sign_fault = np_bit(errors, bits - 1) == 1
        keep = np.where(sign_fault, 0.0, 1.0)
        out = np.where(sign_fault, 0, out)  # the whole value becomes 0 (code 0 in 2's complement)
    return out, keep


def np_value(codes, keep, bits, step):
    """Weight value of (faulty) codes: binary alpha(2b-1), fixed point q*delta; times keep."""
    if bits == 1:
        return step * (2.0 * np.asarray(codes) - 1.0) * keep
    return step * np_signed(codes, bits) * keep


def np_quantize(fmt, w):
    """numpy codes and step (alpha or delta, broadcastable) of a format."""
    w = np.asarray(w, np.float64)
    if isinstance(fmt, formats.Binary):
        codes = (w >= 0).astype(np.int64)
        if fmt.scale == "none":
            step = np.float64(1.0)
        elif fmt.scale == "he":
            step = np.float64(math.sqrt(2.0 / math.prod(w.shape[:-1])))
        else:
            step = np.abs(w).reshape(-1, w.shape[-1]).mean(axis=0)
        return codes, step
    n, delta = fmt.bits, 2.0**-fmt.fraction_bits
    q = np.clip(np.rint(w / delta), -(2 ** (n - 1)), 2 ** (n - 1) - 1).astype(np.int64)
    return np.mod(q, 2**n), np.float64(delta)


def exact_moments(name, fmt, w, p):
    """Mean, variance and 4th central moment of each faulty weight by enumerating all 2^n errors."""
    codes, step = np_quantize(fmt, w)
    bits = fmt.bits
    step = np.broadcast_to(step, codes.shape)
    patterns = np.arange(2**bits)
    hits = np_popcount(patterns, bits)
    prob = p**hits * (1.0 - p) ** (bits - hits)  # i.i.d. Bernoulli(p) on every bit
    assert math.isclose(prob.sum(), 1.0)
    c = np.repeat(codes[..., None], 2**bits, axis=-1)
    e = np.broadcast_to(patterns, c.shape)
    faulty, keep = np_fault_rule(name, c, e, bits)
    values = np_value(faulty, keep, bits, step[..., None])
    mean = (prob * values).sum(-1)
    dev = values - mean[..., None]
    return mean, (prob * dev**2).sum(-1), (prob * dev**4).sum(-1)


def binom_ok(count, trials, p):
    """Whether `count` lies in the two-sided `CONFIDENCE` interval of Binomial(trials, p)."""
    lo, hi = stats.binom.interval(CONFIDENCE, int(trials), min(p, 1.0))
    return lo <= count <= hi


# --------------------------------------------------------------------------------------------
# apply == numpy bit rule
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_apply_matches_numpy_rule_exhaustively(name, bits):
    # Every code x every error pattern.
    codes = np.repeat(np.arange(2**bits), 2**bits).astype(np.int32)
    errors = np.tile(np.arange(2**bits), 2**bits).astype(np.int32)
    check_apply(name, codes, errors, bits)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("bits", [12, 16])
def test_apply_matches_numpy_rule_on_random_patterns(name, bits):
    rng = np.random.default_rng(seed_of(name, bits))
    codes = rng.integers(0, 2**bits, size=20000).astype(np.int32)
    errors = rng.integers(0, 2**bits, size=20000).astype(np.int32)
    check_apply(name, codes, errors, bits)


def check_apply(name, codes, errors, bits):
    model = make_model(name)
    got_codes, got_keep = model.apply(
        ops.convert_to_tensor(codes), ops.convert_to_tensor(errors), bits
    )
    want_codes, want_keep = np_fault_rule(name, codes, errors, bits)
    got_codes = to_np(got_codes)
    assert got_codes.dtype == np.int32
    assert got_codes.min() >= 0 and got_codes.max() < 2**bits
    np.testing.assert_array_equal(got_codes, want_codes)
    if name == "bit_mask":
        assert got_keep is not None
        np.testing.assert_array_equal(to_np(got_keep), want_keep)
    else:
        assert got_keep is None
    # The result is a pure function of (codes, errors): apply is deterministic.
    again, _ = model.apply(ops.convert_to_tensor(codes), ops.convert_to_tensor(errors), bits)
    np.testing.assert_array_equal(to_np(again), got_codes)


def test_np_fault_rule_matches_documented_examples():
    # The reference itself, checked by hand on 4-bit words.
    assert np_fault_rule("bit_flip", [0b0101], [0b0011], 4)[0][0] == 0b0110
    assert np_fault_rule("stuck_at_0", [0b0111], [0b0101], 4)[0][0] == 0b0010
    assert np_fault_rule("stuck_at_1", [0b1000], [0b0101], 4)[0][0] == 0b1101
    assert np_fault_rule("bit_mask", [0b0111], [0b0101], 4)[0][0] == 0b0010  # 7 -> 2
    assert np_fault_rule("bit_mask", [0b1001], [0b0110], 4)[0][0] == 0b1111  # -7 -> -1
    codes, keep = np_fault_rule("bit_mask", [0b0111], [0b1001], 4)
    assert codes[0] == 0 and keep[0] == 0
    assert np_signed([0b1111, 0b1000, 0b0111], 4).tolist() == [-1, -8, 7]


# --------------------------------------------------------------------------------------------
# Empirical fault rates
# --------------------------------------------------------------------------------------------


def observed_faults(name, fmt, rate, seed):
    """Runs the model on codes whose every fault is visible; returns [(faults, trials), ...]."""
    bits = fmt.bits
    words = 2**17 if bits == 1 else 2**16
    rng = np.random.default_rng(seed)
    if name == "bit_flip":
        codes = rng.integers(0, 2**bits, size=words)
    elif name == "stuck_at_0":
        codes = np.full(words, 2**bits - 1)  # all ones: every fault clears a bit
    elif name == "stuck_at_1":
        codes = np.zeros(words, np.int64)  # all zeros: every fault sets a bit
    else:  # bit_mask: 0b011..1 (faults clear low bits) and 0b100..0 (faults set low bits)
        codes = np.where(rng.random(words) < 0.5, 2 ** (bits - 1) - 1, 2 ** (bits - 1))
    codes = codes.astype(np.int32)
    got, keep = make_model(name)(ops.convert_to_tensor(codes), bits, rate, seed=seed)
    got = to_np(got).astype(np.int64)
    if name != "bit_mask":
        assert keep is None
        return [(np_popcount(got ^ codes, bits).sum(), words * bits)]
    keep = to_np(keep)
    sign_faults = keep == 0
    assert np.all(got[sign_faults] == 0)
    low = (2 ** (bits - 1)) - 1
    kept = ~sign_faults
    low_faults = np_popcount((got[kept] ^ codes[kept]) & low, bits).sum()
    result = [(sign_faults.sum(), words)]  # sign bits: Binomial(words, p)
    if bits > 1:  # given no sign fault, the low bits are still i.i.d. Bernoulli(p)
        result.append((low_faults, kept.sum() * (bits - 1)))
    return result


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("fmt_name", list(FORMAT_FACTORIES))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_empirical_fault_rate_is_binomial(name, fmt_name, rate):
    fmt = FORMAT_FACTORIES[fmt_name]()
    counts = observed_faults(name, fmt, rate, seed_of("rate", name, fmt_name, rate))
    assert sum(trials for _, trials in counts) >= 1e5
    for count, trials in counts:
        assert binom_ok(count, trials, rate), (count, trials, rate)
    # The same check rejects the wrong rate 2p, so it can fail.
    assert not all(binom_ok(count, trials, 2 * rate) for count, trials in counts)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("bits", [1, 4, 8, 16])
def test_draw_error_bits_rate_positions_and_independence(bits, rate):
    words = 2**17 if bits == 1 else 2**15
    errors = to_np(faults.draw_error_bits((words // 4, 4), bits, rate, seed_of("draw", bits, rate)))
    assert errors.shape == (words // 4, 4) and errors.dtype == np.int32
    assert errors.min() >= 0 and errors.max() < 2**bits
    errors = errors.reshape(-1)
    planes = np.stack([np_bit(errors, k) for k in range(bits)], axis=-1)  # (words, bits)

    total = planes.sum()
    assert binom_ok(total, words * bits, rate)
    assert not binom_ok(total, words * bits, 2 * rate)

    # Chi-squared across bit positions with the known rate: sum_k z_k^2 ~ chi2(bits).
    per_position = planes.sum(axis=0)
    var = words * rate * (1 - rate)
    assert stats.chi2.sf(((per_position - words * rate) ** 2 / var).sum(), bits) > 1e-3
    # ... and it rejects positions where one bit is at rate 2p.
    biased = per_position.astype(np.float64)
    biased[0] = stats.binom.median(words, 2 * rate)
    assert stats.chi2.sf(((biased - words * rate) ** 2 / var).sum(), bits) < 1e-3

    # Independence: two bits of one word, and the same bit of two neighbouring words, are both
    # faulty with probability p^2.
    pairs = [(planes[:, 0], planes[:, bits - 1])] if bits > 1 else []
    pairs.append((planes[0::2, 0], planes[1::2, 0]))
    for a, b in pairs:
        both = int((a & b).sum())
        assert binom_ok(both, len(a), rate * rate), (both, len(a), rate)
        # Fully correlated bits would give rate p, which the same check rejects.
        assert not binom_ok(int(a.sum()), len(a), rate * rate)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("bits", [1, 8])
def test_fresh_draws_from_a_seed_generator(bits, rate):
    words = 2**17 if bits == 1 else 2**15
    generator = keras.random.SeedGenerator(seed_of("fresh", bits, rate))
    first = to_np(faults.draw_error_bits((words,), bits, rate, generator))
    second = to_np(faults.draw_error_bits((words,), bits, rate, generator))
    differ = int(np_popcount(first ^ second, bits).sum())
    trials = words * bits
    assert binom_ok(differ, trials, 2 * rate * (1 - rate)), (differ, trials, rate)
    # A cached (stale) mask has distance 0, which the same check rejects.
    assert not binom_ok(int(np_popcount(first ^ first, bits).sum()), trials, 2 * rate * (1 - rate))


@pytest.mark.parametrize("bits", [1, 8])
def test_integer_seed_is_reproducible(bits):
    a = to_np(faults.draw_error_bits((4096,), bits, 0.1, 1234))
    b = to_np(faults.draw_error_bits((4096,), bits, 0.1, 1234))
    c = to_np(faults.draw_error_bits((4096,), bits, 0.1, 1235))
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)
    model = faults.BitFlip()
    codes = ops.convert_to_tensor(np.arange(4096) % 2**bits, "int32")
    x, _ = model(codes, bits, 0.1, 77)
    y, _ = model(codes, bits, 0.1, 77)
    np.testing.assert_array_equal(to_np(x), to_np(y))


def test_rate_may_be_a_variable():
    rate = keras.Variable(0.01, trainable=False, dtype="float32")
    generator = keras.random.SeedGenerator(5)
    words, bits = 2**15, 8
    for p in (0.01, 0.2):
        rate.assign(p)
        count = np_popcount(to_np(faults.draw_error_bits((words,), bits, rate, generator)), bits)
        assert binom_ok(count.sum(), words * bits, p)


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


def random_weights(shape, seed, low=-1.2, high=1.2):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


@pytest.mark.parametrize("rate", [0.0, 1e-9])
@pytest.mark.parametrize("fmt_name", list(FORMAT_FACTORIES))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tiny_rate_gives_clean_weights(name, fmt_name, rate):
    fmt = FORMAT_FACTORIES[fmt_name]()
    w = random_weights((32, 16), seed_of("tiny", fmt_name))
    got = to_np(make_model(name).corrupt(fmt, w, rate, seed_of("tiny", name, fmt_name, rate)))
    np.testing.assert_array_equal(got, to_np(fmt.quantize(w)))


@pytest.mark.parametrize("fmt_name", list(FORMAT_FACTORIES))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_rate_one_limits(name, fmt_name):
    fmt = FORMAT_FACTORIES[fmt_name]()
    w = random_weights((16, 8), seed_of("one", fmt_name))
    w[0, :3] = [0.0, -1e-3, 1e-3]
    got = to_np(make_model(name).corrupt(fmt, w, 1.0, seed_of("one", name, fmt_name)))
    clean = to_np(fmt.quantize(w)).astype(np.float64)
    step = to_np(fmt.step(w))
    if fmt.bits == 1:
        want = {
            "bit_flip": -clean,  # w' = -w
            "bit_mask": np.zeros_like(clean),
            "stuck_at_0": -step * np.ones_like(clean),  # code 0 reads -alpha
            "stuck_at_1": step * np.ones_like(clean),
        }[name]
    else:
        q = np.rint(clean / step)
        want = {
            "bit_flip": (-1.0 - q) * step,  # bitwise NOT: q' = -1 - q
            "bit_mask": np.zeros_like(clean),
            "stuck_at_0": np.zeros_like(clean),
            "stuck_at_1": -step * np.ones_like(clean),  # all ones = -delta
        }[name]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("fmt_name", list(FORMAT_FACTORIES))
def test_bit_mask_never_grows_or_flips_sign(fmt_name):
    fmt = FORMAT_FACTORIES[fmt_name]()
    mask = faults.BitMask()
    w = random_weights((64, 32), seed_of("mask", fmt_name), -1.5, 1.5)
    clean = to_np(fmt.quantize(w))
    rng = np.random.default_rng(seed_of("mask-rates", fmt_name))
    for draw, rate in enumerate(rng.uniform(0.0, 1.0, size=25)):
        got = to_np(mask.corrupt(fmt, w, float(rate), seed_of("mask", fmt_name, draw)))
        assert np.all(np.abs(got) <= np.abs(clean))
        assert np.all(got * clean >= 0)  # same sign or zero
        if fmt.bits == 1:
            # Binary: w' is w or 0, with P(0) = p.
            zero = got == 0
            assert np.all(got[~zero] == clean[~zero])
            assert binom_ok(int(zero.sum()), zero.size, float(rate))


# --------------------------------------------------------------------------------------------
# Closed-form moments
# --------------------------------------------------------------------------------------------

MOMENT_FORMATS = {
    "binary_none": lambda: formats.Binary(scale="none"),
    "binary_he": lambda: formats.Binary(scale="he"),
    "binary_mean": lambda: formats.Binary(scale="mean"),
    "fixed2_0": lambda: formats.FixedPoint(2, 0),
    "fixed4_1": lambda: formats.FixedPoint(4, 1),
    "fixed8_6": lambda: formats.FixedPoint(8, 6),
}


def every_code_weights(fmt, seed):
    """Weights whose stored codes are all 2^n codes (fixed point) or both signs (binary)."""
    if fmt.bits == 1:
        return random_weights((6, 5), seed)
    n, delta = fmt.bits, fmt.delta
    q = np.arange(-(2 ** (n - 1)), 2 ** (n - 1))
    return (q * delta).astype(np.float32).reshape(-1, 4)


@pytest.mark.parametrize("rate", [1e-3, 1e-2, 0.1, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("fmt_name", list(MOMENT_FORMATS))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_moments_match_exact_enumeration(name, fmt_name, rate):
    fmt = MOMENT_FORMATS[fmt_name]()
    w = every_code_weights(fmt, seed_of("enum", fmt_name))
    mean, var = make_model(name).moments(fmt, ops.convert_to_tensor(w), rate)
    mean, var = to_np(mean), to_np(var)
    assert mean.shape == w.shape and var.shape == w.shape
    want_mean, want_var, _ = exact_moments(name, fmt, w, rate)
    scale = float(np.max(np.abs(to_np(fmt.quantize(w)))))
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(var, want_var, rtol=1e-6, atol=1e-7 * scale**2)


@pytest.mark.parametrize("fmt_name", ["binary_he", "fixed4_1"])
def test_exact_enumeration_distinguishes_wrong_rate(fmt_name):
    # The enumeration oracle is sharp: the closed form at rate 2p does not pass it.
    fmt = MOMENT_FORMATS[fmt_name]()
    w = every_code_weights(fmt, 3)
    mean, _ = faults.BitFlip().moments(fmt, ops.convert_to_tensor(w), 0.2)
    want_mean, _, _ = exact_moments("bit_flip", fmt, w, 0.1)
    assert not np.allclose(to_np(mean), want_mean, rtol=1e-6, atol=1e-7)


def test_moments_closed_forms_by_hand():
    # Fixed-point flip variance does not depend on q.
    fmt = formats.FixedPoint(5, 0)
    w = np.array([-16.0, -1.0, 0.0, 3.0, 15.0], np.float32)
    p = 0.1
    mean, var = faults.BitFlip().moments(fmt, w, p)
    np.testing.assert_allclose(to_np(mean), (1 - 2 * p) * w - p, rtol=1e-6)
    np.testing.assert_allclose(to_np(var), p * (1 - p) * (4**5 - 1) / 3, rtol=1e-6)
    # Binary flip: (1-2p) w and 4p(1-p) alpha^2.
    b = formats.Binary(scale="none")
    mean, var = faults.BitFlip().moments(b, np.array([[0.3, -0.2]], np.float32), p)
    np.testing.assert_allclose(to_np(mean), [[(1 - 2 * p), -(1 - 2 * p)]], rtol=1e-6)
    np.testing.assert_allclose(to_np(var), 4 * p * (1 - p), rtol=1e-6)


MC_MIN_DRAWS = 4000
MC_SIGMAS = 5.0


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("fmt_name", ["binary_he", "binary_mean", "fixed8_6", "fixed4_1"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_moments_match_monte_carlo(name, fmt_name, rate):
    fmt = MOMENT_FORMATS[fmt_name]()
    model = make_model(name)
    w = random_weights((4, 8), seed_of("mc-w", fmt_name), -1.1, 1.1)
    if fmt.bits > 1:
        w[0, :4] = [0.0, -fmt.delta, fmt.min_value, fmt.max_value]
    # K >= 4000, and >= 50 / p so that ~50 faults per weight let the check reject a rate 2p.
    k = max(MC_MIN_DRAWS, math.ceil(50 / rate))
    # One call draws independent faults per element: tile along the output axis so the binary
    # scales (fan_in, per-output-channel mean) are those of `w`.
    tiled = np.tile(w, (1, k))
    draws = to_np(model.corrupt(fmt, tiled, rate, seed_of("mc", name, fmt_name, rate)))
    draws = draws.astype(np.float64).reshape(w.shape[0], k, w.shape[1])
    sample_mean = draws.mean(axis=1)
    sample_var = draws.var(axis=1, ddof=1)

    mean, var = model.moments(fmt, ops.convert_to_tensor(w), rate)
    mean, var = to_np(mean).astype(np.float64), to_np(var).astype(np.float64)
    _, exact_var, mu4 = exact_moments(name, fmt, w, rate)
    tiny = 1e-6 * float(np.max(np.abs(w))) ** 2

    # Sample mean: within 5 standard errors sqrt(var / K).
    se_mean = np.sqrt(var / k)
    assert np.all(np.abs(sample_mean - mean) <= MC_SIGMAS * se_mean + 1e-6), np.max(
        np.abs(sample_mean - mean) / np.maximum(se_mean, 1e-12)
    )
    # Sample variance: Var(s^2) = (mu4 - sigma^4 (K-3)/(K-1)) / K, with the exact 4th central
    # moment from enumeration (binary and rare faults are far from Gaussian).
    # s^2 also carries -(mean - mu)^2 K/(K-1), a one-sided chi-square term: it dominates when
    # that SE degenerates (a symmetric +-a weight at p = 1/2 has mu4 = sigma^4), so the bound
    # adds its value at 5 standard errors of the mean.
    se_var = np.sqrt(np.maximum(mu4 - exact_var**2 * (k - 3) / (k - 1), 0.0) / k)
    var_bound = MC_SIGMAS * se_var + MC_SIGMAS**2 * var / (k - 1) + tiny
    assert np.all(np.abs(sample_var - var) <= var_bound), np.max(
        np.abs(sample_var - var) / np.maximum(se_var, 1e-12)
    )
    # The same check rejects the closed form at rate 2p, so it can fail.
    wrong_mean, wrong_var = (
        to_np(t) for t in model.moments(fmt, ops.convert_to_tensor(w), 2 * rate)
    )
    assert not (
        np.all(np.abs(sample_mean - wrong_mean) <= MC_SIGMAS * se_mean + 1e-6)
        and np.all(np.abs(sample_var - wrong_var) <= var_bound)
    )


# --------------------------------------------------------------------------------------------
# Registry, serialisation, bad input
# --------------------------------------------------------------------------------------------

ALL_MODELS = [faults.BitFlip(), faults.BitMask(), faults.StuckAt(0), faults.StuckAt(1)]


def test_get_resolves_none_aliases_instances_and_dicts():
    assert faults.get(None) == faults.BitFlip()
    assert faults.get("bit_flip") == faults.BitFlip()
    assert faults.get("bit_mask") == faults.BitMask()
    assert faults.get("stuck_at_0") == faults.StuckAt(0)
    assert faults.get("stuck_at_1") == faults.StuckAt(1)
    assert faults.StuckAt(0) != faults.StuckAt(1)
    model = faults.StuckAt(1)
    assert faults.get(model) is model
    for alias in faults.ALIASES:
        assert faults.get(alias).name == alias


@pytest.mark.parametrize("model", ALL_MODELS, ids=repr)
def test_serialize_round_trip(model):
    again = faults.deserialize(faults.serialize(model))
    assert type(again) is type(model) and again == model and again.name == model.name
    assert faults.get(faults.serialize(model)) == model
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert type(rebuilt) is type(model) and rebuilt.get_config() == model.get_config()
    assert hash(rebuilt) == hash(model)


@pytest.mark.parametrize("cls", [faults.BitFlip, faults.BitMask, faults.StuckAt])
def test_get_config_covers_every_init_argument(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",)]
    params = [p for p in params if p not in ("args", "kwargs")]
    assert set(params) <= set(cls().get_config())


@pytest.mark.parametrize("identifier", ["nope", "bitflip", 3])
def test_get_rejects_unknown(identifier):
    with pytest.raises(ValueError, match="`fault_model`") as info:
        faults.get(identifier)
    assert f"fault_model={identifier!r}" in str(info.value)


def test_get_rejects_a_format_config():
    with pytest.raises(ValueError, match="fault_model"):
        faults.get(formats.serialize(formats.Binary()))


@pytest.mark.parametrize("value", [2, -1, "1", None])
def test_stuck_at_rejects_bad_value(value):
    with pytest.raises(ValueError, match="`value`") as info:
        faults.StuckAt(value)
    assert f"value={value!r}" in str(info.value)
