"""A `.keras` model with faulty layers works in every MemSE entry point with its deployed
weights on the crossbar (the README's MemSE block itself runs in test_readme.py)."""

import keras
import numpy as np
import pytest
from keras import layers, ops

import tf_lanmax as tl
from tf_lanmax import memse as ms


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def test_keras_files_with_faulty_layers_work_in_every_memse_entry_point(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            tl.FaultyConv2D(4, 3, use_bias=False, fault_rate=1e-3, seed=0, name="conv"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Flatten(),
            tl.FaultyDense(3, weight_format="binary", fault_rate=1e-3, seed=1, name="head"),
        ]
    )
    model.save(tmp_path / "faulty.keras")
    model = keras.models.load_model(tmp_path / "faulty.keras")
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    cb = ms.Crossbar(sigma=0.02, levels=None, gmax=1.0)
    mirror = ms.MemSE(model, cb, cov_mode="jacobian")
    assert sorted(mirror.gmax) == ["conv", "head"]  # both on the crossbar
    # The deployed weights: the clean output is the model's with its faults off.
    with tl.faults_disabled(model):
        np.testing.assert_allclose(np_(mirror.clean(x)), np_(model(x)), rtol=1e-4, atol=1e-5)
    predicted = float(np.mean(np_(mirror.mse(x))))
    quiet = ms.MemSE(model, ms.Crossbar(sigma=0.0, levels=None))
    assert float(np.max(np_(quiet.mse(x)))) == 0.0  # the crossbar's sigma is what counts
    mc = ms.monte_carlo(mirror, None, x, draws=400, seed=0)
    assert abs(predicted - mc.mse) <= 0.1 * mc.mse + mc.half_width
    budget = float(mirror.power(x)[0])
    result = ms.optimize_gmax(model, cb, x, power_budget=budget, steps=2)
    assert set(result.gmax) == {"conv", "head"}
    robust = ms.MemSEPenaltyModel(model, cb, weight=0.1)
    robust.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    robust.fit(x, np.zeros(8, "int64"), epochs=1, verbose=0)
    digital = ms.MemSE(model, cb, mapping="digital")
    assert digital.gmax == {} and float(np.mean(np_(digital.mse(x)))) > 0
    with pytest.raises(ValueError, match="mapping"):
        ms.MemSE(model, cb, mapping="analog")
