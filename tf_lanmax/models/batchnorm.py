"""The reference networks' `synchronized_batchnorm` option, checked against the backend."""

import keras
import numpy as np


def check_synchronized_batchnorm(synchronized_batchnorm):
    """Validates a builder's `synchronized_batchnorm` flag for the current backend.

    Keras synchronizes BatchNorm statistics under `tf.distribute` only. On JAX there is nothing to
    synchronize: `keras.distribution.DataParallel` compiles one program over the global batch, so
    its batch statistics are global already.

    Args:
        synchronized_batchnorm: the flag.

    Returns:
        The flag, a bool.

    Raises:
        ValueError: the flag is not a bool, or is set on a backend other than TensorFlow.

    Example:
    >>> synchronized = check_synchronized_batchnorm(False)
    """
    if not isinstance(synchronized_batchnorm, (bool, np.bool_)):
        raise ValueError(
            "`synchronized_batchnorm` must be True or False. "
            f"Received: synchronized_batchnorm={synchronized_batchnorm!r}"
        )
    synchronized_batchnorm = bool(synchronized_batchnorm)
    backend = keras.backend.backend()
    if synchronized_batchnorm and backend != "tensorflow":
        raise ValueError(
            "`synchronized_batchnorm=True` needs the TensorFlow backend (tf.distribute); on "
            f"{backend}, keras.distribution.DataParallel already computes batch statistics over "
            "the global batch, so leave it False. Received: synchronized_batchnorm=True"
        )
    return synchronized_batchnorm
