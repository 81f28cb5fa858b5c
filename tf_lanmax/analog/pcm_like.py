"""`PCMLike`: programming noise, power-law drift and 1/f read noise of phase-change memory."""

import math

from keras import ops

from tf_lanmax._validation import check_bool
from tf_lanmax.analog import normal
from tf_lanmax.analog._checks import check_normalised
from tf_lanmax.analog.device import Device

#: Floor of the target conductance in the drift-exponent fits (aihwkit's ``_ZERO_CLIP``).
TARGET_FLOOR = 1e-7


def polynomial(coefficients, x):
    """``sum_i c_i x^i`` (Horner), coefficients from the constant term up."""
    result = ops.zeros_like(x) + coefficients[-1]
    for c in reversed(coefficients[:-1]):
        result = result * x + c
    return result


class PCMLike(Device):
    """The statistical PCM model of Nandakumar et al. (ICECS 2019), shared by PCM presets.

    For a normalised target ``g`` (one device of a pair):

    1. programming: ``g_p = max(g + sigma_p(g) z1, 0)``, ``sigma_p`` a polynomial in g given in
       uS for the preset's reference g_max (divided by it here, so in normalised units it does
       not depend on `g_max`, as aihwkit scales it with g_max);
    2. drift, from ``t0`` after programming: ``g_d = g_p (t / t0)^(-nu)``, ``t = t_inference +
       t0``, with ``nu = |mu_nu(g) + sigma_nu(g) z2|`` drawn once per device from the target
       (floored at 1e-7);
    3. read (accumulated 1/f) noise: ``g' = max(g_d + |g_d| Q_s(g_p) sqrt(ln((t + t_read) /
       (2 t_read))) z3, 0)``.

    z1, z2, z3 are independent standard normals, drawn in this order. `moments` integrates the
    chain: the drift factor has the closed form of a folded normal's Laplace transform, the
    read noise on ``g_d >= 0`` is ``g_d max(1 + q z3, 0)`` (rectified-normal moments), and the
    programming noise is integrated by Gauss-Legendre quadrature split at ``g_p = 0`` and at
    the kinks of ``Q_s``.

    Subclasses set `t0`, `t_read`, `programming_coefficients`, `programming_reference`,
    `read_breaks` and implement `_drift_parameters` and `_read_q`.

    Args:
        g_max: maximum conductance in uS.
        levels: None or the number of conductance levels (>= 2).
        mapping: `"differential"` or `"single"`.
        w_max: `"layer"` or `"column"`.
        drift_compensation: whether `tl.analog.perturb_weights` rescales each layer by aihwkit's
            global drift compensation: ``alpha = sum |w_prog| / sum |w'(t)|`` on the same chip,
            where ``w_prog`` is the layer read right after programming (programming noise only,
            no drift nor read noise). Per-device `sample` / `moments` never compensate.
    """

    has_drift = True
    stages = 3
    t0 = None
    t_read = None
    programming_coefficients = ()
    programming_reference = None
    read_breaks = ()

    def __init__(self, g_max, levels, mapping, w_max, drift_compensation):
        super().__init__(g_max, levels, mapping, w_max)
        self.drift_compensation = check_bool("drift_compensation", drift_compensation)

    # -- public extras -------------------------------------------------------------------------

    def programmed(self, g, seed=None):
        """The programmed conductances ``g_p`` of the chip `seed` (before drift and read noise).

        Args:
            g: normalised targets in [0, 1].
            seed: int, None or `keras.random.SeedGenerator`; the same seed as in `sample` gives
                the same chip. Defaults to `None`.

        Returns:
            float32 tensor shaped like `g`.

        Raises:
            ValueError: for a concrete `g` outside [0, 1].

        Example:
        >>> pcm = tl.analog.get("pcm")
        >>> g_p = pcm.programmed([0.5, 0.5], seed=3)   # sample(..., seed=3) drifts from these
        """
        g = self.quantize(check_normalised("g", g))
        return self._program(g, self.normals(ops.shape(g), seed)[0])

    def drift_exponent(self, g, seed=None):
        """The drift exponents ``nu = |mu_nu + sigma_nu z2|`` of the chip `seed`.

        Args:
            g: normalised targets in [0, 1].
            seed: as in `sample`; the same seed gives the same chip. Defaults to `None`.

        Returns:
            float32 tensor shaped like `g`.

        Raises:
            ValueError: for a concrete `g` outside [0, 1].

        Example:
        >>> nu = tl.analog.get("pcm").drift_exponent([0.25] * 1000, seed=0)  # |N(0.049, 0.011^2)|
        """
        g = self.quantize(check_normalised("g", g))
        return self._exponent(g, self.normals(ops.shape(g), seed)[1])

    # -- the chain -----------------------------------------------------------------------------

    def _programming_sd(self, g):
        return ops.abs(polynomial(self.programming_coefficients, g)) / self.programming_reference

    def _drift_parameters(self, g):
        """``(mu_nu, sigma_nu)`` of the drift exponent's normal, from targets floored at 1e-7."""
        raise NotImplementedError

    def _read_q(self, g_prog):
        """``Q_s`` of the read noise from the programmed conductance (normalised)."""
        raise NotImplementedError

    def _program(self, g, z):
        return ops.relu(g + self._programming_sd(g) * z)

    def _exponent(self, g, z):
        mu, sd = self._drift_parameters(ops.maximum(g, TARGET_FLOOR))
        return ops.abs(mu + sd * z)

    def _log_drift_time(self, t):
        return math.log((t + self.t0) / self.t0)

    def _read_factor(self, t):
        t = t + self.t0
        return math.sqrt(math.log((t + self.t_read) / (2.0 * self.t_read)))

    def _sample(self, g, t, normals):
        g_prog = self._program(g, normals[0])
        drifted = g_prog * ops.exp(-self._exponent(g, normals[1]) * self._log_drift_time(t))
        q = self._read_q(g_prog) * self._read_factor(t)
        return ops.relu(drifted + drifted * q * normals[2])

    def _moments(self, g, t):
        log_t = self._log_drift_time(t)
        factor = self._read_factor(t)
        mu, sd = self._drift_parameters(ops.maximum(g, TARGET_FLOOR))
        d1 = normal.folded_exp_moment(mu, sd, log_t)
        d2 = normal.folded_exp_moment(mu, sd, 2.0 * log_t)

        def read(x):
            g_prog = ops.relu(x)
            r1, r2 = normal.rectified_raw_moments(1.0, self._read_q(g_prog) * factor)
            return g_prog * r1, g_prog * g_prog * r2

        breaks = (0.0, *self.read_breaks)
        i1, i2 = normal.normal_expectation(read, g, self._programming_sd(g), breaks)
        mean = d1 * i1
        return mean, ops.maximum(d2 * i2 - mean * mean, 0.0)

    def _reference(self, g, normals):
        # Drift compensation's baseline: the same chip right after programming.
        return self._program(g, normals[0])

    def _reference_moments(self, g):
        return normal.rectified_moments(g, self._programming_sd(g))

    def get_config(self):
        return {**super().get_config(), "drift_compensation": self.drift_compensation}


def clipped_log_fit(g, slope, offset, low, high):
    """``clip(slope ln(g) + offset, low, high)`` with g floored at 1e-7."""
    return ops.clip(slope * ops.log(ops.maximum(g, TARGET_FLOOR)) + offset, low, high)
