"""Per-layer Gmax under a power budget, and the MSE-vs-power curve.

The noise MSE of a crossbar layer falls as ``1 / Gmax^2`` while its power grows linearly
(devices) and quadratically (amplifiers) with Gmax, so layers that matter less for the output
can take a smaller Gmax and free power for the layers that matter more. `optimize_gmax`:

1. finds the best single Gmax that meets the budget (the predicted MSE falls with Gmax and the
   power grows with it, so it is the one at the budget: a bisection);
2. starts the per-layer search from the exact optimum of the first-order model
   ``MSE = b + sum_l c_l / g_l^2``, ``P = sum_l (d_l g_l + t_l g_l^2 + f_l)`` (a Lagrangian
   solved by bisection on the multiplier), fitted from one mirror pass;
3. refines it by gradient descent (Adam, through `keras.Model.fit`, so on any backend) on
   ``log Gmax`` of the penalised objective ``log MSE + lambda relu(log(P / P_budget))^2`` with
   the mirror's differentiable predicted MSE and power;
4. rescales the result by one common factor so that its power equals the budget exactly, so
   that the comparison with the single Gmax is at equal power.
"""

import dataclasses
import math
import re

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_int, check_one_of, check_positive
from tf_lanmax.memse.device_mapping import DeviceMapping
from tf_lanmax.memse.graph import _Handle
from tf_lanmax.memse.mirror import REDUCTIONS, MemSE

GRANULARITIES = ("network", "layer")


@dataclasses.dataclass
class GmaxResult:
    """Result of `optimize_gmax` (all values predicted by the mirror on the calibration data).

    Attributes:
        gmax: {layer name: Gmax} found.
        crossbar: the crossbar with that per-layer Gmax (pass it to `monte_carlo`).
        predicted_mse: predicted MSE at `gmax`.
        power: predicted power at `gmax` (equals the budget).
        power_budget: the budget.
        baseline: {"gmax", "predicted_mse", "power", "crossbar"} of the best single Gmax.
        initial_gmax: the first-order (Lagrangian) starting point, rescaled to the budget.
        history: per gradient step {"step", "loss"}.
        granularity: `"layer"` or `"network"`.
    """

    gmax: dict
    crossbar: object
    predicted_mse: float
    power: float
    power_budget: float
    baseline: dict
    initial_gmax: dict
    history: list
    granularity: str

    def to_dict(self):
        baseline = {k: v for k, v in self.baseline.items() if k != "crossbar"}
        return {
            "granularity": self.granularity,
            "power_budget": self.power_budget,
            "gmax": self.gmax,
            "predicted_mse": self.predicted_mse,
            "power": self.power,
            "baseline": baseline,
            "initial_gmax": self.initial_gmax,
            "history": self.history,
        }


def calibration_inputs(data, max_samples=256):
    """The first `max_samples` inputs of an array, an `(x, y)` tuple or an iterable of
    `(x, y)` / `x` batches (e.g. a `tf.data.Dataset`), as a float32 numpy array."""
    max_samples = check_int("max_samples", max_samples, low=1)
    if isinstance(data, tuple) and len(data) == 2 and not np.isscalar(data[0]):
        data = data[0]
    if hasattr(data, "shape"):
        return np.asarray(ops.convert_to_numpy(data), dtype=np.float32)[:max_samples]
    parts, count = [], 0
    for batch in data:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = np.asarray(ops.convert_to_numpy(x), dtype=np.float32)
        parts.append(x)
        count += len(x)
        if count >= max_samples:
            break
    if not parts:
        raise ValueError("`data` holds no samples. Received an empty iterable.")
    return np.concatenate(parts)[:max_samples]


def _float(x):
    if isinstance(x, keras.Variable):  # its value: np.array(variable) warns on JAX (NumPy 2)
        x = x.value
    return float(ops.convert_to_numpy(x))


class _Problem:
    """Predicted MSE and power of one mirror on fixed calibration inputs."""

    def __init__(self, mirror, x, objective):
        self.mirror = mirror
        self.x = ops.convert_to_tensor(x)
        self.objective = objective
        self.clean = ops.stop_gradient(mirror.clean(self.x))
        self.names = list(mirror.gmax)

    def mse(self, state):
        mse = state.var + ops.square(state.mean - self.clean)
        if self.objective == "max":
            return ops.mean(ops.max(mse, axis=-1))
        return ops.mean(mse)

    def evaluate(self, gmax, contributions=None):
        sink = {}
        state = self.mirror.moments(self.x, gmax=gmax, power=sink, contributions=contributions)
        power = sum(ops.mean(d) + ops.mean(t) for d, t in sink.values())
        return self.mse(state), power, sink

    def power(self, gmax):
        return _float(self.mirror.power(self.x, self._tensors(gmax))[0])

    def values(self, gmax):
        mse, power, _ = self.evaluate(self._tensors(gmax))
        return _float(mse), _float(power)

    def _tensors(self, gmax):
        return {n: ops.convert_to_tensor(float(g), "float32") for n, g in gmax.items()}

    def scale_to_budget(self, gmax, budget, bounds):
        """The largest common factor s with P(s gmax) <= budget, by bisection.

        Power grows with Gmax at the operating point but not everywhere: at a tiny Gmax the
        noisy activations drive the next crossbars hard. The search walks down from the
        largest allowed scale by factors of 2 to the first scale under the budget, then
        bisects between it and the one above.
        """

        def scaled(log_s):
            return {n: g * math.exp(log_s) for n, g in gmax.items()}

        hi = math.log(bounds[1] / max(gmax.values()))
        floor = math.log(bounds[0] / min(gmax.values()))
        if self.power(scaled(hi)) <= budget:
            return scaled(hi)
        lo = hi
        while True:
            lo -= math.log(2.0)
            if lo < floor:
                raise ValueError(
                    f"`power_budget` is below the power of every allowed Gmax (bounds {bounds}). "
                    f"Received: power_budget={budget!r}"
                )
            if self.power(scaled(lo)) <= budget:
                break
            hi = lo
        for _ in range(24):  # the bracket is a factor 2 wide: 2^-24 relative precision
            mid = 0.5 * (lo + hi)
            if self.power(scaled(mid)) > budget:
                hi = mid
            else:
                lo = mid
        return scaled(lo)


def _first_order_optimum(problem, reference, budget, bounds):
    """Exact optimum of the separable first-order model fitted around `reference`."""
    contributions = {}
    mse, _, sink = problem.evaluate(problem._tensors(reference), contributions)
    _, _, sink2 = problem.evaluate(problem._tensors({n: 2 * g for n, g in reference.items()}))
    names = problem.names
    c = np.array([_float(ops.mean(contributions.get(n, ops.zeros(())))) for n in names])
    if not np.all(c > 0):
        return dict(reference)
    d = np.array([_float(ops.mean(sink[n][0])) for n in names])
    t1 = np.array([_float(ops.mean(sink[n][1])) for n in names])
    t2 = np.array([_float(ops.mean(sink2[n][1])) for n in names])
    quad = np.maximum((t2 - t1) / 3.0, 0.0)
    floor = t1 - quad
    g0 = np.array([reference[n] for n in names])
    lo_g, hi_g = bounds[0] / g0, bounds[1] / g0

    def allocation(lam):
        # d/dg [c / g^2 + lam (d g + quad g^2)] = 0  <=>  lam (d g^3 + 2 quad g^4) = 2 c
        g = np.empty_like(c)
        for i in range(len(c)):
            lo, hi = math.log(lo_g[i]), math.log(hi_g[i])
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                x = math.exp(mid)
                if lam * (d[i] * x**3 + 2 * quad[i] * x**4) > 2 * c[i]:
                    hi = mid
                else:
                    lo = mid
            g[i] = math.exp(lo)
        return g

    def power(g):
        return float(np.sum(d * g + quad * g**2 + floor))

    lo, hi = -60.0, 60.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if power(allocation(math.exp(mid))) > budget:
            lo = mid
        else:
            hi = mid
    g = allocation(math.exp(hi))
    return {n: float(g0[i] * g[i]) for i, n in enumerate(names)}


def _log_name(name):
    return "log_gmax_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


class _GmaxObjective(keras.Model):
    """A model whose only trainable weights are ``log Gmax``; its loss is the penalised
    objective, so `fit` runs the gradient steps on any backend."""

    def __init__(self, problem, init, budget, penalty):
        super().__init__(name="gmax_objective")
        self._problem = _Handle(problem)
        self.budget = float(budget)
        self.penalty = float(penalty)
        self.log_gmax = {
            name: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(math.log(init[name])),
                dtype="float32",
                name=_log_name(name),
            )
            for name in problem.names
        }

    def call(self, inputs):
        gmax = {name: ops.exp(v) for name, v in self.log_gmax.items()}
        mse, power, _ = self._problem.value.evaluate(gmax)
        over = ops.relu(ops.log(power / self.budget))
        self.add_loss(ops.log(mse) + self.penalty * ops.square(over))
        return ops.zeros_like(inputs) + mse

    def gmax(self):
        return {name: math.exp(_float(v)) for name, v in self.log_gmax.items()}


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({"step": epoch + 1, "loss": float((logs or {}).get("loss", "nan"))})


def optimize_gmax(
    model,
    crossbar=None,
    data=None,
    power_budget=None,
    granularity="layer",
    steps=20,
    learning_rate=0.02,
    penalty=100.0,
    objective="mean",
    cov_mode="probe",
    max_samples=64,
    bounds=(1e-2, 1e3),
):
    """Gmax per crossbar layer minimising the predicted MSE under a power budget.

    Args:
        model: a Keras model (mirrored with `crossbar`) or a `MemSE` mirror.
        crossbar: the `Crossbar` (its sigma, levels, ...; its Gmax is replaced).
            Defaults to `None` (only with a `MemSE`).
        data: calibration inputs: an array, an `(x, y)` tuple or an iterable of batches.
        power_budget: the power budget (the mirror's power units), > 0.
        granularity: `"layer"` (one Gmax per crossbar layer) or `"network"` (one for all:
            the best single Gmax). Defaults to `"layer"`.
        steps: gradient steps after the first-order start (0: the first-order optimum,
            rescaled). Defaults to `20`.
        learning_rate: Adam learning rate on ``log Gmax``. Defaults to `0.02`.
        penalty: weight lambda of the squared budget violation. Defaults to `100.0`.
        objective: `"mean"` (MSE averaged over samples and outputs) or `"max"` (largest
            output MSE, averaged over samples, as the MemSE reference). Defaults to `"mean"`.
        cov_mode: the mirror's covariance mode when `model` is a Keras model.
            Defaults to `"probe"` (the diagonal rules mis-rank the layers of a CNN).
        max_samples: calibration samples used. Defaults to `64`.
        bounds: allowed Gmax range. Defaults to `(1e-2, 1e3)`.

    Returns:
        A `GmaxResult`.

    Raises:
        ValueError: for a bad argument, or a budget below the power at the smallest Gmax.

    Example:
    >>> model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> crossbar = Crossbar(sigma=0.02)
    >>> budget, _ = MemSE(model, crossbar).power(x_train[:64])  # the power at Gmax = 1
    >>> result = optimize_gmax(model, crossbar, x_train[:64], power_budget=float(budget))
    >>> monte_carlo(model, result.crossbar, x_test[:64]).mse
    """
    if isinstance(model, MemSE):
        mirror = model
        crossbar = mirror.crossbar if crossbar is None else crossbar
    else:
        mirror = MemSE(model, crossbar, cov_mode=cov_mode)
    if isinstance(mirror.crossbar, DeviceMapping):
        raise ValueError(
            f"Device '{mirror.crossbar.device.name}' has noise relative to its conductance range: "
            "no Gmax changes the MSE in weight units, so there is nothing to optimise (Gmax sets "
            "only the power). Allowed: a Crossbar (additive noise, absolute sigma)."
        )
    if power_budget is None:
        raise ValueError("`power_budget` must be a float > 0. Received: power_budget=None")
    budget = check_positive("power_budget", power_budget)
    granularity = check_one_of("granularity", granularity, GRANULARITIES)
    objective = check_one_of("objective", objective, REDUCTIONS)
    steps = check_int("steps", steps, low=0)
    learning_rate = check_positive("learning_rate", learning_rate)
    penalty = check_positive("penalty", penalty)
    lo, hi = (check_positive("bounds[0]", bounds[0]), check_positive("bounds[1]", bounds[1]))
    if not lo < hi:
        raise ValueError(f"`bounds` must be (low, high) with low < high. Received: {bounds!r}")
    if not mirror.gmax:
        raise ValueError("The model has no crossbar-mapped layer: there is no Gmax to optimise.")
    if data is None:
        raise ValueError("`data` must hold calibration inputs. Received: data=None")
    x = calibration_inputs(data, max_samples)
    problem = _Problem(mirror, x, objective)

    single = problem.scale_to_budget(dict.fromkeys(problem.names, 1.0), budget, (lo, hi))
    base_mse, base_power = problem.values(single)
    baseline = {
        "gmax": float(next(iter(single.values()))),
        "predicted_mse": base_mse,
        "power": base_power,
        "crossbar": crossbar.with_gmax(single),
    }
    if granularity == "network":
        return GmaxResult(
            single, baseline["crossbar"], base_mse, base_power, budget, baseline, single, [],
            granularity,
        )  # fmt: skip

    init = problem.scale_to_budget(
        _first_order_optimum(problem, single, budget, (lo, hi)), budget, (lo, hi)
    )
    candidates = [(*problem.values(single), single), (*problem.values(init), init)]
    history = []
    if steps:
        objective_model = _GmaxObjective(problem, init, budget, penalty)
        objective_model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), jit_compile=False, run_eagerly=False
        )
        recorder = _Recorder()
        objective_model.fit(
            np.zeros((1, 1), "float32"), epochs=steps, batch_size=1, verbose=0,
            callbacks=[recorder],
        )  # fmt: skip
        history = recorder.history
        refined = problem.scale_to_budget(objective_model.gmax(), budget, (lo, hi))
        candidates.append((*problem.values(refined), refined))
    # The gradient steps refine second-order effects; keep whichever point is best.
    mse, power, gmax = min(candidates, key=lambda c: c[0])
    return GmaxResult(
        gmax, crossbar.with_gmax(gmax), mse, power, budget, baseline, init, history, granularity
    )


def mse_power_curve(model, crossbar=None, data=None, budgets=(), **kwargs):
    """Predicted MSE against the power budget, single Gmax vs per-layer Gmax.

    Args:
        model: a Keras model or a `MemSE` mirror.
        crossbar: the `Crossbar`. Defaults to `None` (only with a `MemSE`).
        data: calibration inputs (as `optimize_gmax`).
        budgets: power budgets, each > 0.
        **kwargs: passed to `optimize_gmax`.

    Returns:
        A list of JSON-ready dicts, one per budget: `power_budget`, `single` (gmax, predicted
        MSE, power) and `per_layer` (gmax dict, predicted MSE, power).
    """
    if not budgets:
        raise ValueError("`budgets` must hold at least one power budget. Received: budgets=()")
    mirror = model if isinstance(model, MemSE) else None
    if mirror is None:
        mirror = MemSE(model, crossbar, cov_mode=kwargs.pop("cov_mode", "probe"))
    rows = []
    for budget in budgets:
        result = optimize_gmax(mirror, crossbar, data, budget, **kwargs)
        rows.append(
            {
                "power_budget": float(budget),
                "single": {k: v for k, v in result.baseline.items() if k != "crossbar"},
                "per_layer": {
                    "gmax": result.gmax,
                    "predicted_mse": result.predicted_mse,
                    "power": result.power,
                },
            }
        )
    return rows
