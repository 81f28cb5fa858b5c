"""The sharpness-aware family beyond plain SAM: the weight-tensor flags of ASAM/SAMSON."""

import keras
import pytest

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
