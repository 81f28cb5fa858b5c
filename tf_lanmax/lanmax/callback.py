"""The LaNMax callback: learn a fault rate per layer inside `model.fit`."""

import math
import warnings

import keras
import numpy as np

from tf_lanmax._validation import check_int, check_one_of, check_positive, check_probability
from tf_lanmax.distribute import shared_seed
from tf_lanmax.energy import EnergyModel
from tf_lanmax.lanmax.ols import fit_rate_gradient
from tf_lanmax.layers import faulty_layers

PERTURBATIONS = ("log_uniform", "additive_uniform")


class LaNMax(keras.callbacks.Callback):
    """Learns every faulty layer's fault rate p during `fit` by regression on batch losses.

    Each training batch runs at rates ``p~_l = exp(x_l + r u_l)``, ``u ~ U[-1, 1]`` i.i.d. around
    the current ``x_l = ln p_l``, and records the point ``(x~ - x, t, J)`` with
    ``J = alpha * E(p~) + loss`` (E: bit-weighted mean energy, 1 = reliable memory; loss: *this
    batch's* loss). After the epoch's last batch an OLS fit ``J ~ 1 + (x~ - x) + t`` gives the
    slopes ``dJ/d ln p_l``, and ``x_l <- clip(x_l - clip(lr * slope_l, +-max_step), ln p_min,
    ln p_max)``. No extra forward pass: the points come from the training batches themselves.

    Between batches (and so for validation, checkpoints and evaluation) every layer holds its
    unperturbed p. The energy term is exactly linear in ln p (slope ``-B_l / (a B)``), so the
    regression's noise is all in the loss slope.

    The batch loss is ``logs["batch_loss"]`` when a custom `train_step` reports it; otherwise it is
    recovered from Keras' running epoch mean as ``(i+1) m_i - i m_(i-1)``, exact for equal batch
    sizes, so the epoch's last batch (possibly smaller) is left out of the fit. A non-finite
    batch loss is skipped and counted (with the running mean, every later batch of that epoch is
    then non-finite too). Per-layer p, eta and energy go into the epoch `logs` (History,
    CSVLogger, TensorBoard see them if listed after this callback).

    Args:
        alpha: weight of the energy term, >= 0 (nats of loss per unit of mean energy). Larger
            alpha pushes p up (less energy). Defaults to `1.0`.
        energy_model: a `tl.EnergyModel`. Defaults to `EnergyModel()` (a = 12.8).
        radius: perturbation half-width r (nats of ln p for `"log_uniform"`; for
            `"additive_uniform"`, a fraction of the current p). Defaults to `0.5`.
        perturbation: `"log_uniform"` or `"additive_uniform"` (lineage fidelity). Defaults to
            `"log_uniform"`.
        learning_rate: lr_p of the update on ln p. Defaults to `10.0`.
        max_step: largest change of ln p per epoch. Defaults to `0.25`.
        p_min: lower bound of p. Defaults to `None` (the reliable p0 = exp(-a)).
        p_max: upper bound of p, <= 0.5. Defaults to `0.5`.
        warmup_epochs: epochs that record points but do not update p. Defaults to `1`.
        time_regressor: add the within-epoch time column to the fit. Defaults to `True`.
        seed: seed of the perturbations (one stream per epoch, so a resumed run draws the same).
            Defaults to `None` (a fresh seed per `fit`, the chief's on every worker under a
            multi-worker strategy).

    Example:
    >>> lanmax = tl.LaNMax(alpha=1.0, seed=0)
    >>> model.fit(train, epochs=10, callbacks=[lanmax])
    >>> lanmax.rates  # learned p per layer

    Reference: Henwood, Leduc-Primeau, Savaria, arXiv:1912.10764; ALGORITHMS.md §4.
    """

    def __init__(
        self,
        alpha=1.0,
        energy_model=None,
        radius=0.5,
        perturbation="log_uniform",
        learning_rate=10.0,
        max_step=0.25,
        p_min=None,
        p_max=0.5,
        warmup_epochs=1,
        time_regressor=True,
        seed=None,
    ):
        super().__init__()
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.energy_model = energy_model or EnergyModel()
        self.radius = check_positive("radius", radius)
        self.perturbation = check_one_of("perturbation", perturbation, PERTURBATIONS)
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.max_step = check_positive("max_step", max_step)
        self.p_max = check_probability("p_max", p_max)
        p_min = self.energy_model.p0 if p_min is None else p_min
        self.p_min = check_probability("p_min", p_min)
        if not self.p_min < self.p_max:
            raise ValueError(
                f"`p_min` must be < `p_max` = {self.p_max:g}. Received: p_min={p_min!r}"
            )
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, low=0)
        self.time_regressor = bool(time_regressor)
        self.seed = seed if seed is None else check_int("seed", seed, low=0)
        self.layers = []
        self.trajectory = []
        self.fits = []
        self.skipped_batches = 0

    # -- state --------------------------------------------------------------------------------
    @property
    def rates(self):
        """Current (unperturbed) p per layer, as a dict {layer name: p}."""
        return {layer.name: math.exp(x) for layer, x in zip(self.layers, self._x, strict=True)}

    def _bounds(self):
        return math.log(self.p_min), math.log(self.p_max)

    def _assign(self, log_rates):
        # On JAX, `fit` holds the variables' values in its own state during an epoch; reading
        # `self.model` syncs that state back (Keras' documented callback behaviour), and the
        # trainer then takes the next step's state from the variables, so the new p is used.
        _ = self.model
        for layer, x in zip(self.layers, log_rates, strict=True):
            layer.fault_rate.assign(math.exp(x))

    def _mean_energy(self, log_rates):
        return self.energy_model.mean_energy(self._bits, np.exp(log_rates))

    # -- training hooks ------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        steps_per_execution = getattr(self.model, "steps_per_execution", 1) or 1
        if int(steps_per_execution) != 1:
            raise ValueError(
                "LaNMax perturbs p per batch, so it needs `steps_per_execution=1` in "
                f"`model.compile`. Received: steps_per_execution={steps_per_execution}"
            )
        self.layers = [
            layer for layer in faulty_layers(self.model) if layer.fault_model.name != "none"
        ]
        if not self.layers:
            raise ValueError(
                f"LaNMax found no faulty layer in model '{self.model.name}': use "
                "tl.FaultyDense / tl.FaultyConv2D (with a fault model other than 'none')."
            )
        self._bits = np.array([layer.stored_bits for layer in self.layers], dtype=np.float64)
        self._x = None  # read at the first epoch, after BackupAndRestore's on_train_begin
        # Under a multi-worker strategy every worker runs this callback, and all must draw the
        # same perturbed p: without a seed they share the chief's (tf_lanmax.distribute).
        self._seed = self.seed if self.seed is not None else shared_seed(self.model)

    def _read_rates(self):
        # Continue from the layers' current p: after BackupAndRestore that is the learned p.
        low, high = self._bounds()
        current = np.array(
            [float(keras.ops.convert_to_numpy(layer.fault_rate.value)) for layer in self.layers]
        )
        self._x = np.clip(np.log(np.maximum(current, 1e-300)), low, high)
        self._assign(self._x)

    def on_epoch_begin(self, epoch, logs=None):
        if self._x is None:
            self._read_rates()
        self._epoch = epoch
        self._rng = np.random.default_rng([self._seed, epoch])
        self._points = []
        self._previous_mean = 0.0
        self._epoch_skipped = 0
        self._updated = False
        self._steps = self.params.get("steps") if self.params else None

    def on_train_batch_begin(self, batch, logs=None):
        low, high = self._bounds()
        u = self._rng.uniform(-1.0, 1.0, size=len(self.layers))
        if self.perturbation == "log_uniform":
            x_tilde = np.clip(self._x + self.radius * u, low, high)
        else:
            p = np.exp(self._x)
            p_tilde = np.clip(p * (1.0 + self.radius * u), self.p_min, self.p_max)
            x_tilde = np.log(p_tilde)
        self._x_tilde = x_tilde
        self._assign(x_tilde)

    def _batch_loss(self, batch, logs):
        if "batch_loss" in logs:
            return float(logs["batch_loss"]), True
        mean = float(logs["loss"])
        # Keras 3 logs the running mean of the epoch: undo it (equal batch sizes).
        loss = (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        last = self._steps is not None and batch + 1 == self._steps
        return loss, not last

    def on_train_batch_end(self, batch, logs=None):
        self._assign(self._x)  # unperturbed p between batches, for validation and checkpoints
        loss, usable = self._batch_loss(batch, logs or {})
        if not math.isfinite(loss):
            self._epoch_skipped += 1
            self.skipped_batches += 1
        elif usable:
            t = batch / self._steps if self._steps else float(batch)
            objective = self.alpha * self._mean_energy(self._x_tilde) + loss
            self._points.append((self._x_tilde - self._x, t, objective, loss))
        if self._steps is not None and batch + 1 == self._steps:
            self._update()  # before any on_epoch_end: checkpoints see the new p

    def _update(self):
        if self._updated:
            return
        self._updated = True
        record = {"epoch": self._epoch, "points": len(self._points), "updated": False}
        needed = len(self.layers) + 2 + int(self.time_regressor)
        if self._epoch < self.warmup_epochs:
            record["reason"] = "warm-up"
        elif len(self._points) < needed:
            record["reason"] = f"{len(self._points)} points < {needed} needed"
            warnings.warn(
                f"LaNMax: epoch {self._epoch} has {len(self._points)} usable batches, fewer "
                f"than the {needed} the fit needs; p is not updated. Use more batches per epoch "
                "(smaller batch_size) or fewer faulty layers.",
                stacklevel=2,
            )
        else:
            dx = np.array([p[0] for p in self._points])
            times = np.array([p[1] for p in self._points]) if self.time_regressor else None
            objective = np.array([p[2] for p in self._points])
            slopes, stderr, _ = fit_rate_gradient(dx, objective, times)
            step = np.clip(-self.learning_rate * slopes, -self.max_step, self.max_step)
            self._x = np.clip(self._x + step, *self._bounds())
            record.update(updated=True, slopes=slopes.tolist(), stderr=stderr.tolist())
            self.fits.append(record)
        record["skipped"] = self._epoch_skipped
        self.last_points = self._points
        self._assign(self._x)
        self._last_record = record

    def on_epoch_end(self, epoch, logs=None):
        self._update()  # when the number of steps is unknown (first epoch of a generator)
        record = self._last_record
        rates = np.exp(self._x)
        etas = np.atleast_1d(self.energy_model.eta(rates))
        entry = {"epoch": epoch, "rates": self.rates, "mean_energy": self._mean_energy(self._x)}
        self.trajectory.append(entry)
        if logs is not None:
            for layer, p, eta, bits in zip(self.layers, rates, etas, self._bits, strict=True):
                logs[f"{layer.name}_p"] = float(p)
                logs[f"{layer.name}_eta"] = float(eta)
                logs[f"{layer.name}_energy"] = float(bits * eta)
            for layer, slope in zip(self.layers, record.get("slopes", []), strict=False):
                logs[f"{layer.name}_slope"] = float(slope)
            logs["memory_energy"] = entry["mean_energy"]
            logs["energy_ratio"] = 1.0 / entry["mean_energy"]
            logs["lanmax_points"] = float(record["points"])
            logs["lanmax_skipped"] = float(record["skipped"])
