"""Crossbar power model of MemSE, pure `keras.ops` functions.

Per crossbar, with programmed conductances ``G+-`` (differential pair), inputs ``X`` and TIA
gain ``r``:

    P = sum_ji G_ji E[X_i^2] + sum_j (E[(V+_j)^2] + E[(V-_j)^2]) / r,   V+- = r sum_i G+-_ji X_i

The first term is the devices' Joule power (``G = G+ + G-``, ``E[X^2] = v + mu^2``), the second
the amplifiers'. ``E[(V+-)^2] / r = r E[(G+- X)^2]`` uses the linear-layer moment formulas with
the device noise ``sigma^2`` per conductance. At fixed normalised weights ``W / Wmax`` the device
term is linear in Gmax and the TIA term quadratic (plus a Gmax-free noise floor
``r sigma^2 sum E[X^2]``), while the noise MSE falls as ``1 / Gmax^2``.
"""

from keras import ops


def crossbar_power(apply, g_pos, g_neg, mean, var, sigma, tia_gain):
    """Expected power of one crossbar, per sample.

    Args:
        apply: ``apply(x, kernel)`` -> the layer's linear map (matmul or convolution), applied
            at every position for convolutions (each use of the crossbar counts).
        g_pos, g_neg: programmed conductances of the positive and negative devices, shaped like
            the kernel.
        mean, var: moments of the crossbar's input.
        sigma: conductance noise standard deviation (float).
        tia_gain: the amplifiers' gain r (float).

    Returns:
        `(device, tia)`: two ``(batch,)`` tensors.
    """
    second = var + ops.square(mean)

    def total(x):
        return ops.sum(x, axis=tuple(range(1, len(x.shape))))

    device = total(apply(second, g_pos + g_neg))
    tia = 0.0
    for g in (g_pos, g_neg):
        tia = tia + total(ops.square(apply(mean, g)) + apply(var, ops.square(g)))
    if sigma > 0:
        tia = tia + 2.0 * sigma**2 * total(apply(second, ops.ones_like(g_pos)))
    return device, tia_gain * tia
