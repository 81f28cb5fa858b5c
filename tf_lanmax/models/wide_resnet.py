"""The binarized Wide ResNet of the LaNMax paper (BinaryConnect on every Conv and Dense)."""

import keras

from tf_lanmax._seeds import derived_seed
from tf_lanmax._validation import check_int, check_positive
from tf_lanmax.layers import FaultyConv2D, FaultyDense
from tf_lanmax.models.batchnorm import check_synchronized_batchnorm


def binary_wide_resnet(
    depth=16,
    width=4,
    input_shape=(32, 32, 3),
    num_classes=10,
    weight_format="binary",
    fault_model="bit_flip",
    fault_rate=1e-3,
    seed=None,
    name=None,
    synchronized_batchnorm=False,
):
    """WRN-depth-width (Zagoruyko & Komodakis 2016) with pre-activation blocks and faulty kernels.

    ``depth = 6n + 4``: a 16-filter stem, three groups of n blocks with 16w, 32w, 64w filters
    (stride 2 at groups 2 and 3), BN -> ReLU -> 3x3 conv twice per block, 1x1 faulty projection
    shortcuts where the shape changes, then BN -> ReLU -> global average pool -> FaultyDense.
    Every Conv/Dense kernel is stored in `weight_format` and read through `fault_model`.

    Args:
        depth: total depth, 6n + 4 (10, 16, 22, 28, ...). Defaults to `16`.
        width: width factor k. Defaults to `4`.
        input_shape: image shape. Defaults to `(32, 32, 3)`.
        num_classes: output classes. Defaults to `10`.
        weight_format: format of every kernel. Defaults to `"binary"`.
        fault_model: fault model of every kernel. Defaults to `"bit_flip"`.
        fault_rate: initial p of every faulty layer. Defaults to `1e-3`.
        seed: base seed; the i-th faulty layer uses `derived_seed(seed, i)` (a hash).
            Defaults to `None`.
        name: model name. Defaults to `"binary_wrn_{depth}_{width}"`.
        synchronized_batchnorm: BatchNorm statistics over the global batch of every replica
            (`BatchNormalization(synchronized=True)`), so that under tf.distribute
            multi-worker training the workers keep identical moving statistics. TensorFlow
            backend only. Defaults to `False`.

    Returns:
        An uncompiled functional `keras.Model`.

    Example:
    >>> model = binary_wide_resnet(depth=10, width=1)

    Reference: Henwood et al., arXiv:1912.10764 (the network).
    """
    depth = check_int("depth", depth, low=10)
    if (depth - 4) % 6:
        raise ValueError(f"`depth` must be 6n + 4 (10, 16, 22, ...). Received: depth={depth}")
    check_positive("width", width)
    synchronized = check_synchronized_batchnorm(synchronized_batchnorm)
    blocks = (depth - 4) // 6
    counter = iter(range(10**6))

    def conv(filters, kernel, stride=1):
        i = next(counter)
        return FaultyConv2D(
            filters,
            kernel,
            strides=stride,
            padding="same",
            use_bias=False,
            weight_format=weight_format,
            fault_model=fault_model,
            fault_rate=fault_rate,
            seed=None if seed is None else derived_seed(seed, i),
        )

    def bn_relu(x):
        return keras.layers.ReLU()(keras.layers.BatchNormalization(synchronized=synchronized)(x))

    inputs = keras.Input(input_shape)
    x = conv(16, 3)(inputs)
    for group, base in enumerate((16, 32, 64)):
        filters = max(1, round(base * width))
        for b in range(blocks):
            stride = 2 if group > 0 and b == 0 else 1
            pre = bn_relu(x)
            shortcut = x
            if stride != 1 or x.shape[-1] != filters:
                shortcut = conv(filters, 1, stride)(pre)
            y = conv(filters, 3, stride)(pre)
            y = conv(filters, 3)(bn_relu(y))
            x = keras.layers.Add()([shortcut, y])
    x = keras.layers.GlobalAveragePooling2D()(bn_relu(x))
    x = FaultyDense(
        num_classes,
        weight_format=weight_format,
        fault_model=fault_model,
        fault_rate=fault_rate,
        seed=None if seed is None else derived_seed(seed, next(counter)),
    )(x)
    x = keras.layers.BatchNormalization(synchronized=synchronized)(x)
    outputs = keras.layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name or f"binary_wrn_{depth}_{width}")
