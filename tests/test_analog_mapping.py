"""Weights <-> conductances: `perturb_weights` vs `weight_moments`, quantisation, Crossbar, drift
compensation, all-zero kernels.

Monte-Carlo: D copies of a kernel stacked on a leading axis are D independent chips of it (the
stack has the kernel's own W_max per layer and per column), so one `perturb_weights` call
samples D draws of every weight. Per-weight means and standard deviations agree with
`weight_moments` within the Bonferroni threshold of a 1 % family-wise false-alarm rate over all
the checks of a test (`analog_oracles.check_weight_moments`).
"""

import math

import numpy as np
import pytest
from analog_oracles import check_weight_moments, kernel

import tf_lanmax as tl

SHAPE = (6, 5)  # one kernel shape throughout: JAX compiles each op once per shape

CONFIGS = [
    (mapping, w_max, levels)
    for mapping in ("differential", "single")
    for w_max in ("layer", "column")
    for levels in (None, 16)
]


@pytest.mark.parametrize(
    ("name", "configs"),
    [
        # Every mapping on the clipped ReRAM; the quadrature presets on the two extremes (JAX
        # compiles every new configuration op by op: the full product there costs minutes).
        ("reram_wan2022", CONFIGS),
        ("pcm", [CONFIGS[0], CONFIGS[-1]]),
        ("reram_cmo", [CONFIGS[0], CONFIGS[-1]]),
    ],
    ids=["wan2022", "pcm", "cmo"],
)
def test_perturb_weights_has_the_moments_of_weight_moments(name, configs):
    w = kernel(SHAPE)
    checks = 2 * w.size * len(configs)
    for mapping, w_max, levels in configs:
        device = tl.analog.get(name, mapping=mapping, w_max=w_max, levels=levels)
        check_weight_moments(device, w, 3600.0, f"{name} {mapping}/{w_max}/{levels}", checks)


def test_a_convolution_kernel_maps_per_output_column():
    w = kernel((3, 3, 2, 4), seed=1)
    device = tl.analog.get("reram_wan2022", w_max="column")
    check_weight_moments(device, w, 86400.0, "conv", 2 * w.size)
    g_plus, g_minus = (np.asarray(g) for g in tl.analog.conductances(device, w))
    column_max = np.abs(w).max(axis=(0, 1, 2))
    np.testing.assert_allclose(g_plus - g_minus, w / column_max, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.maximum(g_plus, g_minus).max(axis=(0, 1, 2)), 1.0)


def test_conductances_sit_on_the_nearest_level_of_the_grid():
    w = kernel((40, 8))
    for mapping in ("differential", "single"):
        device = tl.analog.get("pcm", levels=16, mapping=mapping)
        g_plus, g_minus = tl.analog.conductances(device, w)
        u = w / np.abs(w).max()
        if mapping == "differential":
            targets = [np.maximum(u, 0), np.maximum(-u, 0)]
            got = [np.asarray(g_plus), np.asarray(g_minus)]
        else:
            assert g_minus is None
            targets, got = [(u + 1) / 2], [np.asarray(g_plus)]
        for target, g in zip(targets, got, strict=True):
            codes = g * 15
            np.testing.assert_allclose(codes, np.round(codes), atol=1e-4)  # on k / 15
            assert np.abs(g - target).max() <= 0.5 / 15 + 1e-6  # the nearest level
            assert g.min() >= 0 and g.max() <= 1 + 1e-6


def test_the_additive_preset_reproduces_the_crossbar_weight_noise():
    # Crossbar(levels=N) rounds |w| to multiples of W_max / N: the grid k / N, levels = N + 1.
    sigma, g_max, n = 0.02, 2.0, 31
    w = kernel(SHAPE)
    crossbar = tl.memse.Crossbar(sigma=sigma, levels=n, gmax=g_max)
    device = tl.analog.get("additive", sigma=sigma, g_max=g_max, levels=n + 1)
    mean, var = (np.asarray(x) for x in tl.analog.weight_moments(device, w))
    w_max = float(np.abs(w).max())
    expected = crossbar.weight_noise_variance(wmax=w_max, gmax=g_max)  # 2 sigma^2 W^2 / G^2
    np.testing.assert_allclose(var, expected, rtol=1e-5)
    np.testing.assert_allclose(mean, np.asarray(crossbar.quantize(w)), rtol=1e-5, atol=1e-6)
    check_weight_moments(device, w, 1.0, "additive", 2 * w.size)


def test_drift_compensation_rescales_the_layer_by_the_programmed_readout():
    w = kernel(SHAPE)
    plain = tl.analog.get("pcm")
    compensated = tl.analog.get("pcm", drift_compensation=True)
    t = 86400.0
    raw = np.asarray(tl.analog.perturb_weights(plain, w, t, seed=3), np.float64)
    fixed = np.asarray(tl.analog.perturb_weights(compensated, w, t, seed=3), np.float64)
    # Same chip: the compensated layer is the raw one times one alpha ...
    alpha = fixed / np.where(raw == 0, np.nan, raw)
    assert np.nanstd(alpha) < 1e-5 * np.nanmean(alpha)
    # ... alpha = sum |w_prog| / sum |w(t)| with w_prog the same chip right after programming.
    u = w / np.abs(w).max()
    g = np.stack([np.maximum(u, 0), np.maximum(-u, 0)])
    programmed = np.asarray(plain.programmed(g, seed=3), np.float64)
    w_prog = (programmed[0] - programmed[1]) * np.abs(w).max()
    assert np.nanmean(alpha) == pytest.approx(np.abs(w_prog).sum() / np.abs(raw).sum(), rel=1e-5)
    assert np.nanmean(alpha) > 1.2  # a day of drift lowered the conductances
    # The large-layer limit of weight_moments, against a large layer: many chips stacked.
    check_weight_moments(compensated, w, t, "compensated", 2 * w.size)


@pytest.mark.parametrize("name", ["multiplicative", "additive", "pcm", "hermes", "reram_cmo"])
def test_an_all_zero_kernel_reads_back_as_zeros(name):
    w = np.zeros(SHAPE, "float32")
    for overrides in ({}, {"mapping": "single", "w_max": "column"}):
        if name in ("pcm", "hermes"):
            overrides = {**overrides, "drift_compensation": True}
        device = tl.analog.get(name, **overrides)
        noisy = np.asarray(tl.analog.perturb_weights(device, w, 3600.0, seed=0))
        mean, var = (np.asarray(x) for x in tl.analog.weight_moments(device, w, 3600.0))
        for array in (noisy, mean, var):
            np.testing.assert_array_equal(array, np.zeros_like(w))


def test_perturb_weights_keeps_dtype_and_reads_variables():
    import keras

    w = kernel((5, 3))
    device = tl.analog.get("multiplicative", sigma=0.1)
    variable = keras.Variable(w)
    from_variable = tl.analog.perturb_weights(device, variable, seed=1)
    np.testing.assert_array_equal(
        np.asarray(from_variable), np.asarray(tl.analog.perturb_weights(device, w, seed=1))
    )
    half = tl.analog.perturb_weights(device, w.astype("float16"), seed=1)
    assert keras.backend.standardize_dtype(half.dtype) == "float16"
    # SAMSON's law in weight units: w' = w delta, whatever W_max (one draw of delta per weight).
    delta = np.asarray(from_variable) / np.where(w == 0, np.nan, w)
    assert np.nanstd(delta) == pytest.approx(0.1, rel=0.5)
    assert math.isfinite(float(np.nanmean(delta)))
