"""tf_lanmax: Keras 3 networks that stay accurate on unreliable, low-energy memory."""

__version__ = "0.1.0"
