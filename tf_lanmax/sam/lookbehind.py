"""Lookbehind: k ascent/descent steps per batch on fast weights, then one interpolation.

Algorithm 1 of Mordido et al. (per minibatch, on the same minibatch, with slow weights
``w = phi_{t,0}``)::

    phi'_0 = w                                       (the ascent chain)
    for i = 1..k:
        eps_i   = rule(phi'_{i-1}, grad L(phi'_{i-1}))   (SAM, ASAM or SAMSON)
        phi'_i  = phi'_{i-1} + eps_i                  (ascent from the perturbed point)
        phi_i   = optimizer step of phi_{i-1} with grad L(phi'_i)   (fast weights)
    w <- w + alpha (phi_k - w)

With k = 1 and alpha = 1 this is exactly the plain rule's step. The optimizer takes k steps per
batch (its `iterations` counts them), as in the official code. `alpha="adaptive"` is the paper's
adaptive alpha, per weight tensor: ``alpha = (cos(phi_1 - w, phi_k - w) + 1) / 2``.

This module holds the backend-independent parts; the train steps run the loop.

Reference: Mordido, Malviya, Baratin, Chandar, "Lookbehind-SAM: k steps back, 1 step forward",
ICML 2024 (arXiv:2307.16704), and its official code (github.com/chandar-lab/Lookbehind-SAM).
"""

from keras import ops

from tf_lanmax._validation import check_int, check_probability

#: The paper's middle static value (it uses alpha in {0.2, 0.5, 0.8}).
DEFAULT_ALPHA = 0.5
ADAPTIVE = "adaptive"
#: Floor of the norm product in the adaptive alpha's cosine (torch's CosineSimilarity eps).
COS_EPS = 1e-8


def check_lookbehind(steps, alpha):
    """Validates `lookbehind_steps` and `lookbehind_alpha`; resolves alpha=None.

    Args:
        steps: k, an integer >= 1.
        alpha: None, a number in (0, 1] or `"adaptive"`. None means 1 for k = 1 (the plain
            rule) and `DEFAULT_ALPHA` for k > 1.

    Returns:
        (steps, alpha) with alpha a float or `"adaptive"`.
    """
    steps = check_int("lookbehind_steps", steps, low=1)
    if alpha is None:
        return steps, 1.0 if steps == 1 else DEFAULT_ALPHA
    if isinstance(alpha, str):
        if alpha != ADAPTIVE:
            raise ValueError(
                "`lookbehind_alpha` must be a number in (0, 1] or 'adaptive'. "
                f"Received: lookbehind_alpha={alpha!r}"
            )
        return steps, alpha
    return steps, check_probability("lookbehind_alpha", alpha, low=0.0, high=1.0)


def is_plain(steps, alpha):
    """Whether Lookbehind reduces to the plain rule (no fast weights, no interpolation)."""
    return steps == 1 and (alpha == 1.0 or alpha == ADAPTIVE)


def adaptive_alpha(slow, first, last):
    """``(cos(first - slow, last - slow) + 1) / 2`` per tensor: the paper's adaptive alpha."""
    alphas = []
    for s, a, b in zip(slow, first, last, strict=True):
        da, db = ops.reshape(a - s, (-1,)), ops.reshape(b - s, (-1,))
        norms = ops.sqrt(ops.sum(ops.square(da))) * ops.sqrt(ops.sum(ops.square(db)))
        cos = ops.sum(da * db) / ops.maximum(norms, COS_EPS)
        alphas.append((cos + 1.0) / 2.0)
    return alphas


def interpolate(slow, fast, alpha, first=None):
    """``slow + alpha (fast - slow)`` per tensor (`first`: phi_1, needed for adaptive alpha)."""
    if alpha == ADAPTIVE:
        alphas = adaptive_alpha(slow, first, fast)
    else:
        alphas = [alpha] * len(slow)
    return [s + ops.cast(a, s.dtype) * (f - s) for s, f, a in zip(slow, fast, alphas, strict=True)]
