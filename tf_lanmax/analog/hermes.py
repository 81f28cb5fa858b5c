"""IBM's HERMES 64-core PCM chip (Le Gallo et al. 2023; aihwkit `HermesNoiseModel`)."""

import math

import keras
from keras import ops

from tf_lanmax._validation import check_int, check_positive
from tf_lanmax.analog.pcm_like import PCMLike, clipped_log_fit, polynomial

# Per number of devices per conductance: characterised g_max (uS), programming polynomial (uS,
# in g / g_max, for that g_max), drift start t0 (s), and the branch point and fit of the read
# noise's Q_s below it (slope, offset, clip low, clip high) and above it (cubic coefficients).
_FITS = {
    2: {
        "g_max": 20.7,
        "programming": (0.16603222, 4.71806468, -8.48101252, 4.68961419),
        "t0": 300.0,
        "sigma_nu": (0.3055, (-0.0117, -0.0057, 0.0091, 0.04), (0.0073, 0.0093, -0.0118)),
        "q": (0.16, (-0.0117, -0.0069, 0.015, 0.04), (0.0123, 0.0211, -0.0280, 0.0069)),
    },
    1: {
        "g_max": 10.35,
        "programming": (0.15781817, 2.32443916, -2.16310839, 0.68841818),
        "t0": 200.0,
        "sigma_nu": (0.3039, (-0.0120, -0.0023, 0.0124, 0.04), (0.0104, 0.0116, -0.0165)),
        "q": (0.1591, (-0.0078, 0.0038, 0.0179, 0.04), (0.0088, 0.0768, -0.1352, 0.0664)),
    },
}

# The drift exponent's mean, shared by both: a clipped log fit below 0.0945, a quadratic above.
_MU_NU = (0.0945, (-0.0387, -0.0182, 0.072, 0.13), (0.0736, -0.0126, -0.0436))


def _branches(g, fit):
    split, (slope, offset, low, high), upper = fit
    below = clipped_log_fit(g, slope, offset, low, high)
    return ops.where(g < split, below, polynomial(upper, g))


def _kinks(fit):
    # Where the low branch meets its clips, and the branch point itself.
    split, (slope, offset, low, high), _ = fit
    return tuple(sorted({math.exp((bound - offset) / slope) for bound in (low, high)} | {split}))


@keras.saving.register_keras_serializable(package="tf_lanmax")
class Hermes(PCMLike):
    """PCM devices of the HERMES chip, with aihwkit's fits of its measured statistics.

    The `PCMLike` chain (programming noise clipped at 0, drift exponent ``|N(mu_nu,
    sigma_nu^2)|`` drawn once per device, 1/f read noise clipped at 0) with the HERMES fits:

    - `devices` = 2 (default): g_max = 20.7 uS, programming ``sigma_p = 0.16603 + 4.71806 g
      - 8.48101 g^2 + 4.68961 g^3`` uS, t0 = 300 s;
    - `devices` = 1: g_max = 10.35 uS, ``0.15782 + 2.32444 g - 2.16311 g^2 + 0.68842 g^3`` uS,
      t0 = 200 s;
    - t_read = 512 ns.

    Drift and read noise follow the same laws as `PCM` but with HERMES's own piecewise fits
    (aihwkit `HermesNoiseModel`), not the PCM ones: ``mu_nu = clip(-0.0387 ln g - 0.0182,
    0.072, 0.13)`` for g < 0.0945, else ``-0.0436 g^2 - 0.0126 g + 0.0736``; ``sigma_nu`` and
    the read noise's ``Q_s(g_p)`` are clipped log fits below a branch point and polynomials
    above (branch points 0.3055 / 0.16 for two devices, 0.3039 / 0.1591 for one).

    `devices` counts the PCM devices that together hold one conductance of the unit cell
    (HERMES's 4-device cells hold G+ and G- on two devices each), as aihwkit's `num_devices`
    does: both settings are differential pairs by default. aihwkit models the two devices of a
    conductance as if they held the same value, which overstates the drift spread measured on
    chip (its documented simplification); so does this model.

    Args:
        devices: PCM devices per conductance, 1 or 2. Defaults to `2`.
        g_max: maximum conductance in uS, at most the characterised 20.7 (two devices) or 10.35
            (one), or None for that value. The noise scales with it (aihwkit), so normalised
            results do not depend on it. Defaults to `None`.
        levels: None or the number of conductance levels (>= 2). Defaults to `None`.
        mapping: `"differential"` or `"single"`. Defaults to `"differential"`.
        w_max: `"layer"` or `"column"`. Defaults to `"layer"`.
        drift_compensation: aihwkit's `GlobalDriftCompensation` per layer in
            `tl.analog.perturb_weights` / `weight_moments`. Defaults to `False`.

    Raises:
        ValueError: for `devices` not 1 or 2, a `g_max` above the characterised value, and as
            `PCMLike`.

    Example:
    >>> chip = tl.analog.get("hermes", devices=1)
    >>> chip.moments([0.1, 0.5], t_inference=3600.0)

    References: Le Gallo et al., "A 64-core mixed-signal in-memory compute chip based on
    phase-change memory for deep neural network inference", Nat. Electron. 6, 680 (2023);
    Nandakumar et al., ICECS 2019 (the modelling method); aihwkit `HermesNoiseModel`.
    """

    name = "hermes"
    t_read = 512e-9

    def __init__(
        self,
        devices=2,
        g_max=None,
        levels=None,
        mapping="differential",
        w_max="layer",
        drift_compensation=False,
    ):
        self.devices = check_int("devices", devices, low=1, high=2)
        fit = _FITS[self.devices]
        if g_max is None:
            g_max = fit["g_max"]
        if check_positive("g_max", g_max) > fit["g_max"]:
            raise ValueError(
                f"`g_max` must be at most {fit['g_max']} uS, the characterised maximum with "
                f"devices={self.devices}. Received: g_max={g_max!r}"
            )
        super().__init__(g_max, levels, mapping, w_max, drift_compensation)
        self.t0 = fit["t0"]
        self.programming_coefficients = fit["programming"]
        self.programming_reference = fit["g_max"]
        self.read_breaks = _kinks(fit["q"])
        self._fit = fit

    def _drift_parameters(self, g):
        return _branches(g, _MU_NU), _branches(g, self._fit["sigma_nu"])

    def _read_q(self, g_prog):
        return _branches(g_prog, self._fit["q"])

    def get_config(self):
        return {"devices": self.devices, **super().get_config()}
