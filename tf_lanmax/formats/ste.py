"""Straight-through estimator: forward a quantised value, backward the identity."""

from keras import ops


def straight_through(latent, quantized):
    """Returns `quantized` in the forward pass with the gradient of `latent` in the backward pass.

    ``stop_gradient(quantized) + (latent - stop_gradient(latent))``: dL/d latent equals
    dL/d quantized (BinaryConnect, Courbariaux et al. 2015, arXiv:1511.00363). Written this way
    rather than ``latent + stop_gradient(quantized - latent)`` because ``x - x`` is exactly 0 in
    IEEE arithmetic while ``w + (q - w)`` can miss q by an ulp: the forward value is exactly the
    stored weight.

    Args:
        latent: the float tensor that receives the gradient.
        quantized: a tensor of the same shape used in the forward pass.

    Returns:
        A tensor equal to `quantized` whose gradient flows to `latent` unchanged.
    """
    return ops.stop_gradient(quantized) + (latent - ops.stop_gradient(latent))
