"""Phase-change memory (PCM) with the fits of Nandakumar et al. (aihwkit `PCMLikeNoiseModel`)."""

import keras
from keras import ops

from tf_lanmax.analog.pcm_like import PCMLike, clipped_log_fit

# Q_s = 0.0088 / g^0.65 reaches its cap 0.2 at g = 0.044^(1 / 0.65): the kink of the read noise.
_Q_CAP_KINK = (0.0088 / 0.2) ** (1.0 / 0.65)


@keras.saving.register_keras_serializable(package="tf_lanmax")
class PCM(PCMLike):
    """PCM devices with the programming, drift and read-noise fits of Nandakumar et al. 2019.

    The `PCMLike` chain with (``g`` the normalised target, ``g_p`` the programmed value):

    - programming: ``sigma_p = (0.26348 + 1.9650 g - 1.1731 g^2) uS`` at g_max = 25 uS, i.e.
      ``sigma_p / 25`` in normalised units, then clipped at 0;
    - drift: ``t0 = 20 s``; ``mu_nu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)``,
      ``sigma_nu = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)``, ``nu = |N(mu_nu, sigma_nu^2)|``;
    - read: ``Q_s = min(0.0088 / max(g_p^0.65, 1e-3), 0.2)``, ``t_read = 250 ns``, clipped at 0.

    Args:
        g_max: maximum conductance in uS (the noise scales with it, so normalised results do
            not depend on it). Defaults to `25.0`.
        levels: None or the number of conductance levels (>= 2). Defaults to `None`.
        mapping: `"differential"` or `"single"`. Defaults to `"differential"`.
        w_max: `"layer"` or `"column"`. Defaults to `"layer"`.
        drift_compensation: apply aihwkit's `GlobalDriftCompensation` per layer in
            `tl.analog.perturb_weights` / `weight_moments` (see `PCMLike`). Defaults to `False`.

    Raises:
        ValueError: as `Device`, or for a non-bool `drift_compensation`.

    Example:
    >>> pcm = tl.analog.get("pcm", drift_compensation=True)
    >>> w_day = tl.analog.perturb_weights(pcm, kernel, t_inference=86400.0, seed=0)

    References: Nandakumar et al., "Phase-change memory models for deep learning training and
    inference", ICECS 2019; Joshi et al., "Accurate deep neural network inference using
    computational phase-change memory", Nat. Commun. 11, 2473 (2020); aihwkit
    `PCMLikeNoiseModel` and `GlobalDriftCompensation`.
    """

    name = "pcm"
    t0 = 20.0
    t_read = 250e-9
    programming_coefficients = (0.26348, 1.9650, -1.1731)
    programming_reference = 25.0
    read_breaks = (_Q_CAP_KINK,)

    def __init__(
        self,
        g_max=25.0,
        levels=None,
        mapping="differential",
        w_max="layer",
        drift_compensation=False,
    ):
        super().__init__(g_max, levels, mapping, w_max, drift_compensation)

    def _drift_parameters(self, g):
        mu = clipped_log_fit(g, -0.0155, 0.0244, 0.049, 0.1)
        sd = clipped_log_fit(g, -0.0125, -0.0059, 0.008, 0.045)
        return mu, sd

    def _read_q(self, g_prog):
        powered = ops.power(ops.maximum(g_prog, 1e-7), 0.65)
        return ops.minimum(0.0088 / ops.maximum(powered, 1e-3), 0.2)
