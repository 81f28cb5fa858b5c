"""`tl.layers.with_memory`: a trained model's copy on another memory, weights kept."""

import keras
import numpy as np
import pytest
from keras import ops

import tf_lanmax as tl


def _model():
    fmt = tl.formats.FixedPoint(8, 6)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            tl.FaultyConv2D(4, 3, name="conv1", weight_format=fmt, fault_rate=2e-2, seed=3),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            tl.FaultyDense(16, name="dense1", weight_format=fmt, fault_rate=2e-2, seed=4),
            tl.FaultyDense(3, name="dense2", weight_format=fmt, fault_rate=2e-2, seed=5),
        ]
    )


def _rates(model):
    return [
        float(ops.convert_to_numpy(layer.fault_rate.value)) for layer in tl.faulty_layers(model)
    ]


def test_copy_keeps_weights_and_rates_and_leaves_the_input_untouched():
    model = _model()
    tl.set_fault_rates(model, {"conv1": 0.1})
    copy = tl.layers.with_memory(model, fault_persistence="persistent", ecc="secded")
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    with tl.faults_disabled(model), tl.faults_disabled(copy):
        np.testing.assert_array_equal(model.predict(x, verbose=0), copy.predict(x, verbose=0))
    assert _rates(copy) == _rates(model)
    assert [layer.fault_persistence for layer in tl.faulty_layers(copy)] == ["persistent"] * 3
    assert [layer.fault_persistence for layer in tl.faulty_layers(model)] == ["transient"] * 3
    assert all(layer.ecc is None for layer in tl.faulty_layers(model))
    assert all(layer.check_bits > 0 for layer in tl.faulty_layers(copy))


def test_a_given_fault_rate_replaces_the_learned_ones():
    copy = tl.layers.with_memory(_model(), fault_rate=1e-4)
    np.testing.assert_allclose(_rates(copy), [1e-4] * 3, rtol=1e-6)


def test_persistent_copy_reads_the_same_chip_on_every_call():
    copy = tl.layers.with_memory(_model(), fault_persistence="persistent")
    x = np.random.default_rng(1).random((2, 8, 8, 1), dtype=np.float32)
    first = copy.predict(x, verbose=0)
    np.testing.assert_array_equal(first, copy.predict(x, verbose=0))
    tl.layers.set_chip(copy, 7)
    assert not np.array_equal(first, copy.predict(x, verbose=0))


def test_bad_arguments_name_what_is_allowed():
    with pytest.raises(ValueError, match="units.*Allowed"):
        tl.layers.with_memory(_model(), units=3)
    with pytest.raises(ValueError, match="ecc"):
        tl.layers.with_memory(_model(), ecc="hamming")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no faulty layer"):
        tl.layers.with_memory(plain, ecc="secded")
