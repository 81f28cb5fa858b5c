"""The normal distribution in `keras.ops`: CDF, density, clipped-normal moments, quadrature.

The device models clip normal variables (a conductance cannot be negative) and chain them
(programming, drift, read); their moments use the closed forms of a normal clipped to an
interval (Johnson, Kotz & Balakrishnan, "Continuous Univariate Distributions", vol. 1, ch. 13)
and, where a chain has none, Gauss-Legendre quadrature over the standard normal split at the
kinks of the integrand. Every function works elementwise on tensors of any shape.
"""

import math

import numpy as np
from keras import ops

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

#: Smallest standard deviation used in a division: a zero sd gives the unclipped point mass.
TINY_SD = 1e-12

#: Quadrature range in standard deviations: the normal mass beyond +-8 is 1.2e-15.
WIDTH = 8.0


def cdf(x):
    """Standard normal CDF ``Phi(x) = erfc(-x / sqrt 2) / 2`` (accurate in both tails)."""
    return 0.5 * ops.erfc(-x / _SQRT2)


def pdf(x):
    """Standard normal density ``phi(x)``."""
    return _INV_SQRT_2PI * ops.exp(-0.5 * x * x)


def rectified_moments(mean, sd):
    """Mean and variance of ``max(X, 0)`` for ``X ~ N(mean, sd^2)``.

    Computed about `mean` (``U = max(X, 0) - mean = max(sd Z, -mean)``), so the variance of a
    barely clipped variable keeps its precision in float32.

    Args:
        mean: mean of X (tensor).
        sd: standard deviation of X, >= 0 (tensor).

    Returns:
        `(mean, variance)` of the rectified variable.
    """
    shift, second = lower_clipped_central(mean, sd, 0.0)
    return mean + shift, ops.maximum(second - shift * shift, 0.0)


def rectified_raw_moments(mean, sd):
    """``E[max(X, 0)]`` and ``E[max(X, 0)^2]`` for ``X ~ N(mean, sd^2)``."""
    sd = ops.maximum(sd, TINY_SD)
    a = mean / sd
    big, small = cdf(a), pdf(a)
    first = mean * big + sd * small
    return first, (mean * mean + sd * sd) * big + mean * sd * small


def lower_clipped_central(mean, sd, low):
    """``E[U]`` and ``E[U^2]`` for ``U = max(X, low) - mean``, ``X ~ N(mean, sd^2)``."""
    sd = ops.maximum(sd, TINY_SD)
    a = low - mean
    alpha = a / sd
    below, density = cdf(alpha), pdf(alpha)
    first = a * below + sd * density
    second = a * a * below + sd * sd * (cdf(-alpha) + alpha * density)
    return first, second


def clipped_central(mean, sd, low, high):
    """``E[U]`` and ``E[U^2]`` for ``U = clip(X, low, high) - mean``, ``X ~ N(mean, sd^2)``.

    Args:
        mean: mean of X.
        sd: standard deviation of X, >= 0.
        low: lower clip (finite, tensor or float).
        high: upper clip (finite, > low).

    Returns:
        `(E[U], E[U^2])`, tensors shaped like `mean`.
    """
    sd = ops.maximum(sd, TINY_SD)
    a, b = low - mean, high - mean
    alpha, beta = a / sd, b / sd
    below, above = cdf(alpha), cdf(-beta)
    d_a, d_b = pdf(alpha), pdf(beta)
    inside = ops.maximum(1.0 - below - above, 0.0)
    first = a * below + b * above + sd * (d_a - d_b)
    second = a * a * below + b * b * above + sd * sd * (inside + alpha * d_a - beta * d_b)
    return first, second


def folded_exp_moment(mean, sd, c):
    """``E[exp(-c |X|)]``, ``X ~ N(mean, sd^2)``, ``c >= 0``: a folded normal's Laplace transform.

    ``exp(-c mean + c^2 sd^2 / 2) Phi(mean/sd - c sd) + exp(c mean + c^2 sd^2 / 2)
    Phi(-mean/sd - c sd)``.
    """
    sd = ops.maximum(sd, TINY_SD)
    ratio, spread = mean / sd, c * sd
    half = 0.5 * spread * spread
    return ops.exp(half - c * mean) * cdf(ratio - spread) + ops.exp(half + c * mean) * cdf(
        -ratio - spread
    )


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(32)


def normal_expectation(fn, mean, sd, breaks=()):
    """``E[fn(mean + sd Z)]``, Z ~ N(0, 1), by Gauss-Legendre quadrature.

    The range ``|Z| <= 8`` is split at the points where `fn` has a kink or a jump (`breaks`,
    in the units of X), and each piece gets 32 Gauss-Legendre nodes, so a piecewise smooth
    `fn` integrates to about float32 precision. Vectorised: `mean` and `sd` may have any
    (equal or broadcastable) shape; the work is ``(len(breaks) + 1) * 32`` evaluations per
    element.

    Args:
        fn: maps a tensor of values of X (shape ``mean.shape + (K,)``) to a tuple of tensors
            of the same shape.
        mean: mean of X (tensor).
        sd: standard deviation of X, >= 0 (tensor).
        breaks: values of X where `fn` is not smooth (floats or tensors broadcastable with
            `mean`). Defaults to `()`.

    Returns:
        A tuple of tensors shaped like `mean`: the expectation of each output of `fn`.
    """
    mean = ops.convert_to_tensor(mean, "float32")
    sd = ops.maximum(ops.convert_to_tensor(sd, "float32"), TINY_SD)
    shape = ops.shape(mean + sd)
    mean, sd = ops.broadcast_to(mean, shape), ops.broadcast_to(sd, shape)
    ends = [ops.full_like(mean, -WIDTH), ops.full_like(mean, WIDTH)]
    cuts = [ops.clip((b - mean) / sd, -WIDTH, WIDTH) for b in breaks]
    points = ops.sort(ops.stack(ends + cuts, axis=-1), axis=-1)
    low, high = points[..., :-1, None], points[..., 1:, None]  # (..., pieces, 1)
    half = 0.5 * (high - low)
    nodes = ops.convert_to_tensor(_NODES, "float32")
    weights = ops.convert_to_tensor(_WEIGHTS, "float32")
    z = 0.5 * (high + low) + half * nodes  # (..., pieces, nodes)
    w = half * weights * pdf(z)
    count = ops.shape(z)[-1] * ops.shape(z)[-2]
    z = ops.reshape(z, (*ops.shape(mean), count))
    w = ops.reshape(w, (*ops.shape(mean), count))
    values = fn(mean[..., None] + sd[..., None] * z)
    return tuple(ops.sum(v * w, axis=-1) for v in values)


def folded_mean(mean, variance):
    """``E|X|`` for ``X ~ N(m, s^2)``: ``2 s phi(m / s) + m (1 - 2 Phi(-m / s))``."""
    sd = ops.maximum(ops.sqrt(ops.maximum(variance, 0.0)), TINY_SD)
    ratio = mean / sd
    return 2.0 * sd * pdf(ratio) + mean * (1.0 - 2.0 * cdf(-ratio))
