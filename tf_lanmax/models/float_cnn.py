"""A small float CNN for 28x28 images: the reference network of the SAM / noise experiments."""

import keras

from tf_lanmax.models.batchnorm import check_synchronized_batchnorm


def float_cnn(input_shape=(28, 28, 1), num_classes=10, name="cnn", synchronized_batchnorm=False):
    """Two conv + BatchNorm blocks and two dense layers, ordinary float weights.

    ``[Conv2D(32, 3) -> BN -> ReLU -> MaxPool] -> [Conv2D(64, 3) -> BN -> ReLU -> MaxPool] ->
    Flatten -> Dense(128, relu) -> Dense(classes, softmax)``: the network trained plain, with
    SAM, ASAM and SAMSON and evaluated under conductance noise.

    Args:
        input_shape: image shape. Defaults to `(28, 28, 1)`.
        num_classes: output classes. Defaults to `10`.
        name: model name. Defaults to `"cnn"`.
        synchronized_batchnorm: BatchNorm statistics over the global batch of every replica
            (`BatchNormalization(synchronized=True)`), so that under tf.distribute
            multi-worker training the workers keep identical moving statistics. TensorFlow
            backend only. Defaults to `False`.

    Returns:
        An uncompiled `keras.Sequential`.

    Example:
    >>> model = float_cnn()
    """
    synchronized = check_synchronized_batchnorm(synchronized_batchnorm)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(synchronized=synchronized),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(synchronized=synchronized),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name=name,
    )
