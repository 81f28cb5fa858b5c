"""`MemSE`: a moment-propagating mirror of a Keras model mapped onto noisy memory."""

import re
import warnings

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_bool, check_int, check_one_of
from tf_lanmax.memse import moments as rules
from tf_lanmax.memse.context import PassConfig
from tf_lanmax.memse.crossbar import Crossbar
from tf_lanmax.memse.device_mapping import as_crossbar
from tf_lanmax.memse.graph import _Handle
from tf_lanmax.memse.mirror_layers import Moments
from tf_lanmax.memse.passes import mirror_graph

COV_MODES = ("probe", "diagonal", "full", "jacobian")
MAPPINGS = ("crossbar", "digital")
REDUCTIONS = ("mean", "max")


def spread_over_outputs(total, var):
    """Spreads each example's total output variance ``(B,)`` over its outputs in the
    proportions of the diagonal rules' variances `var` (evenly where those are all 0).

    >>> var = spread_over_outputs(ops.convert_to_tensor([6.0]), ops.convert_to_tensor([[1.0, 2.0]]))
    >>> ops.convert_to_numpy(var).tolist()
    [[2.0, 4.0]]
    """
    outputs = int(np.prod(var.shape[1:]))
    flat = ops.reshape(var, (-1, outputs))
    sums = ops.sum(flat, axis=-1, keepdims=True)
    positive = ops.greater(sums, 0.0)
    share = ops.where(positive, flat / ops.where(positive, sums, 1.0), 1.0 / outputs)
    return ops.reshape(ops.expand_dims(total, -1) * share, ops.shape(var))


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
            or a `tl.analog` device or preset name (read at `t_inference`).
            Defaults to `Crossbar()`.
        cov_mode: how correlations are kept. `"probe"` (default): means and variances forward
            as in `"diagonal"`, then ONE reverse pass seeded with a random +-1 (Rademacher)
            output probe per example; every mapped layer's per-example weighted squared
            gradient norm ``sum_w S^2_w (d (u . z) / d w)^2`` is, in expectation over the
            probe, the output variance that its weight noise adds, all correlations included
            (weight sharing, residual branches, pooling). It estimates each example's total
            output variance (spread over the outputs in the proportions of the diagonal
            rules); the batch mean has a relative spread of a few percent per
            ``sqrt(batch x probes)``. `"jacobian"`: the same reverse pass with one cotangent
            per output, the exact first-order output covariance per example (about one
            backward pass per output). `"diagonal"`: per-unit variances only (the MemSE
            rules; fast, but blind to the correlation that weight sharing creates across
            the positions of a convolution, so it under-estimates the MSE of CNNs whose later
            layers pool or sum over positions). `"full"`: the full covariance through flat
            activations (Dense layers and what follows a Flatten; convolutions stay
            diagonal). Defaults to `"probe"`.
        maxpool: max-pooling rule, `"max_mean"` or `"clark"`. Defaults to `"max_mean"`.
        t_inference: seconds after programming, with a `tl.analog` device as `crossbar`; None
            is 1 s. Defaults to `None`.
        probes: Rademacher probes per example in `"probe"` mode, >= 1 (the estimate's spread
            falls as ``1 / sqrt(probes)``). Defaults to `1`.
        seed: seed of the probes; the same seed and inputs give the same estimate.
            Defaults to `0`.
        batch_size: examples per pass of `mse`, `summary` and `monte_carlo` (the peak
            memory is that of one chunk). Defaults to `128`.
        verbose: show a `keras.utils.Progbar` over the chunks of `mse` and `summary`.
            Defaults to `False`.
        mapping: where the faulty layers of `tf_lanmax.layers` go. `"crossbar"`: on the
            crossbar like every Dense / convolution, with their deployed weights (the stored
            +-1 or fixed-point values, read live; their bit-fault rates play no part).
            `"digital"`: they keep their digital faults (closed-form moments of the faulty
            stored weights; no Gmax), plain layers going on the crossbar.
            Defaults to `"crossbar"`.
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
        cov_mode="probe",
        maxpool="max_mean",
        t_inference=None,
        probes=1,
        seed=0,
        batch_size=128,
        verbose=False,
        mapping="crossbar",
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        crossbar = as_crossbar(Crossbar() if crossbar is None else crossbar, t_inference)
        self.mapping = check_one_of("mapping", mapping, MAPPINGS)
        self.crossbar = crossbar
        self.cov_mode = check_one_of("cov_mode", cov_mode, COV_MODES)
        self.probes = check_int("probes", probes, low=1)
        if self.probes != 1 and self.cov_mode != "probe":
            warnings.warn(
                f"`probes={probes}` has no effect with cov_mode={cov_mode!r}; it applies to "
                "cov_mode='probe' only.",
                stacklevel=2,
            )
        self.seed = check_int("seed", seed, low=0)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.verbose = check_bool("verbose", verbose)
        self.maxpool = check_one_of("maxpool", maxpool, rules.MAXPOOL_RULES)
        self._model = _Handle(model)
        self.graph = mirror_graph(
            model, crossbar, digital=self.mapping == "digital", maxpool=self.maxpool
        )
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

    def pass_config(self, gmax=None):
        """The read-only `PassConfig` of this mirror's passes over its graph.

        Args:
            gmax: optional {layer name: tensor} overriding the Gmax variables.
                Defaults to `None`.
        """
        values = dict(self.gmax)
        if gmax is not None:
            values.update(gmax)
        return PassConfig(self.crossbar, values, self.cov_mode, self.maxpool)

    # -- evaluations ------------------------------------------------------------------------

    def call(self, inputs):
        state = self.moments(inputs)
        return state.mean, state.var

    def moments(self, x, *, gmax=None, power=None, record=None, contributions=None, seed=None):
        """The output `Moments` of the batch `x` (one pass, no chunking).

        Args:
            x: a batch of inputs.
            gmax: optional {layer name: tensor} overriding the Gmax variables.
                Defaults to `None`.
            power: optional dict filled with {layer name: (device, tia)} per-sample power.
                Defaults to `None`.
            record: optional dict filled with every node's (forward, diagonal) `Moments`.
                Defaults to `None`.
            contributions: optional dict filled, in `"jacobian"` and `"probe"` modes, with
                {layer name: ``(batch, outputs)`` output variance due to that layer's weight
                noise} (in `"probe"` mode, each example's estimate spread evenly over the
                outputs). Defaults to `None`.
            seed: seed of the probes (`"probe"` mode). Defaults to `None` (the mirror's).

        Returns:
            `Moments(mean, var, cov)`; `cov` is ``(batch, n, n)`` in `"full"` mode (flat
            outputs) and `"jacobian"` mode, else None.
        """
        config = self.pass_config(gmax)
        reverse = self.cov_mode in ("jacobian", "probe")
        forward = self.graph.run_moments(x, config, record=record, power=power, save=reverse)
        state = forward.output
        if not reverse:
            return state
        if self.cov_mode == "probe":
            seed = self.seed if seed is None else check_int("seed", seed, low=0)
            energy, layers = self.graph.run_probe(
                state.mean, config, forward.saved, self.probes, seed
            )  # (B, P)
            if contributions is not None:
                outputs = int(np.prod(state.mean.shape[1:]))
                even = ops.ones((1, outputs), dtype=state.mean.dtype) / outputs
                for name, value in layers.items():
                    contributions[name] = ops.mean(value, axis=-1, keepdims=True) * even
            return Moments(state.mean, spread_over_outputs(ops.mean(energy, axis=-1), state.var))
        cov, layers = self.graph.run_adjoint(state.mean, config, forward.saved)
        var = ops.reshape(ops.diagonal(cov, axis1=-2, axis2=-1), ops.shape(state.mean))
        if contributions is not None:
            contributions.update(layers)
        return Moments(state.mean, var, cov)

    def clean(self, x, *, record=None):
        """The clean network's output (logits when an output softmax is skipped).

        Args:
            x: a batch of inputs.
            record: optional dict filled with every node's clean output. Defaults to `None`.
        """
        return self.graph.run_values(x, self.pass_config(), "clean", record=record)

    def covariance(self, x):
        """Output covariance ``(batch, n, n)`` (diagonal in `"diagonal"` and `"probe"` modes)."""
        state = self.moments(x)
        return state.cov if state.cov is not None else rules.diagonal_covariance(state.var)

    def _mse_batch(self, x, gmax=None, seed=None):
        state = self.moments(x, gmax=gmax, seed=seed)
        return state.var + ops.square(state.mean - self.clean(x))

    def chunks(self, count, batch_size=None):
        """``(start, stop, seed)`` of the chunks of `count` examples that `mse` and `summary`
        evaluate one at a time (`batch_size` None: the mirror's); chunk 0 uses the mirror's
        seed, the others seeds derived from it."""
        batch_size = batch_size or self.batch_size
        for index, start in enumerate(range(0, count, batch_size)):
            seed = self.seed
            if index:
                seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0] >> 1)
            yield start, min(start + batch_size, count), seed

    def mse(self, x, gmax=None):
        """Predicted MSE per sample and output, ``Var + (E - z)^2``: ``(batch, outputs)``.

        Inputs of known length run in chunks of `batch_size` examples (with a progress bar
        when `verbose`), so the peak memory is that of one chunk.
        """
        count = x.shape[0] if hasattr(x, "shape") else len(x)
        if not isinstance(count, int) or count <= self.batch_size:
            return self._mse_batch(x, gmax)
        progress = keras.utils.Progbar(count, unit_name="example") if self.verbose else None
        parts = []
        for start, stop, seed in self.chunks(count):
            parts.append(self._mse_batch(x[start:stop], gmax, seed))
            if progress is not None:
                progress.update(stop)
        return ops.concatenate(parts, axis=0)

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
        mse = self._mse_batch(x, gmax)
        if reduction == "max":
            return ops.mean(ops.max(mse, axis=-1))
        return ops.mean(mse)

    def power(self, x, gmax=None):
        """Expected crossbar power per layer on the batch `x` (mean over samples).

        Returns:
            `(total, layers)`: a scalar tensor and {name: (device, tia)} scalar tensors.
        """
        sink = {}
        self.graph.run_moments(x, self.pass_config(gmax), power=sink)  # forward suffices
        layers = {name: (ops.mean(d), ops.mean(t)) for name, (d, t) in sink.items()}
        total = sum(d + t for d, t in layers.values()) if layers else ops.zeros(())
        return total, layers

    def summary(self, x, batch_size=None):
        """Predicted MSE, its variance/bias split and per-layer values, averaged over `x`.

        Per layer, the MSE of that layer's output against the clean network's (mean over
        samples and units; hidden layers always by the forward, diagonal rules); crossbar
        layers also report their power. In `"jacobian"` mode, `noise_contributions` gives the
        output variance due to each mapped layer's weight noise.

        Args:
            x: inputs (array-like).
            batch_size: samples per pass. Defaults to `None` (the mirror's `batch_size`).

        Returns:
            A JSON-ready dict.
        """
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, low=1)
        x = np.asarray(x)
        sums, per_output, power_sums, contrib_sums, count = {}, 0.0, {}, {}, 0
        output_key = next(n.key for n in self.graph.nodes if n.output == self.graph.output_key)
        progress = keras.utils.Progbar(len(x), unit_name="example") if self.verbose else None
        for start, stop, seed in self.chunks(len(x), batch_size):
            xb = x[start:stop]
            analytic, clean, power, contrib = {}, {}, {}, {}
            analytic[output_key] = self.moments(
                xb, power=power, record=analytic, contributions=contrib, seed=seed
            )
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
            if progress is not None:
                progress.update(stop)
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
