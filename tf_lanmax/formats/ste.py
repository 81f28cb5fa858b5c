"""Straight-through estimator: forward a quantised value, backward the identity."""

from keras import ops


def straight_through(latent, quantized):
    """Returns `quantized` in the forward pass with the gradient of `latent` in the backward pass.

    ``latent + stop_gradient(quantized - latent)``: one backend-agnostic line, so dL/d latent equals
    dL/d quantized (BinaryConnect, Courbariaux et al. 2015, arXiv:1511.00363).

    Args:
        latent: the float tensor that receives the gradient.
        quantized: a tensor of the same shape used in the forward pass.

    Returns:
        A tensor equal to `quantized` whose gradient flows to `latent` unchanged.
    """
    return latent + ops.stop_gradient(quantized - latent)
