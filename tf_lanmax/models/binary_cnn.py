"""A small binarized CNN for 28x28 images: fast enough for tests and the demo."""

import keras

from tf_lanmax._seeds import derived_seed
from tf_lanmax._validation import check_positive
from tf_lanmax.layers import FaultyConv2D, FaultyDense
from tf_lanmax.models.batchnorm import check_synchronized_batchnorm


def binary_cnn(
    input_shape=(28, 28, 1),
    num_classes=10,
    width_multiplier=1.0,
    weight_format="binary",
    fault_model="bit_flip",
    fault_rate=1e-3,
    seed=None,
    name="binary_cnn",
    synchronized_batchnorm=False,
):
    """Two binary conv blocks and two binary dense layers, each followed by BatchNorm.

    ``[FaultyConv2D(32w, 3) -> BN -> ReLU -> MaxPool] x2 (32w, 64w filters) -> Flatten ->
    FaultyDense(128w) -> BN -> ReLU -> FaultyDense(classes) -> BN -> softmax``. Every Conv and
    Dense kernel is stored in `weight_format` and read through `fault_model` (as in the LaNMax
    set-up); biases and BN parameters are reliable. The final BN rescales the +-alpha logits.

    Args:
        input_shape: image shape. Defaults to `(28, 28, 1)`.
        num_classes: output classes. Defaults to `10`.
        width_multiplier: scales every layer's width (the paper's smaller reliable networks).
            Defaults to `1.0`.
        weight_format: format of every kernel. Defaults to `"binary"`.
        fault_model: fault model of every kernel. Defaults to `"bit_flip"`.
        fault_rate: initial p of every faulty layer. Defaults to `1e-3`.
        seed: base seed; layer i uses `derived_seed(seed, i)` (a hash). Defaults to `None`.
        name: model name. Defaults to `"binary_cnn"`.
        synchronized_batchnorm: BatchNorm statistics over the global batch of every replica
            (`BatchNormalization(synchronized=True)`), so that under tf.distribute
            multi-worker training the workers keep identical moving statistics. TensorFlow
            backend only. Defaults to `False`.

    Returns:
        An uncompiled `keras.Sequential`.

    Example:
    >>> model = binary_cnn(fault_rate=1e-3, seed=0)
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    """
    check_positive("width_multiplier", width_multiplier)
    synchronized = check_synchronized_batchnorm(synchronized_batchnorm)

    def width(n):
        return max(1, round(n * width_multiplier))

    def faults(i):
        return {
            # Stable names (not Keras' global counters) so reports and logs read the same
            # across runs: conv1, conv2, dense1, dense2.
            "name": ("conv1", "conv2", "dense1", "dense2")[i],
            "weight_format": weight_format,
            "fault_model": fault_model,
            "fault_rate": fault_rate,
            "seed": None if seed is None else derived_seed(seed, i),
        }

    return keras.Sequential(
        [
            keras.Input(input_shape),
            FaultyConv2D(width(32), 3, padding="same", use_bias=False, **faults(0)),
            keras.layers.BatchNormalization(synchronized=synchronized),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            FaultyConv2D(width(64), 3, padding="same", use_bias=False, **faults(1)),
            keras.layers.BatchNormalization(synchronized=synchronized),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            FaultyDense(width(128), use_bias=False, **faults(2)),
            keras.layers.BatchNormalization(synchronized=synchronized),
            keras.layers.ReLU(),
            FaultyDense(num_classes, use_bias=False, **faults(3)),
            keras.layers.BatchNormalization(synchronized=synchronized),
            keras.layers.Activation("softmax", dtype="float32"),
        ],
        name=name,
    )
