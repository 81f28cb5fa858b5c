"""Window geometry of pooling and convolution: which input entries each output reads.

Pooling windows and convolution receptive fields share one index map: along each spatial axis,
output position ``o`` reads the entries ``o * stride + k * dilation`` (k over the window) of the
input padded by ``before`` in front (`pool_geometry`; `"same"` padding splits as TensorFlow
does, the extra entry after). The functions gather the windows (`pool_windows`,
`conv_patches`), scatter values back to where they were read (`window_scatter`, the adjoint of
the gather), and reshape non-overlapping windows into blocks (`to_blocks`, `from_blocks`,
`spread`). They hold no state and use `keras.ops` only.
"""

import numpy as np
from keras import ops

# Fill of padded max-pooling windows: never the max; its square stays finite in float32.
NEG_FILL = -1e15


def pool_geometry(size, pool, stride, padding):
    """``(out, before, after)`` along one axis: output length and the padding in front and
    after, for a window of `pool` entries (dilation included) moved by `stride`.

    >>> pool_geometry(5, 2, 2, "same"), pool_geometry(5, 2, 2, "valid")
    ((3, 0, 1), (2, 0, 0))
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + pool - size, 0)
        return out, total // 2, total - total // 2
    return (size - pool) // stride + 1, 0, 0


def pool_windows(x, pool_size, strides, padding, fill=0.0, dilation=None):
    """The elements of every pooling (or convolution) window, as a list of tensors.

    Element k of the list holds, at each output position, the k-th entry of its window
    (row-major over the window). Padded entries read `fill`.

    Args:
        x: ``(batch, *spatial, channels)``.
        pool_size, strides: tuples, one entry per spatial axis.
        padding: `"valid"` or `"same"` (TensorFlow's split: the extra pad goes after).
        fill: value of padded entries. Defaults to `0.0`.
        dilation: tuple per spatial axis (convolution windows), or `None` for 1.
            Defaults to `None`.

    Returns:
        A list of ``prod(pool_size)`` tensors of shape ``(batch, *out_spatial, channels)``.
    """
    dilation = dilation or (1,) * len(pool_size)
    spatial = tuple(x.shape[1:-1])
    geometry = [
        pool_geometry(n, (k - 1) * d + 1, s, padding)
        for n, k, s, d in zip(spatial, pool_size, strides, dilation, strict=True)
    ]
    if any(before or after for _, before, after in geometry):
        pads = [[0, 0]] + [[b, a] for _, b, a in geometry] + [[0, 0]]
        x = ops.pad(x, pads, constant_values=fill)
    windows = []
    for offsets in np.ndindex(*pool_size):
        index = [slice(None)]
        for (out, _, _), offset, stride, d in zip(
            geometry, offsets, strides, dilation, strict=True
        ):
            index.append(slice(offset * d, offset * d + stride * (out - 1) + 1, stride))
        index.append(slice(None))
        windows.append(x[tuple(index)])
    return windows


def non_overlapping(spatial, pool_size, strides, padding):
    """True when the windows tile the input without overlap or padding (the common 2x2/2)."""
    if tuple(pool_size) != tuple(strides):
        return False
    if padding == "same":
        return all(n % k == 0 for n, k in zip(spatial, pool_size, strict=True))
    return True


def spread(x, pool_size):
    """Repeats every entry over its non-overlapping window: ``(N, *out, C)`` ->
    ``(N, *out x pool_size, C)``."""
    for axis, k in enumerate(pool_size, start=1):
        if k > 1:
            x = ops.repeat(x, k, axis=axis)
    return x


def to_blocks(x, pool_size):
    """``(B, *spatial, C)`` -> ``(B, *out, C, prod(pool_size))`` for non-overlapping windows
    (trailing rows that no window covers are dropped, as 'valid' pooling does)."""
    rank = len(pool_size)
    out = [n // k for n, k in zip(x.shape[1:-1], pool_size, strict=True)]
    index = (slice(None),) + tuple(slice(0, o * k) for o, k in zip(out, pool_size)) + (slice(None),)
    x = x[index]
    shape = [-1]
    for o, k in zip(out, pool_size, strict=True):
        shape += [o, k]
    x = ops.reshape(x, shape + [x.shape[-1]])
    perm = (
        [0] + [1 + 2 * i for i in range(rank)] + [1 + 2 * rank] + [2 + 2 * i for i in range(rank)]
    )
    x = ops.transpose(x, perm)
    return ops.reshape(x, (-1,) + tuple(out) + (x.shape[1 + rank], int(np.prod(pool_size))))


def from_blocks(x, pool_size, spatial):
    """Inverse of `to_blocks`: ``(N, *out, C, prod(pool_size))`` -> ``(N, *spatial, C)``,
    zeros where no window reads."""
    rank = len(pool_size)
    out = tuple(x.shape[1 : 1 + rank])
    channels = x.shape[1 + rank]
    x = ops.reshape(x, (-1,) + out + (channels,) + tuple(pool_size))
    perm = [0]
    for i in range(rank):
        perm += [1 + i, 2 + rank + i]
    perm += [1 + rank]
    x = ops.transpose(x, perm)
    x = ops.reshape(x, (-1,) + tuple(o * k for o, k in zip(out, pool_size)) + (channels,))
    pads = [[0, 0]] + [[0, n - o * k] for n, o, k in zip(spatial, out, pool_size)] + [[0, 0]]
    return ops.pad(x, pads) if any(p[1] for p in pads) else x


def window_counts(spatial_shape, pool_size, strides, padding):
    """Number of real (unpadded) entries in each pooling window: ``(1, *out_spatial, 1)``."""
    ones = ops.ones((1,) + tuple(spatial_shape) + (1,))
    return sum(pool_windows(ones, pool_size, strides, padding, fill=0.0))


def _zero_insert(x, strides):
    """Spreads entries ``s`` apart along each spatial axis (``(n - 1) s + 1`` long)."""
    for axis, s in enumerate(strides, start=1):
        if s == 1:
            continue
        n = x.shape[axis]
        zeros = ops.zeros_like(x)
        x = ops.stack([x] + [zeros] * (s - 1), axis=axis + 1)
        shape = tuple(x.shape[:axis]) + (n * s,) + tuple(x.shape[axis + 2 :])
        x = ops.reshape(x, shape)
        index = [slice(None)] * len(x.shape)
        index[axis] = slice(0, (n - 1) * s + 1)
        x = x[tuple(index)]
    return x


def window_scatter(cotangents, spatial, window, strides, padding, dilation=None):
    """Adjoint of `pool_windows`: adds every window entry back where it was read.

    Args:
        cotangents: one ``(N, *out_spatial, C)`` tensor per window entry (row-major order).
        spatial: the input's spatial shape.
        window, strides: tuples per spatial axis.
        padding: `"valid"` or `"same"`.
        dilation: tuple per axis, or None for 1.

    Returns:
        ``(N, *spatial, C)``.
    """
    dilation = dilation or (1,) * len(window)
    geometry = [
        pool_geometry(n, (k - 1) * d + 1, s, padding)
        for n, k, s, d in zip(spatial, window, strides, dilation, strict=True)
    ]
    total = None
    for cot, offsets in zip(cotangents, np.ndindex(*window), strict=True):
        spread = _zero_insert(cot, strides)
        pads = [[0, 0]]
        for axis, ((_, before, after), n, off, d) in enumerate(
            zip(geometry, spatial, offsets, dilation, strict=True), start=1
        ):
            start = off * d
            pads.append([start, n + before + after - start - spread.shape[axis]])
        pads.append([0, 0])
        placed = ops.pad(spread, pads)
        total = placed if total is None else total + placed
    index = [slice(None)]
    for (_, before, _), n in zip(geometry, spatial, strict=True):
        index.append(slice(before, before + n))
    index.append(slice(None))
    return total[tuple(index)]


def conv_patches(x, kernel_size, strides, padding, dilation):
    """Receptive fields of a convolution: ``(B, P, K)``, K ordered as the kernel's
    ``(*kernel_size, in_channels)`` axes flattened row-major."""
    taps = pool_windows(x, kernel_size, strides, padding, fill=0.0, dilation=dilation)
    patches = ops.stack(taps, axis=-2)  # (B, *out, taps, Cin)
    positions = int(np.prod(taps[0].shape[1:-1]))
    return ops.reshape(patches, (-1, positions, len(taps) * x.shape[-1]))
