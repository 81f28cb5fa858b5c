"""`MemSE`: a moment-propagating mirror of a Keras model mapped onto noisy memory."""

import re

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_int, check_one_of
from tf_lanmax.layers import deployment_model, faulty_layers
from tf_lanmax.memse import moments as rules
from tf_lanmax.memse.crossbar import Crossbar
from tf_lanmax.memse.device_mapping import DeviceMapping, as_crossbar
from tf_lanmax.memse.graph import Graph, _Handle
from tf_lanmax.memse.mirror_layers import Context, Moments

COV_MODES = ("diagonal", "full", "jacobian")
REDUCTIONS = ("mean", "max")


def _variable_name(name):
    return "gmax_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


class MemSE(keras.layers.Layer):
    """Analytic MSE of a Keras model whose weights live in noisy memory.

    The mirror propagates per-sample means and variances (optionally the full covariance of
    flat activations) through the model's graph: Dense/convolution layers with noisy weights
    (crossbar noise for plain layers, closed-form digital-fault moments for the faulty layers
    of `tf_lanmax.layers`), BatchNorm (folded or affine), ReLU by Gaussian moment matching,
    pooling, reshapes and residual Adds. The predicted MSE of output j
    against the clean network is ``MSE_j = Var[Z_j] + (E[Z_j] - z_j)^2``.

    Each crossbar-mapped layer has its Gmax in a non-trainable scalar variable
    (`mirror.gmax[name]`), initialised from the crossbar. The model's weights are read live, so
    the predicted MSE is differentiable in them (see `MemSEPenaltyModel`).

    Args:
        model: a built Sequential or Functional `keras.Model` with one input and one output.
        crossbar: a `Crossbar` (MemSE's additive noise with quantisation), a `DeviceMapping`,
            or a `tl.analog` device or preset name (read at `t_inference`). With an analog
            device, faulty layers are mapped with their deployed (stored) weights: the mirror
            walks `tl.layers.deployment_model(model)`, a snapshot of the stored values.
            Defaults to `Crossbar()`.
        cov_mode: how correlations are kept. `"diagonal"`: per-unit variances only (the
            MemSE rules; fast, but blind to the correlation that weight sharing creates across
            the positions of a convolution, so it under-estimates the MSE of CNNs whose later
            layers pool or sum over positions). `"full"`: the full covariance through flat
            activations (Dense layers and what follows a Flatten; convolutions stay
            diagonal). `"jacobian"`: means and variances forward as in `"diagonal"`, then one
            reverse pass with a cotangent per output gives the exact first-order output
            covariance of every layer's weight noise, all correlations included (weight
            sharing, residual branches, pooling); it costs about one backward pass per
            output. Defaults to `"diagonal"`.
        maxpool: max-pooling rule, `"max_mean"` or `"clark"`. Defaults to `"max_mean"`.
        t_inference: seconds after programming, with a `tl.analog` device as `crossbar`; None
            is 1 s. Defaults to `None`.
        **kwargs: `keras.layers.Layer` arguments (`name`, ...).

    Example:
    >>> cb = Crossbar(sigma=0.01, levels=128, gmax=2.0)
    >>> mirror = MemSE(model, cb)
    >>> mean, var = mirror(x)
    >>> mirror.mse(x)  # (batch, outputs) predicted MSE against the clean logits

    Reference: Kern et al., arXiv:2205.01707.
    """

    def __init__(
        self,
        model,
        crossbar=None,
        cov_mode="diagonal",
        maxpool="max_mean",
        t_inference=None,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        crossbar = as_crossbar(Crossbar() if crossbar is None else crossbar, t_inference)
        if isinstance(crossbar, DeviceMapping) and faulty_layers(model):
            deployed = deployment_model(model)
            if deployed is None:
                raise ValueError(
                    f"Model '{model.name}' has faulty layers and is subclassed: an analog device "
                    "holds their deployed (stored) weights, which needs a Sequential or "
                    "Functional model (tl.layers.deployment_model)."
                )
            model = deployed
        self.crossbar = crossbar
        self.cov_mode = check_one_of("cov_mode", cov_mode, COV_MODES)
        self.maxpool = check_one_of("maxpool", maxpool, rules.MAXPOOL_RULES)
        self._model = _Handle(model)
        self.graph = Graph(model, crossbar)
        self.gmax = {
            name: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(crossbar.gmax_for(name)),
                trainable=False,
                dtype="float32",
                autocast=False,
                name=_variable_name(name),
            )
            for name in self.graph.crossbar_layers
        }
        self.built = True

    @property
    def model(self):
        return self._model.value

    @property
    def skipped_output_activation(self):
        """The output softmax/sigmoid MemSE skips to measure the logits (or None)."""
        return self.graph.skipped_output_activation

    # -- Gmax -------------------------------------------------------------------------------

    def gmax_values(self):
        """Current Gmax per crossbar layer, {name: float}."""
        return {name: float(ops.convert_to_numpy(v.value)) for name, v in self.gmax.items()}

    def set_gmax(self, gmax):
        """Assigns Gmax: one float for every crossbar layer or a dict {name: float}."""
        values = gmax if isinstance(gmax, dict) else dict.fromkeys(self.gmax, gmax)
        unknown = sorted(set(values) - set(self.gmax))
        if unknown:
            raise ValueError(
                f"`gmax` names layers that are not crossbar-mapped: {unknown}. "
                f"Allowed: {sorted(self.gmax)}"
            )
        checked = Crossbar(gmax=values).gmax if values else {}
        for name, value in checked.items():
            self.gmax[name].assign(value)

    def mapped_crossbar(self):
        """The crossbar with this mirror's current per-layer Gmax (for `monte_carlo`)."""
        return self.crossbar.with_gmax(self.gmax_values()) if self.gmax else self.crossbar

    def _context(self, gmax=None, power=None, kernels=None):
        values = dict(self.gmax)
        if gmax is not None:
            values.update(gmax)
        return Context(self.crossbar, values, self.cov_mode, self.maxpool, power, kernels)

    # -- evaluations ------------------------------------------------------------------------

    def call(self, inputs):
        state = self.moments(inputs)
        return state.mean, state.var

    def moments(self, x, gmax=None, power=None, record=None, contributions=None):
        """The output `Moments` of the batch `x`.

        Args:
            x: a batch of inputs.
            gmax: optional {layer name: tensor} overriding the Gmax variables.
                Defaults to `None`.
            power: optional dict filled with {layer name: (device, tia)} per-sample power.
                Defaults to `None`.
            record: optional dict filled with every node's (forward, diagonal) `Moments`.
                Defaults to `None`.
            contributions: optional dict filled, in `"jacobian"` mode, with {layer name:
                ``(batch, outputs)`` output variance due to that layer's weight noise}.
                Defaults to `None`.

        Returns:
            `Moments(mean, var, cov)`; `cov` is ``(batch, n, n)`` in `"full"` mode (flat
            outputs) and `"jacobian"` mode, else None.
        """
        ctx = self._context(gmax, power)
        if self.cov_mode != "jacobian":
            return self.graph.run_moments(x, ctx, record)
        ctx.saved = {}
        state = self.graph.run_moments(x, ctx, record)
        cov = self.graph.run_adjoint(state.mean, ctx)
        var = ops.reshape(ops.diagonal(cov, axis1=-2, axis2=-1), ops.shape(state.mean))
        if contributions is not None:
            contributions.update(ctx.contributions)
        return Moments(state.mean, var, cov)

    def clean(self, x, record=None):
        """The clean network's output (logits when an output softmax is skipped)."""
        return self.graph.run_values(x, self._context(), "clean", record)

    def covariance(self, x):
        """Output covariance ``(batch, n, n)`` (diagonal in `"diagonal"` mode)."""
        state = self.moments(x)
        return state.cov if state.cov is not None else rules.diagonal_covariance(state.var)

    def mse(self, x, gmax=None):
        """Predicted MSE per sample and output, ``Var + (E - z)^2``: ``(batch, outputs)``."""
        state = self.moments(x, gmax)
        return state.var + ops.square(state.mean - self.clean(x))

    def penalty(self, x, reduction="mean", gmax=None):
        """Scalar predicted MSE on a batch, differentiable in the model's weights and Gmax.

        Args:
            x: a batch of inputs.
            reduction: `"mean"` over samples and outputs, or `"max"`: the mean over samples of
                the largest output MSE (the MemSE reference's optimisation target).
                Defaults to `"mean"`.
            gmax: optional {name: tensor} overriding the Gmax variables. Defaults to `None`.
        """
        check_one_of("reduction", reduction, REDUCTIONS)
        mse = self.mse(x, gmax)
        if reduction == "max":
            return ops.mean(ops.max(mse, axis=-1))
        return ops.mean(mse)

    def power(self, x, gmax=None):
        """Expected crossbar power per layer on the batch `x` (mean over samples).

        Returns:
            `(total, layers)`: a scalar tensor and {name: (device, tia)} scalar tensors.
        """
        sink = {}
        self.graph.run_moments(x, self._context(gmax, sink))  # the forward pass suffices
        layers = {name: (ops.mean(d), ops.mean(t)) for name, (d, t) in sink.items()}
        total = sum(d + t for d, t in layers.values()) if layers else ops.zeros(())
        return total, layers

    def summary(self, x, batch_size=256):
        """Predicted MSE, its variance/bias split and per-layer values, averaged over `x`.

        Per layer, the MSE of that layer's output against the clean network's (mean over
        samples and units; hidden layers always by the forward, diagonal rules); crossbar
        layers also report their power. In `"jacobian"` mode, `noise_contributions` gives the
        output variance due to each mapped layer's weight noise.

        Args:
            x: inputs (array-like).
            batch_size: samples per pass. Defaults to `256`.

        Returns:
            A JSON-ready dict.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        x = np.asarray(x)
        sums, per_output, power_sums, contrib_sums, count = {}, 0.0, {}, {}, 0
        output_key = next(n.key for n in self.graph.nodes if n.output == self.graph.output_key)
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            analytic, clean, power, contrib = {}, {}, {}, {}
            analytic[output_key] = self.moments(xb, None, power, analytic, contrib)
            self.clean(xb, record=clean)
            for name, value in contrib.items():
                row = contrib_sums.setdefault(name, np.zeros(1))
                row += float(ops.convert_to_numpy(ops.sum(ops.mean(value, axis=-1))))
            n = len(xb)
            for key, state in analytic.items():
                var = ops.convert_to_numpy(state.var).reshape(n, -1).astype(np.float64)
                bias2 = ops.convert_to_numpy(state.mean - clean[key]).reshape(n, -1) ** 2.0
                row = sums.setdefault(key, np.zeros(2))
                row += [var.mean(axis=1).sum(), bias2.mean(axis=1).sum()]
                if key == output_key:
                    per_output = per_output + (var + bias2).sum(axis=0)
            for name, (device, tia) in power.items():
                row = power_sums.setdefault(name, np.zeros(2))
                row += [float(ops.convert_to_numpy(ops.sum(d))) for d in (device, tia)]
            count += n
        layers = {
            key: {"mse": (v + b) / count, "variance": v / count, "bias2": b / count}
            for key, (v, b) in sums.items()
        }
        power_layers = {
            name: {"device": d / count, "tia": t / count, "total": (d + t) / count}
            for name, (d, t) in power_sums.items()
        }
        return {
            **layers[output_key],
            "per_output_mse": (np.asarray(per_output) / count).tolist(),
            "cov_mode": self.cov_mode,
            "layers": layers,
            "noise_contributions": {k: float(v[0]) / count for k, v in contrib_sums.items()},
            "power": {
                "total": sum(r["total"] for r in power_layers.values()),
                "layers": power_layers,
            },
            "gmax": self.gmax_values(),
            "skipped_output_activation": self.skipped_output_activation,
            "samples": count,
        }

    def get_config(self):
        raise NotImplementedError(
            "MemSE mirrors a live model and is not serialisable; rebuild it with "
            "MemSE(model, crossbar) after loading the model."
        )
