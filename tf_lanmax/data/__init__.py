"""Input data: `tf.data` pipelines over TFDS, with offline paths (bundled real Fashion-MNIST).

TensorFlow and TFDS are imported on first use, so importing this package costs little.

Example:

>>> from tf_lanmax import data
>>> train = data.load("fashion_mnist_subset", "train", batch_size=128)
>>> x_test, y_test = data.load_numpy("fashion_mnist_subset", "test")
>>> data.info("fashion_mnist_subset")["num_classes"]
10
"""

from tf_lanmax.data.pipeline import info, load, load_numpy
from tf_lanmax.data.sources import DATASETS, DatasetUnavailableError

__all__ = ["DATASETS", "DatasetUnavailableError", "info", "load", "load_numpy"]
