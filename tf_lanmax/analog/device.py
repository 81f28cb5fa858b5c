"""`Device`: the base class of the analog (memristor) device models."""

import math

import keras
from keras import ops

from tf_lanmax._config import ConfigValue
from tf_lanmax._validation import check_int, check_one_of, check_positive
from tf_lanmax.analog._checks import check_normalised, check_time

MAPPINGS = ("differential", "single")
W_MAX_MODES = ("layer", "column")


class Device(ConfigValue):
    """A statistical model of one analog memory device: target conductance -> noisy readout.

    Conductances are normalised, ``g_hat = g / g_max`` in [0, 1]. `sample` draws one readout
    of every device at the inference time `t_inference` (seconds after programming);
    `moments` gives its mean and variance in closed form or by quadrature. The mapping of a
    layer's weights onto devices is described by `mapping` and `w_max` and carried out by
    `tl.analog.perturb_weights` / `tl.analog.weight_moments`.

    Random numbers are drawn in a fixed order (the programming normal, then the drift normal,
    then the read normal, as a tensor of shape ``(stages,) + g.shape``), so one seed is one
    programmed chip at every inference time: evaluations at several times with the same seed
    follow the same devices as they drift.

    Subclasses set `name`, `has_drift`, `stages` and implement `_sample(g, t, normals)` and
    `_moments(g, t)` on quantised float32 tensors.

    Attributes:
        name: the preset's name (`tl.analog.names()`).
        has_drift: whether `t_inference` changes the result.
        stages: how many standard normals each device draws (programming, drift, read).
        drift_compensation: whether `perturb_weights` rescales a layer against drift (only
            PCM-like devices offer it).

    Args:
        g_max: maximum conductance in uS, > 0.
        levels: None (analog devices) or the number of programmable levels, >= 2: targets are
            rounded to the nearest of ``k / (levels - 1)``, k = 0 .. levels - 1, before the
            programming noise.
        mapping: `"differential"` (a pair per weight, ``g+ = max(w, 0) / W_max``,
            ``g- = max(-w, 0) / W_max``) or `"single"` (one device per weight,
            ``g = (w / W_max + 1) / 2``).
        w_max: `"layer"` (W_max = max |w| of the kernel) or `"column"` (one W_max per output
            column: the max over all axes but the last).

    Raises:
        ValueError: for a `g_max` <= 0, `levels` < 2, or an unknown `mapping` / `w_max`.
    """

    name = None
    has_drift = False
    stages = 1
    drift_compensation = False

    def __init__(self, g_max, levels=None, mapping="differential", w_max="layer"):
        self.g_max = check_positive("g_max", g_max)
        self.levels = None if levels is None else check_int("levels", levels, low=2)
        self.mapping = check_one_of("mapping", mapping, MAPPINGS)
        self.w_max = check_one_of("w_max", w_max, W_MAX_MODES)

    # -- public API --------------------------------------------------------------------------

    def sample(self, g, t_inference=1.0, seed=None):
        """One noisy readout of devices programmed to the normalised targets `g`.

        Args:
            g: normalised target conductances in [0, 1] (tensor, array or number; any shape).
            t_inference: seconds since programming, >= 0. Defaults to `1.0`.
            seed: int, None or a `keras.random.SeedGenerator`. The same seed programs the same
                chip at every `t_inference`. Defaults to `None`.

        Returns:
            float32 tensor shaped like `g`: the readout normalised by `g_max`.

        Raises:
            ValueError: for a negative `t_inference` or a concrete `g` outside [0, 1].

        Example:
        >>> pcm = tl.analog.get("pcm")
        >>> pcm.sample([0.0, 0.5, 1.0], t_inference=3600.0, seed=0)
        """
        t = self._time(t_inference)
        g = self.quantize(check_normalised("g", g))
        return self._sample(g, t, self.normals(ops.shape(g), seed))

    def moments(self, g, t_inference=1.0):
        """Mean and variance of `sample(g, t_inference)` per device, in normalised units.

        Differentiable in `g` (the rounding of `levels` passes the gradient straight through).

        Args:
            g: normalised target conductances in [0, 1].
            t_inference: seconds since programming, >= 0. Defaults to `1.0`.

        Returns:
            `(mean, variance)`, float32 tensors shaped like `g`.

        Raises:
            ValueError: for a negative `t_inference` or a concrete `g` outside [0, 1].

        Example:
        >>> mean, var = tl.analog.get("reram_wan2022").moments([0.1, 0.9], t_inference=86400.0)
        """
        t = self._time(t_inference)
        return self._moments(self.quantize(check_normalised("g", g)), t)

    def quantize(self, g):
        """Targets rounded to the `levels` grid ``k / (levels - 1)`` (straight-through gradient).

        Args:
            g: normalised targets (float32 tensor).

        Returns:
            `g` itself for analog devices (`levels=None`), else the quantised targets.
        """
        if self.levels is None:
            return g
        steps = self.levels - 1
        quantized = ops.round(ops.clip(g, 0.0, 1.0) * steps) / steps
        return g + ops.stop_gradient(quantized - g)

    def normals(self, shape, seed=None):
        """The standard normals of one programmed chip: shape ``(stages,) + shape``.

        Drawn as one flat vector and reshaped when the shape is static (JAX compiles a flat
        draw several times faster than a multi-dimensional one).
        """
        shape = tuple(shape)
        if all(isinstance(d, int) for d in shape):
            flat = keras.random.normal((self.stages * math.prod(shape),), seed=seed)
            return ops.reshape(flat, (self.stages, *shape))
        return keras.random.normal((self.stages, *shape), seed=seed)

    # -- what a model implements ---------------------------------------------------------------

    def _time(self, t_inference):
        # The time the model evaluates at (a device may clamp it to its fitted range).
        return check_time(t_inference)

    def _sample(self, g, t, normals):
        raise NotImplementedError

    def _moments(self, g, t):
        raise NotImplementedError

    def get_config(self):
        return {
            "g_max": self.g_max,
            "levels": self.levels,
            "mapping": self.mapping,
            "w_max": self.w_max,
        }
