"""Reverse-mode rules of the `"jacobian"` covariance mode of MemSE, in `keras.ops` only.

To first order, the output error of a network with noisy weights is
``e = sum_l J_l (N_l * mu_l)``: every layer's weight noise ``N_l`` acting on that layer's mean
input, carried to the outputs by the Jacobian ``J_l`` of the rest of the network. Weight noises
of different entries are independent, so

    Cov[e_o, e_q] = sum_l sum_w S^2_w  G_(l,o,w) G_(l,q,w),   G_(l,o,w) = d z_o / d w,

which keeps every correlation the diagonal rules drop: one kernel entry's noise shared by all
positions of a convolution (weight sharing), branches that meet again in an Add, pooling over
correlated neighbours. The per-sample weight gradients come from one reverse pass with a
cotangent per output (``O x B`` rows), through the network linearised at the mean state, ReLU
slopes being their expected values ``Phi(mu / s)`` (statistical linearisation, Price's theorem).
The second-order term of the weight noise on the noisy part of the input,
``sum_w S^2_w E[x^2 - mu^2] (dz/dy)^2``, is added on the diagonal of positions.

All functions are pure; cotangents are ``(O * B, ...)`` with the output index outermost.
"""

import numpy as np
from keras import ops

from tf_lanmax.memse import windows


def per_output(g, num_outputs):
    """``(O * B, ...)`` -> ``(O, B, ...)``."""
    return ops.reshape(g, (num_outputs, -1) + tuple(g.shape[1:]))


def flat_outputs(g):
    """``(O, B, ...)`` -> ``(O * B, ...)``."""
    return ops.reshape(g, (-1,) + tuple(g.shape[2:]))


def conv_input_adjoint(g, kernel, input_shape, strides, padding, dilation):
    """Cotangent of a convolution's input from its output's: ``(N, *spatial, Cin)``."""
    spatial = tuple(input_shape[1:-1])
    kernel_size = tuple(kernel.shape[:-2])
    if all(d == 1 for d in dilation):
        geometry = [
            windows.pool_geometry(n, k, s, padding)
            for n, k, s in zip(spatial, kernel_size, strides, strict=True)
        ]
        full = ops.conv_transpose(g, kernel, strides=strides, padding="valid")
        pads, index = [[0, 0]], [slice(None)]
        for axis, ((_, before, _), n) in enumerate(zip(geometry, spatial, strict=True), 1):
            pads.append([0, max(0, before + n - full.shape[axis])])
            index.append(slice(before, before + n))
        pads.append([0, 0])
        index.append(slice(None))
        return ops.pad(full, pads)[tuple(index)]
    taps = ops.reshape(kernel, (-1,) + tuple(kernel.shape[-2:]))  # (taps, Cin, Cout)
    cots = [ops.matmul(g, ops.transpose(taps[t])) for t in range(taps.shape[0])]
    return windows.window_scatter(cots, spatial, kernel_size, strides, padding, dilation)


def depthwise_as_conv(kernel):
    """A depthwise kernel ``(*k, Cin, m)`` as the equivalent full kernel ``(*k, Cin, Cin m)``."""
    cin, mult = kernel.shape[-2], kernel.shape[-1]
    eye = ops.eye(cin, dtype=kernel.dtype)
    full = ops.expand_dims(kernel, -2) * ops.reshape(eye, (cin, cin, 1))
    return ops.reshape(full, tuple(kernel.shape[:-2]) + (cin, cin * mult))


def _gram(a):
    """``(B, O, F)`` -> ``(B, O, O)``: per-sample inner products (one batched matmul)."""
    return ops.matmul(a, ops.transpose(a, (0, 2, 1)))


def _on_diagonal(values):
    """``(B, O)`` -> ``(B, O, O)`` diagonal matrices."""
    return ops.expand_dims(values, -1) * ops.eye(values.shape[-1], dtype=values.dtype)


def weight_noise_covariance(patches, patch_var, g, kernel_var, num_outputs):
    """Output covariance added by one layer's weight noise, ``(B, O, O)``.

    ``sum_(k,c) S^2_kc G_okc G_qkc`` with the per-sample weight gradient
    ``G_okc = sum_p x_pk g_opc`` (patches ``x`` of the mean input), plus, on the diagonal, the
    second-order term of the noise acting on the noisy part of the input,
    ``sum_(p,k,c) S^2_kc v_pk g_opc^2``.

    Args:
        patches: ``(B, P, K)`` mean inputs seen by each weight row (P = 1 for a Dense layer).
        patch_var: ``(B, P, K)`` their variances, or None for a deterministic input.
        g: ``(O * B, P, C)`` cotangents of the layer's pre-activation output.
        kernel_var: S^2: scalar, ``(C,)`` or ``(K, C)``.
        num_outputs: O.

    Returns:
        ``(B, O, O)``.
    """
    num = num_outputs
    kernel_var = ops.convert_to_tensor(kernel_var, patches.dtype)
    _, positions, k = patches.shape
    channels = g.shape[-1]
    per = ops.reshape(g, (num, -1, positions, channels))
    # (O, B, P, C) -> (B, P, O * C): the per-sample weight gradients become one batched matmul.
    flat = ops.reshape(ops.transpose(per, (1, 2, 0, 3)), (-1, positions, num * channels))
    grads = ops.matmul(ops.transpose(patches, (0, 2, 1)), flat)  # (B, K, O * C)
    grads = ops.reshape(grads, (-1, k, num, channels))
    shared = len(kernel_var.shape) < 2
    if shared:
        weighted = grads * ops.sqrt(kernel_var)
    else:
        weighted = grads * ops.expand_dims(ops.sqrt(kernel_var), 1)
    weighted = ops.reshape(ops.transpose(weighted, (0, 2, 1, 3)), (-1, num, k * channels))
    cov = _gram(weighted)
    if patch_var is None:
        return cov
    if shared:
        box = ops.sum(patch_var, axis=-1)  # (B, P)
        second = ops.sum(ops.square(per) * kernel_var, axis=-1)  # (O, B, P)
        diagonal = ops.sum(second * box, axis=-1)
    else:
        var_c = ops.matmul(patch_var, kernel_var)  # (B, P, C)
        diagonal = ops.sum(ops.square(per) * var_c, axis=(2, 3))
    return cov + _on_diagonal(ops.transpose(diagonal))


def depthwise_noise_covariance(patches, patch_var, g, kernel_var, num_outputs, multiplier):
    """As `weight_noise_covariance` for a depthwise kernel ``(*k, Cin, m)``.

    Args:
        patches, patch_var: ``(B, P, taps, Cin)``.
        g: ``(O * B, P, Cin * m)``.
        kernel_var: scalar or broadcastable to ``(taps, Cin, m)``.
    """
    g = per_output(g, num_outputs)
    g = ops.reshape(g, tuple(g.shape[:-1]) + (-1, multiplier))  # (O, B, P, Cin, m)
    grads = ops.einsum("bpti,obpim->obtim", patches, g)
    cov = ops.einsum("obtim,qbtim->boq", grads * kernel_var, grads)
    var_w = ops.einsum("bpti,tim->bpim", patch_var, kernel_var * ops.ones(grads.shape[2:]))
    return cov + ops.einsum("bpim,obpim,qbpim->boq", var_w, g, g)


def max_pool_adjoint(g, mean, pool_size, strides, padding, num):
    """Routes each window's cotangent to its largest-mean entry (the max-mean rule)."""
    spatial = tuple(mean.shape[1:-1])
    if windows.non_overlapping(spatial, pool_size, strides, padding):
        # Spread each cotangent over its window, keep it where the entry is the window's max.
        spread_max = windows.spread(ops.max_pool(mean, pool_size, strides, "valid"), pool_size)
        covered = tuple(spread_max.shape[1:-1])
        index = (slice(None),) + tuple(slice(0, n) for n in covered) + (slice(None),)
        winner = ops.cast(ops.equal(mean[index], spread_max), g.dtype)
        routed = per_output(windows.spread(g, pool_size), num) * winner
        pads = [[0, 0]] + [[0, n - c] for n, c in zip(spatial, covered)] + [[0, 0]]
        routed = flat_outputs(routed)
        return ops.pad(routed, pads) if covered != spatial else routed
    entries = windows.pool_windows(mean, pool_size, strides, padding, fill=windows.NEG_FILL)
    winner = ops.argmax(ops.stack(entries, axis=0), axis=0)
    g = per_output(g, num)
    cots = [flat_outputs(g * ops.cast(ops.equal(winner, k), g.dtype)) for k in range(len(entries))]
    return windows.window_scatter(cots, spatial, pool_size, strides, padding)


def average_pool_adjoint(g, input_shape, pool_size, strides, padding):
    """Spreads each window's cotangent evenly over its real entries."""
    spatial = tuple(input_shape[1:-1])
    size = int(np.prod(pool_size))
    if windows.non_overlapping(spatial, pool_size, strides, padding):
        shares = ops.repeat(ops.expand_dims(g / size, -1), size, axis=-1)
        return windows.from_blocks(shares, pool_size, spatial)
    counts = windows.window_counts(spatial, pool_size, strides, padding)
    return windows.window_scatter([g / counts] * size, spatial, pool_size, strides, padding)


def global_average_pool_adjoint(g, input_shape, keepdims):
    spatial = tuple(input_shape[1:-1])
    count = float(np.prod(spatial))
    if not keepdims:
        g = ops.reshape(g, (-1,) + (1,) * len(spatial) + (g.shape[-1],))
    return g * ops.ones((1,) + spatial + (1,), dtype=g.dtype) / count


def global_max_pool_adjoint(g, mean, keepdims, num):
    spatial = tuple(mean.shape[1:-1])
    channels = mean.shape[-1]
    flat = ops.reshape(mean, (-1, int(np.prod(spatial)), channels))
    winner = ops.one_hot(ops.argmax(flat, axis=1), flat.shape[1], axis=1)  # (B, HW, C)
    g = ops.reshape(g, (num, -1, 1, channels))
    routed = g * ops.cast(winner, g.dtype)
    return ops.reshape(flat_outputs(routed), (-1,) + spatial + (channels,))


# -- probe mode: per-example weighted squared gradient norms -------------------------------


def _second_order_energy(per, patch_var, kernel_var):
    """``sum_(p,k,c) S^2_kc v_pk g_pc^2`` per probe and sample: the weight noise acting on the
    noisy part of the input. ``per`` is ``(O, B, P, C)``; returns ``(O, B)``."""
    if len(kernel_var.shape) < 2:
        box = ops.sum(patch_var, axis=-1)  # (B, P)
        return ops.sum(ops.sum(ops.square(per) * kernel_var, axis=-1) * box, axis=-1)
    var_c = ops.matmul(patch_var, kernel_var)  # (B, P, C)
    return ops.sum(ops.square(per) * var_c, axis=(2, 3))


def gram_is_cheaper(positions, features, channels, probes):
    """Whether the ``T x T`` Gram form of the per-example gradient norm costs fewer
    multiply-adds than instantiating the per-example gradients.

    Instantiating ``G_n = sum_t a_t d_t^T`` costs ``T K C`` per probe; the Gram form
    ``sum_(t,t') (a_t . a_t') (d_t . d_t')`` costs ``T^2 K`` once plus ``T^2 C`` per probe.

    >>> gram_is_cheaper(positions=784, features=9, channels=16, probes=1)
    False
    >>> gram_is_cheaper(positions=4, features=1152, channels=64, probes=1)
    True
    """
    return positions * positions * (features + probes * channels) < (
        positions * features * channels * probes
    )


def weight_noise_energy(patches, patch_var, g, kernel_var, num_probes):
    """Per-example ``sum_w S^2_w G_w^2`` of one layer's weight gradient ``G`` per probe.

    ``G_kc = sum_t x_tk g_tc`` is the gradient of ``u . f(x)`` with respect to the layer's
    kernel (``u`` the probe, ``g`` its cotangent at the layer's pre-activation output, ``x``
    the patches of the mean input). Its weighted squared norm is, in expectation over
    Rademacher probes, the output variance that this layer's weight noise adds (its trace).
    A Dense layer (one position) uses the outer-product identity
    ``||a d^T||^2_S = sum_c S^2_c d_c^2 ||a||^2``; a convolution instantiates the per-example
    gradient or uses the Gram form, whichever is cheaper (`gram_is_cheaper`; the Gram form
    needs S^2 shared per layer or per output channel). With `patch_var`, the second-order
    term of `weight_noise_covariance` is added.

    Args:
        patches: ``(B, T, K)`` mean inputs seen by each weight row (T = 1 for a Dense layer).
        patch_var: ``(B, T, K)`` their variances, or None for a deterministic input.
        g: ``(P * B, T, C)`` cotangents, probe index outermost.
        kernel_var: S^2: scalar, ``(C,)`` or ``(K, C)``.
        num_probes: P.

    Returns:
        ``(B, P)``.
    """
    kernel_var = ops.convert_to_tensor(kernel_var, patches.dtype)
    _, positions, k = patches.shape
    channels = g.shape[-1]
    num = num_probes
    per = ops.reshape(g, (num, -1, positions, channels))  # (P, B, T, C)
    shared = len(kernel_var.shape) < 2
    if positions == 1:
        a2 = ops.square(patches[:, 0, :])  # (B, K)
        d2 = ops.square(per[:, :, 0, :])  # (P, B, C)
        if shared:
            energy = ops.sum(a2, axis=-1) * ops.sum(d2 * kernel_var, axis=-1)
        else:
            energy = ops.sum(ops.matmul(a2, kernel_var) * d2, axis=-1)
    elif shared and gram_is_cheaper(positions, k, channels, num):
        inputs = ops.matmul(patches, ops.transpose(patches, (0, 2, 1)))  # (B, T, T)
        weighted = per * ops.sqrt(kernel_var)
        outputs = ops.matmul(weighted, ops.transpose(weighted, (0, 1, 3, 2)))  # (P, B, T, T)
        energy = ops.sum(outputs * inputs, axis=(2, 3))
    else:
        # (P, B, T, C) -> (B, T, P * C): the per-example gradients as one batched matmul.
        flat = ops.reshape(ops.transpose(per, (1, 2, 0, 3)), (-1, positions, num * channels))
        grads = ops.matmul(ops.transpose(patches, (0, 2, 1)), flat)  # (B, K, P * C)
        grads = ops.reshape(grads, (-1, k, num, channels))
        if shared:
            energy = ops.sum(ops.square(grads) * kernel_var, axis=(1, 3))  # (B, P)
            energy = ops.transpose(energy)
        else:
            energy = ops.sum(ops.square(grads) * ops.expand_dims(kernel_var, 1), axis=(1, 3))
            energy = ops.transpose(energy)
    if patch_var is not None:
        energy = energy + _second_order_energy(per, patch_var, kernel_var)
    return ops.transpose(energy)


def depthwise_noise_energy(patches, patch_var, g, kernel_var, num_probes, multiplier):
    """As `weight_noise_energy` for a depthwise kernel ``(*k, Cin, m)``.

    Args:
        patches, patch_var: ``(B, T, taps, Cin)``.
        g: ``(P * B, T, Cin * m)``.
        kernel_var: scalar or broadcastable to ``(taps, Cin, m)``.

    Returns:
        ``(B, P)``.
    """
    g = per_output(g, num_probes)
    g = ops.reshape(g, tuple(g.shape[:-1]) + (-1, multiplier))  # (P, B, T, Cin, m)
    grads = ops.einsum("bpti,obpim->obtim", patches, g)
    energy = ops.sum(ops.square(grads) * kernel_var, axis=(2, 3, 4))
    var_w = ops.einsum("bpti,tim->bpim", patch_var, kernel_var * ops.ones(grads.shape[2:]))
    energy = energy + ops.sum(ops.square(g) * var_w, axis=(2, 3, 4))
    return ops.transpose(energy)
