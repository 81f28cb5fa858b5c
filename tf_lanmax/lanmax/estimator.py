"""LaNMax's estimator without Keras: perturbed log-rates, the epoch's points, the clipped step.

NumPy and plain data only, so the statistics can be tested (and reused) without a model. The
estimator is configuration; its methods are pure: they take an `EpochState` and return a new one,
so the whole within-epoch state is one value that can be written to a file and read back.
"""

import dataclasses
import math

import numpy as np

from tf_lanmax._validation import check_int, check_one_of, check_positive, check_probability
from tf_lanmax.lanmax.ols import fit_rate_gradient

PERTURBATIONS = ("log_uniform", "additive_uniform")


def _floats(values):
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())


@dataclasses.dataclass(frozen=True)
class Point:
    """One training batch's trade-off point.

    Attributes:
        batch: index of the batch in its epoch.
        offsets: ``x~ - x``, the perturbation of ln p per domain.
        time: within-epoch time of the batch (batch / batches per epoch).
        objective: ``J = alpha E(p~) + loss``.
        loss: the batch's own loss.
    """

    batch: int
    offsets: tuple
    time: float
    objective: float
    loss: float

    def to_dict(self):
        return dataclasses.asdict(self) | {"offsets": list(self.offsets)}

    @classmethod
    def from_dict(cls, config):
        return cls(**(config | {"offsets": _floats(config["offsets"])}))


@dataclasses.dataclass(frozen=True)
class Step:
    """What the end-of-epoch step did.

    Attributes:
        epoch: the epoch whose points were fitted.
        points: number of points in the fit.
        updated: whether the log-rates moved (False in warm-up or with too few points).
        reason: why they did not move, else `None`.
        log_rates: ln p per domain after the step.
        slopes: ``dJ / d ln p`` per domain (OLS), `None` when not fitted.
        stderr: standard errors of `slopes`, `None` when not fitted.
    """

    epoch: int
    points: int
    updated: bool
    reason: str | None
    log_rates: tuple
    slopes: tuple | None = None
    stderr: tuple | None = None

    def to_dict(self):
        config = dataclasses.asdict(self)
        for key in ("log_rates", "slopes", "stderr"):
            if config[key] is not None:
                config[key] = list(config[key])
        return config

    @classmethod
    def from_dict(cls, config):
        config = dict(config)
        for key in ("log_rates", "slopes", "stderr"):
            if config.get(key) is not None:
                config[key] = _floats(config[key])
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class EpochState:
    """Everything the estimator knows inside one epoch; JSON-serialisable with `to_dict`.

    Attributes:
        epoch: the epoch index.
        log_rates: the unperturbed ``x = ln p`` per domain during the epoch (after the step
            once `step` is set).
        rng_state: the NumPy bit-generator state after the last perturbation drawn.
        points: the points recorded so far, in batch order.
        step: the `Step` taken at the end of the epoch, `None` before it.
    """

    epoch: int
    log_rates: tuple
    rng_state: dict
    points: tuple = ()
    step: Step | None = None

    def to_dict(self):
        return {
            "epoch": self.epoch,
            "log_rates": list(self.log_rates),
            "rng_state": self.rng_state,
            "points": [point.to_dict() for point in self.points],
            "step": None if self.step is None else self.step.to_dict(),
        }

    @classmethod
    def from_dict(cls, config):
        return cls(
            epoch=int(config["epoch"]),
            log_rates=_floats(config["log_rates"]),
            rng_state=config["rng_state"],
            points=tuple(Point.from_dict(p) for p in config["points"]),
            step=None if config.get("step") is None else Step.from_dict(config["step"]),
        )


class RateEstimator:
    """LaNMax's numerical gradient on ln p, one coordinate per voltage domain.

    Each batch runs at ``x~ = clip(x + r u, ln p_min, ln p_max)`` with ``u ~ U[-1, 1]`` i.i.d.
    per domain (``"log_uniform"``), or at ``p~ = clip(p (1 + r u), p_min, p_max)``
    (``"additive_uniform"``). After the epoch an ordinary least-squares fit of
    ``J ~ 1 + (x~ - x) + t`` gives the slopes ``dJ / d x`` per domain, and
    ``x <- clip(x + clip(-lr * slope, -max_step, max_step), ln p_min, ln p_max)``.

    The perturbations of epoch `e` come from ``numpy.random.default_rng([seed, e])``, so a run
    and its resumption draw the same ones.

    Args:
        p_min: lower bound of p, in (0, 0.5].
        p_max: upper bound of p, in (p_min, 0.5]. Defaults to `0.5`.
        radius: perturbation half-width r (nats of ln p for `"log_uniform"`; a fraction of p
            for `"additive_uniform"`). Defaults to `0.5`.
        perturbation: `"log_uniform"` or `"additive_uniform"`. Defaults to `"log_uniform"`.
        learning_rate: lr of the step on ln p. Defaults to `10.0`.
        max_step: largest change of ln p per epoch. Defaults to `0.25`.
        warmup_epochs: epochs that record points but do not step. Defaults to `1`.
        time_regressor: add the within-epoch time column to the fit. Defaults to `True`.

    Example:
    >>> est = RateEstimator(p_min=1e-6, warmup_epochs=0)
    >>> state = est.start(epoch=0, log_rates=np.log([1e-2, 1e-3]), seed=0)
    >>> for batch in range(20):
    ...     x_tilde, state = est.propose(state)
    ...     loss = 0.3 * (x_tilde - np.log([1e-2, 1e-3])).sum()  # your measurement
    ...     state = est.record(state, batch, x_tilde, batch / 20, loss, loss)
    >>> state = est.step(state)
    >>> state.step.slopes  # (0.3, 0.3)
    """

    def __init__(
        self,
        p_min,
        p_max=0.5,
        radius=0.5,
        perturbation="log_uniform",
        learning_rate=10.0,
        max_step=0.25,
        warmup_epochs=1,
        time_regressor=True,
    ):
        self.p_max = check_probability("p_max", p_max)
        self.p_min = check_probability("p_min", p_min)
        if not self.p_min < self.p_max:
            raise ValueError(
                f"`p_min` must be < `p_max` = {self.p_max:g}. Received: p_min={p_min!r}"
            )
        self.radius = check_positive("radius", radius)
        self.perturbation = check_one_of("perturbation", perturbation, PERTURBATIONS)
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.max_step = check_positive("max_step", max_step)
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, low=0)
        self.time_regressor = bool(time_regressor)

    @property
    def bounds(self):
        """``(ln p_min, ln p_max)``."""
        return math.log(self.p_min), math.log(self.p_max)

    def min_points(self, num_domains):
        """Points an epoch needs for a fit with one residual degree of freedom."""
        return num_domains + 2 + int(self.time_regressor)

    def start(self, epoch, log_rates, seed):
        """The state at the start of `epoch`, around the unperturbed `log_rates` (clipped).

        Args:
            epoch: epoch index, >= 0.
            log_rates: (D,) ln p per domain.
            seed: seed of the perturbations, >= 0.

        Returns:
            An `EpochState` with no points.
        """
        check_int("epoch", epoch, low=0)
        check_int("seed", seed, low=0)
        x = np.asarray(log_rates, dtype=np.float64).ravel()
        if x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(
                f"`log_rates` must be a non-empty vector of finite numbers. Received: {x!r}"
            )
        rng = np.random.default_rng([seed, epoch])
        return EpochState(
            epoch=epoch, log_rates=_floats(np.clip(x, *self.bounds)), rng_state=_rng_state(rng)
        )

    def propose(self, state):
        """Draws the next batch's perturbed log-rates.

        Returns:
            `(x_tilde, new_state)`: a (D,) float64 array and the state with the generator moved on.
        """
        rng = _generator(state.rng_state)
        x = np.asarray(state.log_rates)
        u = rng.uniform(-1.0, 1.0, size=x.size)
        if self.perturbation == "log_uniform":
            x_tilde = np.clip(x + self.radius * u, *self.bounds)
        else:
            p_tilde = np.clip(np.exp(x) * (1.0 + self.radius * u), self.p_min, self.p_max)
            x_tilde = np.log(p_tilde)
        return x_tilde, dataclasses.replace(state, rng_state=_rng_state(rng))

    def record(self, state, batch, x_tilde, time, objective, loss):
        """Adds the point of one batch that ran at `x_tilde`.

        Args:
            state: the `EpochState`.
            batch: batch index.
            x_tilde: (D,) the log-rates the batch ran at.
            time: within-epoch time.
            objective: ``J = alpha E(p~) + loss``, finite.
            loss: the batch loss.

        Returns:
            The new `EpochState`.

        Raises:
            ValueError: for a non-finite objective or a wrong number of log-rates.
        """
        x_tilde = np.asarray(x_tilde, dtype=np.float64).ravel()
        if x_tilde.size != len(state.log_rates):
            raise ValueError(
                f"`x_tilde` must have one entry per domain ({len(state.log_rates)}). "
                f"Received: x_tilde={x_tilde.tolist()!r}"
            )
        offsets = x_tilde - np.asarray(state.log_rates)
        if not (math.isfinite(objective) and math.isfinite(time)):
            raise ValueError(
                "`objective` and `time` must be finite (skip non-finite batches). "
                f"Received: objective={objective!r}, time={time!r}"
            )
        point = Point(int(batch), _floats(offsets), float(time), float(objective), float(loss))
        return dataclasses.replace(state, points=(*state.points, point))

    def step(self, state):
        """The end-of-epoch step: OLS slopes, then the clipped move of the log-rates.

        Returns:
            The `EpochState` with `log_rates` moved and `step` set (a `Step`). Warm-up epochs
            and epochs with fewer than `min_points` points keep the log-rates.
        """
        if state.step is not None:
            return state
        x = np.asarray(state.log_rates)
        points = len(state.points)
        needed = self.min_points(x.size)
        if state.epoch < self.warmup_epochs:
            step = Step(state.epoch, points, False, "warm-up", state.log_rates)
        elif points < needed:
            reason = f"{points} points < {needed} needed"
            step = Step(state.epoch, points, False, reason, state.log_rates)
        else:
            slopes, stderr = self.fit(state.points)
            move = np.clip(-self.learning_rate * slopes, -self.max_step, self.max_step)
            new = _floats(np.clip(x + move, *self.bounds))
            step = Step(state.epoch, points, True, None, new, _floats(slopes), _floats(stderr))
        return dataclasses.replace(state, log_rates=step.log_rates, step=step)

    def fit(self, points):
        """OLS slopes ``dJ / d ln p`` per domain and their standard errors, from `points`."""
        offsets = np.array([point.offsets for point in points], dtype=np.float64)
        objective = np.array([point.objective for point in points], dtype=np.float64)
        times = None
        if self.time_regressor:
            times = np.array([point.time for point in points], dtype=np.float64)
        slopes, stderr, _ = fit_rate_gradient(offsets, objective, times)
        return slopes, stderr


def _rng_state(rng):
    return rng.bit_generator.state


def _generator(state):
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
