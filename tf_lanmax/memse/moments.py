"""Pure moment-propagation rules of MemSE, in `keras.ops` only.

Every rule maps the per-sample moments of a layer's input to those of its output. A state is a
mean ``mu`` and either the per-unit variance ``v`` (diagonal mode) or, for flat ``(batch, n)``
activations, the full covariance ``Gamma`` of shape ``(batch, n, n)``. Linear layers with noisy
weights ``W + N`` (``N`` zero mean, independent of the input and across entries, variance
``S^2``) follow

    E[Z_j]   = sum_i W_ji mu_i
    Var[Z_j] = sum_ik W_ji W_jk Gamma_ik + sum_i S^2_ji (Gamma_ii + mu_i^2)

Nonlinearities use Gaussian moment matching. The functions hold no state and create no
variables, so they run on any Keras backend and are differentiable (MemSE penalty, Gmax
optimisation).

Reference: Kern et al., arXiv:2205.01707.
"""

import math

import numpy as np
from keras import ops

from tf_lanmax.memse import windows

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TINY_VAR = 1e-30

MAXPOOL_RULES = ("max_mean", "clark")


# -- Gaussian helpers ----------------------------------------------------------------------


def _erfc(x):
    erfc = getattr(ops, "erfc", None)
    if erfc is None:  # older Keras: erf loses the far tail, harmless for the moments
        return 1.0 - ops.erf(x)
    return erfc(x)


def normal_cdf(t):
    """Standard normal CDF ``Phi(t)``, accurate in the lower tail (erfc)."""
    return 0.5 * _erfc(-t / _SQRT2)


def normal_pdf(t):
    """Standard normal density ``phi(t)``."""
    return _INV_SQRT_2PI * ops.exp(-0.5 * ops.square(t))


def _gaussian_max(delta, var_a, var_b):
    """Moments of ``max(A, B) - mu_b`` for independent Gaussians with ``mu_a - mu_b = delta``.

    Clark (1961) with zero correlation, ``theta^2 = var_a + var_b``, ``alpha = delta / theta``:

        E    = delta Phi(alpha) + theta phi(alpha)
        Var  = delta^2 Phi(alpha) Phi(-alpha) + var_a Phi(alpha) + var_b Phi(-alpha)
               + delta theta phi(alpha) (Phi(-alpha) - Phi(alpha)) - theta^2 phi(alpha)^2

    The variance is ``E[M^2] - E[M]^2`` expanded so that no two large terms cancel (float32
    would lose a small variance under a large mean). With ``theta = 0`` it is the exact max.

    Returns:
        `(mean, variance, slope)` with ``slope = Phi(alpha)`` (``d E / d mu_a``).
    """
    theta2 = var_a + var_b
    positive = ops.greater(theta2, 0.0)
    # Evaluate on a safe theta and select afterwards: a where() on sqrt(0) would leak NaN
    # gradients from the unused branch.
    theta = ops.sqrt(ops.where(positive, theta2, ops.ones_like(theta2)))
    alpha = delta / theta
    cdf, cdf_neg, pdf = normal_cdf(alpha), normal_cdf(-alpha), normal_pdf(alpha)
    mean = delta * cdf + theta * pdf
    var = (
        ops.square(delta) * cdf * cdf_neg
        + var_a * cdf
        + var_b * cdf_neg
        + delta * theta * pdf * (cdf_neg - cdf)
        - theta2 * ops.square(pdf)
    )
    step = ops.cast(ops.greater(delta, 0.0), delta.dtype)
    exact_var = step * var_a + (1.0 - step) * var_b
    mean = ops.where(positive, mean, ops.relu(delta))
    var = ops.where(positive, ops.maximum(var, 0.0), exact_var)
    slope = ops.where(positive, cdf, step)
    return mean, var, slope


# -- nonlinear ----------------------------------------------------------------------------


def relu_moments(mean, var):
    """ReLU of ``X ~ N(mu, s^2)`` by moment matching.

    ``t = mu / s`` (the standard deviation, not the variance):

        E[Y]   = mu Phi(t) + s phi(t)
        E[Y^2] = (mu^2 + s^2) Phi(t) + mu s phi(t)

    ``s -> 0`` gives ``relu(mu)`` and 0.

    Args:
        mean: input means.
        var: input variances (>= 0), same shape.

    Returns:
        `(mean, variance, slope)`; ``slope = Phi(t)`` is the expected derivative, used for the
        off-diagonal covariance (Price's theorem).
    """
    # `_gaussian_max` with B = 0, in fewer element-wise passes (the ReLU moments dominate the
    # cost of a diagonal pass). With m = E[Y], the variance is Var = s^2 Phi(t) + (mu - m) m, and
    # mu - m = mu Phi(-t) - s phi(t) is formed from its two terms, never as mu - m: where t >> 0
    # both mu and m are large and their difference would cancel to float32 noise.
    # s is lifted by 1e-15 where the variance is exactly 0: t is then so large that Phi is
    # exactly the step, and the phi terms are masked, which gives exactly relu(mu) and 0
    # without a where() (whose unused branch would leak NaN gradients).
    noisy = ops.cast(ops.greater(var, 0.0), var.dtype)
    s = ops.sqrt(var + _TINY_VAR)
    u = mean / s * (1.0 / _SQRT2)  # t / sqrt(2)
    cdf = 0.5 * _erfc(-u)  # accurate where it is tiny (t << 0), where mu Phi and s phi cancel
    # Where Phi(-t) is tiny (t >> 0), 1 - Phi loses its relative precision, but there it only
    # scales mu Phi(-t), a term that then cancels against s phi(t): the absolute error of the
    # variance is ~ t^2 s^2 eps (1e-6 s^2 at t = 4). It saves the second erfc, the dearest op.
    s_pdf = s * (_INV_SQRT_2PI * ops.exp(-ops.square(u))) * noisy
    out_mean = mean * cdf + s_pdf
    out_var = var * cdf + (mean * (1.0 - cdf) - s_pdf) * out_mean
    slope = cdf * noisy + ops.cast(ops.greater(mean, 0.0), var.dtype) * (1.0 - noisy)
    return out_mean, ops.relu(out_var), slope


def relu_covariance(mean, cov):
    """ReLU on a full covariance: diagonal by moment matching, ``Phi(t_i) Phi(t_j) Gamma_ij``
    off the diagonal.

    Args:
        mean: ``(batch, n)`` means.
        cov: ``(batch, n, n)`` covariances.

    Returns:
        `(mean, cov)`.
    """
    var = ops.diagonal(cov, axis1=-2, axis2=-1)
    out_mean, out_var, slope = relu_moments(mean, var)
    out_cov = cov * ops.expand_dims(slope, -1) * ops.expand_dims(slope, -2)
    return out_mean, set_diagonal(out_cov, out_var)


def clark_max(mean_a, var_a, mean_b, var_b):
    """Moment-matched ``max(A, B)`` of independent Gaussians (Clark 1961, rho = 0).

    Returns:
        `(mean, variance)`.
    """
    mean, var, _ = _gaussian_max(mean_a - mean_b, var_a, var_b)
    return mean + mean_b, var


# -- linear -------------------------------------------------------------------------------


def _is_shared(kernel_var, kernel):
    """True when ``S^2`` is one value per layer or per output unit, not per weight."""
    return ops.ndim(kernel_var) < ops.ndim(kernel)


def dense_moments(mean, var, kernel_mean, kernel_var, bias=None):
    """Dense layer with noisy weights, diagonal mode.

    ``v_out = v (M o M) + (v + mu^2) S^2``. The kernel is ``(in, out)`` as in Keras.

    Args:
        mean: ``(..., in)`` input means.
        var: ``(..., in)`` input variances.
        kernel_mean: ``(in, out)`` mean weights M.
        kernel_var: weight variance S^2: a scalar, an ``(out,)`` vector, or ``(in, out)``.
        bias: optional deterministic ``(out,)`` bias. Defaults to `None`.

    Returns:
        `(mean, variance)` of shape ``(..., out)``.
    """
    out_mean = ops.matmul(mean, kernel_mean)
    if bias is not None:
        out_mean = out_mean + bias
    second = var + ops.square(mean)
    out_var = ops.matmul(var, ops.square(kernel_mean))
    if _is_shared(kernel_var, kernel_mean):
        out_var = out_var + ops.sum(second, axis=-1, keepdims=True) * kernel_var
    else:
        out_var = out_var + ops.matmul(second, kernel_var)
    return out_mean, out_var


def dense_covariance(mean, cov, kernel_mean, kernel_var, bias=None):
    """Dense layer with noisy weights and a full input covariance.

    ``Gamma_out = M^T Gamma M + diag(S^2 (diag Gamma + mu^2))``: the weight noise is
    independent across output units, so it only adds to the diagonal.

    Args:
        mean: ``(batch, in)``; cov: ``(batch, in, in)``; other arguments as `dense_moments`.

    Returns:
        `(mean, cov)` of shapes ``(batch, out)`` and ``(batch, out, out)``.
    """
    out_mean = ops.matmul(mean, kernel_mean)
    if bias is not None:
        out_mean = out_mean + bias
    var = ops.diagonal(cov, axis1=-2, axis2=-1)
    second = var + ops.square(mean)
    if _is_shared(kernel_var, kernel_mean):
        noise = ops.sum(second, axis=-1, keepdims=True) * kernel_var
    else:
        noise = ops.matmul(second, kernel_var)
    out_cov = ops.einsum("io,bij,jp->bop", kernel_mean, cov, kernel_mean)
    return out_mean, set_diagonal(out_cov, ops.diagonal(out_cov, axis1=-2, axis2=-1) + noise)


def conv_moments(mean, var, kernel_mean, kernel_var, bias=None, **conv_args):
    """Convolution with noisy weights, diagonal mode.

    ``mu_out = conv(mu, M)``, ``v_out = conv(v, M^2) + conv(v + mu^2, S^2)``, evaluated as
    ``conv(v, M^2 + S^2) + conv(mu^2, S^2)``: one full convolution fewer. When S^2 is one value
    per layer or per output channel, the last term is S^2 times a box sum of ``mu^2`` over the
    receptive field (a channel sum, then one single-channel convolution).

    Weight sharing makes the noise of one kernel entry common to every position of its output
    channel; positions are correlated, which the diagonal state does not carry.

    Args:
        mean, var: ``(batch, *spatial, in_channels)`` input moments (channels last); `var`
            may be None for a deterministic input (then only the weight noise remains).
        kernel_mean: ``(*kernel_size, in_channels, out_channels)``.
        kernel_var: S^2 as a scalar, an ``(out_channels,)`` vector or the kernel's shape.
        bias: optional ``(out_channels,)``. Defaults to `None`.
        **conv_args: `strides`, `padding`, `dilation_rate` of `keras.ops.conv`.

    Returns:
        `(mean, variance)`.
    """
    out_mean = ops.conv(mean, kernel_mean, **conv_args)
    if bias is not None:
        out_mean = out_mean + bias
    square = ops.square(mean)
    if _is_shared(kernel_var, kernel_mean):
        window = ops.ones(tuple(kernel_mean.shape[:-2]) + (1, 1), dtype=kernel_mean.dtype)
        box = ops.conv(ops.sum(square, axis=-1, keepdims=True), window, **conv_args)
        noise = box * kernel_var
        if var is None:  # a deterministic input: only the weight noise remains
            return out_mean, noise * ops.ones(kernel_mean.shape[-1:], dtype=noise.dtype)
    else:
        noise = ops.conv(square, kernel_var, **conv_args)
        if var is None:
            return out_mean, noise
    return out_mean, ops.conv(var, ops.square(kernel_mean) + kernel_var, **conv_args) + noise


def depthwise_conv_moments(mean, var, kernel_mean, kernel_var, bias=None, **conv_args):
    """Depthwise convolution with noisy weights, diagonal mode (as `conv_moments`).

    Args:
        kernel_mean: ``(*kernel_size, in_channels, depth_multiplier)``.
        kernel_var: S^2, scalar or broadcastable to the kernel.
        **conv_args: `strides`, `padding`, `dilation_rate` of `keras.ops.depthwise_conv`.

    Returns:
        `(mean, variance)`.
    """
    out_mean = ops.depthwise_conv(mean, kernel_mean, **conv_args)
    if bias is not None:
        out_mean = out_mean + bias
    second = var + ops.square(mean)
    kernel_var = kernel_var * ops.ones_like(kernel_mean)
    out_var = ops.depthwise_conv(var, ops.square(kernel_mean), **conv_args)
    out_var = out_var + ops.depthwise_conv(second, kernel_var, **conv_args)
    return out_mean, out_var


def affine_moments(mean, var, scale, shift):
    """``y = a x + d`` per channel (inference BatchNorm): ``mu' = a mu + d``, ``v' = a^2 v``."""
    return mean * scale + shift, var * ops.square(scale)


def affine_covariance(mean, cov, scale, shift):
    """``y = a x + d`` on a full covariance: ``Gamma' = diag(a) Gamma diag(a)``."""
    return mean * scale + shift, cov * ops.expand_dims(scale, -1) * ops.expand_dims(scale, -2)


def add_moments(means, variances):
    """Sum of branches taken as independent: ``mu = sum mu_k``, ``v = sum v_k``.

    The branches of a residual block share their input, so this is an approximation;
    the Monte-Carlo reference measures its effect.
    """
    out_mean, out_var = means[0], variances[0]
    for m, v in zip(means[1:], variances[1:], strict=True):
        out_mean, out_var = out_mean + m, out_var + v
    return out_mean, out_var


# -- pooling ------------------------------------------------------------------------------


def average_pool_moments(mean, var, pool_size, strides, padding="valid"):
    """Average pooling: ``mu' = avg(mu)``, ``v' = sum_window v / n^2`` (independent entries).

    Neighbouring activations are correlated, so the diagonal rule under-estimates the variance.
    """
    out_mean = ops.average_pool(mean, pool_size, strides=strides, padding=padding)
    counts = windows.window_counts(mean.shape[1:-1], pool_size, strides, padding)
    out_var = ops.average_pool(var, pool_size, strides=strides, padding=padding) / counts
    return out_mean, out_var


def global_average_pool_moments(mean, var, keepdims=False):
    """Global average pooling over the spatial axes of a channels-last tensor."""
    axes = tuple(range(1, len(mean.shape) - 1))
    count = float(np.prod([mean.shape[a] for a in axes]))
    out_mean = ops.mean(mean, axis=axes, keepdims=keepdims)
    out_var = ops.mean(var, axis=axes, keepdims=keepdims) / count
    return out_mean, out_var


def _max_mean_select(means, variances):
    stacked_mean = ops.stack(means, axis=0)
    stacked_var = ops.stack(variances, axis=0)
    index = ops.expand_dims(ops.argmax(stacked_mean, axis=0), 0)
    out_var = ops.take_along_axis(stacked_var, index, axis=0)[0]
    return ops.max(stacked_mean, axis=0), out_var


def _clark_reduce(means, variances):
    # Pairwise tree: Clark's rule is an approximation whatever the order; a tree keeps it short.
    while len(means) > 1:
        half = len(means) // 2
        pairs = [
            clark_max(means[i], variances[i], means[i + half], variances[i + half])
            for i in range(half)
        ]
        rest_m, rest_v = means[2 * half :], variances[2 * half :]
        means = [m for m, _ in pairs] + rest_m
        variances = [v for _, v in pairs] + rest_v
    return means[0], variances[0]


def max_pool_moments(mean, var, pool_size, strides, padding="valid", rule="max_mean"):
    """Max pooling on moments.

    Args:
        mean, var: ``(batch, *spatial, channels)``.
        pool_size, strides: tuples per spatial axis.
        padding: `"valid"` or `"same"`. Defaults to `"valid"`.
        rule: `"max_mean"` passes on the moments of the entry with the largest mean (default);
            `"clark"` matches the moments of the max pairwise (Clark 1961), independent
            entries.

    Returns:
        `(mean, variance)`.
    """
    spatial = mean.shape[1:-1]
    if rule == "max_mean" and windows.non_overlapping(spatial, pool_size, strides, padding):
        # Native pooling for the means; the winner's variance is the largest variance among
        # the entries equal to their window's max (float ties between entries are negligible).
        out_mean = ops.max_pool(mean, pool_size, strides, "valid")
        spread_max = windows.spread(out_mean, pool_size)
        covered = tuple(spread_max.shape[1:-1])
        index = (slice(None),) + tuple(slice(0, n) for n in covered) + (slice(None),)
        if covered != tuple(mean.shape[1:-1]):
            mean, var = mean[index], var[index]
        picked = ops.where(ops.equal(mean, spread_max), var, -1.0)
        return out_mean, ops.max_pool(picked, pool_size, strides, "valid")
    means = windows.pool_windows(mean, pool_size, strides, padding, fill=windows.NEG_FILL)
    variances = windows.pool_windows(var, pool_size, strides, padding, fill=0.0)
    if rule == "clark":
        return _clark_reduce(means, variances)
    return _max_mean_select(means, variances)


def global_max_pool_moments(mean, var, keepdims=False, rule="max_mean"):
    """Global max pooling over the spatial axes (rules as `max_pool_moments`)."""
    batch, channels = mean.shape[0], mean.shape[-1]
    flat_mean = ops.reshape(mean, (-1 if batch is None else batch, -1, channels))
    flat_var = ops.reshape(var, ops.shape(flat_mean))
    if rule == "clark":
        n = flat_mean.shape[1]
        out_mean, out_var = _clark_reduce(
            [flat_mean[:, i] for i in range(n)], [flat_var[:, i] for i in range(n)]
        )
    else:
        index = ops.expand_dims(ops.argmax(flat_mean, axis=1), 1)
        out_mean = ops.max(flat_mean, axis=1)
        out_var = ops.take_along_axis(flat_var, index, axis=1)[:, 0]
    if keepdims:
        shape = (-1,) + (1,) * (len(mean.shape) - 2) + (channels,)
        out_mean, out_var = ops.reshape(out_mean, shape), ops.reshape(out_var, shape)
    return out_mean, out_var


# -- covariance helpers -------------------------------------------------------------------


def set_diagonal(matrix, diagonal):
    """``matrix`` with its last two axes' diagonal replaced by ``diagonal``."""
    n = matrix.shape[-1]
    eye = ops.eye(n, dtype=matrix.dtype)
    current = ops.diagonal(matrix, axis1=-2, axis2=-1)
    return matrix + ops.expand_dims(diagonal - current, -1) * eye


def diagonal_covariance(var):
    """``(batch, n)`` variances -> the ``(batch, n, n)`` diagonal covariance."""
    return ops.expand_dims(var, -1) * ops.eye(var.shape[-1], dtype=var.dtype)
