"""`DeviceMapping`: a crossbar whose devices follow a `tl.analog` preset at one inference time.

`MemSE`, `monte_carlo` and the power model read a crossbar through five methods (`gmax_for`,
`kernel_moments`, `sample_kernels`, `conductances`, and the `sigma` / `tia_gain` /
`fold_batchnorm` settings). `Crossbar` implements them for MemSE's own additive noise model;
this class implements them for any `tl.analog` device (PCM, ReRAM, ...), so the mirror and its
Monte-Carlo reference see the very same device: `kernel_moments` is
`tl.analog.weight_moments` and `sample_kernels` draws `tl.analog.perturb_weights`.
"""

import math

import keras
from keras import ops

from tf_lanmax import analog
from tf_lanmax._config import ConfigValue
from tf_lanmax._validation import check_bool, check_positive
from tf_lanmax.memse.crossbar import Crossbar, _check_gmax


@keras.saving.register_keras_serializable(package="tf_lanmax")
class DeviceMapping(ConfigValue):
    """Maps each layer's weights onto a `tl.analog` device and reads it at `t_inference`.

    The device's noise is relative to its conductance range (programming noise, drift and read
    noise scale with g_max), so in weight units it does not depend on Gmax: here Gmax only sets
    the power (`optimize_gmax` refuses a `DeviceMapping`, since no Gmax changes the MSE). For
    the additive model, whose noise is absolute, use `Crossbar` (`as_crossbar` converts).

    Args:
        device: a `tl.analog` preset name or `Device`. Defaults to `"pcm"`.
        t_inference: seconds after programming at which the array is read, >= 0.
            Defaults to `1.0`.
        gmax: Gmax for the power model: a float or {layer name: float}, or None for the
            device's g_max. Defaults to `None`.
        tia_gain: transimpedance gain r of the column amplifiers (power model only).
            Defaults to `1.0`.
        fold_batchnorm: fold an inference BatchNormalization that follows a Dense or
            convolution into its kernel before mapping (see `Crossbar`). Defaults to `True`.

    Example:
    >>> mapping = DeviceMapping("pcm", t_inference=86400.0)
    >>> MemSE(model, mapping).summary(x)["mse"]
    """

    def __init__(self, device="pcm", t_inference=1.0, gmax=None, tia_gain=1.0, fold_batchnorm=True):
        self.device = analog.get(device)
        self.t_inference = check_positive("t_inference", t_inference, allow_zero=True)
        self.gmax = _check_gmax(self.device.g_max if gmax is None else gmax)
        self.tia_gain = check_positive("tia_gain", tia_gain)
        self.fold_batchnorm = check_bool("fold_batchnorm", fold_batchnorm)

    gmax_for = Crossbar.gmax_for

    def with_gmax(self, gmax):
        """A copy with another power-model Gmax (float or {layer name: float})."""
        config = self.get_config()
        config["gmax"] = gmax
        return DeviceMapping.from_config(config)

    @property
    def sigma(self):
        """The standard deviation of a device programmed to 0, in conductance units: the noise
        floor of the power model's amplifier term."""
        _, var = self.device.moments(ops.zeros((1,)), self.t_inference)
        return float(math.sqrt(float(ops.convert_to_numpy(var)[0]))) * self.device.g_max

    def kernel_moments(self, kernel, gmax):
        """Mean and per-weight variance of the read weights (`gmax` does not enter)."""
        del gmax
        return analog.weight_moments(self.device, kernel, t_inference=self.t_inference)

    def sample_kernels(self, kernel, gmax, draws, seed):
        """`draws` independently programmed kernels, stacked on a new leading axis."""
        del gmax
        return analog.sample_weights(
            self.device, kernel, draws, t_inference=self.t_inference, seed=seed
        )

    def conductances(self, kernel, gmax):
        """Programmed (noise-free) conductances ``(G+, G-)`` in the units of `gmax`."""
        g_pos, g_neg = analog.conductances(self.device, kernel)
        if g_neg is None:  # one device per weight
            g_neg = ops.zeros_like(g_pos)
        return gmax * g_pos, gmax * g_neg

    def get_config(self):
        gmax = dict(self.gmax) if isinstance(self.gmax, dict) else self.gmax
        return {
            "device": keras.saving.serialize_keras_object(self.device),
            "t_inference": self.t_inference,
            "gmax": gmax,
            "tia_gain": self.tia_gain,
            "fold_batchnorm": self.fold_batchnorm,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["device"], dict):
            config["device"] = keras.saving.deserialize_keras_object(config["device"])
        return cls(**config)


def as_crossbar(crossbar, t_inference=None):
    """The crossbar `MemSE` reads: a `Crossbar` or `DeviceMapping` as is, a `tl.analog` device
    (or preset name) as its mapping at `t_inference` (None: 1 s).

    The `"additive"` preset with a differential, per-layer mapping becomes the equivalent
    `Crossbar` (same noise law and grid: the device's N levels are `Crossbar(levels=N - 1)`,
    which rounds to k / (N - 1); its Gmax stays differentiable for `optimize_gmax`).
    """
    if isinstance(crossbar, (Crossbar, DeviceMapping)):
        if t_inference is not None:
            raise ValueError(
                "`t_inference` applies to a `tl.analog` device; this crossbar fixes its own. "
                f"Received: t_inference={t_inference!r} with crossbar={crossbar!r}"
            )
        return crossbar
    if not isinstance(crossbar, (str, analog.Device)):
        raise ValueError(
            "`crossbar` must be a Crossbar, a DeviceMapping, a tl.analog Device or one of "
            f"{analog.names()}. Received: crossbar={crossbar!r}"
        )
    device = analog.get(crossbar)
    config = device.get_config()
    levels = config.get("levels")
    if (
        device.name == "additive"
        and config.get("mapping") == "differential"
        and config.get("w_max") == "layer"
        and (levels is None or levels >= 3)
    ):
        # Crossbar(levels=N) rounds |w| / Wmax to k / N: N + 1 values, the device's levels.
        return Crossbar(
            sigma=config["sigma"],
            levels=None if levels is None else levels - 1,
            gmax=config["g_max"],
        )
    return DeviceMapping(device, t_inference=1.0 if t_inference is None else t_inference)
