"""The perturbation rules of SAM, ASAM and SAMSON: pure functions of (weights, gradients, rho).

Each returns the list of perturbations eps (one per variable) that the sharpness-aware step adds
to the weights before its second gradient. Norms are computed in float32 or higher. A zero or
non-finite gradient norm (e.g. a loss-scaling overflow) gives eps = 0. The random rule `"rwp"`
needs no gradient: its eps is `tf_lanmax.sam.rwp.rwp_perturbation`.

Reference: Foret et al. arXiv:2010.01412 (SAM); Kwon et al. arXiv:2102.11600 (ASAM);
Mordido et al. arXiv:2211.11561 (SAMSON).
"""

import math

from keras import ops

from tf_lanmax.errors import UnknownNameError

XI = 1e-12
#: The gradient (ascent) rules: eps from the gradient at w, a second gradient at w + eps.
GRADIENT_RULES = ("sam", "asam", "samson")
#: Every rule of `SharpnessAwareModel`; `"rwp"` (random eps, one pass) is not gradient-based.
RULES = (*GRADIENT_RULES, "rwp")
#: rwp's rho is relative: the sd of eps is rho times each weight tensor's RMS.
DEFAULT_RHO = {"sam": 0.05, "asam": 0.5, "samson": 0.2, "rwp": 0.05}


def _f32(x):
    return ops.cast(x, "float32") if x.dtype != "float64" else x


def global_norm(tensors):
    """The 2-norm of the concatenation of `tensors`."""
    return ops.sqrt(sum(ops.sum(ops.square(_f32(t))) for t in tensors))


def _scaled(tensors, rho, norm):
    # eps = 0 for a zero or non-finite norm: no direction to climb, or an overflowed gradient
    # (inf * 0 would be NaN, hence the final where).
    safe = ops.logical_and(ops.isfinite(norm), ops.greater(norm, 0.0))
    scale = rho / (ops.where(safe, norm, 1.0) + XI)
    return [ops.where(safe, t * scale, ops.zeros_like(t)) for t in tensors]


def sam_perturbation(grads, rho):
    """SAM: ``eps = rho g / (||g||_2 + xi)``, one global norm over all variables.

    Args:
        grads: list of gradient tensors.
        rho: radius >= 0.

    Returns:
        List of eps tensors (float32), ``||eps||_2 = rho`` up to xi.
    """
    return _scaled([_f32(g) for g in grads], rho, global_norm(grads))


def _adaptive(weights, grads, rho, scales):
    t_grads = [t * _f32(g) for t, g in zip(scales, grads, strict=True)]
    t2_grads = [t * tg for t, tg in zip(scales, t_grads, strict=True)]
    return _scaled(t2_grads, rho, global_norm(t_grads))


def asam_scales(weights, eta=0.01, is_weight=None):
    """ASAM's ``T_w = |w| + eta`` for weight tensors, 1 for the others."""
    is_weight = is_weight or [True] * len(weights)
    return [
        ops.abs(_f32(w)) + eta if flag else ops.ones_like(_f32(w))
        for w, flag in zip(weights, is_weight, strict=True)
    ]


def samson_scales(weights, eta=0.01, p=math.inf, is_weight=None):
    """SAMSON's ``T_W = (|W| + eta) / ||W||_p`` per weight tensor, 1 for the others."""
    is_weight = is_weight or [True] * len(weights)
    scales = []
    for w, flag in zip(weights, is_weight, strict=True):
        w = _f32(w)
        if not flag:
            scales.append(ops.ones_like(w))
            continue
        if p == math.inf:
            norm = ops.max(ops.abs(w))
        else:
            norm = ops.power(ops.sum(ops.power(ops.abs(w), p)), 1.0 / p)
        # A zero tensor has no range to be relative to: fall back to T = |W| + eta.
        norm = ops.where(ops.greater(norm, 0.0), norm, 1.0)
        scales.append((ops.abs(w) + eta) / norm)
    return scales


def asam_perturbation(weights, grads, rho, eta=0.01, is_weight=None):
    """ASAM: ``eps = rho T^2 g / (||T g||_2 + xi)``, ``T = |w| + eta`` on weight tensors.

    Args:
        weights: list of weight tensors (the current w).
        grads: list of gradients at w.
        rho: radius >= 0 (in the norm ``||T^-1 eps||_2``).
        eta: the offset of T. Defaults to `0.01`.
        is_weight: list of bools, False where T = 1 (biases, BN beta). Defaults to all True.

    Returns:
        List of eps tensors with ``||T^-1 eps||_2 = rho``.
    """
    return _adaptive(weights, grads, rho, asam_scales(weights, eta, is_weight))


def samson_perturbation(weights, grads, rho, eta=0.01, p=math.inf, is_weight=None):
    """SAMSON: ASAM with ``T_W = (|W| + eta) / ||W||_p`` normalised per tensor (layer).

    With p = inf each weight's radius is relative to its layer's range max|W|, which is how a
    crossbar scales conductance noise into weight units.

    Args:
        weights: list of weight tensors.
        grads: list of gradients at w.
        rho: radius >= 0 (in the norm ``||T^-1 eps||_2``).
        eta: the offset of T. Defaults to `0.01`.
        p: the per-tensor norm, 2 or inf. Defaults to `inf`.
        is_weight: list of bools, False where T = 1. Defaults to all True.

    Returns:
        List of eps tensors with ``||T^-1 eps||_2 = rho``.
    """
    return _adaptive(weights, grads, rho, samson_scales(weights, eta, p, is_weight))


def perturbation(rule, weights, grads, rho, eta=0.01, p=math.inf, is_weight=None):
    """Dispatches to a gradient rule's perturbation (`"sam"`, `"asam"` or `"samson"`)."""
    if rule == "sam":
        return sam_perturbation(grads, rho)
    if rule == "asam":
        return asam_perturbation(weights, grads, rho, eta, is_weight)
    if rule == "samson":
        return samson_perturbation(weights, grads, rho, eta, p, is_weight)
    if rule == "rwp":
        raise ValueError(
            "`rule`='rwp' draws eps at random, not from the gradient: use "
            "`tf_lanmax.sam.rwp_perturbation(weights, rho, seed, is_weight)`. "
            f"Gradient rules: {list(GRADIENT_RULES)}"
        )
    raise UnknownNameError("rule", rule, list(GRADIENT_RULES))
