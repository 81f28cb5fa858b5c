"""The TensorFlow part of `tl.distribute`: a multi-worker strategy that Keras' `fit` can use."""

import tensorflow as tf


class FitCompatibleMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3.15's `fit` passes it.

    `fit` reduces the first (x, y) batch (a nest) and every scalar log with ``axis=0``; the stock
    `reduce` takes one value and needs that axis. Each leaf is reduced on its own, and a scalar
    over the replicas only.
    """

    def reduce(self, reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(lambda v: self.reduce(reduce_op, v, axis), value)
        if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


def fit_compatible_strategy(*args, **kwargs):
    """A `FitCompatibleMultiWorkerMirroredStrategy(*args, **kwargs)`."""
    return FitCompatibleMultiWorkerMirroredStrategy(*args, **kwargs)
