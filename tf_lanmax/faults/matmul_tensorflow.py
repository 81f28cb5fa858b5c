"""Whether TensorFlow's float32 matrix product is exact on whole numbers here (the only
TensorFlow code of `tf_lanmax.faults`).

`gap_draws` sums gaps by a matrix product with a triangle of ones, which needs every product
and partial sum of whole numbers below 2**24 exact: true of IEEE float32 arithmetic, false
where TensorFlow rounds a float32 product's inputs (TensorFloat-32 on a GPU, enabled by
default, keeps 10 mantissa bits; oneDNN's reduced-precision math mode on a CPU, chosen by the
environment variable ``TF_SET_ONEDNN_FPMATH_MODE``).
"""

import os

import tensorflow as tf


def float32_matmul_is_exact():
    """True when no float32 `tf.matmul` here can round its inputs: no GPU with TensorFloat-32
    enabled, and no oneDNN math mode set (any value of ``TF_SET_ONEDNN_FPMATH_MODE`` counts as
    one, so the answer errs on the safe side).

    Example:
    >>> isinstance(float32_matmul_is_exact(), bool)
    True
    """
    if os.environ.get("TF_SET_ONEDNN_FPMATH_MODE"):
        return False
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    return not (tf32 and tf.config.list_logical_devices("GPU"))
