"""The sharpness-aware family beyond plain SAM: the weight-tensor flags of ASAM/SAMSON and
Embedding (IndexedSlices) gradients."""

import math

import keras
import numpy as np
import pytest
from helpers import variable_gradients
from keras import ops

import tf_lanmax as tl

# ---------------------------------------------------------------------------------------------
# ASAM / SAMSON weight flags
# ---------------------------------------------------------------------------------------------


def _flags(layer, input_shape, dtype="float32"):
    model = keras.Sequential([keras.Input(input_shape, dtype=dtype), layer])
    sam = tl.SharpnessAwareModel(model, rule="asam")
    return {v.path.split("/")[-1]: f for v, f in zip(sam.trainable_variables, sam.weight_flags())}


@pytest.mark.parametrize(
    ("make", "input_shape", "dtype", "expected"),
    [
        (lambda: keras.layers.Embedding(10, 4), (3,), "int32", {"embeddings": True}),
        (
            lambda: keras.layers.LSTM(3),
            (4, 2),
            "float32",
            {"kernel": True, "recurrent_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.GRU(3),
            (4, 2),
            "float32",
            {"kernel": True, "recurrent_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.SimpleRNN(3),
            (4, 2),
            "float32",
            {"kernel": True, "recurrent_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.SeparableConv2D(4, 3),
            (6, 6, 2),
            "float32",
            {"depthwise_kernel": True, "pointwise_kernel": True, "bias": False},
        ),
        (
            lambda: keras.layers.BatchNormalization(),
            (5,),
            "float32",
            {"gamma": True, "beta": False},
        ),
    ],
    ids=["Embedding", "LSTM", "GRU", "SimpleRNN", "SeparableConv2D", "BatchNormalization"],
)
def test_weight_flags_cover_every_weight_tensor(make, input_shape, dtype, expected):
    assert _flags(make(), input_shape, dtype) == expected


def test_weight_flags_cover_any_tensor_of_rank_two_or_more():
    class Custom(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 3), name="w")
            self.offset = self.add_weight(shape=(3,), name="offset")

        def call(self, x):
            return x @ self.w + self.offset

    assert _flags(Custom(), (4,)) == {"w": True, "offset": False}


# ---------------------------------------------------------------------------------------------
# Embedding gradients (tf.IndexedSlices with repeated indices)
# ---------------------------------------------------------------------------------------------

IDS = np.array([[1, 1, 1, 2], [2, 2, 3, 1]], "int32")


def _embedding_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(10, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(1, use_bias=False),
        ]
    )


@pytest.mark.tensorflow_only
def test_indexed_slices_gradient_norm_is_the_norm_of_the_dense_gradient():
    import tensorflow as tf

    from tf_lanmax.sam import global_norm, sam_perturbation
    from tf_lanmax.sam.tensorflow_step import dense

    model = _embedding_model()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(IDS) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)
    truth = math.sqrt(sum(float(tf.reduce_sum(tf.convert_to_tensor(g) ** 2)) for g in grads))
    fixed = dense(grads, model.trainable_variables)
    assert float(global_norm(fixed)) == pytest.approx(truth, rel=1e-6)
    eps = sam_perturbation(fixed, 0.1)
    for e, g in zip(eps, grads, strict=True):
        np.testing.assert_allclose(
            np.asarray(e), 0.1 * np.asarray(tf.convert_to_tensor(g)) / truth, rtol=1e-5
        )
    # The old path (the raw slices) counted each repeated row separately: a different norm.
    assert abs(float(global_norm(grads)) - truth) > 0.05 * truth


def test_sam_step_on_an_embedding_with_repeated_ids_uses_the_dense_gradient():
    y = np.array([[0.5], [-1.0]], "float32")
    sam = tl.SharpnessAwareModel(_embedding_model(), rule="sam", rho=0.2)
    sam.compile(keras.optimizers.SGD(1.0), "mse")
    ref = _embedding_model()
    w = [np.asarray(v, np.float64) for v in ref.trainable_variables]

    def loss():
        return ops.mean((ref(IDS) - y) ** 2)

    g = [np.asarray(a, np.float64) for a in variable_gradients(loss, ref.trainable_variables)]
    norm = math.sqrt(sum(float(np.sum(a**2)) for a in g))
    for v, wi, gi in zip(ref.trainable_variables, w, g, strict=True):
        v.assign((wi + 0.2 * gi / norm).astype("float32"))
    g2 = variable_gradients(loss, ref.trainable_variables)
    sam.train_on_batch(IDS, y)
    for v, wi, gi in zip(sam.inner.trainable_variables, w, g2, strict=True):
        np.testing.assert_allclose(np.asarray(v), wi - gi, rtol=1e-4, atol=1e-6)
