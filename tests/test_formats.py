"""Tests of `tf_lanmax.formats` against small numpy references."""

import inspect
import math

import keras
import numpy as np
import pytest
from helpers import gradient
from keras import ops

from tf_lanmax import faults, formats

# (bits, fraction_bits) pairs covering the narrowest and widest words and both extremes of f.
FIXED_CASES = [(2, 0), (2, 1), (4, 1), (4, 3), (8, 0), (8, 6), (12, 5), (16, 0), (16, 15)]


# --------------------------------------------------------------------------------------------
# numpy reference: two's-complement fixed point, written independently of the package
# --------------------------------------------------------------------------------------------


def np_encode(w, n, f):
    """q = clip(round_half_even(w / delta), -2^(n-1), 2^(n-1)-1); code = q mod 2^n."""
    delta = 2.0**-f
    q = np.clip(np.rint(np.asarray(w, np.float64) / delta), -(2 ** (n - 1)), 2 ** (n - 1) - 1)
    return np.mod(q.astype(np.int64), 2**n)


def np_signed(codes, n):
    """q = -b_(n-1) 2^(n-1) + sum_(k<n-1) b_k 2^k, bit by bit."""
    codes = np.asarray(codes, np.int64)
    q = -((codes >> (n - 1)) & 1) * 2 ** (n - 1)
    for k in range(n - 1):
        q = q + ((codes >> k) & 1) * 2**k
    return q


def np_decode(codes, n, f):
    return np_signed(codes, n) * 2.0**-f


def np_value(x):
    return np.asarray(ops.convert_to_numpy(x))


# --------------------------------------------------------------------------------------------
# FixedPoint
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,f", FIXED_CASES)
def test_fixed_point_round_trip_of_every_code(n, f):
    fmt = formats.FixedPoint(n, f)
    codes = np.arange(2**n, dtype=np.int32)
    values = np_value(fmt.decode(ops.convert_to_tensor(codes)))
    np.testing.assert_array_equal(values, np_decode(codes, n, f))
    again = np_value(fmt.encode(ops.convert_to_tensor(values)))
    assert again.dtype == np.int32
    np.testing.assert_array_equal(again, codes)
    np.testing.assert_array_equal(np_value(fmt.code_value(codes)), np_signed(codes, n))


@pytest.mark.parametrize("n,f", FIXED_CASES)
def test_fixed_point_range_and_saturation(n, f):
    fmt = formats.FixedPoint(n, f)
    delta = 2.0**-f
    assert fmt.delta == delta
    assert float(np_value(fmt.step())) == delta
    assert fmt.min_value == -(2 ** (n - 1)) * delta
    assert fmt.max_value == (2 ** (n - 1) - 1) * delta
    w = np.array(
        [fmt.max_value, fmt.max_value + delta, 1e6, np.inf, fmt.min_value, fmt.min_value - delta]
        + [-1e6, -np.inf],
        np.float32,
    )
    codes = np_value(fmt.encode(w))
    top, bottom = 2 ** (n - 1) - 1, 2 ** (n - 1)  # 0b0111..1 and 0b1000..0
    np.testing.assert_array_equal(codes, [top, top, top, top, bottom, bottom, bottom, bottom])
    np.testing.assert_array_equal(
        np_value(fmt.quantize(w)), [fmt.max_value] * 4 + [fmt.min_value] * 4
    )


@pytest.mark.parametrize("n,f", FIXED_CASES)
def test_fixed_point_minus_delta_is_all_ones(n, f):
    fmt = formats.FixedPoint(n, f)
    code = int(np_value(fmt.encode(np.float32(-(2.0**-f)))))
    assert code == 2**n - 1
    assert int(np_value(fmt.encode(np.float32(0.0)))) == 0
    assert int(np_value(fmt.encode(np.float32(-0.0)))) == 0


def test_fixed_point_rounds_half_to_even():
    fmt = formats.FixedPoint(8, 1)  # delta = 0.5: ties at odd multiples of 0.25
    w = np.array([0.25, 0.75, 1.25, 1.75, -0.25, -0.75, -1.25, -1.75], np.float32)
    expected_q = np.array([0, 2, 2, 4, 0, -2, -2, -4])
    np.testing.assert_array_equal(np_value(fmt.encode(w)), np.mod(expected_q, 256))
    np.testing.assert_array_equal(np_value(fmt.quantize(w)), expected_q * 0.5)
    # Just off the tie, ordinary rounding.
    off = np.array([0.2500001, 0.7499999], np.float32)
    np.testing.assert_array_equal(np_value(fmt.quantize(off)), [0.5, 0.5])


@pytest.mark.parametrize("n,f", FIXED_CASES)
def test_fixed_point_matches_numpy_reference_on_random_floats(n, f):
    fmt = formats.FixedPoint(n, f)
    rng = np.random.default_rng(1000 * n + f)
    span = 1.5 * 2 ** (n - 1) * 2.0**-f  # covers the range and both saturated tails
    w = rng.uniform(-span, span, size=5000).astype(np.float32)
    # Exact ties on the grid and half-way points, where rounding mode matters.
    ticks = rng.integers(-(2 ** (n - 1)) - 3, 2 ** (n - 1) + 3, size=500)
    ties = ((ticks + 0.5) * 2.0**-f).astype(np.float32)
    w = np.concatenate([w, ties, np.float32(ticks * 2.0**-f)])
    codes = np_value(fmt.encode(w))
    np.testing.assert_array_equal(codes, np_encode(w, n, f))
    assert codes.min() >= 0 and codes.max() < 2**n
    np.testing.assert_array_equal(np_value(fmt.quantize(w)), np_decode(np_encode(w, n, f), n, f))


def test_fixed_point_keeps_shape():
    fmt = formats.FixedPoint(6, 3)
    w = np.random.default_rng(0).normal(size=(3, 3, 2, 5)).astype(np.float32)
    assert tuple(fmt.encode(w).shape) == w.shape
    assert tuple(fmt.quantize(w).shape) == w.shape
    assert fmt.kernel_constraint() is None


# --------------------------------------------------------------------------------------------
# Binary
# --------------------------------------------------------------------------------------------


def test_binary_encode_decode_sign_of_zero_is_plus():
    fmt = formats.Binary(scale="none")
    assert fmt.bits == 1
    w = np.array([[-0.3, 0.0, 0.7, -0.0, -1e-30, 1e-30]], np.float32)
    codes = np_value(fmt.encode(w))
    assert codes.dtype == np.int32
    np.testing.assert_array_equal(codes, [[0, 1, 1, 1, 0, 1]])
    np.testing.assert_array_equal(np_value(fmt.decode(codes, w)), [[-1, 1, 1, 1, -1, 1]])
    np.testing.assert_array_equal(np_value(fmt.code_value([0, 1])), [-1.0, 1.0])
    np.testing.assert_array_equal(np_value(fmt.quantize(w)), [[-1, 1, 1, 1, -1, 1]])
    assert float(np_value(fmt.step(w))) == 1.0


@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 4, 8), (2, 2, 2, 1, 6)])
def test_binary_he_scale_uses_fan_in(shape):
    fmt = formats.Binary()  # default "he"
    assert fmt.scale == "he"
    w = np.random.default_rng(1).uniform(-1, 1, size=shape).astype(np.float32)
    alpha = math.sqrt(2.0 / math.prod(shape[:-1]))  # fan_in = k_h * k_w * C_in, not w.size
    np.testing.assert_allclose(float(np_value(fmt.step(w))), alpha, rtol=1e-6)
    np.testing.assert_allclose(np_value(fmt.quantize(w)), alpha * np.where(w >= 0, 1, -1), 1e-6)


@pytest.mark.parametrize("shape", [(7, 4), (3, 3, 2, 5)])
def test_binary_mean_scale_is_per_output_channel(shape):
    fmt = formats.Binary(scale="mean")
    w = np.random.default_rng(2).uniform(-1, 1, size=shape).astype(np.float32)
    w[..., 0] *= 0.1  # make the channels clearly different
    alpha = np.abs(w).reshape(-1, shape[-1]).mean(axis=0)
    np.testing.assert_allclose(np_value(fmt.step(w)), alpha, rtol=1e-6)
    np.testing.assert_allclose(
        np_value(fmt.quantize(w)), alpha * np.where(w >= 0, 1.0, -1.0), rtol=1e-6
    )


def test_binary_mean_scale_has_no_gradient():
    fmt = formats.Binary(scale="mean")
    w = np.array([[0.2, -0.4], [-0.6, 0.8]], np.float32)
    np.testing.assert_array_equal(gradient(lambda v: ops.sum(fmt.step(v)), w), np.zeros_like(w))


def test_latent_clip():
    clip = formats.Binary().kernel_constraint()
    assert isinstance(clip, formats.LatentClip)
    assert clip.get_config() == {"limit": 1.0}
    w = np.array([-3.0, -1.0, -0.5, 0.0, 0.99, 1.0, 2.5], np.float32)
    np.testing.assert_array_equal(np_value(clip(w)), np.clip(w, -1, 1))
    half = formats.LatentClip(0.5)
    np.testing.assert_array_equal(np_value(half(w)), np.clip(w, -0.5, 0.5))
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(half))
    assert isinstance(again, formats.LatentClip) and again.limit == 0.5


# --------------------------------------------------------------------------------------------
# Straight-through estimator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [formats.Binary(), formats.FixedPoint(4, 2)], ids=repr)
def test_straight_through_forward_is_quantized_backward_is_identity(fmt):
    rng = np.random.default_rng(3)
    w = rng.uniform(-1.2, 1.2, size=(6, 4)).astype(np.float32)
    upstream = rng.normal(size=(6, 4)).astype(np.float32)
    quantized = fmt.quantize(w)
    used = formats.straight_through(ops.convert_to_tensor(w), quantized)
    np.testing.assert_array_equal(np_value(used), np_value(quantized))
    grad = gradient(
        lambda v: ops.sum(ops.multiply(upstream, formats.straight_through(v, fmt.quantize(v)))), w
    )
    np.testing.assert_array_equal(grad, upstream)


# --------------------------------------------------------------------------------------------
# Registry and serialisation
# --------------------------------------------------------------------------------------------

ALL_FORMATS = [
    formats.Binary(),
    formats.Binary(scale="none"),
    formats.Binary(scale="mean"),
    formats.FixedPoint(),
    formats.FixedPoint(4, 1),
    formats.FixedPoint(16, 15),
    formats.FixedPoint(2, 0),
]


def test_get_resolves_none_alias_instance_and_dict():
    assert formats.get(None) == formats.Binary()
    assert formats.get("binary") == formats.Binary()
    assert formats.get("fixed_point") == formats.FixedPoint(8, 6)
    fmt = formats.FixedPoint(5, 2)
    assert formats.get(fmt) is fmt
    assert formats.get(formats.serialize(fmt)) == fmt


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=repr)
def test_serialize_round_trip(fmt):
    again = formats.deserialize(formats.serialize(fmt))
    assert type(again) is type(fmt) and again == fmt
    assert again.get_config() == fmt.get_config()
    assert formats.get(formats.serialize(fmt)) == fmt
    config = keras.saving.serialize_keras_object(fmt)
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert type(rebuilt) is type(fmt) and rebuilt.get_config() == fmt.get_config()
    assert hash(rebuilt) == hash(fmt)
    assert type(fmt).from_config(fmt.get_config()) == fmt


@pytest.mark.parametrize("cls", [formats.Binary, formats.FixedPoint, formats.LatentClip])
def test_get_config_covers_every_init_argument(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert set(params) <= set(cls().get_config())


def test_formats_are_not_equal_across_configs():
    assert formats.FixedPoint(8, 6) != formats.FixedPoint(8, 5)
    assert formats.Binary("he") != formats.Binary("mean")
    assert formats.Binary() != formats.FixedPoint()


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name,received",
    [
        ({"bits": 1, "fraction_bits": 0}, "bits", "bits=1"),
        ({"bits": 17, "fraction_bits": 0}, "bits", "bits=17"),
        ({"bits": 0, "fraction_bits": 0}, "bits", "bits=0"),
        ({"bits": 8.0, "fraction_bits": 6}, "bits", "bits=8.0"),
        ({"bits": "8", "fraction_bits": 6}, "bits", "bits='8'"),
        ({"bits": True, "fraction_bits": 0}, "bits", "bits=True"),
        ({"bits": 8, "fraction_bits": 8}, "fraction_bits", "fraction_bits=8"),
        ({"bits": 4, "fraction_bits": 9}, "fraction_bits", "fraction_bits=9"),
        ({"bits": 8, "fraction_bits": -1}, "fraction_bits", "fraction_bits=-1"),
        ({"bits": 8, "fraction_bits": 2.5}, "fraction_bits", "fraction_bits=2.5"),
        ({"bits": 8, "fraction_bits": None}, "fraction_bits", "fraction_bits=None"),
    ],
)
def test_fixed_point_rejects_bad_arguments(kwargs, name, received):
    with pytest.raises(ValueError, match=f"`{name}`") as info:
        formats.FixedPoint(**kwargs)
    assert f"Received: {received}" in str(info.value)


@pytest.mark.parametrize("scale", ["x", "HE", None, 1.0])
def test_binary_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="`scale`") as info:
        formats.Binary(scale=scale)
    assert f"scale={scale!r}" in str(info.value)


@pytest.mark.parametrize("identifier", ["nope", "", "Binary", 42, 1.5])
def test_get_rejects_unknown(identifier):
    with pytest.raises(ValueError, match="`weight_format`") as info:
        formats.get(identifier)
    assert f"weight_format={identifier!r}" in str(info.value)


def test_get_rejects_a_config_of_an_unregistered_class():
    # Keras' deserialiser raises for the unknown class before `get` can name the argument.
    with pytest.raises((ValueError, TypeError), match="Nope"):
        formats.get({"class_name": "Nope", "config": {}})


def test_get_rejects_a_fault_model_config():
    with pytest.raises(ValueError, match="weight_format"):
        formats.get(faults.serialize(faults.BitFlip()))
