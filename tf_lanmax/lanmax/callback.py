"""The LaNMax callback: the Keras adapter of `RateEstimator`, one fault rate per voltage domain."""

import math
import os
import warnings

import keras
import numpy as np
from keras import ops

from tf_lanmax._validation import check_int, check_positive
from tf_lanmax.distribute import shared_seed
from tf_lanmax.energy import EnergyModel
from tf_lanmax.energy.accounting import layer_bit_counts, mean_memory_energy
from tf_lanmax.lanmax import model_state, resume
from tf_lanmax.lanmax.domains import check_domains, domain_log_rates, resolve_domains
from tf_lanmax.lanmax.estimator import RateEstimator
from tf_lanmax.layers import faulty_layers


class LaNMax(keras.callbacks.Callback):
    """Learns the fault rate p of every voltage domain during `fit` by regression on batch losses.

    Each training batch runs at rates ``p~_d = exp(x_d + r u_d)``, ``u ~ U[-1, 1]`` i.i.d. per
    domain, around the current ``x_d = ln p_d``, and records the point ``(x~ - x, t, J)`` with
    ``J = alpha E(p~) + loss`` (E: bit-weighted mean memory energy, 1 = reliable memory, counted
    by `tl.energy.accounting`, so protected and ECC check bits count right; loss: *this
    batch's* loss). After the epoch's last batch an OLS fit ``J ~ 1 + (x~ - x) + t`` gives one
    slope ``dJ/d ln p_d`` per domain, and ``x_d <- clip(x_d - clip(lr * slope_d, +-max_step),
    ln p_min, ln p_max)``. No extra forward pass: the points come from the training batches.
    The statistics live in the Keras-free `tl.lanmax.RateEstimator`; this class feeds it.

    **Voltage domains.** Layers on one supply share one p: ``domains=[["conv1", "conv2"],
    ["dense1"]]`` gives the fit one column per domain, and every layer of a domain always holds
    its domain's p (perturbed or not). A domain's slope sums its layers' effects at the same
    standard error, so fewer columns give a clearer signal per epoch, need fewer batches and
    describe real supplies, at the price of less freedom to lower the energy. `domains=None` is
    one domain per layer. A domain's p starts at the smallest p of its layers.

    Between batches (and so for validation, checkpoints and evaluation) every layer holds its
    unperturbed p. The energy term is exactly linear in ln p (slope ``-R_l / (a B)`` summed over
    a domain's layers, for `tl.EnergyModel`), so the regression's noise is all in the loss slope.

    The batch loss is ``logs["batch_loss"]`` when a custom `train_step` reports it; otherwise it
    is recovered from Keras' running epoch mean as ``(i+1) m_i - i m_(i-1)``, exact for equal
    batch sizes, so the epoch's last batch (possibly smaller) is left out of the fit. A
    non-finite batch loss is skipped and counted. Per-layer p, eta and energy (and per-domain p
    and slope when `domains` is set) go into the epoch `logs` (History, CSVLogger, TensorBoard
    see them if listed after this callback).

    **Exact resume** (`backup_dir`). `keras.callbacks.BackupAndRestore` saves the weights, the
    optimizer and (with faulty layers that save it) the fault draws' seed state, but not what
    LaNMax knows inside an epoch: the points so far, the perturbation generator's position, the
    unperturbed ln p in float64. LaNMax writes these to ``<backup_dir>/lanmax_state.jsonl``, one
    line per batch keyed by the optimizer's step count, which the weights file also holds: on
    resume the restored `optimizer.iterations` tells exactly which line the weights match, with
    no coupling to BackupAndRestore's `save_freq`, its callback order or its private file
    layout, and the log is truncated there. A JSON file outside the model (rather than state
    variables) keeps saved models loadable without LaNMax and holds the variable-length points.

    Keras 3.15 resumes a mid-epoch backup at the *start* of that epoch (the batch BackupAndRestore
    records is never read back), so it would train batches 0..b twice. LaNMax therefore keeps a
    copy of the restored weights, optimizer and seed states, lets Keras replay batches 0..b, then
    puts that copy and the metrics' running state back: from batch b+1 on, the run is the
    uninterrupted one (same p, same weights) when every epoch reads the same batches in the same
    order (`shuffle=False` arrays, or a dataset re-iterated each epoch without random shuffling).
    The replay costs b+1 steps, as Keras' own does, and a host copy of the weights and optimizer
    state while it runs; the log holds the previous and the current epoch. Keras limit: after
    a resume, BackupAndRestore writes epoch 0 in its metadata for saves made before
    the resumed epoch ends, so a second interruption in that window restarts Keras at epoch 0;
    LaNMax then finds no matching line, warns and continues from the layers' p. Without
    `backup_dir`, a resume continues from the layers' p (rounded to float32) with fresh points.

    Args:
        alpha: weight of the energy term, >= 0 (nats of loss per unit of mean energy). Larger
            alpha pushes p up (less energy). Defaults to `1.0`.
        energy_model: any energy model with `p0`, `eta(p)`, `rate(eta)` and `get_config()`.
            Defaults to `None` (`tl.EnergyModel()`, a = 12.8).
        radius: perturbation half-width r (nats of ln p for `"log_uniform"`; for
            `"additive_uniform"`, a fraction of the current p). Defaults to `0.5`.
        perturbation: `"log_uniform"` or `"additive_uniform"` (lineage fidelity). Defaults to
            `"log_uniform"`.
        learning_rate: lr_p of the update on ln p. Defaults to `10.0`.
        max_step: largest change of ln p per epoch. Defaults to `0.25`.
        p_min: lower bound of p. Defaults to `None` (the energy model's reliable `p0`).
        p_max: upper bound of p, <= 0.5. Defaults to `0.5`.
        warmup_epochs: epochs that record points but do not update p. Defaults to `1`.
        time_regressor: add the within-epoch time column to the fit. Defaults to `True`.
        seed: seed of the perturbations (one stream per epoch, so a resumed run draws the same).
            Defaults to `None` (a fresh seed per `fit`, the chief's on every worker under a
            multi-worker strategy; kept in the `backup_dir` log for a resume).
        domains: list of non-empty lists of layer names; each fault-prone layer in exactly one.
            Defaults to `None` (one domain per layer).
        backup_dir: folder for LaNMax's resume log (its own, not BackupAndRestore's). The log is
            deleted when `fit` ends normally. Defaults to `None` (no log).

    Example:
    >>> lanmax = tl.LaNMax(alpha=1.0, seed=0, domains=[["hidden", "out"]],
    ...                    backup_dir="run/lanmax")
    >>> model.fit(x, y, epochs=10, shuffle=False, callbacks=[
    ...     lanmax, keras.callbacks.BackupAndRestore("run/backup", save_freq=50)])
    >>> lanmax.rates  # {layer name: learned p}; lanmax.domain_rates: one p per domain

    Reference: Henwood, Leduc-Primeau, Savaria, "Layerwise Noise Maximisation to Train
    Low-Energy Deep Neural Networks", arXiv:1912.10764.
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
        domains=None,
        backup_dir=None,
    ):
        super().__init__()
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.energy_model = EnergyModel() if energy_model is None else energy_model
        self.estimator = RateEstimator(
            p_min=self.energy_model.p0 if p_min is None else p_min,
            p_max=p_max,
            radius=radius,
            perturbation=perturbation,
            learning_rate=learning_rate,
            max_step=max_step,
            warmup_epochs=warmup_epochs,
            time_regressor=time_regressor,
        )
        self.seed = seed if seed is None else check_int("seed", seed, low=0)
        self.domains = check_domains(domains)
        if backup_dir is not None and not (
            isinstance(backup_dir, (str, os.PathLike)) and os.fspath(backup_dir)
        ):
            raise ValueError(
                "`backup_dir` must be a non-empty path (str or os.PathLike) or None. "
                f"Received: backup_dir={backup_dir!r}"
            )
        self.backup_dir = None if backup_dir is None else os.fspath(backup_dir)
        # What the run learned (public).
        self.layers = []
        self.trajectory = []
        self.fits = []
        self.skipped_batches = 0
        self.last_points = []
        # The run's state, reset by `on_train_begin`.
        self._layer_domain = np.zeros(0, dtype=int)
        self._bits = np.zeros((3, 0))  # stored, rated, fixed energy per layer
        self._seed = None
        self._state = None  # the estimator's EpochState
        self._x_tilde = None
        self._steps = None
        self._previous_mean = 0.0
        self._epoch_skipped = 0
        self._last_record = {}
        self._log = None  # resume.StateLog
        self._log_tail = []  # the log's records since the current epoch's start
        self._pending = None  # a mid-epoch resume.Resume, until Keras has replayed its batches
        self._snapshot = []

    # -- arguments --------------------------------------------------------------------------
    radius = property(lambda self: self.estimator.radius)
    perturbation = property(lambda self: self.estimator.perturbation)
    learning_rate = property(lambda self: self.estimator.learning_rate)
    max_step = property(lambda self: self.estimator.max_step)
    p_min = property(lambda self: self.estimator.p_min)
    p_max = property(lambda self: self.estimator.p_max)
    warmup_epochs = property(lambda self: self.estimator.warmup_epochs)
    time_regressor = property(lambda self: self.estimator.time_regressor)

    def get_config(self):
        """Every `__init__` argument, JSON-serialisable (the energy model as class + config)."""
        return {
            "alpha": self.alpha,
            "energy_model": {
                "class_name": type(self.energy_model).__name__,
                "config": self.energy_model.get_config(),
            },
            "radius": self.radius,
            "perturbation": self.perturbation,
            "learning_rate": self.learning_rate,
            "max_step": self.max_step,
            "p_min": self.p_min,
            "p_max": self.p_max,
            "warmup_epochs": self.warmup_epochs,
            "time_regressor": self.time_regressor,
            "seed": self.seed,
            "domains": None if self.domains is None else [list(d) for d in self.domains],
            "backup_dir": self.backup_dir,
        }

    # -- state --------------------------------------------------------------------------------
    @property
    def domain_rates(self):
        """Current (unperturbed) p per domain, a list in domain order."""
        return [] if self._state is None else [math.exp(x) for x in self._state.log_rates]

    @property
    def rates(self):
        """Current (unperturbed) p per layer, as a dict {layer name: p}."""
        if self._state is None:
            return {}
        return {layer.name: float(p) for layer, p in zip(self.layers, self._layer_rates())}

    def _layer_rates(self, log_rates=None):
        x = self._state.log_rates if log_rates is None else log_rates
        return np.exp(np.asarray(x, dtype=np.float64)[self._layer_domain])

    def _assign(self, log_rates):
        # On JAX, `fit` holds the variables' values in its own state during an epoch; reading
        # `self.model` syncs that state back (Keras' documented callback behaviour), and the
        # trainer then takes the next step's state from the variables, so the new p is used.
        _ = self.model
        for layer, p in zip(self.layers, self._layer_rates(log_rates), strict=True):
            layer.fault_rate.assign(p)

    def _mean_energy(self, log_rates):
        stored, rated, fixed = self._bits
        return mean_memory_energy(
            self.energy_model, stored, rated, fixed, self._layer_rates(log_rates)
        )

    def _iteration(self):
        return model_state.optimizer_step(self.model)

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
        names = [layer.name for layer in self.layers]
        self._layer_domain = np.array(resolve_domains(self.domains, names), dtype=int)
        self._bits = np.array([layer_bit_counts(layer) for layer in self.layers], float).T
        # Under a multi-worker strategy every worker runs this callback, and all must draw the
        # same perturbed p: without a seed they share the chief's (tf_lanmax.distribute).
        self._seed = self.seed if self.seed is not None else shared_seed(self.model)
        self._state = None  # read at the first epoch, after BackupAndRestore's on_train_begin
        self._pending, self._snapshot = None, []
        self._log, self._log_tail = None, []
        if self.backup_dir is not None:
            self._log = resume.StateLog(self.backup_dir, model_state.worker_name(self.model))

    def _read_rates(self):
        # Continue from the layers' current p: after BackupAndRestore that is the learned p.
        low, high = self.estimator.bounds
        current = np.array(
            [float(ops.convert_to_numpy(layer.fault_rate.value)) for layer in self.layers]
        )
        x = np.clip(np.log(np.maximum(current, 1e-300)), low, high)
        log_rates, uneven = domain_log_rates(x, self._layer_domain)
        for domain in uneven:
            members = self._layer_domain == domain
            names = [layer.name for layer, m in zip(self.layers, members) if m]
            warnings.warn(
                f"LaNMax: layers {names} of domain {domain} start at different p "
                f"{current[members].tolist()}; the domain starts at the smallest. Give them "
                "the same `fault_rate` to choose another start.",
                stacklevel=3,
            )
        return log_rates

    def _header(self):
        names = [layer.name for layer in self.layers]
        return resume.header_record(self._seed, names, self._layer_domain.tolist())

    def _begin_fit(self, epoch):
        """The log-rates the first epoch of this `fit` starts from (and any resume to do)."""
        log_rates = self._read_rates()
        if self._log is None:
            return log_rates
        names = [layer.name for layer in self.layers]
        iteration = self._iteration()
        found = resume.find_resume(
            self._log.read(), iteration, epoch, names, self._layer_domain.tolist()
        )
        if found == "mismatch":
            warnings.warn(
                f"LaNMax: the log in backup_dir={self.backup_dir!r} holds no state for the "
                f"restored weights (optimizer step {iteration}, epoch {epoch}); p continues "
                "from the layers' values and the epoch's points restart. After a resume, "
                "Keras 3.15's BackupAndRestore records epoch 0 for backups made before the "
                "resumed epoch ends: a second interruption there lands here.",
                stacklevel=3,
            )
            return log_rates
        if found is None:
            return log_rates
        self._seed = found.seed
        self._log_tail = resume.last_epoch(found.records)
        if found.kind == "epoch":
            return found.state.log_rates
        self._pending = found
        self._snapshot = model_state.capture(self.model)
        if self._log is not None:
            self._log.rewrite(found.records)
        return found.start.log_rates

    def on_epoch_begin(self, epoch, logs=None):
        start = self._begin_fit(epoch) if self._state is None else self._state.log_rates
        self._state = self.estimator.start(epoch, start, self._seed)
        self._steps = self.params.get("steps") if self.params else None
        self._previous_mean = 0.0
        self._epoch_skipped = 0
        self._last_record = {}
        self._assign(self._state.log_rates)
        if self._log is not None and self._pending is None:
            # Keep the previous epoch: a backup made at its last batch, before its end, makes
            # Keras replay it.
            record = resume.epoch_record(self._state, self._iteration())
            self._log.rewrite([self._header(), *self._log_tail, record])
            self._log_tail = [record]

    def on_train_batch_begin(self, batch, logs=None):
        self._x_tilde, self._state = self.estimator.propose(self._state)
        self._assign(self._x_tilde)

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
        self._assign(self._state.log_rates)  # unperturbed p between batches
        if self._pending is not None:  # Keras replays batches the restored weights include
            self._previous_mean = float((logs or {}).get("loss", self._previous_mean))
            if batch >= self._pending.batch:
                self._install(self._pending)
            return
        loss, usable = self._batch_loss(batch, logs or {})
        point, skipped = None, not math.isfinite(loss)
        if skipped:
            self._epoch_skipped += 1
            self.skipped_batches += 1
        elif usable:
            t = batch / self._steps if self._steps else float(batch)
            objective = self.alpha * self._mean_energy(self._x_tilde) + loss
            self._state = self.estimator.record(
                self._state, batch, self._x_tilde, t, objective, loss
            )
            point = self._state.points[-1]
        if self._steps is not None and batch + 1 == self._steps:
            self._update()  # before any on_epoch_end: checkpoints see the new p
        if self._log is not None:
            metrics = model_state.metric_values(self.model)
            record = resume.batch_record(
                self._state, batch, self._iteration(), point, skipped, self._previous_mean, metrics
            )
            self._log.append(record)
            self._log_tail.append(record)

    def _install(self, pending):
        """Back to the restored position after Keras' replay: weights, optimizer, metrics, p."""
        model_state.restore(self._snapshot)
        if model_state.restore_metric_values(self.model, pending.metrics):
            self._previous_mean = pending.running_mean
        else:  # keep the replay's running mean, which the loss tracker now holds
            warnings.warn(
                "LaNMax: the model's metrics are not those of the interrupted run; the epoch's "
                "running metrics, and the batch losses recovered from them, restart inexactly.",
                stacklevel=2,
            )
        self._pending, self._snapshot = None, []
        self._state = pending.state
        self._epoch_skipped = pending.skipped
        self.skipped_batches += pending.skipped
        self._assign(self._state.log_rates)
        if self._state.step is not None:
            self._report(self._state.step)

    def _update(self):
        if self._state.step is not None:
            return
        self._state = self.estimator.step(self._state)
        step = self._state.step
        if not step.updated and step.reason != "warm-up":
            warnings.warn(
                f"LaNMax: epoch {step.epoch} has {step.points} usable batches, fewer than the "
                f"{self.estimator.min_points(len(self._state.log_rates))} the fit needs; p is "
                "not updated. Use more batches per epoch (smaller batch_size) or fewer domains.",
                stacklevel=3,
            )
        self._report(step)
        self._assign(self._state.log_rates)

    def _report(self, step):
        record = {"epoch": step.epoch, "points": step.points, "updated": step.updated}
        if step.updated:
            record.update(slopes=list(step.slopes), stderr=list(step.stderr))
            self.fits.append(record)
        else:
            record["reason"] = step.reason
        record["skipped"] = self._epoch_skipped
        self.last_points = list(self._state.points)
        self._last_record = record

    def on_epoch_end(self, epoch, logs=None):
        if self._pending is not None:
            warnings.warn(
                f"LaNMax: epoch {epoch} ended before batch {self._pending.batch}, where the "
                "restored weights were saved; the resume is not exact.",
                stacklevel=2,
            )
            self._pending, self._snapshot = None, []
        self._update()  # when the number of steps is unknown (first epoch of a generator)
        if self._log is not None:
            record = resume.end_record(self._state, self._iteration())
            self._log.append(record)
            self._log_tail.append(record)
        record = self._last_record
        rates = self._layer_rates()
        etas = np.atleast_1d(self.energy_model.eta(rates))
        entry = {
            "epoch": epoch,
            "rates": self.rates,
            "domain_rates": self.domain_rates,
            "mean_energy": self._mean_energy(self._state.log_rates),
        }
        self.trajectory.append(entry)
        if logs is None:
            return
        stored, rated, fixed = self._bits
        slopes = record.get("slopes")
        for index, layer in enumerate(self.layers):
            logs[f"{layer.name}_p"] = float(rates[index])
            logs[f"{layer.name}_eta"] = float(etas[index])
            logs[f"{layer.name}_energy"] = float(rated[index] * etas[index] + fixed[index])
            if slopes is not None:
                logs[f"{layer.name}_slope"] = float(slopes[self._layer_domain[index]])
        if self.domains is not None:
            for domain, p in enumerate(self.domain_rates):
                logs[f"domain_{domain}_p"] = p
                if slopes is not None:
                    logs[f"domain_{domain}_slope"] = float(slopes[domain])
        logs["memory_energy"] = entry["mean_energy"]
        logs["energy_ratio"] = 1.0 / entry["mean_energy"]
        logs["lanmax_points"] = float(record["points"])
        logs["lanmax_skipped"] = float(record["skipped"])

    def on_train_end(self, logs=None):
        if self._log is not None:
            self._log.delete()
