"""Statistical oracles of the `tl.analog` presets, at fixed seeds.

For every preset, target g in {0.05, 0.25, 0.5, 0.9} and inference time: the mean and standard
deviation of 200 000 sampled readouts agree with an independent reference within `Z_GRID`
standard errors, and so do `moments()`; `moments()` also agrees with the reference to
quadrature precision (0.2 % of the standard deviation), far below the standard errors.

The references (`analog_oracles`) follow the published formulas in numpy/scipy: closed forms
where they exist (multiplicative, additive, the rectified normal of Wan et al.), else
`scipy.integrate.quad` over the chain (PCM, HERMES: the programming normal and the folded normal
of the drift exponent, with the read noise's rectified moments; CMO: the relaxed normal with the
clipped read normal's moments).

Standard errors as in `analog_oracles`. Threshold: a single statistical check at 3 standard
errors raises a false alarm once in 370; the grid makes 256 such checks (8 presets, 4 targets,
4 times, mean and sd), so at 3 standard errors one of them would fail by chance with probability
1 - 0.9973^256 = 50 %. The grid uses the Bonferroni threshold of a 1 % family-wise false-alarm
rate instead, ``Z_GRID = Phi^-1(1 - 0.01 / (2 * 256)) = 4.11`` standard errors.
"""

import numpy as np
import pytest
from analog_oracles import (
    additive_reference,
    bonferroni_z,
    cmo_reference,
    hermes_reference,
    multiplicative_reference,
    pcm_reference,
    sample_statistics,
    wan_reference,
    within,
)

import tf_lanmax as tl

TARGETS = np.array([0.05, 0.25, 0.5, 0.9])
TIMES = (1.0, 3600.0, 86400.0, 2592000.0)
N = 200_000


CASES = [
    ("multiplicative", {}, multiplicative_reference, TIMES),
    ("additive", {}, additive_reference, TIMES),
    ("pcm", {}, pcm_reference, TIMES),
    ("hermes", {"devices": 2}, hermes_reference(2), TIMES),
    ("hermes", {"devices": 1}, hermes_reference(1), TIMES),
    ("reram_wan2022", {}, wan_reference, (1.0, 3600.0, 86400.0, 172800.0)),
    ("reram_cmo", {"acceptance_range": 0.002}, cmo_reference(0.002), TIMES),
    ("reram_cmo", {"acceptance_range": 0.02}, cmo_reference(0.02), TIMES),
]
IDS = ["multiplicative", "additive", "pcm", "hermes2", "hermes1", "wan2022", "cmo0.2%", "cmo2%"]
GRID_CHECKS = 2 * len(TARGETS) * sum(len(case[3]) for case in CASES)
Z_GRID = bonferroni_z(GRID_CHECKS)  # 4.11 standard errors for 256 checks


@pytest.mark.parametrize(("name", "overrides", "reference", "times"), CASES, ids=IDS)
def test_samples_and_moments_agree_with_the_published_model(name, overrides, reference, times):
    device = tl.analog.get(name, **overrides)
    grid = np.tile(TARGETS.astype("float32"), (N, 1))
    for k, t in enumerate(times):
        expected = np.array([reference(float(g), t) for g in TARGETS])
        ref_mean, ref_sd = expected[:, 0], np.sqrt(expected[:, 1])
        mean, sd, se_mean, se_sd = sample_statistics(device.sample(grid, t, seed=100 + k))
        label = f"{name}{overrides} t={t:g}"
        within(f"{label} sample mean", mean, ref_mean, se_mean, Z_GRID)
        within(f"{label} sample sd", sd, ref_sd, se_sd, Z_GRID)
        m, v = (np.asarray(x, np.float64) for x in device.moments(TARGETS, t))
        within(f"{label} moments() mean vs samples", m, mean, se_mean, Z_GRID)
        within(f"{label} moments() sd vs samples", np.sqrt(v), sd, se_sd, Z_GRID)
        # moments() vs the reference: quadrature precision, far below the standard errors.
        np.testing.assert_allclose(m, ref_mean, rtol=0, atol=2e-3 * ref_sd.min() + 1e-7)
        np.testing.assert_allclose(np.sqrt(v), ref_sd, rtol=2e-3, atol=1e-7)
