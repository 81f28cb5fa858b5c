"""Drift, read noise, chip identity and time ranges of the `tl.analog` presets, at fixed seeds.

The drift exponents are tested against their folded normal law with `scipy.stats.kstest` (and
the same test shown to reject a wrong sigma), the read noise's growth against
``sqrt(ln((t + t_read) / (2 t_read)))``, and one seed against one chip at every time. Single
statistical checks use 3 standard errors (`analog_oracles`).
"""

import math
import warnings

import numpy as np
import pytest
from analog_oracles import hermes2_q, pcm_q, sample_statistics, wan_reference
from scipy import stats

import tf_lanmax as tl

TARGETS = np.array([0.05, 0.25, 0.5, 0.9])
N = 100_000
Z = 3.0  # standard errors, one check


@pytest.mark.parametrize(
    ("name", "overrides", "mu", "sigma", "q_s"),
    [
        # g = 0.25: mu = clip(0.0459, 0.049, 0.1), sigma = -0.0125 ln 0.25 - 0.0059.
        ("pcm", {}, 0.049, -0.0125 * math.log(0.25) - 0.0059, pcm_q),
        # HERMES, two devices: mu = -0.0436 g^2 - 0.0126 g + 0.0736 (g >= 0.0945),
        # sigma = clip(-0.0117 ln g - 0.0057, 0.0091, 0.04) (g < 0.3055).
        (
            "hermes",
            {"devices": 2},
            -0.0436 * 0.0625 - 0.0126 * 0.25 + 0.0736,
            -0.0117 * math.log(0.25) - 0.0057,
            hermes2_q,
        ),
    ],
    ids=["pcm", "hermes2"],
)
def test_drift_exponent_is_a_folded_normal_and_the_test_can_fail(name, overrides, mu, sigma, q_s):
    device = tl.analog.get(name, **overrides)
    g = np.full(20000, 0.25, "float32")
    nu = np.asarray(device.drift_exponent(g, seed=0), np.float64)
    normals = np.asarray(device.normals(g.shape, seed=0), np.float64)
    np.testing.assert_allclose(nu, np.abs(mu + sigma * normals[1]), rtol=1e-5, atol=1e-7)
    right = stats.kstest(nu, stats.foldnorm(mu / sigma, scale=sigma).cdf)
    assert right.pvalue > 0.01, right
    wrong = stats.kstest(nu, stats.foldnorm(mu / (2 * sigma), scale=2 * sigma).cdf)
    assert wrong.pvalue < 0.01, wrong
    # The sampled chip drifts with these very exponents: with the same seed, the readout is
    # the programmed value g_p times (t / t0)^-nu times the read factor (1 + Q_s(g_p) S(t) z3).
    programmed = np.asarray(device.programmed(g, seed=0), np.float64)
    t = 86400.0
    read = np.asarray(device.sample(g, t, seed=0), np.float64)
    drifted = programmed * ((t + device.t0) / device.t0) ** -nu
    factor = math.sqrt(math.log((t + device.t0 + device.t_read) / (2 * device.t_read)))
    q = np.array([q_s(x) for x in programmed]) * factor
    expected = drifted * np.maximum(1.0 + q * normals[2], 0.0)
    np.testing.assert_allclose(read, expected, rtol=2e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["pcm", "hermes"])
def test_read_noise_grows_like_the_square_root_of_log_time(name):
    device = tl.analog.get(name)
    g = np.full(N, 0.5, "float32")
    times, sds, ses = (60.0, 2592000.0), [], []
    for k, t in enumerate(times):
        seed = 11 + k  # different chips: a statistical, not an algebraic, comparison
        drifted = np.asarray(device.programmed(g, seed), np.float64) * (
            (t + device.t0) / device.t0
        ) ** -np.asarray(device.drift_exponent(g, seed), np.float64)
        relative = np.asarray(device.sample(g, t, seed), np.float64) / drifted - 1.0
        _, sd, _, se = sample_statistics(relative[:, None])
        sds.append(sd[0])
        ses.append(se[0])
    expected = [
        math.sqrt(math.log((t + device.t0 + device.t_read) / (2 * device.t_read))) for t in times
    ]
    ratio = sds[1] / sds[0]
    se_ratio = ratio * math.hypot(ses[0] / sds[0], ses[1] / sds[1])
    assert abs(ratio - expected[1] / expected[0]) < Z * se_ratio, (ratio, expected)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("pcm", {}), ("hermes", {}), ("reram_cmo", {}), ("reram_wan2022", {})],
    ids=["pcm", "hermes", "cmo", "wan2022"],
)
def test_the_same_seed_programs_the_same_chip_at_every_time(name, overrides):
    device = tl.analog.get(name, **overrides)
    g = np.full(20000, 0.5, "float32")
    early, late = (np.asarray(device.sample(g, t, seed=5), np.float64) for t in (1.0, 86400.0))
    other = np.asarray(device.sample(g, 86400.0, seed=6), np.float64)
    same = np.corrcoef(early, late)[0, 1]
    fresh = np.corrcoef(early, other)[0, 1]
    assert same > 0.5, same  # programming noise is shared: the chip is the same
    assert abs(fresh) < 4 / math.sqrt(g.size), fresh  # another seed, another chip
    np.testing.assert_array_equal(np.asarray(device.sample(g, 86400.0, seed=5)), late)


def test_reram_wan2022_keeps_each_devices_standard_deviate_over_time():
    device = tl.analog.get("reram_wan2022")
    g = np.full(5000, 0.5, "float32")
    deviates = [
        (np.asarray(device.sample(g, t, seed=2)) - g) / np.asarray(device.spread(g, t))
        for t in (1.0, 86400.0)
    ]
    np.testing.assert_allclose(deviates[0], deviates[1], atol=1e-3)


def test_devices_without_drift_do_not_change_with_time():
    for name in ("multiplicative", "additive"):
        device = tl.analog.get(name)
        assert not device.has_drift
        a, b = (np.asarray(device.sample(TARGETS, t, seed=1)) for t in (1.0, 1e6))
        np.testing.assert_array_equal(a, b)
    assert all(tl.analog.get(n).has_drift for n in ("pcm", "hermes", "reram_wan2022", "reram_cmo"))


def test_reram_wan2022_clamps_times_outside_its_table_with_a_warning():
    device = tl.analog.get("reram_wan2022")
    g = np.tile(TARGETS.astype("float32"), (1000, 1))
    with pytest.warns(UserWarning, match="t_inference=2592000.0 s is read as 172800 s"):
        late = device.sample(g, 2592000.0, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        last = device.sample(g, 172800.0, seed=3)
    np.testing.assert_array_equal(np.asarray(late), np.asarray(last))
    with pytest.warns(UserWarning, match="t_inference=0.5"):
        early, _ = device.moments(TARGETS, 0.5)
    np.testing.assert_allclose(np.asarray(early), wan_reference(TARGETS, 1.0)[0], rtol=1e-5)


def test_reram_cmo_reads_times_below_one_second_as_one_second():
    device = tl.analog.get("reram_cmo")
    with pytest.warns(UserWarning, match="t_inference=0.0"):
        early = device.sample(TARGETS, 0.0, seed=1)
    np.testing.assert_array_equal(np.asarray(early), np.asarray(device.sample(TARGETS, 1.0, 1)))
