"""Random weight perturbation (RWP): Gaussian eps scaled per weight tensor, no ascent pass.

For each weight tensor W (``is_weight`` True) the perturbation is i.i.d. Gaussian,
``eps ~ N(0, (rho s_W)^2)`` with ``s_W = ||W||_2 / sqrt(numel(W))``, the tensor's RMS: rho is
relative, so the noise follows each layer's own scale (as analog-hardware noise follows each
crossbar's conductance range) and a rescaled layer gets rescaled noise. Tensors with
``is_weight`` False (biases, BatchNorm beta) get eps = 0: they are zero-initialised, so an RMS
scale would give them no noise at the start anyway, and hardware keeps them in the digital
periphery. The training step takes one gradient at w + eps and applies it at w (see
`tf_lanmax.sam.one_pass_step`), so it costs about one plain step.

Reference: Bisla et al., "Low-Pass Filtering SGD for Recovering Flat Optima in the Deep Learning
Optimization Landscape", AISTATS 2022 (arXiv:2201.08025); Li et al. arXiv:2404.00357 (RWP vs
SAM); Sandia, arXiv:2602.07320.
"""

import math

import keras
from keras import ops

from tf_lanmax._seeds import seed_value


def layer_rms(weight):
    """``||W||_2 / sqrt(numel(W))`` in float32: the RMS of the entries of `weight`."""
    w = ops.cast(weight, "float32")
    return ops.sqrt(ops.mean(ops.square(w)))


def rwp_perturbation(weights, rho, seed, is_weight=None):
    """RWP: ``eps_W ~ N(0, (rho ||W||_2 / sqrt(numel W))^2)`` i.i.d. per weight tensor.

    A pure function of its arguments: the same `seed` tensor gives the same eps. One Gaussian
    vector is drawn for all weight tensors together and cut into them, so tensors never share
    draws.

    Args:
        weights: list of weight tensors (the current w).
        rho: relative noise level >= 0: the sd of eps is rho times the tensor's RMS.
        seed: a seed tensor (shape (2,), e.g. `SeedGenerator.next()`), an int, a
            `keras.random.SeedGenerator` (advanced by the call: not pure) or None (unseeded;
            refused by JAX when traced).
        is_weight: list of bools, False where eps = 0 (biases, BatchNorm beta). Defaults to
            all True.

    Returns:
        List of float32 eps tensors, one per weight, of the weights' shapes.
    """
    is_weight = is_weight or [True] * len(weights)
    flagged = [w for w, flag in zip(weights, is_weight, strict=True) if flag]
    sizes = [math.prod(w.shape) for w in flagged]
    total = sum(sizes)
    z = keras.random.normal((total,), seed=seed_value(seed), dtype="float32") if total else None
    eps, offset = [], 0
    for w, flag in zip(weights, is_weight, strict=True):
        if not flag:
            eps.append(ops.zeros(w.shape, "float32"))
            continue
        size = math.prod(w.shape)
        noise = ops.reshape(z[offset : offset + size], w.shape)
        offset += size
        eps.append((rho * layer_rms(w)) * noise)
    return eps
