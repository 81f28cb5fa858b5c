"""Weights <-> normalised conductances of analog devices, in `keras.ops` for any kernel shape.

A kernel's last axis holds the output columns. W_max is the largest |w| of the kernel
(`w_max="layer"`) or of each output column (`"column"`). With the differential mapping a weight
is held by a pair ``g+ = max(w, 0) / W_max``, ``g- = max(-w, 0) / W_max`` and read back as
``(g+' - g-') W_max``; with the single mapping by one device ``g = (w / W_max + 1) / 2`` read as
``(2 g' - 1) W_max``. The devices are independent (Joshi et al., Nat. Commun. 2020; aihwkit
conductance converters).
"""

from keras import ops

from tf_lanmax.analog import normal


def _w_max(device, w):
    magnitude = ops.abs(w)
    if device.w_max == "layer":
        return ops.max(magnitude)
    if len(ops.shape(w)) < 2:
        return magnitude
    return ops.max(magnitude, axis=tuple(range(len(ops.shape(w)) - 1)), keepdims=True)


def _targets(device, w):
    # Quantised normalised targets, stacked on a leading axis: (g+, g-) or (g,); and W_max.
    w = ops.cast(ops.convert_to_tensor(w), "float32")
    w_max = _w_max(device, w)
    ratio = ops.clip(w / ops.where(w_max > 0, w_max, 1.0), -1.0, 1.0)
    if device.mapping == "differential":
        g = ops.stack([ops.relu(ratio), ops.relu(-ratio)])
    else:
        g = ops.expand_dims(0.5 * (ratio + 1.0), 0)
    return device.quantize(g), w_max


def _weights(device, g, w_max):
    if device.mapping == "differential":
        return (g[0] - g[1]) * w_max
    return (2.0 * g[0] - 1.0) * w_max


def _weight_moments(device, moments, w_max):
    mean, var = moments
    if device.mapping == "differential":
        return (mean[0] - mean[1]) * w_max, (var[0] + var[1]) * w_max * w_max
    return (2.0 * mean[0] - 1.0) * w_max, 4.0 * var[0] * w_max * w_max


def _ratio(numerator, denominator):
    # numerator / denominator, 1 where the denominator is 0 (an all-zero kernel).
    safe = ops.where(denominator > 0, denominator, 1.0)
    return ops.where(denominator > 0, numerator / safe, 1.0)


def conductances(device, w):
    """The programmed (quantised, noise-free) normalised conductances of a kernel.

    Args:
        device: a `tl.analog.Device` (its `mapping`, `w_max` and `levels` apply).
        w: the kernel (tensor, array or variable; last axis = output columns).

    Returns:
        `(g_plus, g_minus)` float32 tensors shaped like `w` for the differential mapping, or
        `(g, None)` for the single mapping; values in [0, 1], in units of `device.g_max`.

    Example:
    >>> g_plus, g_minus = tl.analog.conductances(tl.analog.get("pcm"), kernel)
    """
    g, _ = _targets(device, w)
    return (g[0], g[1]) if device.mapping == "differential" else (g[0], None)


def perturb_weights(device, w, t_inference=1.0, seed=None):
    """One noisy read of a kernel mapped onto `device`, in weight units.

    The kernel is mapped to normalised conductances (W_max per layer or per column), quantised
    if the device has `levels`, every device (g+ and g- independently) is sampled with
    `device`'s model at `t_inference`, and the readouts are mapped back with the same W_max.
    With a device's `drift_compensation` (PCM, HERMES) the whole kernel is multiplied by
    ``alpha = sum |w_prog| / sum |w'|``, where ``w_prog`` is the same chip read right after
    programming (programming noise only): aihwkit's `GlobalDriftCompensation`, which compares
    the mean absolute readout of the tile at t with the one taken after programming. An
    all-zero kernel reads back as zeros.

    Args:
        device: a `tl.analog.Device`.
        w: the kernel (tensor, array or variable; any shape, last axis = output columns).
        t_inference: seconds since programming, >= 0. Defaults to `1.0`.
        seed: int, None or `keras.random.SeedGenerator`: one seed is one chip, the same at
            every `t_inference`. Defaults to `None`.

    Returns:
        A tensor shaped like `w`, of its dtype.

    Raises:
        ValueError: for a negative `t_inference`.

    Example:
    >>> pcm = tl.analog.get("pcm", w_max="column")
    >>> noisy = [tl.analog.perturb_weights(pcm, kernel, t, seed=0) for t in (1.0, 86400.0)]
    """
    t = device._time(t_inference)
    dtype = ops.convert_to_tensor(w).dtype
    g, w_max = _targets(device, w)
    normals = device.normals(ops.shape(g), seed)
    read = _weights(device, device._sample(g, t, normals), w_max)
    if device.drift_compensation:
        programmed = _weights(device, device._reference(g, normals), w_max)
        read = read * _ratio(ops.sum(ops.abs(programmed)), ops.sum(ops.abs(read)))
    return ops.cast(read, dtype)


def sample_weights(device, w, draws, t_inference=1.0, seed=None):
    """`draws` independently programmed chips' reads of a kernel, stacked on a new first axis.

    The vectorised form of `draws` calls of `perturb_weights` (one draw of the normals for all
    chips; drift compensation per chip): what Monte-Carlo references use.

    Args:
        device: a `tl.analog.Device`.
        w: the kernel.
        draws: the number of chips D, an int >= 1.
        t_inference: seconds since programming, >= 0. Defaults to `1.0`.
        seed: int, None or `keras.random.SeedGenerator`. Defaults to `None`.

    Returns:
        A tensor of shape ``(draws,) + w.shape``, of w's dtype.

    Example:
    >>> reads = tl.analog.sample_weights(tl.analog.get("pcm"), kernel, 100, 3600.0, seed=0)
    """
    t = device._time(t_inference)
    dtype = ops.convert_to_tensor(w).dtype
    g, w_max = _targets(device, w)
    shape = (draws, *ops.shape(g))
    g = ops.broadcast_to(ops.expand_dims(g, 0), shape)
    normals = device.normals(shape, seed)

    def to_weights(read):  # (D, pair, ...) -> (D, ...)
        return _weights(device, ops.moveaxis(read, 0, 1), w_max)

    read = to_weights(device._sample(g, t, normals))
    if device.drift_compensation:
        programmed = to_weights(device._reference(g, normals))
        axes = tuple(range(1, len(read.shape)))
        alpha = _ratio(
            ops.sum(ops.abs(programmed), axis=axes, keepdims=True),
            ops.sum(ops.abs(read), axis=axes, keepdims=True),
        )
        read = read * alpha
    return ops.cast(read, dtype)


def weight_moments(device, w, t_inference=1.0):
    """Mean and variance of every weight of `perturb_weights(device, w, t_inference)`.

    Devices are independent: differential ``E = (m+ - m-) W_max``, ``Var = (v+ + v-) W_max^2``;
    single ``E = (2 m - 1) W_max``, ``Var = 4 v W_max^2``, from `device.moments` of the
    quantised targets. With `drift_compensation` the random factor alpha is replaced by its
    large-layer limit, the ratio of the expected layer sums ``sum E|w_prog| / sum E|w'|``, each
    ``E|w|`` taken for a normal weight of the exact mean and variance (exact for the sums of
    large layers up to this normal approximation of each weight's shape); the mean and variance
    are scaled by alpha and alpha^2.

    Args:
        device: a `tl.analog.Device`.
        w: the kernel.
        t_inference: seconds since programming, >= 0. Defaults to `1.0`.

    Returns:
        `(mean, variance)`, float32 tensors shaped like `w`.

    Raises:
        ValueError: for a negative `t_inference`.

    Example:
    >>> mean, var = tl.analog.weight_moments(tl.analog.get("reram_wan2022"), kernel, 86400.0)
    """
    t = device._time(t_inference)
    g, w_max = _targets(device, w)
    mean, var = _weight_moments(device, device._moments(g, t), w_max)
    if device.drift_compensation:
        ref_mean, ref_var = _weight_moments(device, device._reference_moments(g), w_max)
        alpha = _ratio(
            ops.sum(normal.folded_mean(ref_mean, ref_var)),
            ops.sum(normal.folded_mean(mean, var)),
        )
        mean, var = mean * alpha, var * alpha * alpha
    return mean, var
