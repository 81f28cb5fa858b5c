"""Crossbar mapping, power model, Monte-Carlo reference, Gmax optimisation and the digital-fault
extension of MemSE."""

import keras
import numpy as np
import pytest
from keras import layers, ops

import tf_lanmax as tl
from tf_lanmax import memse as ms


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def dense_model(seed=0, units=4, inputs=6):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((inputs,)), layers.Dense(units, name="dense")])


# -- crossbar -------------------------------------------------------------------------------


def test_crossbar_draws_have_the_pair_noise_variance():
    kernel = ops.convert_to_tensor(np.linspace(-0.8, 0.5, 12).reshape(3, 4), "float32")
    cb = ms.Crossbar(sigma=0.03, levels=16, gmax=2.0)
    draws = np_(cb.sample_kernels(kernel, 2.0, 4000, seed=0))
    quantized = np_(cb.quantize(kernel))
    expected_var = 2 * 0.03**2 * (0.8 / 2.0) ** 2  # 2 sigma^2 Wmax^2 / Gmax^2
    assert cb.weight_noise_variance(0.8, 2.0) == pytest.approx(expected_var)
    se = np.sqrt(expected_var / 4000)
    assert np.all(np.abs(draws.mean(0) - quantized) < 5 * se)
    assert abs(draws.var(0).mean() - expected_var) < 5 * expected_var * np.sqrt(2 / (4000 * 12))


def test_quantisation_grid_rounding_and_noise_mode():
    kernel = ops.convert_to_tensor([[-1.0, -0.33, 0.0, 0.26, 0.74]], "float32")
    nearest = np_(ms.Crossbar(levels=4).quantize(kernel))
    np.testing.assert_allclose(nearest, [[-1.0, -0.25, 0.0, 0.25, 0.75]], atol=1e-7)
    floor = np_(ms.Crossbar(levels=4, rounding="floor").quantize(kernel))
    np.testing.assert_allclose(floor, [[-1.0, -0.25, 0.0, 0.25, 0.5]], atol=1e-7)
    np.testing.assert_array_equal(np_(ms.Crossbar(levels=None).quantize(kernel)), np_(kernel))
    mean, var = ms.Crossbar(sigma=0.0, levels=4, quantization="noise").kernel_moments(kernel, 1.0)
    np.testing.assert_array_equal(np_(mean), np_(kernel))
    assert float(var) == pytest.approx((1.0 / 4) ** 2 / 12)


def test_crossbar_config_round_trip_and_validation():
    cb = ms.Crossbar(sigma=0.02, levels=64, gmax={"a": 1.0, "b": 3.0}, tia_gain=2.0)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert again == cb and again.gmax_for("b") == 3.0
    # Equal crossbars hash equal, whatever order their per-layer Gmax dict was written in.
    swapped = ms.Crossbar(sigma=0.02, levels=64, gmax={"b": 3.0, "a": 1.0}, tia_gain=2.0)
    assert swapped == cb and hash(swapped) == hash(cb) and len({cb, swapped, again}) == 1
    assert cb.with_gmax(2.0).gmax == 2.0
    for kwargs, name in [
        ({"sigma": -0.1}, "sigma"),
        ({"levels": 1}, "levels"),
        ({"gmax": 0.0}, "gmax"),
        ({"gmax": {"a": -1.0}}, "gmax"),
        ({"gmax": "big"}, "gmax"),
        ({"quantization": "round"}, "quantization"),
        ({"rounding": "up"}, "rounding"),
        ({"tia_gain": 0.0}, "tia_gain"),
        ({"fold_batchnorm": "yes"}, "fold_batchnorm"),
    ]:
        with pytest.raises(ValueError, match=name):
            ms.Crossbar(**kwargs)


# -- power model ----------------------------------------------------------------------------


def test_power_device_term_is_linear_and_tia_term_quadratic_in_gmax():
    model = dense_model(1)
    x = np.random.default_rng(1).random((5, 6), dtype=np.float32)
    mirror = ms.MemSE(model, ms.Crossbar(sigma=0.0, levels=32, gmax=1.0))
    _, one = mirror.power(x, {"dense": ops.convert_to_tensor(1.0)})
    _, three = mirror.power(x, {"dense": ops.convert_to_tensor(3.0)})
    (d1, t1), (d3, t3) = one["dense"], three["dense"]
    assert float(d3) == pytest.approx(3 * float(d1), rel=1e-5)
    assert float(t3) == pytest.approx(9 * float(t1), rel=1e-5)
    # numpy reference of both terms (r = 1, deterministic inputs)
    kernel = np_(model.layers[0].kernel)
    wmax = np.abs(kernel).max()
    wq = np.sign(kernel) * np.round(32 * np.abs(kernel) / wmax) * wmax / 32
    g_pos, g_neg = np.maximum(wq, 0) / wmax, np.maximum(-wq, 0) / wmax
    device = np.mean(np.sum((x**2) @ (g_pos + g_neg), axis=1))
    tia = np.mean(np.sum((x @ g_pos) ** 2 + (x @ g_neg) ** 2, axis=1))
    assert float(d1) == pytest.approx(device, rel=1e-5)
    assert float(t1) == pytest.approx(tia, rel=1e-5)
    # Device noise adds a Gmax-free floor 2 sigma^2 sum E[x^2] per column to the TIA term.
    noisy = ms.MemSE(model, ms.Crossbar(sigma=0.1, levels=32, gmax=1.0))
    _, layers_ = noisy.power(x)
    floor = 2 * 0.01 * 4 * np.mean(np.sum(x**2, axis=1))
    assert float(layers_["dense"][1]) == pytest.approx(tia + floor, rel=1e-5)


# -- Monte-Carlo reference ----------------------------------------------------------------------


def test_monte_carlo_result_and_sequential_stopping():
    model = dense_model(2)
    x = np.random.default_rng(2).random((8, 6), dtype=np.float32)
    cb = ms.Crossbar(sigma=0.05, levels=None, gmax=1.0)
    result = ms.monte_carlo(model, cb, x, draws=400, seed=0)
    assert result.draws == 400 and result.ci[0] < result.mse < result.ci[1]
    assert result.per_output_mse.shape == (4,) and result.per_draw.shape == (400,)
    again = ms.monte_carlo(model, cb, x, draws=400, seed=0)
    assert again.mse == result.mse  # fixed seed, same draws
    early = ms.monte_carlo(model, cb, x, draws=5000, rel_half_width=0.1, batch_draws=20)
    assert early.draws < 5000 and early.relative_half_width <= 0.1
    assert "MC MSE" in str(result) and result.to_dict()["draws"] == 400
    predicted = float(np.mean(np_(ms.MemSE(model, cb).mse(x))))
    assert abs(predicted - result.mse) < 4 * result.half_width / 1.96


def test_monte_carlo_arguments_are_checked():
    model = dense_model(3)
    x = np.ones((2, 6), "float32")
    with pytest.raises(ValueError, match="draws"):
        ms.monte_carlo(model, ms.Crossbar(), x, draws=1)
    with pytest.raises(ValueError, match="confidence"):
        ms.monte_carlo(model, ms.Crossbar(), x, confidence=1.5)
    with pytest.raises(ValueError, match="`x`"):
        ms.monte_carlo(model, ms.Crossbar(), None)
    with pytest.raises(ValueError, match="crossbar"):
        ms.monte_carlo(ms.MemSE(model), ms.Crossbar(), x)
    with pytest.raises(ValueError, match="rel_half_width"):
        ms.monte_carlo(model, ms.Crossbar(), x, rel_half_width=0.0)


# -- Gmax optimisation --------------------------------------------------------------------------


def test_per_layer_gmax_beats_the_best_single_gmax_at_equal_power():
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            layers.Dense(32, activation="relu", name="wide"),
            layers.Dense(4, name="head"),
        ]
    )
    model.get_layer("head").kernel.assign(np_(model.get_layer("head").kernel) * 4.0)
    x = np.random.default_rng(4).random((32, 16), dtype=np.float32)
    cb = ms.Crossbar(sigma=0.05, levels=64, gmax=1.0)
    budget = float(ms.MemSE(model, cb).power(x)[0])
    result = ms.optimize_gmax(model, cb, x, power_budget=budget, steps=5, max_samples=32)
    assert result.power == pytest.approx(budget, rel=1e-3)
    assert result.baseline["power"] == pytest.approx(budget, rel=1e-3)
    assert result.predicted_mse < result.baseline["predicted_mse"]
    assert len(result.history) == 5 and set(result.gmax) == {"wide", "head"}
    optimized = ms.monte_carlo(model, result.crossbar, x, draws=300, seed=1)
    single = ms.monte_carlo(model, result.baseline["crossbar"], x, draws=300, seed=1)
    assert optimized.ci[1] < single.ci[0]
    network = ms.optimize_gmax(model, cb, (x, None), budget, granularity="network")
    assert len(set(network.gmax.values())) == 1
    rows = ms.mse_power_curve(model, cb, x, budgets=[budget / 2, budget], steps=0)
    assert rows[0]["per_layer"]["predicted_mse"] > rows[1]["per_layer"]["predicted_mse"]
    with pytest.raises(ValueError, match="power_budget"):
        ms.optimize_gmax(model, cb, x, power_budget=-1.0)
    with pytest.raises(ValueError, match="granularity"):
        ms.optimize_gmax(model, cb, x, budget, granularity="column")
    with pytest.raises(ValueError, match="power_budget"):
        ms.optimize_gmax(model, cb, x, power_budget=budget * 1e-12)


# -- digital faults ---------------------------------------------------------------------------


def test_binary_bit_flip_first_layer_matches_the_closed_form_and_sampling():
    keras.utils.set_random_seed(5)
    p = 0.02
    model = keras.Sequential(
        [
            keras.Input((10,)),
            tl.layers.FaultyDense(3, weight_format="binary", fault_rate=p, seed=1, use_bias=False),
        ]
    )
    x = np.random.default_rng(5).normal(size=(6, 10)).astype("float32")
    mirror = ms.MemSE(model, ms.Crossbar(sigma=0.0), mapping="digital")
    mse = np_(mirror.mse(x))
    alpha = np.sqrt(2.0 / 10)
    z = np_(mirror.clean(x))
    expected = 4 * p * (1 - p) * alpha**2 * np.sum(x**2, axis=1, keepdims=True) + 4 * p**2 * z**2
    np.testing.assert_allclose(mse, expected, rtol=1e-4)
    result = ms.monte_carlo(mirror, None, x, draws=4000, seed=2)
    assert abs(float(mse.mean()) - result.mse) < 4 * result.half_width / 1.96
    with tl.faults_disabled(model):
        np.testing.assert_array_equal(np_(mirror.mse(x)), 0.0)


def test_fixed_point_flips_in_a_faulty_copy_match_sampling():
    keras.utils.set_random_seed(6)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            layers.Conv2D(3, 3, name="conv"),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dense(2, name="head"),
        ]
    )
    digital = ms.faulty_copy(model, "fixed_point", "bit_flip", fault_rate=0.01, bits=6)
    kinds = [type(layer).__name__ for layer in digital.layers]
    assert kinds == ["FaultyConv2D", "ReLU", "Flatten", "FaultyDense"]
    np.testing.assert_array_equal(np_(digital.layers[0].kernel), np_(model.layers[0].kernel))
    x = np.random.default_rng(6).random((8, 6, 6, 1), dtype=np.float32)
    mirror = ms.MemSE(digital, ms.Crossbar(sigma=0.0), cov_mode="jacobian", mapping="digital")
    assert mirror.gmax == {}
    predicted = mirror.summary(x)["mse"]
    result = ms.monte_carlo(mirror, None, x, draws=2000, seed=3)
    assert abs(predicted - result.mse) < 0.15 * result.mse + result.half_width
    with pytest.raises(ValueError, match="fault_rate"):
        ms.faulty_copy(model, fault_rate=0.7)


# -- per-example Monte-Carlo --------------------------------------------------------------------


def test_per_example_monte_carlo_has_the_per_example_law_and_a_tighter_interval():
    """Flipout gives every example a draw of the crossbar's law: on one Dense layer, each
    example's output variance is the closed form ``S^2 ||x||^2``; on a CNN, the per-example
    and shared estimates of the expected MSE agree, the per-example interval being tighter."""
    keras.utils.set_random_seed(7)
    dense = keras.Sequential([keras.Input((12,)), layers.Dense(4)])
    x = np.random.default_rng(7).random((6, 12), dtype=np.float32)
    cb = ms.Crossbar(sigma=0.05, levels=None, gmax=0.8)
    result = ms.monte_carlo(dense, cb, x, draws=1500, seed=1, per_example=True)
    assert result.per_example and result.to_dict()["per_example"]
    s2 = 2 * 0.05**2 * (np.abs(np_(dense.layers[0].kernel)).max() / 0.8) ** 2
    var = s2 * np.sum(x**2, axis=1, keepdims=True) * np.ones((1, 4))
    k = result.draws
    assert np.all(np.abs(result.output_var - var) < 5 * var * np.sqrt(2 / (k - 1)))
    np.testing.assert_allclose(result.output_mean, np_(dense(x)), atol=5 * np.sqrt(var.max() / k))

    keras.utils.set_random_seed(8)
    cnn = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.Conv2D(8, 3),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3),
        ]
    )
    xs = np.random.default_rng(8).random((16, 8, 8, 1), dtype=np.float32)
    mirror = ms.MemSE(cnn, ms.Crossbar(sigma=0.05, levels=None, gmax=1.0))
    shared = ms.monte_carlo(mirror, None, xs, draws=300, seed=2)
    per_example = ms.monte_carlo(mirror, None, xs, draws=300, seed=2, per_example=True)
    se = np.hypot(shared.half_width, per_example.half_width) / 1.96
    assert abs(shared.mse - per_example.mse) < 4 * se
    assert per_example.half_width < 0.7 * shared.half_width


def test_per_example_monte_carlo_of_digital_faults_draws_a_kernel_per_example():
    keras.utils.set_random_seed(5)
    p = 0.02
    model = keras.Sequential(
        [
            keras.Input((10,)),
            tl.layers.FaultyDense(3, weight_format="binary", fault_rate=p, seed=1, use_bias=False),
        ]
    )
    x = np.random.default_rng(5).normal(size=(6, 10)).astype("float32")
    mirror = ms.MemSE(model, ms.Crossbar(sigma=0.0), mapping="digital")
    expected = float(np.mean(np_(mirror.mse(x))))  # the closed form (see the test above)
    result = ms.monte_carlo(mirror, None, x, draws=600, seed=2, per_example=True)
    assert abs(expected - result.mse) < 4 * result.half_width / 1.96
    with pytest.raises(ValueError, match="per_example"):
        ms.monte_carlo(mirror, None, x, per_example="yes")
